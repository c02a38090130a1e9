//! One dense layer on the GPU, `out = g(a · w + bias)`, by each of the ways vecprop has.

use std::fmt;
use std::str::FromStr;

use super::blas::{self, GemmOperands};
use super::hopper;
use super::kernels::{self, KernelOp};
use super::narrow::{narrow_dense, Narrow};
use super::operands::DenseOperands;
use super::splitk::{splitk_dense, SPLITK_MAX_ROWS};
use super::stream::Lane;
use super::{DeviceInner, GpuElement};
use crate::activation::Activation;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::execution::Strategy;

/// How one layer is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum LayerKernel {
    /// cuBLAS GEMM, then `bias_<act>`.
    Cublas,
    /// cuBLASLt GEMM with its BIAS epilogue, then `bias_<act>` with no bias (skipped for linear).
    CublasLt,
    /// `fused_<act>` (128×128 tiles); softmax: `fused_linear`, then `bias_softmax`.
    Fused,
    /// `fused_small_<act>` (64×64 tiles); softmax as for `Fused`.
    FusedSmall,
    /// One cuBLASLt call whose epilogue adds the bias and applies g (relu, linear, gelu_tanh).
    CublasLtFused,
    /// `narrow<NP>_<act>`: W resident in shared memory, for n ≤ 256 (softmax in one pass).
    Narrow,
    /// `splitk_partial` + `splitk_reduce_<act>`: weights spread over every SM, for few rows.
    SplitK,
    /// `narrow_mma<NP>_<act>`: the narrow kernel on the tensor cores (f16/bf16, n ≤ 128).
    NarrowMma,
    /// f32 only: `simt_warp_<act>_f32` (warp-tiled CUDA-core GEMM); softmax as for `Fused`.
    SimtWarp,
    /// f16/bf16 on compute capability 9.0 only: `wgmma_<act>` (wgmma + TMA), falling back to
    /// `fused_<act>` for shapes TMA cannot address; softmax as for `Fused`.
    Wgmma,
}

impl LayerKernel {
    /// Every kernel, in the order Auto times them.
    pub(crate) const ALL: [LayerKernel; 10] = [
        LayerKernel::Cublas,
        LayerKernel::CublasLt,
        LayerKernel::Fused,
        LayerKernel::FusedSmall,
        LayerKernel::CublasLtFused,
        LayerKernel::Narrow,
        LayerKernel::SplitK,
        LayerKernel::NarrowMma,
        LayerKernel::SimtWarp,
        LayerKernel::Wgmma,
    ];

    /// Whether this kernel can run an m×k×n layer with `activation` in `dtype` on a GPU that
    /// grants `shared_limit` bytes of shared memory per block, and is worth timing there.
    pub(crate) fn supports(
        self,
        (m, k, n): (usize, usize, usize),
        dtype: DType,
        activation: Activation,
        shared_limit: usize,
    ) -> bool {
        match self {
            LayerKernel::Cublas
            | LayerKernel::CublasLt
            | LayerKernel::Fused
            | LayerKernel::FusedSmall
            | LayerKernel::SimtWarp
            | LayerKernel::Wgmma => true,
            LayerKernel::CublasLtFused => blas::fused_epilogue(activation).is_some(),
            LayerKernel::Narrow => Narrow::Simt.fits(k, n, dtype, shared_limit),
            LayerKernel::NarrowMma => Narrow::Mma.fits(k, n, dtype, shared_limit),
            LayerKernel::SplitK => m <= SPLITK_MAX_ROWS && k > 0,
        }
    }

    /// Whether this kernel exists for `dtype` on `device` (the bench skips the others):
    /// `SimtWarp` is f32 only, `Wgmma` needs f16/bf16 on a compute capability 9.0 GPU whose
    /// driver loads the sm_90a module.
    pub(crate) fn runs_on(self, device: &DeviceInner, dtype: DType) -> bool {
        match self {
            LayerKernel::SimtWarp => dtype == DType::F32,
            LayerKernel::Wgmma => {
                hopper::runs_on(&device.kernels, dtype, device.info.compute_capability)
            }
            _ => true,
        }
    }

