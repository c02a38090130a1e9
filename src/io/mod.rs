//! Reading and writing models (safetensors) and batches (.npy).
//!
//! Every file vecprop writes is written atomically: to `<name>.partial` in the same folder,
//! synced, then renamed over `<name>`. A failed write removes the temporary file, so no
//! half-written file is ever left behind looking complete.
//!
//! - [`load_model`] / [`save_model`]: a [`Network`](crate::Network) in a safetensors file, in
//!   `torch.nn.Linear` layout.
//! - [`read_npy`] / [`write_npy`]: a whole 2-D batch; [`NpyReader`] / [`NpyWriter`]: the same in
//!   row chunks, for batches larger than memory.
//! - [`forward_npy`]: streams a `.npy` batch through a [`Plan`](crate::Plan) into a `.npy` output.

mod atomic;
mod bytes;
pub mod npy;
pub mod safetensors;
mod stream;

pub use atomic::{write_atomic, AtomicFile};
pub use npy::{read_npy, write_npy, ByteOrder, NpyDType, NpyReader, NpyWriter};
pub use safetensors::{load_model, save_model};
pub use stream::{forward_npy, forward_npy_from};
