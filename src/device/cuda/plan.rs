//! A network compiled for one GPU.
//!
//! Weights live on the GPU in the plan's dtype from compilation on. Each forward pass takes
//! a lane (its own stream and cuBLAS handles), two activation buffers and two pinned staging
//! buffers from the device's pools, so concurrent callers share nothing mutable and no lock
//! is held while the GPU works. The pools keep what a pass used, so a warm pass allocates
//! nothing.

use std::sync::atomic::Ordering;

use cudarc::driver::CudaSlice;
use half::{bf16, f16};
use ndarray::{ArrayView2, ArrayViewMut2};

use super::dense::{run_dense, DenseOperands, LayerKernel};
use super::error::CudaResultExt;
use super::pinned::PinnedBuffer;
use super::pool::PooledBuffer;
use super::stream::{median_ms, Lane};
use super::{CudaDevice, GpuElement};
use crate::activation::Activation;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::network::Network;
use crate::graph::plan::{PlanOptions, Strategy};

/// Untimed runs before Auto times a candidate, then timed runs (the median wins).
const TUNE_WARMUP: usize = 2;
const TUNE_REPEATS: usize = 5;

/// The GPU half of a [`Plan`](crate::Plan): one implementation, generic over the dtype.
pub struct CudaPlan {
    inner: Box<dyn ForwardPass>,
}

/// What the dtype-generic plan offers to the dtype-free [`CudaPlan`].
trait ForwardPass: Send + Sync {
    fn run(&self, input: ArrayView2<'_, f32>, output: ArrayViewMut2<'_, f32>) -> Result<()>;
    fn kernel_choices(&self) -> Vec<String>;
}

impl CudaPlan {
    pub(crate) fn new(
        device: &CudaDevice,
        network: &Network,
        options: &PlanOptions,
        dtype: DType,
    ) -> Result<Self> {
        fn build<T: GpuElement>(
            device: &CudaDevice,
            network: &Network,
            options: &PlanOptions,
        ) -> Result<Box<dyn ForwardPass>> {
            Ok(Box::new(GpuPlan::<T>::new(device, network, options)?))
        }
        // The one place the run-time dtype picks a type; everything below is generic.
        let inner = match dtype {
            DType::F32 => build::<f32>(device, network, options)?,
            DType::F16 => build::<f16>(device, network, options)?,
            DType::BF16 => build::<bf16>(device, network, options)?,
        };
        Ok(CudaPlan { inner })
    }

    /// Runs every layer on `input` (at most `max_batch` rows) into `output`.
    pub(crate) fn run(
        &self,
        input: ArrayView2<'_, f32>,
        output: ArrayViewMut2<'_, f32>,
    ) -> Result<()> {
        self.inner.run(input, output)
    }

    /// Per layer, what runs and (under Auto) the timings that chose it.
    pub(crate) fn kernel_choices(&self) -> Vec<String> {
        self.inner.kernel_choices()
    }
}

/// One layer resident on the GPU.
struct GpuLayer<T> {
    weight: CudaSlice<T>,
    bias: CudaSlice<T>,
    inputs: usize,
    units: usize,
    activation: Activation,
    kernel: LayerKernel,
    /// Why `kernel`: the strategy, or Auto's timings.
    reason: String,
}

struct GpuPlan<T: GpuElement> {
    device: CudaDevice,
    layers: Vec<GpuLayer<T>>,
    input_width: usize,
    output_width: usize,
    max_batch: usize,
    /// Elements of each ping-pong buffer: max_batch × the widest of input and layers.
    scratch_len: usize,
    allow_tf32: bool,
}

/// The buffers one forward pass borrows from the pools.
struct Scratch<T: GpuElement> {
    ping: PooledBuffer<T>,
    pong: PooledBuffer<T>,
}

impl<T: GpuElement> GpuPlan<T> {
    fn new(device: &CudaDevice, network: &Network, options: &PlanOptions) -> Result<Self> {
        let inner = &device.inner;
        let mut lane = inner.lanes.acquire()?;
        let widest = network.max_width().max(network.input_width());
        let scratch_len = options
            .max_batch
            .checked_mul(widest)
            .ok_or_else(|| Error::InvalidArgument("max_batch x width is too large".into()))?;
        let mut plan = GpuPlan {
            device: device.clone(),
            layers: Vec::with_capacity(network.layers().len()),
            input_width: network.input_width(),
            output_width: network.output_width(),
            max_batch: options.max_batch,
            scratch_len,
            allow_tf32: options.allow_tf32,
        };
        for layer in network.layers() {
            let to_device = |values: Vec<T>, what: &str| {
                lane.stream
                    .clone_htod(&values)
                    .during(&format!("uploading layer `{}`'s {what}", layer.name()))
            };
            let weight = to_device(
                layer.weight().iter().map(|&x| T::from_f32(x)).collect(),
                "weights",
            )?;
            let bias = to_device(
                layer.bias().iter().map(|&x| T::from_f32(x)).collect(),
                "bias",
            )?;
            plan.layers.push(GpuLayer {
                weight,
                bias,
                inputs: layer.inputs(),
                units: layer.units(),
                activation: layer.activation(),
                kernel: LayerKernel::Cublas,
                reason: String::new(),
            });
        }
        // Allocating the first pass's buffers now also primes the pools.
        let mut scratch = plan.take_scratch(&lane)?;
        let chosen = plan.choose_kernels(&mut lane, &mut scratch, options.strategy);
        let synced = lane.synchronize();
        for (layer, (kernel, reason)) in plan.layers.iter_mut().zip(chosen?) {
            layer.kernel = kernel;
            layer.reason = reason;
        }
        synced?;
        inner.check_deferred_errors()?;
        Ok(plan)
    }

