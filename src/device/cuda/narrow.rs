//! The narrow-layer kernels: W and the bias resident on chip, rows of A streamed, every
//! output written once with bias and activation (softmax included). kernels/narrow.cu runs
//! on the CUDA cores (every dtype, n ≤ 256); kernels/narrow_mma.cu on the tensor cores
//! (f16/bf16, n ≤ 128).

use cudarc::driver::LaunchConfig;

use super::error::CudaResultExt;
use super::kernels::{launch_dims, persistent_blocks, KernelCache};
use super::operands::DenseOperands;
use super::GpuElement;
use crate::activation::Activation;
use crate::dtype::DType;
use crate::error::{Error, Result};
use cudarc::driver::CudaStream;

/// The widest layer the tensor-core narrow kernel takes (`narrow_mma128_*`).
const MMA_MAX_UNITS: usize = 128;

/// Which narrow kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Narrow {
    /// `narrow<NP>_<act>_<dtype>`, CUDA cores, every dtype, n ≤ 256.
    Simt,
    /// `narrow_mma<NP>_<act>_<dtype>`, tensor cores (mma.sync), f16/bf16, n ≤ 128.
    Mma,
}

impl Narrow {
    /// Dynamic shared memory for a k × n layer in `dtype`, `None` when this kernel cannot
    /// take the layer (too wide, f32 on the tensor cores, or an overflowing size).
    pub(crate) fn shared_bytes(self, k: usize, n: usize, dtype: DType) -> Option<usize> {
        match self {
            Narrow::Simt => shared_bytes(k, n, dtype),
            Narrow::Mma if dtype == DType::F32 || n > MMA_MAX_UNITS => None,
            // Wt: NP rows of ceil(k / 64)·64 + 8 elements (narrow_mma.cu).
            Narrow::Mma => (32 * column_slots(n)?)
                .checked_mul(k.div_ceil(64).checked_mul(64)?.checked_add(8)?)?
                .checked_mul(dtype.size_in_bytes()),
        }
    }

    /// Whether a k × n layer in `dtype` fits on a GPU granting `shared_limit` bytes.
    pub(crate) fn fits(self, k: usize, n: usize, dtype: DType, shared_limit: usize) -> bool {
        k > 0
            && self
                .shared_bytes(k, n, dtype)
                .is_some_and(|b| b <= shared_limit)
    }

    /// `narrow<NP>_<act>_<dtype>` or `narrow_mma<NP>_<act>_<dtype>` with NP = 32·`slots`.
    fn kernel_name(self, slots: usize, activation: Activation, dtype: DType) -> String {
        format!(
            "{}{}_{}_{}",
            self.module(),
            32 * slots,
            activation.name(),
            dtype.name()
        )
    }

    fn module(self) -> &'static str {
        match self {
            Narrow::Simt => "narrow",
            Narrow::Mma => "narrow_mma",
        }
    }

    /// Output rows a block computes per step of its persistent loop.
    fn rows_per_block(self, slots: usize) -> usize {
        match self {
            Narrow::Simt => WARPS * (32 / slots),
            Narrow::Mma => WARPS * 16,
        }
    }
}
/// Threads per block, warps per block, k per staging step and staged row stride (floats),
/// as in kernels/narrow.cu.
const THREADS: u32 = 256;
const WARPS: usize = 8;
const K_CHUNK: usize = 32;
const STAGE_STRIDE: usize = K_CHUNK + 4;

/// Column slots per lane for `n` units: 1, 2, 4 or 8 (the kernel `narrow<32·slots>_*`);
/// `None` above 256 units, the widest the narrow kernels take.
pub(crate) fn column_slots(n: usize) -> Option<usize> {
    [1, 2, 4, 8].into_iter().find(|slots| n <= 32 * slots)
}

/// Dynamic shared memory of `narrow<NP>_*` for a k × n layer in `dtype`: the per-warp f32
/// staging of (32 / slots) rows × 36, plus W padded to ceil(k / 32)·32 × 32·slots elements.
/// `None` when n is too wide or the size overflows.
pub(crate) fn shared_bytes(k: usize, n: usize, dtype: DType) -> Option<usize> {
    let slots = column_slots(n)?;
    let stage = WARPS * (32 / slots) * STAGE_STRIDE * 4;
    let weights = k
        .div_ceil(K_CHUNK)
        .checked_mul(K_CHUNK * 32 * slots * dtype.size_in_bytes())?;
    stage.checked_add(weights)
}

