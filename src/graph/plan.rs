//! A network compiled for one device: buffers allocated once, a kernel chosen per layer.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};

use crate::device::cpu::CpuPlan;
use crate::device::cuda::CudaPlan;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::network::Network;
use crate::graph::streaming::{self, Immediate, Pipeline, StreamBatch, StreamShape};
use crate::graph::tuning::TuningCache;
use crate::tensor::check_batch;

/// How a plan computes each dense layer on a GPU. The CPU has one way and ignores this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// Time the candidates for each layer's shape on first use and keep the fastest.
    #[default]
    Auto,
    /// cuBLAS GEMM, then vecprop's bias + activation kernel.
    Cublas,
    /// cuBLASLt GEMM with its bias epilogue, then vecprop's activation kernel.
    CublasLt,
    /// vecprop's fused GEMM + bias + activation kernel.
    Fused,
    /// One cuBLASLt call with the bias and activation in its epilogue (relu, linear); other
    /// layers as under `Fused`.
    CublasLtFused,
    /// vecprop's narrow-layer kernel (weights resident on chip, up to 256 units); wider
    /// layers as under `Fused`.
    Narrow,
    /// vecprop's split-K kernel for small batches (weights spread over every SM).
    SplitK,
    /// vecprop's narrow-layer kernel on the tensor cores (f16/bf16, up to 128 units); other
    /// layers as under `Fused`.
    NarrowMma,
    /// vecprop's whole-network kernel: every layer in one launch when the network fits on
    /// chip (up to 8 layers of at most 256 units); otherwise as under `Fused`.
    Network,
}

impl Strategy {
    /// Every strategy, as the command line lists them.
    pub const ALL: [Strategy; 9] = [
        Strategy::Auto,
        Strategy::Cublas,
        Strategy::CublasLt,
        Strategy::Fused,
        Strategy::CublasLtFused,
        Strategy::Narrow,
        Strategy::SplitK,
        Strategy::Network,
        Strategy::NarrowMma,
    ];
}

impl Strategy {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Auto => "auto",
            Strategy::Cublas => "cublas",
            Strategy::CublasLt => "cublaslt",
            Strategy::Fused => "fused",
            Strategy::CublasLtFused => "cublaslt_fused",
            Strategy::Narrow => "narrow",
            Strategy::SplitK => "splitk",
            Strategy::NarrowMma => "narrow_mma",
            Strategy::Network => "network",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Strategy::ALL
            .into_iter()
            .find(|k| k.name() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                let names: Vec<&str> = Strategy::ALL.iter().map(|k| k.name()).collect();
                Error::InvalidArgument(format!(
                    "unknown kernel strategy `{s}` (expected one of {})",
                    names.join(", ")
                ))
            })
    }
}

/// What [`Network::compile`] needs to know besides the device.
///
/// Two options are equal when their fields are, the tuning caches by identity.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// The most rows one pass computes; larger batches run in chunks of this size.
    pub max_batch: usize,
    /// The precision to compute in; `None` takes the network's own.
    pub dtype: Option<DType>,
    /// How GPU layers are computed.
    pub strategy: Strategy,
    /// Allow TF32 tensor-core math for f32 GEMMs on the GPU (about 1e-3 relative error).
    pub allow_tf32: bool,
    /// On a GPU, capture each batch size's whole forward pass (copies in, every layer,
    /// copy out) as a CUDA Graph on first use and replay it afterwards, which removes most
    /// of the launch overhead of small batches. See [`Plan::graph_status`].
    pub cuda_graphs: bool,
    /// Where `Strategy::Auto` looks up and records its measurements besides the device's
    /// own in-memory cache, typically a file beside the model
    /// ([`TuningCache::with_file`]); call [`TuningCache::save`] after compiling.
    pub tuning: Option<Arc<TuningCache>>,
}

impl PartialEq for PlanOptions {
    fn eq(&self, other: &Self) -> bool {
        let same_cache = match (&self.tuning, &other.tuning) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        self.max_batch == other.max_batch
            && self.dtype == other.dtype
            && self.strategy == other.strategy
            && self.allow_tf32 == other.allow_tf32
            && self.cuda_graphs == other.cuda_graphs
            && same_cache
    }
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            max_batch: 4096,
            dtype: None,
            strategy: Strategy::Auto,
            allow_tf32: false,
            cuda_graphs: false,
            tuning: None,
        }
    }
}

impl PlanOptions {
    /// Default options with another maximum batch size.
    pub fn with_max_batch(max_batch: usize) -> Self {
        PlanOptions {
            max_batch,
            ..Default::default()
        }
    }
}

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
            Device::Cpu(cpu) => Executor::Cpu(CpuPlan::new(cpu, network, &options)?),
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
        let rows = input.nrows();
        let mut start = 0;
        while start < rows {
            let end = (start + self.max_batch).min(rows);
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
        streaming::drive(&mut *pipeline, shape, batches, &mut sink)
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
                let ms = crate::bench::median_ms(1, repeats.max(1), |_| {
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
}

impl Network {
    /// [`Network::summary`] with a column that says which kernel `plan` runs per layer.
    pub fn summary_with_plan(&self, plan: &Plan) -> String {
        crate::graph::summary::render(self, Some(&plan.kernel_choices()))
    }
}

#[cfg(test)]
mod strategy_tests {
    use super::*;

    #[test]
    fn every_strategy_parses_from_its_name() {
        for strategy in Strategy::ALL {
            assert_eq!(strategy.name().parse::<Strategy>().unwrap(), strategy);
        }
        let err = "cublas_v2".parse::<Strategy>().unwrap_err().to_string();
        assert!(err.contains("narrow") && err.contains("network"), "{err}");
    }
}
