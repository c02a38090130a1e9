//! A network compiled for one GPU.
//!
//! Weights live on the GPU in the plan's dtype from compilation on. Each forward pass takes
//! a lane (its own stream and cuBLAS handles), two activation buffers and two pinned staging
//! buffers from the device's pools ([`pass`](super::pass)), so concurrent callers share
//! nothing mutable and no lock is held while the GPU works. The pools keep what a pass used,
//! so a warm pass allocates nothing.
//!
//! Kernel choice lives in [`tune`](super::tune), CUDA Graph capture and replay in
//! [`graph_exec`](super::graph_exec), and the overlapping stream pipeline in
//! [`streaming`](super::streaming).

use cudarc::driver::CudaSlice;
use half::{bf16, f16};
use ndarray::{ArrayView2, ArrayViewMut2};

use super::dense::LayerKernel;
use super::error::CudaResultExt;
use super::graph_exec::GraphCache;
use super::pass::Scratch;
use super::stream::{EventTimer, Lane};
use super::streaming::GpuPipeline;
use super::{CudaDevice, GpuElement};
use crate::activation::Activation;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::network::Network;
use crate::graph::plan::PlanOptions;
use crate::graph::streaming::Pipeline;

/// The GPU half of a [`Plan`](crate::Plan): one implementation, generic over the dtype.
pub struct CudaPlan {
    inner: Box<dyn ForwardPass>,
}

/// What the dtype-generic plan offers to the dtype-free [`CudaPlan`].
trait ForwardPass: Send + Sync {
    fn run(&self, input: ArrayView2<'_, f32>, output: ArrayViewMut2<'_, f32>) -> Result<()>;
    fn kernel_choices(&self) -> Vec<String>;
    fn graph_status(&self) -> Vec<String>;
    fn pipeline(&self) -> Result<Box<dyn Pipeline + '_>>;
    fn time_resident_pass(&self, rows: usize, repeats: usize) -> Result<f64>;
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

    /// Whether graphs are on, and what was captured per batch size.
    pub(crate) fn graph_status(&self) -> Vec<String> {
        self.inner.graph_status()
    }

    /// A pipeline that overlaps copies and compute of consecutive chunks.
    pub(crate) fn pipeline(&self) -> Result<Box<dyn Pipeline + '_>> {
        self.inner.pipeline()
    }

    /// Median ms of the layers alone over `rows` rows already on the GPU.
    pub(crate) fn time_resident_pass(&self, rows: usize, repeats: usize) -> Result<f64> {
        self.inner.time_resident_pass(rows, repeats)
    }
}

/// One layer resident on the GPU.
pub(super) struct GpuLayer<T> {
    pub(super) weight: CudaSlice<T>,
    pub(super) bias: CudaSlice<T>,
    pub(super) inputs: usize,
    pub(super) units: usize,
    pub(super) activation: Activation,
    pub(super) kernel: LayerKernel,
    /// Why `kernel`: the strategy, or Auto's timings.
    pub(super) reason: String,
}

/// The dtype-generic plan.
///
/// Fields drop in declaration order: the captured graphs, which refer to the weights, go
/// before the layers.
pub(super) struct GpuPlan<T: GpuElement> {
    pub(super) graphs: GraphCache<T>,
    pub(super) device: CudaDevice,
    pub(super) layers: Vec<GpuLayer<T>>,
    pub(super) input_width: usize,
    pub(super) output_width: usize,
    pub(super) max_batch: usize,
    /// The widest activation: the input or any layer's output. Scratch holds rows × this.
    pub(super) widest: usize,
    pub(super) allow_tf32: bool,
    pub(super) cuda_graphs: bool,
    /// Why every layer runs in one launch of the whole-network kernel; `None`: layer by layer.
    pub(super) whole_network: Option<String>,
}