/// Launches `narrow<NP>_<act>_<dtype>` or `narrow_mma<NP>_<act>_<dtype>` (by `kind`) on
/// `ops` (any activation, softmax included).
pub(crate) fn narrow_dense<T: GpuElement>(
    kernels: &KernelCache,
    stream: &CudaStream,
    kind: Narrow,
    mut ops: DenseOperands<'_, '_, T>,
) -> Result<()> {
    let Some(args) = launch_dims(&ops)? else {
        return Ok(()); // nothing to compute
    };
    let (m, n, k) = (ops.m, ops.n, ops.k);
    let limit = kernels.shared_limit()?;
    let (Some(slots), Some(shared)) = (column_slots(n), kind.shared_bytes(k, n, T::DTYPE)) else {
        return Err(Error::InvalidArgument(format!(
            "the {} kernel cannot take {n} units in {}",
            kind.module(),
            T::DTYPE
        )));
    };
    if k == 0 || shared > limit {
        return Err(Error::InvalidArgument(format!(
            "a {k}x{n} {} layer needs {shared} bytes of shared memory in the narrow kernel; \
             this GPU grants {limit}",
            T::DTYPE
        )));
    }
    let name = kind.kernel_name(slots, ops.activation, T::DTYPE);
    let function = kernels.function(kind.module(), &name, true)?;
    let shared_u32 = u32::try_from(shared).unwrap_or(u32::MAX);
    let rows_per_block = kind.rows_per_block(slots);
    let work = m.div_ceil(rows_per_block);
    let blocks = persistent_blocks(kernels, stream, &function, THREADS, shared, work)?;
    let config = LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: shared_u32,
    };
    let mut launch = stream.launch_builder(&function);
    args.push(&mut launch, &mut ops);
    // SAFETY:
    // 1. The arguments match ABI.md's `narrow<NP>_<act>_<dtype>` / `narrow_mma<NP>_...`
    //    `(const T* a, const T* w, const T* bias, T* out, int m, int n, int k, float act_param)`
    //    in order and type; the kernel was looked up in `kind`'s module by `T::DTYPE` and by
    //    NP = 32·slots ≥ n, the width it requires (`shared_bytes` refused f32 and n > 128 for the tensor-core kernel).
    // 2. `a` ≥ m·k, `w` ≥ k·n, `bias` ≥ n and `out` ≥ m·n elements, checked above, and every
    //    product fits an `int`; the kernel bounds-checks rows and columns against m, n, k,
    //    so it touches nothing else. `out` is a `&mut` view and aliases no input.
    // 3. The dynamic shared memory is exactly `kind.shared_bytes(k, n)`, which the kernel's
    //    layout needs (narrow.cu, narrow_mma.cu), within the opt-in limit granted at load.
    // 4. The views borrow their buffers for this call; the caller synchronises the stream
    //    before the buffers are freed or reused. 256 threads as the ABI prescribes; the
    //    grid may be any size (warps stride over row tiles).
    unsafe { launch.launch(config) }.during(&format!("launching {name}"))?;
    Ok(())
}

/// Every kernel the launchers here can name: NP = 32, 64, 128, 256 on the CUDA cores, and up
/// to 128 on the tensor cores, which take f16 and bf16 only.
#[cfg(test)]
pub(super) fn launchable() -> Vec<String> {
    let mut names = Vec::new();
    for dtype in DType::ALL {
        for activation in Activation::ALL {
            for slots in [1, 2, 4, 8] {
                names.push(Narrow::Simt.kernel_name(slots, activation, dtype));
                if dtype != DType::F32 && 32 * slots <= MMA_MAX_UNITS {
                    names.push(Narrow::Mma.kernel_name(slots, activation, dtype));
                }
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_shared_memory_follow_the_kernel_layout() {
        assert_eq!(column_slots(1), Some(1));
        assert_eq!(column_slots(33), Some(2));
        assert_eq!(column_slots(256), Some(8));
        assert_eq!(column_slots(257), None);
        // 64x64 f32: staging 8 warps × 16 rows × 36 floats, W 64 × 64 floats.
        assert_eq!(
            shared_bytes(64, 64, DType::F32),
            Some(8 * 16 * 36 * 4 + 64 * 64 * 4)
        );
        // k = 33 pads to 64 rows of W.
        assert_eq!(
            shared_bytes(33, 10, DType::BF16),
            Some(8 * 32 * 36 * 4 + 64 * 32 * 2)
        );
        assert!(Narrow::Simt.fits(256, 256, DType::BF16, 227 * 1024));
        assert!(!Narrow::Simt.fits(256, 256, DType::F32, 227 * 1024));
        assert!(!Narrow::Simt.fits(0, 16, DType::F32, 227 * 1024));
        // Tensor cores: Wt of 64 rows × (64 + 8) for k = 33; no f32, no n > 128.
        assert_eq!(
            Narrow::Mma.shared_bytes(33, 40, DType::F16),
            Some(64 * 72 * 2)
        );
        assert_eq!(Narrow::Mma.shared_bytes(33, 40, DType::F32), None);
        assert_eq!(Narrow::Mma.shared_bytes(33, 129, DType::BF16), None);
    }

    /// Every kernel the launchers of narrow.rs, splitk.rs and network_kernel.rs name, with
    /// the number of arguments they push (ABI.md; `act_param` last where g is applied).
    #[test]
    fn every_launched_kernel_is_in_the_ptx() {
        let has = |module: &str, name: &str, count: usize, act_param: bool| {
            let params = super::super::images::entry_params(module, name)
                .unwrap_or_else(|| panic!("{module} lacks {name}"));
            assert_eq!(params.len(), count, "{name}: {params:?}");
            assert_eq!(
                params.last().map(String::as_str) == Some(".f32"),
                act_param,
                "{name}: {params:?}"
            );
        };
        for dtype in DType::ALL {
            let d = dtype.name();
            for activation in Activation::ALL {
                let a = activation.name();
                for slots in [1, 2, 4, 8] {
                    let simt = Narrow::Simt.kernel_name(slots, activation, dtype);
                    has(Narrow::Simt.module(), &simt, 8, true);
                    if dtype != DType::F32 && slots < 8 {
                        let mma = Narrow::Mma.kernel_name(slots, activation, dtype);
                        has(Narrow::Mma.module(), &mma, 8, true);
                    }
                }
                if activation.is_elementwise() {
                    has("splitk", &format!("splitk_reduce_{a}_{d}"), 7, true);
                }
            }
            has("splitk", &format!("splitk_partial_{d}"), 7, false);
            has("network", &format!("network_{d}"), 4, false);
        }
    }
}