    /// Whether Auto (and the bench) should time this kernel for an m×k×n layer: it exists
    /// for `dtype` on `device` ([`LayerKernel::runs_on`]) and takes the layer
    /// ([`LayerKernel::supports`]).
    pub(crate) fn is_candidate(
        self,
        device: &DeviceInner,
        shape: (usize, usize, usize),
        dtype: DType,
        activation: Activation,
        shared_limit: usize,
    ) -> bool {
        self.runs_on(device, dtype) && self.supports(shape, dtype, activation, shared_limit)
    }

    /// The kernel an explicit strategy asks for; `None` for Auto, which measures instead.
    ///
    /// Fused picks the small tiles when the large ones would leave multiprocessors idle,
    /// unless `forced_tile` (128 or 64) says which.
    pub(crate) fn for_strategy(
        strategy: Strategy,
        rows: usize,
        units: usize,
        multiprocessors: usize,
        forced_tile: Option<usize>,
    ) -> Option<LayerKernel> {
        match strategy {
            Strategy::Auto => None,
            Strategy::Cublas => Some(LayerKernel::Cublas),
            Strategy::CublasLt => Some(LayerKernel::CublasLt),
            Strategy::Fused if forced_tile == Some(128) => Some(LayerKernel::Fused),
            Strategy::Fused if forced_tile == Some(64) => Some(LayerKernel::FusedSmall),
            Strategy::Fused => Some(Self::fused_tile_for(rows, units, multiprocessors)),
            Strategy::CublasLtFused => Some(LayerKernel::CublasLtFused),
            Strategy::Narrow => Some(LayerKernel::Narrow),
            Strategy::NarrowMma => Some(LayerKernel::NarrowMma),
            Strategy::SplitK => Some(LayerKernel::SplitK),
            // Layers that the whole-network kernel cannot take run as under Fused.
            Strategy::Network => Some(Self::fused_tile_for(rows, units, multiprocessors)),
        }
    }

    /// The fused tile that keeps every multiprocessor busy.
    fn fused_tile_for(rows: usize, units: usize, multiprocessors: usize) -> LayerKernel {
        let large_tiles = rows.div_ceil(128) * units.div_ceil(128);
        if large_tiles < multiprocessors {
            LayerKernel::FusedSmall
        } else {
            LayerKernel::Fused
        }
    }

    /// What runs instead when this (explicitly requested) kernel cannot take a layer: the
    /// fused kernels, which take any layer.
    pub(crate) fn or_fallback(
        self,
        shape: (usize, usize, usize),
        dtype: DType,
        activation: Activation,
        shared_limit: usize,
        multiprocessors: usize,
    ) -> LayerKernel {
        if self.supports(shape, dtype, activation, shared_limit) {
            self
        } else {
            Self::fused_tile_for(shape.0, shape.2, multiprocessors)
        }
    }

    /// What runs for a layer with activation `g`, e.g. `cublas gemm + bias_relu`.
    pub(crate) fn describe(self, activation: Activation) -> String {
        let fused = |prefix: &str| {
            if activation.is_elementwise() {
                format!("{prefix}_{activation}")
            } else {
                format!("{prefix}_linear + bias_{activation}")
            }
        };
        match self {
            LayerKernel::Cublas => format!("cublas gemm + bias_{activation}"),
            LayerKernel::CublasLt if activation == Activation::Linear => {
                "cublaslt gemm+bias".to_string()
            }
            LayerKernel::CublasLt => format!("cublaslt gemm+bias + {activation}"),
            LayerKernel::Fused => fused("fused"),
            LayerKernel::FusedSmall => fused("fused_small"),
            LayerKernel::CublasLtFused => format!("cublaslt gemm+bias+{activation} (one call)"),
            LayerKernel::Narrow => format!("narrow_{activation}"),
            LayerKernel::NarrowMma => format!("narrow_mma_{activation}"),
            LayerKernel::SplitK if activation.is_elementwise() => {
                format!("splitk_partial + splitk_reduce_{activation}")
            }
            LayerKernel::SplitK => {
                format!("splitk_partial + splitk_reduce_linear + bias_{activation}")
            }
            LayerKernel::SimtWarp => fused("simt_warp"),
            LayerKernel::Wgmma => fused("wgmma"),
        }
    }
}

impl LayerKernel {
    /// The name used in kernel choices and tuning files, e.g. `fused_small`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            LayerKernel::Cublas => "cublas",
            LayerKernel::CublasLt => "cublaslt",
            LayerKernel::Fused => "fused",
            LayerKernel::FusedSmall => "fused_small",
            LayerKernel::CublasLtFused => "cublaslt_fused",
            LayerKernel::Narrow => "narrow",
            LayerKernel::SplitK => "splitk",
            LayerKernel::NarrowMma => "narrow_mma",
            LayerKernel::SimtWarp => "simt_warp",
            LayerKernel::Wgmma => "wgmma",
        }
    }
}

