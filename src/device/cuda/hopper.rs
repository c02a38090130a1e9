//! The Hopper path for f16/bf16 layers: `wgmma_<act>_<dtype>` from
//! `kernels/hopper_dense_sm90a.cu` (wgmma fed by TMA, warp-specialised, epilogue fused).
//!
//! The kernel reads `a` and `w` through two TMA tensor maps built here with the driver's
//! `cuTensorMapEncodeTiled` and passed by value (`__grid_constant__`). TMA needs 16-byte row
//! strides and base addresses, so shapes with `k` or `n` not a multiple of 8, or unaligned
//! views, run `fused_<act>_<dtype>` instead: the variant is correct for every shape, and fast
//! where Hopper's machinery applies. [`runs_on`] says where the variant exists at all:
//! 16-bit dtypes on a compute capability 9.0 GPU whose driver loads the sm_90a module.

use std::ffi::c_void;
use std::mem::MaybeUninit;

use cudarc::driver::sys::{
    self, CUtensorMapDataType, CUtensorMapFloatOOBfill, CUtensorMapInterleave,
    CUtensorMapL2promotion, CUtensorMapSwizzle,
};
use cudarc::driver::{CudaStream, DevicePtr, DeviceRepr, LaunchConfig, PushKernelArg};

use super::error::CudaResultExt;
use super::hopper_tile::{
    shared_bytes, tile_cols, HopperTile, BOX_K, BOX_W_COLS, THREADS, TILE_ROWS,
};
use super::kernels::{self, KernelCache, KernelOp};
use super::operands::DenseOperands;
use super::GpuElement;
use crate::dtype::DType;
use crate::error::{Error, Result};

/// The wide tiles where they leave no multiprocessor idle and the layer is wider than the
/// narrow tile; the narrow ones otherwise.
fn pick_tiles(m: usize, n: usize, multiprocessors: usize) -> KernelOp {
    let wide_blocks = m.div_ceil(TILE_ROWS) * n.div_ceil(256);
    if n > 128 && wide_blocks >= multiprocessors {
        KernelOp::Wgmma
    } else {
        KernelOp::WgmmaNarrow
    }
}

/// A `CUtensorMap` as a kernel argument, passed by value.
#[repr(transparent)]
struct TensorMapArg(sys::CUtensorMap);

// SAFETY: `CUtensorMap` is a plain 128-byte, 64-byte-aligned C struct of integers (no
// pointers the driver would need to translate, no host-only state), exactly what the kernel's
// `TensorMap` parameter declares; passing it by value is what `__grid_constant__` expects.
unsafe impl DeviceRepr for TensorMapArg {}

/// Whether the `wgmma` variant exists for `dtype` on this GPU.
pub(crate) fn runs_on(kernels: &KernelCache, dtype: DType, compute_capability: (i32, i32)) -> bool {
    matches!(dtype, DType::F16 | DType::BF16)
        && compute_capability == (9, 0)
        && kernels.loads(KernelOp::Wgmma)
}

/// Whether TMA can address a row-major matrix of `cols` 16-bit columns at `address`.
fn tma_addressable(address: u64, cols: usize) -> bool {
    address.is_multiple_of(16) && cols > 0 && (cols * 2).is_multiple_of(16)
}

