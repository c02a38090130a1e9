//! A network compiled for one device: buffers allocated once, a kernel chosen per layer.

use std::fmt;
use std::str::FromStr;

use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};

use crate::device::cpu::CpuPlan;
use crate::device::cuda::CudaPlan;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::network::Network;
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
}

impl Strategy {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Auto => "auto",
            Strategy::Cublas => "cublas",
            Strategy::CublasLt => "cublaslt",
            Strategy::Fused => "fused",
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
        [
            Strategy::Auto,
            Strategy::Cublas,
            Strategy::CublasLt,
            Strategy::Fused,
        ]
        .into_iter()
        .find(|k| k.name() == s.to_ascii_lowercase())
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "unknown kernel strategy `{s}` (expected auto, cublas, cublaslt or fused)"
            ))
        })
    }
}

/// What [`Network::compile`] needs to know besides the device.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOptions {
    /// The most rows one pass computes; larger batches run in chunks of this size.
    pub max_batch: usize,
    /// The precision to compute in; `None` takes the network's own.
    pub dtype: Option<DType>,
    /// How GPU layers are computed.
    pub strategy: Strategy,
    /// Allow TF32 tensor-core math for f32 GEMMs on the GPU (about 1e-3 relative error).
    pub allow_tf32: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            max_batch: 4096,
            dtype: None,
            strategy: Strategy::Auto,
            allow_tf32: false,
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