    fn take_scratch(&self, lane: &Lane) -> Result<Scratch<T>> {
        let buffers = &self.device.inner.buffers;
        Ok(Scratch {
            ping: buffers.take(&lane.stream, self.scratch_len)?,
            pong: buffers.take(&lane.stream, self.scratch_len)?,
        })
    }

    /// Per layer, the kernel and why: the strategy's, or Auto's fastest at max_batch rows.
    fn choose_kernels(
        &self,
        lane: &mut Lane,
        scratch: &mut Scratch<T>,
        strategy: Strategy,
    ) -> Result<Vec<(LayerKernel, String)>> {
        let multiprocessors = self.device.inner.info.multiprocessors;
        let forced_tile = match self.device.inner.forced_fused_tile.load(Ordering::Relaxed) {
            0 => None,
            edge => Some(edge),
        };
        if strategy != Strategy::Auto {
            return Ok(self
                .layers
                .iter()
                .map(|layer| {
                    let kernel = LayerKernel::for_strategy(
                        strategy,
                        self.max_batch,
                        layer.units,
                        multiprocessors,
                        forced_tile,
                    )
                    .unwrap_or(LayerKernel::Cublas);
                    (kernel, format!("strategy {strategy}"))
                })
                .collect());
        }
        // Timing needs realistic operands: random values, never zeros.
        let random = crate::tensor::random_batch(1, self.scratch_len, 0x7a11);
        let values: Vec<T> = random.iter().map(|&x| T::from_f32(x)).collect();
        lane.stream
            .memcpy_htod(&values, &mut scratch.ping.view_mut(self.scratch_len)?)
            .during("filling the tuning input")?;
        self.layers
            .iter()
            .map(|layer| self.time_candidates(lane, scratch, layer))
            .collect()
    }

