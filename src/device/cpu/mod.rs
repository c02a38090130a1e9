//! The CPU backend: ndarray arrays, a multi-threaded GEMM and a one-pass epilogue for large
//! batches, and a packed-weight panel kernel with the epilogue fused for small batches and
//! narrow layers ([`CpuDense`] picks one per call).

mod dense;
mod epilogue;
mod gemm;
mod layer;
mod packed;
mod panel;
mod plan;
mod small_batch;
mod spin_worker;

pub use dense::dense_forward;
pub use epilogue::bias_activation;
pub use layer::{CpuDense, Kernel, NARROW_WIDTH, SMALL_BATCH_ROWS};
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
