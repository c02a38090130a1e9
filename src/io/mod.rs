//! Reading and writing models (safetensors) and batches (.npy).
//!
//! Every file vecprop writes is written atomically: to a private temporary file
//! `.<name>.<random>.partial` in the same folder, synced, then renamed over `<name>` (see
//! [`AtomicFile`]). A failed write removes the temporary file, so no half-written file is
//! ever left behind looking complete. Outputs that are not regular files (stdout as `-`, a
//! FIFO, a device) are streamed to directly.
//!
//! - [`load_model`]: a [`Network`](crate::Network) from a safetensors `state_dict` (nested
//!   modules, bias-free Linear, BatchNorm1d folded) or an ONNX file; [`save_model`]: a
//!   safetensors file in `torch.nn.Linear` layout.
//! - [`read_npy`] / [`write_npy`]: a whole 2-D batch; [`NpyReader`] / [`NpyWriter`]: the same in
//!   row chunks, for batches larger than memory.
//! - [`forward_npy`]: streams a `.npy` batch through a [`Plan`](crate::Plan) into a `.npy` output.

mod bounded_file;
mod bytes;
mod layers;
mod model_file;
pub mod npy;
pub mod onnx;
mod outputs;
pub mod safetensors;
mod state_dict;
mod stream;

pub use crate::fs::{
    refuse_same_file, remove_temporary_files_on_signals, write_atomic, AtomicFile,
};
pub use model_file::{load_model, load_model_outputs};
pub use npy::{read_npy, write_npy, ByteOrder, LabelWriter, NpyDType, NpyReader, NpyWriter};
pub use outputs::{Model, ModelOutput, OutputKind};
pub use safetensors::save_model;
pub use stream::{forward_npy, forward_npy_from, forward_npy_labels};
