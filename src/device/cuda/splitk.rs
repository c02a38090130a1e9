//! The weight-streaming kernel for small batches (kernels/splitk.cu): a split-K GEMV that
//! spreads the weights over every SM, then a reduction that adds the bias and applies g.
//!
//! The f32 partial sums live in a [`SplitkWorkspace`] owned by the lane, like the cuBLAS
//! workspace: allocated the first time the lane needs it (the plain pass that precedes any
//! CUDA Graph capture), and reused afterwards.

use cudarc::driver::{CudaStream, LaunchConfig, PushKernelArg};

use super::error::CudaResultExt;
use super::kernels::{as_int, bias_activation, launch_dims, KernelCache};
use super::operands::DenseOperands;
use super::workspace::SplitkWorkspace;
use super::GpuElement;
use crate::activation::Activation;
use crate::dtype::DType;
use crate::error::{Error, Result};

/// The most rows the split-K kernel is offered for (Auto's candidates).
pub(crate) const SPLITK_MAX_ROWS: usize = 64;
const THREADS: u32 = 256;
const WARPS: usize = 8;
/// Blocks per SM a launch aims for.
const BLOCKS_PER_SM: usize = 4;
/// The fewest k rows one split covers.
const MIN_K_PER_SPLIT: usize = 64;

/// How the k dimension is split: (splits, k per split).
///
/// Enough splits that strips × splits fills every SM [`BLOCKS_PER_SM`] times, but no split
/// smaller than [`MIN_K_PER_SPLIT`] rows, and partial sums (splits · m · n f32) at most a
/// quarter of the weights' bytes, so the reduction never costs more than the GEMV. k per
/// split is a multiple of the 8 warps that share it.
pub(crate) fn split_plan(
    m: usize,
    n: usize,
    k: usize,
    element_bytes: usize,
    multiprocessors: usize,
) -> (usize, usize) {
    let strip = 32 * (16 / element_bytes.max(1));
    let strips = n.div_ceil(strip).max(1);
    let to_fill = (BLOCKS_PER_SM * multiprocessors).div_ceil(strips);
    let by_k = k.div_ceil(MIN_K_PER_SPLIT);
    let by_traffic = (k * element_bytes) / (16 * m.max(1));
    let wanted = to_fill.min(by_k).min(by_traffic).max(1);
    let k_per_split = k.div_ceil(wanted).next_multiple_of(WARPS).max(WARPS);
    (k.div_ceil(k_per_split).max(1), k_per_split)
}