impl<T: GpuElement> GpuPlan<T> {
    fn new(device: &CudaDevice, network: &Network, options: &PlanOptions) -> Result<Self> {
        let inner = &device.inner;
        let mut lane = inner.lanes.acquire()?;
        let widest = network.max_width().max(network.input_width());
        options
            .max_batch
            .checked_mul(widest)
            .ok_or_else(|| Error::InvalidArgument("max_batch x width is too large".into()))?;
        let mut plan = GpuPlan {
            graphs: GraphCache::new(),
            device: device.clone(),
            layers: Vec::with_capacity(network.layers().len()),
            input_width: network.input_width(),
            output_width: network.output_width(),
            max_batch: options.max_batch,
            widest,
            allow_tf32: options.allow_tf32,
            cuda_graphs: options.cuda_graphs,
            whole_network: None,
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
        let mut scratch = plan.take_scratch(&lane, plan.max_batch)?;
        let chosen = plan.choose_kernels(&mut lane, &mut scratch, options);
        let synced = lane.synchronize();
        for (layer, (kernel, reason)) in plan.layers.iter_mut().zip(chosen?) {
            layer.kernel = kernel;
            layer.reason = reason;
        }
        synced?;
        let whole_network = plan.choose_network(&mut lane, &mut scratch, options);
        let synced = lane.synchronize();
        plan.whole_network = whole_network?;
        synced?;
        inner.check_deferred_errors()?;
        Ok(plan)
    }

    pub(super) fn check_shapes(
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

    /// One pass on a lane from the pool: queue, synchronise, read back.
    pub(super) fn run_plain(
        &self,
        input: ArrayView2<'_, f32>,
        output: ArrayViewMut2<'_, f32>,
    ) -> Result<()> {
        let mut pass = self.take_pass(self.max_batch)?;
        let queued = self.queue_pass(&mut pass, input);
        // Synchronise on every path, errors included: copies may still be in flight, and the
        // buffers must not go back to the pools before they finish.
        let synced = pass.synchronize();
        queued?;
        synced?;
        self.device.inner.check_deferred_errors()?;
        self.read_output(&mut pass, output)
    }

    /// Times the layers alone on `lane` over random data already in `scratch.ping`.
    fn time_layers(
        &self,
        lane: &mut Lane,
        scratch: &mut Scratch<T>,
        rows: usize,
        repeats: usize,
    ) -> Result<f64> {
        let random = crate::tensor::random_batch(rows, self.input_width, 0x5eed);
        let values: Vec<T> = random.iter().map(|&x| T::from_f32(x)).collect();
        lane.stream
            .memcpy_htod(&values, &mut scratch.ping.view_mut(values.len())?)
            .during("uploading the timing input")?;
        let context = std::sync::Arc::clone(lane.stream.context());
        let stream = std::sync::Arc::clone(&lane.stream);
        for _ in 0..2 {
            self.queue_layers(lane, scratch, rows)?;
        }
        let timer = EventTimer::new(&context)?;
        let mut times = Vec::with_capacity(repeats.max(1));
        for _ in 0..repeats.max(1) {
            let ms = timer.time(&stream, || {
                self.queue_layers(lane, scratch, rows).map(|_| ())
            });
            times.push(ms?);
        }
        Ok(crate::bench::median(&mut times))
    }
}

impl<T: GpuElement> ForwardPass for GpuPlan<T> {
    fn run(&self, input: ArrayView2<'_, f32>, output: ArrayViewMut2<'_, f32>) -> Result<()> {
        self.check_shapes(&input, &output)?;
        if self.cuda_graphs {
            return self.run_with_graph(input, output);
        }
        self.run_plain(input, output)
    }

    fn kernel_choices(&self) -> Vec<String> {
        if let Some(reason) = &self.whole_network {
            let line = format!("network kernel: every layer in one launch [{reason}]");
            return vec![line; self.layers.len()];
        }
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

    fn graph_status(&self) -> Vec<String> {
        self.graphs.status(self.cuda_graphs)
    }

    fn pipeline(&self) -> Result<Box<dyn Pipeline + '_>> {
        Ok(Box::new(GpuPipeline::new(self)))
    }

    fn time_resident_pass(&self, rows: usize, repeats: usize) -> Result<f64> {
        let mut lane = self.device.inner.lanes.acquire()?;
        let mut scratch = self.take_scratch(&lane, rows)?;
        let timed = self.time_layers(&mut lane, &mut scratch, rows, repeats);
        // Synchronise before the scratch goes back to the pool, errors included.
        let synced = lane.synchronize();
        drop(scratch);
        let ms = timed?;
        synced?;
        self.device.inner.check_deferred_errors()?;
        Ok(ms)
    }
}
