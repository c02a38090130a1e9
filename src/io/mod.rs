//! Reading and writing models (safetensors) and batches (.npy).
