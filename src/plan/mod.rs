//! A network compiled for one device: buffers allocated once, a kernel chosen per layer.
//!
//! [`Plan`] sits above [`crate::device`]: it dispatches each pass to the device's executor
//! with a static `match`. What it asks of a device ([`PlanOptions`], [`Strategy`](crate::Strategy), the
//! streaming pipeline) lives beneath both, in [`crate::execution`].

use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};

use crate::device::cpu::CpuPlan;
use crate::device::cuda::CudaPlan;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::execution::pipeline::{self, Immediate, Pipeline, StreamBatch, StreamShape};
use crate::execution::PlanOptions;
use crate::graph::network::Network;
use crate::tensor::check_batch;

/// The device-specific half of a plan. A static `match`, no virtual calls.
pub(crate) enum Executor {
    Cpu(CpuPlan),
    Cuda(CudaPlan),
}

impl Executor {
    fn run(&self, input: ArrayView2<'_, f32>, output: ArrayViewMut2<'_, f32>) -> Result<()> {
        match self {
            Executor::Cpu(plan) => plan.run(input, output),
            Executor::Cuda(plan) => plan.run(input, output),
        }
    }

    fn kernel_choices(&self) -> Vec<String> {
        match self {
            Executor::Cpu(plan) => plan.kernel_choices(),
            Executor::Cuda(plan) => plan.kernel_choices(),
        }
    }

    fn graph_status(&self) -> Vec<String> {
        match self {
            Executor::Cpu(_) => vec!["cuda graphs: not used on the cpu".to_string()],
            Executor::Cuda(plan) => plan.graph_status(),
        }
    }

    /// A pipeline for streaming: the GPU's overlaps transfers and compute across lanes,
    /// the CPU's computes each chunk as it comes.
    fn pipeline(&self, output_width: usize) -> Result<Box<dyn Pipeline + '_>> {
        match self {
            Executor::Cpu(plan) => Ok(Box::new(Immediate::new(
                output_width,
                move |input: ArrayView2<'_, f32>, output: ArrayViewMut2<'_, f32>| {
                    plan.run(input, output)
                },
            ))),
            Executor::Cuda(plan) => plan.pipeline(),
        }
    }
}

/// A network compiled for a device and a maximum batch size.
///
/// The plan owns its activation buffers, so [`Plan::forward_into`] allocates nothing once
/// warm. It is `Sync`: several threads may call it at once, each drawing its own scratch
/// buffers. Batches larger than [`Plan::max_batch`] run in chunks.
pub struct Plan {
    device: Device,
    executor: Executor,
    input_width: usize,
    output_width: usize,
    max_batch: usize,
    dtype: DType,
}

impl Plan {
    pub(crate) fn new(network: &Network, device: &Device, options: PlanOptions) -> Result<Self> {
        if options.max_batch == 0 {
            return Err(Error::InvalidArgument(
                "max_batch must be at least 1".into(),
            ));
        }
        let dtype = options.dtype.unwrap_or(network.dtype());
        let executor = match device {
            Device::Cpu(cpu) => Executor::Cpu(CpuPlan::new(cpu, network, &options, dtype)?),
            Device::Cuda(cuda) => Executor::Cuda(CudaPlan::new(cuda, network, &options, dtype)?),
        };
        Ok(Plan {
            device: device.clone(),
            executor,
            input_width: network.input_width(),
            output_width: network.output_width(),
            max_batch: options.max_batch,
            dtype,
        })
    }

    /// Runs the network on a batch (one example per row) and returns its outputs.
    pub fn forward(&self, input: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        check_batch(input, self.input_width)?;
        let mut output = Array2::zeros((input.nrows(), self.output_width));
        self.forward_into(input, output.view_mut())?;
        Ok(output)
    }

    /// Runs the network on a batch, writing into `output` (rows × output width).
    pub fn forward_into(
        &self,
        input: ArrayView2<'_, f32>,
        output: ArrayViewMut2<'_, f32>,
    ) -> Result<()> {
        self.forward_with_progress(input, output, |_| {})
    }

    /// Like [`Plan::forward_into`], calling `progress(rows_done)` after each chunk.
    pub fn forward_with_progress(
        &self,
        input: ArrayView2<'_, f32>,
        mut output: ArrayViewMut2<'_, f32>,
        mut progress: impl FnMut(usize),
    ) -> Result<()> {
        check_batch(input, self.input_width)?;
        if output.dim() != (input.nrows(), self.output_width) {
            return Err(Error::InvalidArgument(format!(
                "output buffer has shape {:?}, expected ({}, {})",
                output.dim(),
                input.nrows(),
                self.output_width
            )));
        }
        // A GPU streams a large batch through its overlapped pipeline as a whole, so that
        // copies and compute overlap across chunks too.
        if let Executor::Cuda(plan) = &self.executor {
            if plan.run_whole(input, output.view_mut(), &mut progress)? {
                return Ok(());
            }
        }
        let rows = input.nrows();
        let mut start = 0;
        while start < rows {
            let end = start.saturating_add(self.max_batch).min(rows);
            self.executor.run(
                input.slice(s![start..end, ..]),
                output.slice_mut(s![start..end, ..]),
            )?;
            start = end;
            progress(end);
        }
        Ok(())
    }

