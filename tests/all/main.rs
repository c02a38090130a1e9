//! vecprop's integration tests, as one executable: one link, and one binary for the GPU bundle
//! (`scripts/gpu-check.sh`) to carry. Each file of this folder is a module; `common` holds the
//! float64 reference and `test_device!`, `helpers` the hand-made files and the binary's path.
//!
//! Run one module with `cargo test --test all <module>::`, e.g. `cargo test --test all io::`.
//! The modules that run the `vecprop` binary need the `cli` feature (on by default); the
//! `cuda_*` modules need the `cuda` feature and a GPU, and fail loudly without one.

#[macro_use]
mod common;
mod helpers;

mod activations;
mod errors;
mod forward;
mod header_lengths;
mod io;
mod npy_reader;
mod plot;
mod small_batch;
mod streaming;

#[cfg(feature = "cli")]
mod cli;
#[cfg(feature = "cli")]
mod host_side;
#[cfg(feature = "cli")]
mod models;
#[cfg(feature = "cli")]
mod pytorch;
#[cfg(feature = "cli")]
mod readme;
#[cfg(feature = "cli")]
mod safe_io;

#[cfg(feature = "cuda")]
mod cuda_e2e;
#[cfg(feature = "cuda")]
mod cuda_kernels;
#[cfg(feature = "cuda")]
mod cuda_parity;
#[cfg(feature = "cuda")]
mod cuda_wgmma_simt;
