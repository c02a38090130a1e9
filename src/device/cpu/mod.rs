//! The CPU backend: a packed-weight panel kernel with bias and activation fused, split across
//! the cores by units for small batches and by rows otherwise ([`CpuDense`]); the `gemm`
//! crate and a one-pass epilogue ([`dense_forward`]) for views with strided rows.

mod dense;
mod epilogue;
mod gemm;
mod layer;
mod packed;
mod panel;
mod plan;
mod prefetch;
mod small_batch;
mod spin_worker;

pub use dense::dense_forward;
pub use epilogue::bias_activation;
pub use layer::{CpuDense, Kernel, SMALL_BATCH_ROWS};
pub use packed::{PackedWeights, PANEL};
pub use plan::CpuPlan;

/// The host's cores.
#[derive(Clone, Debug)]
pub struct CpuDevice {
    threads: usize,
}

impl CpuDevice {
    /// Uses every thread of rayon's global pool (set `RAYON_NUM_THREADS` to limit it).
    pub fn new() -> Self {
        CpuDevice {
            threads: rayon::current_num_threads().max(1),
        }
    }

    /// Worker threads the backend splits work across.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// For example `cpu (2 threads)`.
    pub fn name(&self) -> String {
        let plural = if self.threads == 1 { "" } else { "s" };
        format!("cpu ({} thread{plural})", self.threads)
    }
}

impl Default for CpuDevice {
    fn default() -> Self {
        Self::new()
    }
}