    /// Runs the network over a stream of batches, calling `sink` with each batch's output
    /// in input order.
    ///
    /// On a GPU, up to three chunks of at most [`Plan::max_batch`] rows are in flight on
    /// separate streams with their own pinned staging buffers, so that the upload of one,
    /// the layers of the next and the download of a third overlap, and the host converts
    /// and reads batches meanwhile. On the CPU each batch is computed in turn. Either way
    /// memory stays bounded whatever the number of batches, and the first error, from
    /// the iterator, a batch's shape, the device or the sink, stops the stream and is
    /// returned (batches already given to the sink stay given).
    ///
    /// ```
    /// use ndarray::array;
    /// use vecprop::{Activation, Device, Network, PlanOptions};
    ///
    /// let net = Network::builder(2)
    ///     .layer_with(array![[1.0], [1.0]], array![0.5], Activation::Linear)
    ///     .build()?;
    /// let plan = net.compile(&Device::cpu(), PlanOptions::with_max_batch(2))?;
    /// let batches = vec![Ok(array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), Ok(array![[0.0, 0.0]])];
    /// let mut sums = Vec::new();
    /// plan.forward_stream(batches, |out| {
    ///     sums.extend(out.iter().copied());
    ///     Ok(())
    /// })?;
    /// assert_eq!(sums, [3.5, 7.5, 11.5, 0.5]);
    /// # Ok::<(), vecprop::Error>(())
    /// ```
    pub fn forward_stream<I, B>(
        &self,
        batches: I,
        mut sink: impl FnMut(Array2<f32>) -> Result<()>,
    ) -> Result<()>
    where
        I: IntoIterator<Item = Result<B>>,
        B: StreamBatch,
    {
        let mut pipeline = self.executor.pipeline(self.output_width)?;
        let shape = StreamShape {
            max_rows: self.max_batch,
            input_width: self.input_width,
            output_width: self.output_width,
        };
        pipeline::drive(&mut *pipeline, shape, batches, &mut sink)
    }

    /// Whether CUDA Graphs are on, and per captured batch size whether the capture worked
    /// (and how often it was replayed) or why the plain path is used instead.
    pub fn graph_status(&self) -> Vec<String> {
        self.executor.graph_status()
    }

    /// Benchmark aid: the median milliseconds of one pass over `rows` rows (at most
    /// [`Plan::max_batch`]) with the data already where the device computes, i.e. without
    /// host↔device copies on a GPU. The CPU times a plain forward pass.
    #[doc(hidden)]
    pub fn time_resident_pass(&self, rows: usize, repeats: usize) -> Result<f64> {
        if rows == 0 || rows > self.max_batch {
            return Err(Error::InvalidArgument(format!(
                "rows must be between 1 and max_batch ({}), not {rows}",
                self.max_batch
            )));
        }
        match &self.executor {
            Executor::Cpu(plan) => {
                let input = crate::tensor::random_batch(rows, self.input_width, 5);
                let mut output = Array2::zeros((rows, self.output_width));
                let mut failed = None;
                let ms = crate::stats::median_ms(1, repeats.max(1), |_| {
                    if let Err(err) = plan.run(input.view(), output.view_mut()) {
                        failed.get_or_insert(err);
                    }
                });
                failed.map_or(Ok(ms), Err)
            }
            Executor::Cuda(plan) => plan.time_resident_pass(rows, repeats),
        }
    }

    /// The device the plan runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Rows per pass; larger batches are chunked.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Features per input example.
    pub fn input_width(&self) -> usize {
        self.input_width
    }

    /// Values per output example.
    pub fn output_width(&self) -> usize {
        self.output_width
    }

    /// The precision the plan computes in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// For each layer, the kernel the plan runs and, where it was tuned, why.
    pub fn kernel_choices(&self) -> Vec<String> {
        self.executor.kernel_choices()
    }

    /// On a GPU, what one pass holds in device memory (weights, activations, workspace)
    /// and in pinned host staging, at [`Plan::max_batch`]; `None` on the CPU.
    pub fn memory(&self) -> Option<crate::device::memory::PlanMemory> {
        match &self.executor {
            Executor::Cpu(_) => None,
            Executor::Cuda(plan) => Some(plan.memory()),
        }
    }
}

impl Network {
    /// Compiles the network for a device into a [`Plan`] that owns its buffers.
    pub fn compile(&self, device: &Device, options: PlanOptions) -> Result<Plan> {
        Plan::new(self, device, options)
    }

    /// [`Network::summary`] with a column that says which kernel `plan` runs per layer.
    pub fn summary_with_plan(&self, plan: &Plan) -> String {
        crate::graph::summary::render(self, Some(&plan.kernel_choices()))
    }
}
