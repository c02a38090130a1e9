//! One dense layer on the GPU, `out = g(a · w + bias)`, by each of the ways vecprop has.

use std::fmt;
use std::str::FromStr;

use cudarc::driver::{CudaView, CudaViewMut};

use super::blas::{self, GemmOperands};
use super::hopper;
use super::kernels::{self, KernelOp};
use super::stream::Lane;
use super::{DeviceInner, GpuElement};
use crate::activation::Activation;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::plan::Strategy;

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
    /// f32 only: `simt_warp_<act>_f32` (warp-tiled CUDA-core GEMM); softmax as for `Fused`.
    SimtWarp,
    /// f16/bf16 on compute capability 9.0 only: `wgmma_<act>` (wgmma + TMA), falling back to
    /// `fused_<act>` for shapes TMA cannot address; softmax as for `Fused`.
    Wgmma,
}

impl LayerKernel {
    /// Every kernel, in the order Auto times them.
    pub(crate) const ALL: [LayerKernel; 6] = [
        LayerKernel::Cublas,
        LayerKernel::CublasLt,
        LayerKernel::Fused,
        LayerKernel::FusedSmall,
        LayerKernel::SimtWarp,
        LayerKernel::Wgmma,
    ];

    /// Whether this kernel exists for `dtype` on `device` (Auto times only these, and the
    /// bench skips the others): `SimtWarp` is f32 only, `Wgmma` needs f16/bf16 on a compute
    /// capability 9.0 GPU whose driver loads the sm_90a module.
    pub(crate) fn runs_on(self, device: &DeviceInner, dtype: DType) -> bool {
        match self {
            LayerKernel::SimtWarp => dtype == DType::F32,
            LayerKernel::Wgmma => {
                hopper::runs_on(&device.kernels, dtype, device.info.compute_capability)
            }
            _ => true,
        }
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
            Strategy::Fused => {
                let large_tiles = rows.div_ceil(128) * units.div_ceil(128);
                Some(if large_tiles < multiprocessors {
                    LayerKernel::FusedSmall
                } else {
                    LayerKernel::Fused
                })
            }
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

/// The operands of one dense layer, row-major: `a` m×k, `w` k×n, `bias` n, `out` m×n.
pub(crate) struct DenseOperands<'a, 'b, T> {
    pub(crate) a: &'b CudaView<'a, T>,
    pub(crate) w: &'b CudaView<'a, T>,
    pub(crate) bias: &'b CudaView<'a, T>,
    pub(crate) out: &'b mut CudaViewMut<'a, T>,
    pub(crate) m: usize,
    pub(crate) n: usize,
    pub(crate) k: usize,
    pub(crate) activation: Activation,
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
            )?;
            if activation == Activation::Linear {
                return Ok(());
            }
            kernels::bias_activation(kernels, &lane.stream, activation, out, None, m, n)
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
