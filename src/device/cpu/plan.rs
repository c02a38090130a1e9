//! A network compiled for the CPU.

use std::sync::Mutex;

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use super::dense::dense_forward;
use super::CpuDevice;
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::graph::network::Network;
use crate::graph::plan::PlanOptions;

struct CpuLayer {
    weight: Array2<f32>,
    bias: Vec<f32>,
    activation: Activation,
}

/// Two activation buffers; layer i writes one and layer i+1 reads it and writes the other.
/// They grow on demand to `rows × widest layer` for the largest batch actually run (at most
/// `max_batch` rows), so a huge `max_batch` costs nothing until that many rows arrive.
#[derive(Default)]
struct PingPong {
    buffers: [Vec<f32>; 2],
}

/// The CPU half of a [`Plan`](crate::Plan). f16 and bf16 models compute in f32.
pub struct CpuPlan {
    layers: Vec<CpuLayer>,
    threads: usize,
    /// The widest layer, in units.
    max_width: usize,
    /// Idle buffer pairs. A call takes one (or makes one, the first time a thread is
    /// concurrent) and gives it back, so the lock is held only for a push or a pop.
    idle: Mutex<Vec<PingPong>>,
}

impl CpuPlan {
    pub(crate) fn new(
        device: &CpuDevice,
        network: &Network,
        options: &PlanOptions,
    ) -> Result<Self> {
        let layers = network
            .layers()
            .iter()
            .map(|layer| CpuLayer {
                weight: layer.weight().clone(),
                bias: layer.bias().to_vec(),
                activation: layer.activation(),
            })
            .collect();
        // The largest scratch this plan may ever need must be expressible.
        scratch_len(options.max_batch, network.max_width())?;
        Ok(CpuPlan {
            layers,
            threads: device.threads(),
            max_width: network.max_width(),
            idle: Mutex::new(vec![PingPong::default()]),
        })
    }

    /// Runs every layer on `input` (at most `max_batch` rows); the last writes `output`.
    pub(crate) fn run(
        &self,
        input: ArrayView2<'_, f32>,
        mut output: ArrayViewMut2<'_, f32>,
    ) -> Result<()> {
        let rows = input.nrows();
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
        let last = self.layers.len() - 1;
        for (index, layer) in self.layers.iter().enumerate() {
            let units = layer.weight.ncols();
            let inputs = layer.weight.nrows();
            let source = if index == 0 {
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
            dense_forward(
                source,
                layer.weight.view(),
                &layer.bias,
                layer.activation,
                target,
                self.threads,
            );
            std::mem::swap(&mut read, &mut write);
        }
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(scratch);
        Ok(())
    }

    fn take_scratch(&self) -> PingPong {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        idle.unwrap_or_default()
    }

    pub(crate) fn kernel_choices(&self) -> Vec<String> {
        self.layers
            .iter()
            .map(|_| format!("cpu gemm + bias/act epilogue ({} threads)", self.threads))
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