/// Queues `splitk_partial_<dtype>` then `splitk_reduce_<act>_<dtype>` (softmax: reduce with
/// `linear`, then `bias_softmax` without bias) on `ops`.
pub(crate) fn splitk_dense<T: GpuElement>(
    kernels: &KernelCache,
    stream: &std::sync::Arc<CudaStream>,
    workspace: &mut SplitkWorkspace,
    ops: DenseOperands<'_, '_, T>,
) -> Result<()> {
    let Some(args) = launch_dims(&ops)? else {
        return Ok(()); // nothing to compute
    };
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
    let (m_i, n_i, k_i) = (args.m, args.n, args.k);
    let element = T::DTYPE.size_in_bytes();
    let multiprocessors = kernels.multiprocessors() as usize;
    let (splits, k_per_split) = split_plan(m, n, k, element, multiprocessors);
    let partial_len = splits
        .checked_mul(m * n)
        .ok_or_else(|| Error::InvalidArgument("the split-K workspace is too large".into()))?;
    let splits_i = as_int(splits, "splits")?;
    let k_per_split_i = as_int(k_per_split, "k per split")?;
    let strips = n.div_ceil(32 * (16 / element));
    let partial = workspace.at_least(stream, partial_len)?;

    let name = partial_name(T::DTYPE);
    let function = kernels.function("splitk", &name, false)?;
    let config = LaunchConfig {
        grid_dim: (
            u32::try_from(strips).unwrap_or(u32::MAX),
            u32::try_from(splits).unwrap_or(u32::MAX),
            1,
        ),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut launch = stream.launch_builder(&function);
    launch
        .arg(a)
        .arg(w)
        .arg(&mut *partial)
        .arg(&m_i)
        .arg(&n_i)
        .arg(&k_i)
        .arg(&k_per_split_i);
    // SAFETY:
    // 1. The arguments match ABI.md's `splitk_partial_<dtype>(const T* a, const T* w,
    //    float* partial, int m, int n, int k, int k_per_split)`; the kernel was looked up by
    //    `T::DTYPE`.
    // 2. `a` ≥ m·k and `w` ≥ k·n elements (checked above); the kernel bounds-checks every
    //    row, column and k against m, n, k. Block (x, s) writes partial[s][r][c] for r < m
    //    and c < n only, and s < splits = ceil(k / k_per_split) = grid.y, so it stays inside
    //    the splits·m·n floats the workspace holds (allocated above).
    // 3. grid.x = ceil(n / (32·V)) strips and grid.y = splits (at most 4·SMs, far below
    //    65535), 256 threads, static shared memory only, as the ABI prescribes.
    // 4. The workspace belongs to this lane and is used only on its stream, which orders the
    //    reduction below after this kernel; the views outlive the launch in stream order.
    unsafe { launch.launch(config) }.during(&format!("launching {name}"))?;

    let reduce_activation = if activation.is_elementwise() {
        activation
    } else {
        Activation::Linear
    };
    let name = reduce_name(reduce_activation, T::DTYPE);
    let function = kernels.function("splitk", &name, false)?;
    let act_param = reduce_activation.parameter();
    let blocks = u32::try_from((m * n).div_ceil(THREADS as usize))
        .unwrap_or(u32::MAX)
        .min(32 * kernels.multiprocessors())
        .max(1);
    let config = LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut launch = stream.launch_builder(&function);
    launch
        .arg(&*partial)
        .arg(bias)
        .arg(&mut *out)
        .arg(&m_i)
        .arg(&n_i)
        .arg(&splits_i)
        .arg(&act_param);
    // SAFETY:
    // 1. The arguments match ABI.md's `splitk_reduce_<act>_<dtype>(const float* partial,
    //    const T* bias, T* out, int m, int n, int splits, float act_param)`.
    // 2. `partial` holds splits·m·n floats, written by the kernel above (stream order);
    //    `bias` ≥ n and `out` ≥ m·n elements (checked above); the grid-stride loop touches
    //    indices below m·n only.
    // 3. 256 threads, any grid, no dynamic shared memory, as the ABI prescribes.
    unsafe { launch.launch(config) }.during(&format!("launching {name}"))?;
    if activation.is_elementwise() {
        return Ok(());
    }
    bias_activation(kernels, stream, activation, out, None, m, n)
}

/// `splitk_partial_<dtype>`: the partial products of one K slice.
fn partial_name(dtype: DType) -> String {
    format!("splitk_partial_{}", dtype.name())
}

/// `splitk_reduce_<act>_<dtype>`: the sum over slices, with bias and an elementwise g.
fn reduce_name(activation: Activation, dtype: DType) -> String {
    format!("splitk_reduce_{}_{}", activation.name(), dtype.name())
}

/// Every kernel the launchers here can name.
#[cfg(test)]
pub(super) fn launchable() -> Vec<String> {
    let mut names = Vec::new();
    for dtype in DType::ALL {
        names.push(partial_name(dtype));
        let elementwise = Activation::ALL.into_iter().filter(|a| a.is_elementwise());
        names.extend(elementwise.map(|activation| reduce_name(activation, dtype)));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_fill_the_gpu_and_cover_k() {
        for (m, n, k, bytes) in [
            (1, 4096, 4096, 4),
            (64, 4096, 4096, 2),
            (1, 1024, 1024, 2),
            (3, 17, 1000, 4),
            (64, 10, 7, 4),
        ] {
            let (splits, per) = split_plan(m, n, k, bytes, 132);
            assert!(splits >= 1 && per % WARPS == 0, "{m}x{n}x{k}");
            assert!(splits * per >= k && (splits - 1) * per < k, "{m}x{n}x{k}");
            assert!(splits <= 4 * 132, "{m}x{n}x{k}");
        }
        // One row of a 4096² f32 layer: 32 strips, about 17 splits to fill 528 blocks.
        let (splits, _) = split_plan(1, 4096, 4096, 4, 132);
        assert!((16..=18).contains(&splits), "{splits}");
        // 64 rows of bf16: partials limited to a quarter of the weights (8 splits).
        assert_eq!(split_plan(64, 4096, 4096, 2, 132).0, 8);
    }
}