    /// Times every kernel on `layer` and returns the fastest, with all the times.
    fn time_candidates(
        &self,
        lane: &mut Lane,
        scratch: &mut Scratch<T>,
        layer: &GpuLayer<T>,
    ) -> Result<(LayerKernel, String)> {
        let context = std::sync::Arc::clone(lane.stream.context());
        let stream = std::sync::Arc::clone(&lane.stream);
        let mut timings = Vec::new();
        let mut first_error = None;
        for kernel in LayerKernel::ALL {
            let result = median_ms(&context, &stream, TUNE_WARMUP, TUNE_REPEATS, || {
                self.run_layer(lane, scratch, layer, kernel, self.max_batch)
            });
            match result {
                Ok(ms) => timings.push((kernel, ms)),
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        let Some(&(best, best_ms)) = timings.iter().min_by(|x, y| x.1.total_cmp(&y.1)) else {
            return Err(
                first_error.unwrap_or_else(|| Error::InvalidArgument("no kernel to time".into()))
            );
        };
        let others: Vec<String> = timings
            .iter()
            .filter(|(kernel, _)| *kernel != best)
            .map(|(kernel, ms)| format!("{kernel} {ms:.3}"))
            .chain(
                LayerKernel::ALL
                    .iter()
                    .filter(|kernel| !timings.iter().any(|(timed, _)| timed == *kernel))
                    .map(|kernel| format!("{kernel} failed")),
            )
            .collect();
        let reason = format!(
            "auto: {best} {best_ms:.3} ms ({}) at {} rows",
            others.join(", "),
            self.max_batch
        );
        Ok((best, reason))
    }

    /// Queues `layer` on `rows` rows, reading `scratch.ping` and writing `scratch.pong`.
    fn run_layer(
        &self,
        lane: &mut Lane,
        scratch: &mut Scratch<T>,
        layer: &GpuLayer<T>,
        kernel: LayerKernel,
        rows: usize,
    ) -> Result<()> {
        let a = scratch.ping.view(rows * layer.inputs)?;
        let mut out = scratch.pong.view_mut(rows * layer.units)?;
        let (w, bias) = (layer.weight.as_view(), layer.bias.as_view());
        let ops = DenseOperands {
            a: &a,
            w: &w,
            bias: &bias,
            out: &mut out,
            m: rows,
            n: layer.units,
            k: layer.inputs,
            activation: layer.activation,
        };
        run_dense(&self.device.inner, lane, kernel, ops, self.allow_tf32)
    }

    fn check_shapes(
        &self,
        input: &ArrayView2<'_, f32>,
        output: &ArrayViewMut2<'_, f32>,
    ) -> Result<()> {
        let rows = input.nrows();
        if rows == 0 {
            return Err(Error::EmptyBatch);
        }
        if rows > self.max_batch {
            return Err(Error::InvalidArgument(format!(
                "{rows} rows exceed the plan's max_batch of {}",
                self.max_batch
            )));
        }
        if input.ncols() != self.input_width {
            return Err(Error::InputWidth {
                expected: self.input_width,
                actual: input.ncols(),
            });
        }
        if output.dim() != (rows, self.output_width) {
            return Err(Error::InvalidArgument(format!(
                "output buffer has shape {:?}, expected ({rows}, {})",
                output.dim(),
                self.output_width
            )));
        }
        Ok(())
    }

    /// Queues the whole pass: input conversion and upload, every layer, the download.
    fn queue_pass(
        &self,
        lane: &mut Lane,
        input: ArrayView2<'_, f32>,
        staging_in: &mut PinnedBuffer<T>,
        staging_out: &mut PinnedBuffer<T>,
        scratch: &mut Scratch<T>,
    ) -> Result<()> {
        let rows = input.nrows();
        let inner = &self.device.inner;
        if inner.poison.load(Ordering::Relaxed) {
            self.poison(lane, scratch, staging_out)?;
        }
        let host_in = staging_in.host_mut(rows * self.input_width)?;
        // `iter()` walks a 2-D view in row-major order, whatever its strides.
        for (dst, &x) in host_in.iter_mut().zip(input.iter()) {
            *dst = T::from_f32(x);
        }
        staging_in.upload(
            &lane.stream,
            &mut scratch.ping.view_mut(rows * self.input_width)?,
        )?;
        let Scratch { ping, pong } = scratch;
        let (mut src, mut dst) = (ping, pong);
        for layer in &self.layers {
            let a = src.view(rows * layer.inputs)?;
            let mut out = dst.view_mut(rows * layer.units)?;
            let (w, bias) = (layer.weight.as_view(), layer.bias.as_view());
            let ops = DenseOperands {
                a: &a,
                w: &w,
                bias: &bias,
                out: &mut out,
                m: rows,
                n: layer.units,
                k: layer.inputs,
                activation: layer.activation,
            };
            run_dense(inner, lane, layer.kernel, ops, self.allow_tf32)?;
            std::mem::swap(&mut src, &mut dst);
        }
        staging_out.download(&lane.stream, &src.view(rows * self.output_width)?)
    }

    /// Fills the activation buffers and the output staging with NaN, so that any element
    /// a kernel fails to write shows up in the output.
    fn poison(
        &self,
        lane: &Lane,
        scratch: &mut Scratch<T>,
        staging_out: &mut PinnedBuffer<T>,
    ) -> Result<()> {
        let nan = T::from_f32(f32::NAN);
        let values = vec![nan; self.scratch_len];
        for buffer in [&mut scratch.ping, &mut scratch.pong] {
            let len = buffer.len();
            lane.stream
                .memcpy_htod(&values[..len], &mut buffer.view_mut(len)?)
                .during("poisoning an activation buffer")?;
        }
        staging_out
            .host_mut(self.max_batch * self.output_width)?
            .fill(nan);
        Ok(())
    }
}

impl<T: GpuElement> ForwardPass for GpuPlan<T> {
    fn run(&self, input: ArrayView2<'_, f32>, mut output: ArrayViewMut2<'_, f32>) -> Result<()> {
        self.check_shapes(&input, &output)?;
        let rows = input.nrows();
        let inner = &self.device.inner;
        let mut lane = inner.lanes.acquire()?;
        let mut staging_in = inner.pinned.take::<T>(self.max_batch * self.input_width)?;
        let mut staging_out = inner.pinned.take::<T>(self.max_batch * self.output_width)?;
        let mut scratch = self.take_scratch(&lane)?;
        let queued = self.queue_pass(
            &mut lane,
            input,
            &mut staging_in,
            &mut staging_out,
            &mut scratch,
        );
        // Synchronise on every path, errors included: copies may still be in flight, and the
        // buffers must not go back to the pools before they finish.
        let synced = lane.synchronize();
        queued?;
        synced?;
        inner.check_deferred_errors()?;
        let host_out = staging_out.host_mut(rows * self.output_width)?;
        for (dst, src) in output.iter_mut().zip(host_out.iter()) {
            *dst = src.to_f32();
        }
        Ok(())
    }

    fn kernel_choices(&self) -> Vec<String> {
        self.layers
            .iter()
            .map(|layer| {
                format!(
                    "{} [{}]",
                    layer.kernel.describe(layer.activation),
                    layer.reason
                )
            })
            .collect()
    }
}