impl fmt::Display for LayerKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LayerKernel {
    type Err = Error;

    /// The inverse of [`LayerKernel::name`].
    fn from_str(s: &str) -> Result<Self> {
        LayerKernel::ALL
            .into_iter()
            .find(|kernel| kernel.name() == s)
            .ok_or_else(|| Error::InvalidArgument(format!("unknown layer kernel `{s}`")))
    }
}

/// Queues one dense layer on `lane` with `kernel`. Every launch checks its own sizes.
pub(crate) fn run_dense<T: GpuElement>(
    device: &DeviceInner,
    lane: &mut Lane,
    kernel: LayerKernel,
    ops: DenseOperands<'_, '_, T>,
    allow_tf32: bool,
) -> Result<()> {
    let DenseOperands {
        a,
        w,
        bias,
        out,
        m,
        n,
        k,
        activation,
    } = ops;
    let kernels = &device.kernels;
    let gemm = |z| GemmOperands { a, w, z, m, n, k };
    match kernel {
        LayerKernel::Cublas => {
            blas::gemm(&mut lane.blas, &lane.stream, gemm(&mut *out), allow_tf32)?;
            kernels::bias_activation(kernels, &lane.stream, activation, out, Some(bias), m, n)
        }
        LayerKernel::CublasLt => {
            blas::gemm_bias_lt(
                &mut lane.blas,
                &lane.stream,
                gemm(&mut *out),
                bias,
                allow_tf32,
                blas::LT_BIAS,
            )?;
            if activation == Activation::Linear {
                return Ok(());
            }
            kernels::bias_activation(kernels, &lane.stream, activation, out, None, m, n)
        }
        LayerKernel::CublasLtFused => {
            let epilogue = blas::fused_epilogue(activation).ok_or_else(|| {
                Error::InvalidArgument(format!("cuBLASLt has no epilogue for {activation}"))
            })?;
            blas::gemm_bias_lt(
                &mut lane.blas,
                &lane.stream,
                gemm(out),
                bias,
                allow_tf32,
                epilogue,
            )
        }
        LayerKernel::Narrow | LayerKernel::NarrowMma | LayerKernel::SplitK => {
            let ops = DenseOperands {
                a,
                w,
                bias,
                out,
                m,
                n,
                k,
                activation,
            };
            match kernel {
                LayerKernel::Narrow => narrow_dense(kernels, &lane.stream, Narrow::Simt, ops),
                LayerKernel::NarrowMma => narrow_dense(kernels, &lane.stream, Narrow::Mma, ops),
                _ => splitk_dense(kernels, &lane.stream, &mut lane.splitk, ops),
            }
        }
        LayerKernel::Fused
        | LayerKernel::FusedSmall
        | LayerKernel::SimtWarp
        | LayerKernel::Wgmma => {
            let op = match kernel {
                LayerKernel::Fused => KernelOp::Fused,
                LayerKernel::FusedSmall => KernelOp::FusedSmall,
                LayerKernel::SimtWarp => KernelOp::SimtWarp,
                _ => KernelOp::Wgmma,
            };
            // Softmax needs whole rows: fuse the GEMM with the bias, then softmax in place.
            let fused_activation = if activation.is_elementwise() {
                activation
            } else {
                Activation::Linear
            };
            let fused = DenseOperands {
                a,
                w,
                bias,
                out: &mut *out,
                m,
                n,
                k,
                activation: fused_activation,
            };
            if op == KernelOp::Wgmma {
                let multiprocessors = device.info.multiprocessors;
                hopper::wgmma_dense(kernels, &lane.stream, multiprocessors, fused)?;
            } else {
                kernels::fused_dense(kernels, &lane.stream, op, fused)?;
            }
            if activation.is_elementwise() {
                return Ok(());
            }
            kernels::bias_activation(kernels, &lane.stream, activation, out, None, m, n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names_round_trip() {
        for kernel in LayerKernel::ALL {
            assert_eq!(kernel.name().parse::<LayerKernel>().unwrap(), kernel);
        }
        assert!("cublas_v3".parse::<LayerKernel>().is_err());
    }
}
