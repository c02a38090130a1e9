//! A network compiled for one GPU.
//!
//! Weights live on the GPU in the plan's dtype from compilation on. Each forward pass takes
//! a lane (its own stream and cuBLAS handles), two activation buffers and two pinned staging
//! buffers from the device's pools ([`pass`](pass)), so concurrent callers share
//! nothing mutable and no lock is held while the GPU works. The pools keep what a pass used,
//! so a warm pass allocates nothing.
//!
//! Kernel choice lives in [`tune`](tune), CUDA Graph capture and replay in
//! [`graph_exec`](graph_exec), and the overlapping stream pipeline in
//! [`streaming`](streaming).

mod graph_exec;
mod network_plan;
mod pass;
mod streaming;
mod tune;

use cudarc::driver::CudaSlice;
use half::{bf16, f16};
use ndarray::{ArrayView2, ArrayViewMut2};

use super::dense::LayerKernel;
use super::error::CudaResultExt;
use super::stream::{EventTimer, Lane};
use super::{CudaDevice, GpuElement};
use crate::activation::Activation;
use crate::device::memory::{self, MemoryShape, PlanMemory};
use crate::device::staging::stream_chunk_rows;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::execution::pipeline::Pipeline;
use crate::execution::PlanOptions;
use crate::graph::network::Network;
use graph_exec::GraphCache;
use pass::Scratch;
use streaming::GpuPipeline;

/// The GPU half of a [`Plan`](crate::Plan): one implementation, generic over the dtype.
pub struct CudaPlan {
    inner: Box<dyn ForwardPass>,
}

/// What the dtype-generic plan offers to the dtype-free [`CudaPlan`].
trait ForwardPass: Send + Sync {
    fn run(&self, input: ArrayView2<'_, f32>, output: ArrayViewMut2<'_, f32>) -> Result<()>;
    fn run_whole(
        &self,
        input: ArrayView2<'_, f32>,
        output: ArrayViewMut2<'_, f32>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<bool>;
    fn kernel_choices(&self) -> Vec<String>;
    fn graph_status(&self) -> Vec<String>;
    fn pipeline(&self) -> Result<Box<dyn Pipeline + '_>>;
    fn time_resident_pass(&self, rows: usize, repeats: usize) -> Result<f64>;
    fn memory(&self) -> PlanMemory;
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

    /// Runs a batch of any number of rows through the overlapped pipeline when it is large
    /// enough to gain from it ([`stream_chunk_rows`]), in chunks of at most `max_batch`
    /// rows, calling `progress(rows_done)` as chunks land. Returns `false`, having done
    /// nothing, for a batch too small to stream: the caller runs it pass by pass.
    pub(crate) fn run_whole(
        &self,
        input: ArrayView2<'_, f32>,
        output: ArrayViewMut2<'_, f32>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<bool> {
        self.inner.run_whole(input, output, progress)
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

    /// What one pass of the plan holds on the GPU, at its `max_batch`.
    pub(crate) fn memory(&self) -> PlanMemory {
        self.inner.memory()
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

/// The dtype-generic plan.
///
/// Fields drop in declaration order: the captured graphs, which refer to the weights, go
/// before the layers.
struct GpuPlan<T: GpuElement> {
    graphs: GraphCache<T>,
    device: CudaDevice,
    layers: Vec<GpuLayer<T>>,
    input_width: usize,
    output_width: usize,
    max_batch: usize,
    /// The widest activation: the input or any layer's output. Scratch holds rows × this.
    widest: usize,
    allow_tf32: bool,
    cuda_graphs: bool,
    /// What one pass holds on the GPU, checked against free memory before allocating.
    memory: PlanMemory,
    /// Why every layer runs in one launch of the whole-network kernel; `None`: layer by layer.
    whole_network: Option<String>,
}

impl<T: GpuElement> GpuPlan<T> {
    fn new(device: &CudaDevice, network: &Network, options: &PlanOptions) -> Result<Self> {
        let inner = &device.inner;
        let shape = MemoryShape::of(network);
        let widest = shape.widest();
        // Before anything is allocated: does one pass fit in what the GPU has free?
        // (`plan_memory` also checks every size for overflow.)
        let memory = memory::plan_memory(
            &shape,
            T::DTYPE,
            options.max_batch,
            device.lane_workspace_bytes(),
        )?;
        let fits = || -> Result<()> {
            let (free, _total) = inner.memory_info()?;
            memory::check_fits(memory.device_total(), options.max_batch, free as u64)
        };
        if fits().is_err() {
            // The pools' idle buffers count as used: give them back and look again.
            inner.buffers.release_idle();
            fits()?;
        }
        // Compiling loads modules, creates handles and tunes: first uses, kept out of
        // any other thread's graph capture.
        let _queueing = inner.queueing();
        let mut lane = inner.lanes.acquire()?;
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
            memory,
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
        // One pass over one row with the chosen kernels loads every kernel function the
        // plan uses (lazy loading happens at the first cuModuleGetFunction or launch),
        // so that no later graph capture is the first to touch one.
        let warmed = plan.queue_layers(&mut lane, &mut scratch, 1).map(|_| ());
        let synced = lane.synchronize();
        warmed?;
        synced?;
        inner.check_deferred_errors()?;
        Ok(plan)
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

    /// One pass on a lane from the pool: queue, synchronise, read back.
    fn run_plain(&self, input: ArrayView2<'_, f32>, output: ArrayViewMut2<'_, f32>) -> Result<()> {
        let queueing = self.device.inner.queueing();
        let mut pass = self.take_pass(self.max_batch)?;
        let queued = self.queue_pass(&mut pass, input);
        drop(queueing);
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
        Ok(crate::stats::median(&mut times))
    }
}

impl<T: GpuElement> ForwardPass for GpuPlan<T> {
    fn run(&self, input: ArrayView2<'_, f32>, output: ArrayViewMut2<'_, f32>) -> Result<()> {
        self.check_shapes(&input, &output)?;
        // A large batch goes through the overlapped pipeline in chunks, so that its
        // upload, compute and download overlap instead of running one after another.
        let row_bytes = self.input_width.saturating_mul(std::mem::size_of::<f32>());
        if let Some(chunk_rows) = stream_chunk_rows(input.nrows(), row_bytes) {
            return self.run_streamed(input, output, chunk_rows, &mut |_| {});
        }
        if self.cuda_graphs {
            return self.run_with_graph(input, output);
        }
        self.run_plain(input, output)
    }

    fn run_whole(
        &self,
        input: ArrayView2<'_, f32>,
        output: ArrayViewMut2<'_, f32>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<bool> {
        let row_bytes = self.input_width.saturating_mul(std::mem::size_of::<f32>());
        let Some(chunk_rows) = stream_chunk_rows(input.nrows(), row_bytes) else {
            return Ok(false);
        };
        if input.ncols() != self.input_width {
            return Err(Error::InputWidth {
                expected: self.input_width,
                actual: input.ncols(),
            });
        }
        if output.dim() != (input.nrows(), self.output_width) {
            return Err(Error::InvalidArgument(format!(
                "output buffer has shape {:?}, expected ({}, {})",
                output.dim(),
                input.nrows(),
                self.output_width
            )));
        }
        let chunk_rows = chunk_rows.min(self.max_batch);
        self.run_streamed(input, output, chunk_rows, progress)?;
        Ok(true)
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
        Ok(Box::new(GpuPipeline::new(self, self.max_batch)))
    }

    fn memory(&self) -> PlanMemory {
        self.memory
    }

    fn time_resident_pass(&self, rows: usize, repeats: usize) -> Result<f64> {
        let _queueing = self.device.inner.queueing();
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
