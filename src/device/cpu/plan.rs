//! A network compiled for the CPU.

use std::sync::{Arc, Mutex};

use ndarray::{ArrayView2, ArrayViewMut2};

use super::layer::{CpuDense, Kernel, SMALL_BATCH_ROWS};
use super::panel::rows_contiguous;
use super::small_batch::SmallBatchRunner;
use super::CpuDevice;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::execution::{PlanOptions, Strategy};
use crate::graph::network::Network;

/// Two activation buffers; layer i writes one and layer i+1 reads it and writes the other.
/// They grow on demand to `rows × widest layer` for the largest batch actually run (at most
/// `max_batch` rows), so a huge `max_batch` costs nothing until that many rows arrive.
#[derive(Default)]
struct PingPong {
    buffers: [Vec<f32>; 2],
}

/// The CPU half of a [`Plan`](crate::Plan).
///
/// An f16 or bf16 plan computes as the GPU does: weights, biases, the input and every
/// layer's output are held in 16 bits (rounded to the storage type), while products
/// accumulate in f32. So the CPU gives the same answers as a GPU to within the GPU's
/// accumulation order, and is no faster than f32.
pub struct CpuPlan {
    layers: Arc<[CpuDense]>,
    /// The precision values are stored in between layers.
    storage: DType,
    threads: usize,
    /// The widest row the scratch holds: the widest layer, or the input of a 16-bit plan.
    max_width: usize,
    /// The largest batch the plan was compiled for.
    max_batch: usize,
    /// Idle buffer pairs. A call takes one (or makes one, the first time a thread is
    /// concurrent) and gives it back, so the lock is held only for a push or a pop.
    idle: Mutex<Vec<PingPong>>,
    /// The two-core runner for small batches, started by the first one.
    small: Mutex<SmallBatch>,
}

/// Whether a plan's small-batch helper thread has been started.
enum SmallBatch {
    NotStarted,
    Running(SmallBatchRunner),
    /// The OS refused the thread: small batches take the one-layer-at-a-time path.
    Unavailable,
}

impl CpuPlan {
    pub(crate) fn new(
        device: &CpuDevice,
        network: &Network,
        options: &PlanOptions,
        storage: DType,
    ) -> Result<Self> {
        if options.strategy != Strategy::Auto {
            return Err(Error::InvalidArgument(format!(
                "the kernel strategy `{}` (--kernel) is for CUDA devices; the CPU computes \
                 every layer one way, so leave it at `auto`",
                options.strategy
            )));
        }
        if options.allow_tf32 {
            return Err(Error::InvalidArgument(
                "TF32 (--tf32) is a GPU tensor-core mode; the CPU computes f32 exactly".into(),
            ));
        }
        let layers = network
            .layers()
            .iter()
            .map(|layer| {
                CpuDense::new(
                    layer.weight().mapv(|w| storage.round(w)),
                    layer.bias().iter().map(|&b| storage.round(b)).collect(),
                    layer.activation(),
                )
            })
            .collect();
        // A 16-bit plan also rounds its input into the scratch buffers.
        let widest = match storage {
            DType::F32 => network.max_width(),
            _ => network.max_width().max(network.input_width()),
        };
        // The largest scratch this plan may ever need must be expressible.
        scratch_len(options.max_batch, widest)?;
        Ok(CpuPlan {
            layers,
            storage,
            threads: device.threads(),
            max_width: widest,
            max_batch: options.max_batch,
            idle: Mutex::new(vec![PingPong::default()]),
            small: Mutex::new(SmallBatch::NotStarted),
        })
    }

