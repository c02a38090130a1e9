//! Files that are never left half-written: what vecprop writes appears complete or not at all.
//!
//! It sits beneath everything that writes a file (model and batch I/O, the tuning cache).

mod atomic;

pub use atomic::{write_atomic, AtomicFile};
