//! Files that are never left half-written: what vecprop writes appears complete or not at all.
//!
//! It sits beneath everything that writes a file (model and batch I/O, the tuning cache).

mod atomic;
mod pending;

pub use atomic::{is_stream_output, refuse_same_file, write_atomic, AtomicFile};
pub use pending::remove_temporary_files_on_signals;