/// A 2-D tiled tensor map over a row-major `rows × cols` matrix of 16-bit `dtype` at
/// `address`, boxes of `box_cols × box_rows`, 128-byte swizzle, zeros outside the matrix.
fn tensor_map(
    address: u64,
    dtype: DType,
    rows: usize,
    cols: usize,
    box_cols: u32,
    box_rows: u32,
) -> Result<TensorMapArg> {
    let data_type = match dtype {
        DType::F16 => CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
        DType::BF16 => CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
        DType::F32 => {
            return Err(Error::InvalidArgument(
                "the wgmma kernel is for f16 and bf16".into(),
            ))
        }
    };
    let dims = [cols as u64, rows as u64];
    let strides = [(cols * 2) as u64]; // bytes between rows; the innermost stride is implicit
    let boxes = [box_cols, box_rows];
    let element_strides = [1u32, 1];
    let mut map = MaybeUninit::<sys::CUtensorMap>::zeroed();
    // SAFETY: every pointer is to a live local array of the length rank 2 requires (dims,
    // box and element strides: 2; global strides: rank - 1 = 1) or to `map`, which the call
    // fills. The driver checks the values (16-byte-aligned address and strides, box ≤ 256,
    // inner box × element size ≤ the 128-byte swizzle span) and reports an error instead of
    // writing a bad map; `address` is only recorded, not dereferenced here.
    unsafe {
        sys::cuTensorMapEncodeTiled(
            map.as_mut_ptr(),
            data_type,
            2,
            address as *mut c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxes.as_ptr(),
            element_strides.as_ptr(),
            CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
            CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    }
    .result()
    .during("building a TMA tensor map")?;
    // SAFETY: the call succeeded, so it wrote the whole map (and it started zeroed).
    Ok(TensorMapArg(unsafe { map.assume_init() }))
}

/// Queues `out = g(a · w + bias)` with the wgmma kernel, or with `fused_<act>` where TMA
/// cannot address the operands. `ops.activation` must be element-wise.
pub(crate) fn wgmma_dense<T: GpuElement>(
    kernels: &KernelCache,
    stream: &CudaStream,
    multiprocessors: usize,
    ops: DenseOperands<'_, '_, T>,
) -> Result<()> {
    let (m, n, k) = (ops.m, ops.n, ops.k);
    for (what, product) in [
        ("m x k", m.checked_mul(k)),
        ("k x n", k.checked_mul(n)),
        ("m x n", m.checked_mul(n)),
    ] {
        if product.is_none_or(|p| p > i32::MAX as usize) {
            return Err(Error::InvalidArgument(format!(
                "{what} exceeds the kernels' limit of 2^31 - 1"
            )));
        }
    }
    if ops.a.len() < m * k || ops.w.len() < k * n || ops.bias.len() < n || ops.out.len() < m * n {
        return Err(Error::InvalidArgument(format!(
            "the operands are too small for a {m}x{k} by {k}x{n} layer"
        )));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    let (a_address, a_read) = ops.a.device_ptr(stream);
    let (w_address, w_read) = ops.w.device_ptr(stream);
    if m > 65_535 * TILE_ROWS
        || !tma_addressable(a_address, k)
        || !tma_addressable(w_address, n)
        || !matches!(T::DTYPE, DType::F16 | DType::BF16)
    {
        drop((a_read, w_read));
        return kernels::fused_dense(kernels, stream, KernelOp::Fused, ops);
    }
    let op = pick_tiles(m, n, multiprocessors);
    let tile = if op == KernelOp::Wgmma {
        HopperTile::Wide
    } else {
        HopperTile::Narrow
    };
    let a_map = tensor_map(a_address, T::DTYPE, m, k, BOX_K, TILE_ROWS as u32)?;
    let w_map = tensor_map(w_address, T::DTYPE, k, n, BOX_W_COLS, BOX_K)?;
    let function = kernels.get(op, ops.activation, T::DTYPE)?;
    let config = LaunchConfig {
        grid_dim: (
            n.div_ceil(tile_cols(tile)) as u32,
            m.div_ceil(TILE_ROWS) as u32,
            1,
        ),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: shared_bytes(tile),
    };
    let (m_i, n_i, k_i) = (m as i32, n as i32, k as i32);
    let act_param = ops.activation.parameter();
    let mut launch = stream.launch_builder(&function);
    launch
        .arg(&a_map)
        .arg(&w_map)
        .arg(ops.bias)
        .arg(&mut *ops.out)
        .arg(&m_i)
        .arg(&n_i)
        .arg(&k_i)
        .arg(&act_param);
    // SAFETY:
    // 1. The arguments match `wgmma_<act>_<dtype>(TensorMap a_map, TensorMap w_map, const T*
    //    bias, T* out, int m, int n, int k, float act_param)` in order and type: two 128-byte
    //    tensor maps by value, two device pointers of `T` (the kernel was looked up by
    //    `T::DTYPE`), three `i32`s (all products were checked to fit above) and an `f32`.
    // 2. The maps describe exactly `a` (m×k) and `w` (k×n) at their device addresses, whose
    //    views hold at least m·k and k·n elements (checked above); TMA never reads outside a
    //    map's extent (it fills zeros), and the kernel stores only rows < m and columns < n of
    //    `out` (≥ m·n elements) and reads bias[0..n). `out` is a `&mut` view: no aliasing.
    // 3. `a_read`/`w_read` keep cudarc's read tracking of `a` and `w` alive until after the
    //    launch is queued (they record the read when dropped below); `bias` and `out` are
    //    tracked by the launch builder. The caller synchronises before freeing or reuse.
    // 4. 384 threads and `shared_bytes(op)` of dynamic shared memory are what the kernel is
    //    built for (it asserts the same sizes); `get` raised the function's
    //    limit to the GPU's opt-in maximum; the grid covers m and n with its tile, and grid.y ≤ 65535 was checked.
    unsafe { launch.launch(config) }.during(&format!("launching wgmma_{}", ops.activation))?;
    drop((a_read, w_read));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_memory_matches_the_kernels_static_asserts() {
        assert_eq!(shared_bytes(HopperTile::Narrow), 197_728);
        assert_eq!(shared_bytes(HopperTile::Wide), 197_696);
    }

    #[test]
    fn narrow_tiles_for_narrow_or_small_layers() {
        assert_eq!(pick_tiles(16384, 4096, 132), KernelOp::Wgmma);
        assert_eq!(pick_tiles(65536, 512, 132), KernelOp::Wgmma);
        assert_eq!(pick_tiles(65536, 128, 132), KernelOp::WgmmaNarrow);
        assert_eq!(pick_tiles(1000, 512, 132), KernelOp::WgmmaNarrow);
    }

    #[test]
    fn tma_needs_16_byte_rows_and_addresses() {
        assert!(tma_addressable(256, 8));
        assert!(tma_addressable(4096, 784));
        assert!(!tma_addressable(256, 7), "k = 7: 14-byte rows");
        assert!(!tma_addressable(258, 64), "2-byte aligned view");
        assert!(!tma_addressable(256, 0));
    }
}