    /// Runs every layer on `input` (at most `max_batch` rows); the last writes `output`.
    pub(crate) fn run(
        &self,
        input: ArrayView2<'_, f32>,
        mut output: ArrayViewMut2<'_, f32>,
    ) -> Result<()> {
        let rows = input.nrows();
        if let Some(runner) = self.small_batch_runner(rows, output.view()) {
            if let SmallBatch::Running(runner) = &*runner {
                return runner.run(input, output, self.storage);
            }
        }
        let mut scratch = self.take_scratch();
        let needed = scratch_len(rows, self.max_width)?;
        for buffer in &mut scratch.buffers {
            if buffer.len() < needed {
                buffer
                    .try_reserve_exact(needed - buffer.len())
                    .map_err(|e| {
                        Error::InvalidArgument(format!(
                            "cannot allocate {} bytes of scratch for {rows} rows: {e}",
                            needed.saturating_mul(4)
                        ))
                    })?;
                buffer.resize(needed, 0.0);
            }
        }
        let [front, back] = &mut scratch.buffers;
        let (mut read, mut write): (&mut Vec<f32>, &mut Vec<f32>) = (front, back);
        let sixteen_bit = self.storage != DType::F32;
        if sixteen_bit {
            // The input as the GPU receives it: in the storage type.
            let stored = &mut read[..input.len()];
            let mut stored =
                ArrayViewMut2::from_shape(input.dim(), stored).map_err(scratch_error)?;
            stored.zip_mut_with(&input, |s, &x| *s = self.storage.round(x));
        }
        let last = self.layers.len() - 1;
        for (index, layer) in self.layers.iter().enumerate() {
            let units = layer.units();
            let inputs = layer.inputs();
            let source = if index == 0 && !sixteen_bit {
                input
            } else {
                ArrayView2::from_shape((rows, inputs), &read[..rows * inputs])
                    .map_err(scratch_error)?
            };
            let target = if index == last {
                output.view_mut()
            } else {
                ArrayViewMut2::from_shape((rows, units), &mut write[..rows * units])
                    .map_err(scratch_error)?
            };
            let mut target = target;
            layer.forward(source, target.view_mut(), self.threads);
            if sixteen_bit {
                let storage = self.storage;
                target.par_mapv_inplace(|v| storage.round(v));
            }
            std::mem::swap(&mut read, &mut write);
        }
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(scratch);
        Ok(())
    }

    /// The small-batch runner, locked for this call, if `rows` rows should take it: a small
    /// batch, two or more threads, an output with contiguous rows, and no other call using
    /// the runner right now (a concurrent call takes the per-layer path instead).
    fn small_batch_runner(
        &self,
        rows: usize,
        output: ArrayView2<'_, f32>,
    ) -> Option<std::sync::MutexGuard<'_, SmallBatch>> {
        if rows == 0 || rows > SMALL_BATCH_ROWS || self.threads < 2 || !rows_contiguous(output) {
            return None;
        }
        let mut slot = self.small.try_lock().ok()?;
        if let SmallBatch::NotStarted = *slot {
            *slot = match SmallBatchRunner::new(Arc::clone(&self.layers)) {
                Ok(runner) => SmallBatch::Running(runner),
                Err(_) => SmallBatch::Unavailable,
            };
        }
        Some(slot)
    }

    fn take_scratch(&self) -> PingPong {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        idle.unwrap_or_default()
    }

    /// One line per layer: the kernel a batch of `max_batch` rows takes, and what a small
    /// batch takes when that differs.
    pub(crate) fn kernel_choices(&self) -> Vec<String> {
        let storage = match self.storage {
            DType::F32 => String::new(),
            other => format!(", {other} storage, f32 accumulation"),
        };
        self.layers
            .iter()
            .map(|layer| {
                let large = layer.kernel(self.max_batch);
                let small = layer.kernel(1);
                let kernels = if large == small {
                    large.describe().to_string()
                } else {
                    format!(
                        "{}; batches of <= {SMALL_BATCH_ROWS} rows: {}",
                        large.describe(),
                        small.describe()
                    )
                };
                let kernels = format!("{kernels}; strided rows: {}", Kernel::Gemm.describe());
                format!("cpu {kernels} ({} threads{storage})", self.threads)
            })
            .collect()
    }
}

/// Elements in one scratch buffer for `rows` rows of `width` units, or an error if that
/// overflows (e.g. `max_batch` 2^62).
fn scratch_len(rows: usize, width: usize) -> Result<usize> {
    rows.checked_mul(width)
        .filter(|&n| n.checked_mul(std::mem::size_of::<f32>()).is_some())
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "a batch of {rows} rows x {width} units does not fit in memory; use a smaller batch size"
            ))
        })
}

fn scratch_error(err: ndarray::ShapeError) -> Error {
    Error::InvalidArgument(format!(
        "scratch buffer smaller than max_batch x widest layer: {err}"
    ))
}
