//! Timing one dense layer (GEMM + bias + sigmoid) per variant, for `vecprop bench`.
//!
//! Each repeat runs the variant once on each of several independent buffer sets, between
//! two CUDA events, and counts the time per layer; the result is the median over repeats,
//! after untimed warm-up runs. Rotating through sets that together exceed the L2 cache
//! keeps small shapes from being timed out of a warm cache.

use std::sync::Arc;

use cudarc::driver::CudaSlice;
use half::{bf16, f16};

use super::{Ceilings, Measurement, Shape};
use crate::activation::Activation;
use crate::device::cuda::blas::{self, GemmOperands};
use crate::device::cuda::dense::{run_dense, LayerKernel};
use crate::device::cuda::error::CudaResultExt;
use crate::device::cuda::operands::DenseOperands;
use crate::device::cuda::stream::{median_ms, Lane};
use crate::device::cuda::{CudaDevice, GpuElement};
use crate::dtype::DType;
use crate::error::{Error, Result};

/// Untimed runs of each variant before timing.
const WARMUP: usize = 3;
/// At most this many buffer sets, and at most this many bytes for all of them: enough for
/// the largest default shape, 65536×4096×4096 in f32 (2.2 GB).
const MAX_SETS: usize = 16;
const MAX_SET_BYTES: usize = 4 << 30;

/// What one variant runs.
#[derive(Debug, Clone, Copy)]
enum Variant {
    /// The bare cuBLAS GEMM, no bias or activation: the ceiling for the others.
    GemmOnly,
    /// A complete dense layer with this activation.
    Dense(LayerKernel, Activation),
}

/// The bench's layer: sigmoid, which no cuBLASLt epilogue has.
const SIGMOID: Activation = Activation::Sigmoid;

const VARIANTS: [(&str, Variant); 11] = [
    ("cublas-gemm-only", Variant::GemmOnly),
    (
        "cublas+epilogue",
        Variant::Dense(LayerKernel::Cublas, SIGMOID),
    ),
    (
        "cublaslt-bias+act",
        Variant::Dense(LayerKernel::CublasLt, SIGMOID),
    ),
    ("fused", Variant::Dense(LayerKernel::Fused, SIGMOID)),
    (
        "fused_small",
        Variant::Dense(LayerKernel::FusedSmall, SIGMOID),
    ),
    ("narrow", Variant::Dense(LayerKernel::Narrow, SIGMOID)),
    (
        "narrow_mma",
        Variant::Dense(LayerKernel::NarrowMma, SIGMOID),
    ),
    ("splitk", Variant::Dense(LayerKernel::SplitK, SIGMOID)),
    ("simt_warp", Variant::Dense(LayerKernel::SimtWarp, SIGMOID)),
    ("wgmma", Variant::Dense(LayerKernel::Wgmma, SIGMOID)),
    // cuBLASLt fuses relu (not sigmoid) into the GEMM: the one-call layer, with relu.
    (
        "cublaslt-fused-relu",
        Variant::Dense(LayerKernel::CublasLtFused, Activation::Relu),
    ),
];

/// The label of the `auto` row; its `picked` field names the kernel a plan would pick.
pub const AUTO_VARIANT: &str = "auto";

/// Times one dense layer of `shape` (sigmoid) per variant, in `dtype`, on `device`:
/// `cublas-gemm-only`, `cublas+epilogue`, `cublaslt-bias+act`, `fused`, `fused_small`, then
/// vecprop's `narrow` (n ≤ 256), `narrow_mma` (f16/bf16, n ≤ 128), `splitk` (m ≤ 64),
/// `simt_warp` (f32) and `wgmma` (f16/bf16 on compute capability 9.0) where they take the
/// shape, `cublaslt-fused-relu` (the one-call cuBLASLt layer; relu, since cuBLASLt has no
/// sigmoid), and last `auto`: the kernel `Strategy::Auto` would pick for this layer (the
/// fastest sigmoid layer measured here; [`Measurement::picked`] names its row), timed again.
///
/// The median of `repeats` timed runs (at least 1) after warm-up; f32 GEMMs use full f32
/// precision (no TF32).
pub fn bench_dense(
    device: &CudaDevice,
    shape: Shape,
    dtype: DType,
    repeats: usize,
) -> Result<Vec<Measurement>> {
    bench_dense_with(device, shape, dtype, repeats, false)
}

/// [`bench_dense`], with f32 GEMMs on TF32 tensor cores when `allow_tf32` (about 1e-3
/// relative error).
pub fn bench_dense_with(
    device: &CudaDevice,
    shape: Shape,
    dtype: DType,
    repeats: usize,
    allow_tf32: bool,
) -> Result<Vec<Measurement>> {
    match dtype {
        DType::F32 => bench_typed::<f32>(device, shape, repeats, allow_tf32),
        DType::F16 => bench_typed::<f16>(device, shape, repeats, allow_tf32),
        DType::BF16 => bench_typed::<bf16>(device, shape, repeats, allow_tf32),
    }
}

/// Median milliseconds of a pinned host→device copy of `h2d_bytes` and of a device→host
/// copy of `d2h_bytes`, each timed alone between CUDA events on one stream after warm-up:
/// what a forward pass's copies cost with no compute at all.
pub fn bench_copies(
    device: &CudaDevice,
    h2d_bytes: usize,
    d2h_bytes: usize,
    repeats: usize,
) -> Result<(f64, f64)> {
    let inner = &device.inner;
    let lane = inner.lanes.acquire()?;
    // f32 elements: the pools are typed, and four bytes is every dtype's multiple.
    let (up, down) = (h2d_bytes.div_ceil(4).max(1), d2h_bytes.div_ceil(4).max(1));
    let mut host_in = inner.pinned.take::<f32>(up)?;
    let mut host_out = inner.pinned.take::<f32>(down)?;
    let mut on_device = inner.buffers.take::<f32>(&lane.stream, up.max(down))?;
    let context = Arc::clone(lane.stream.context());
    let stream = Arc::clone(&lane.stream);
    let h2d = median_ms(&context, &stream, WARMUP, repeats, || {
        host_in.upload(&stream, &mut on_device.view_mut(up)?)
    });
    let d2h = median_ms(&context, &stream, WARMUP, repeats, || {
        host_out.download(&stream, &on_device.view(down)?)
    });
    // Synchronise before the buffers go back to the pools, errors included.
    let synced = lane.synchronize();
    let timings = (h2d?, d2h?);
    synced?;
    inner.check_deferred_errors()?;
    Ok(timings)
}

/// Bytes each side of the device-to-device copy that [`bench_ceilings`] times.
const CEILING_COPY_BYTES: usize = 1 << 30;
/// The square GEMMs that [`bench_ceilings`] times: bf16 and f32.
const CEILING_BF16_N: usize = 8192;
const CEILING_F32_N: usize = 4096;
/// Timed repetitions of each ceiling.
const CEILING_REPEATS: usize = 10;

/// What `device` can do at best, measured with CUDA events, the median of several repeats
/// after warm-up: a device-to-device copy of 1 GiB (bytes read plus written), cuBLAS bf16
/// GEMM at 8192³ and f32 SGEMM at 4096³ (full f32, no TF32), both with f32 accumulation on
/// random non-zero data.
pub fn bench_ceilings(device: &CudaDevice) -> Result<Ceilings> {
    let copy_gbytes_per_s = copy_bandwidth(device)?;
    let bf16_gemm_tflops = gemm_rate::<bf16>(device, CEILING_BF16_N)?;
    let f32_gemm_tflops = gemm_rate::<f32>(device, CEILING_F32_N)?;
    device.inner.check_deferred_errors()?;
    Ok(Ceilings {
        copy_gbytes_per_s,
        bf16_gemm_tflops,
        f32_gemm_tflops,
    })
}

/// GB/s of a device-to-device copy of [`CEILING_COPY_BYTES`], counting bytes read and
/// written. The buffers are allocated here, not pooled, so that they are freed after.
fn copy_bandwidth(device: &CudaDevice) -> Result<f64> {
    let lane = device.inner.lanes.acquire()?;
    let stream = Arc::clone(&lane.stream);
    let len = CEILING_COPY_BYTES / std::mem::size_of::<f32>();
    let source = stream
        .alloc_zeros::<f32>(len)
        .during("allocating the copy-bandwidth buffers")?;
    let mut target = stream
        .alloc_zeros::<f32>(len)
        .during("allocating the copy-bandwidth buffers")?;
    let ms = median_ms(stream.context(), &stream, WARMUP, CEILING_REPEATS, || {
        stream
            .memcpy_dtod(&source, &mut target)
            .during("copying device to device")
    });
    // Synchronise before the buffers are freed, errors included.
    let synced = lane.synchronize();
    let ms = ms?;
    synced?;
    Ok(2.0 * CEILING_COPY_BYTES as f64 / (ms / 1e3) / 1e9)
}

/// TFLOP/s of cuBLAS's `n`×`n`×`n` GEMM in `T` (f32 without TF32).
fn gemm_rate<T: GpuElement>(device: &CudaDevice, n: usize) -> Result<f64> {
    let shape = Shape::new(n, n, n);
    let mut lane = device.inner.lanes.acquire()?;
    let mut set = random_set::<T>(&lane, shape, 0)?;
    let context = Arc::clone(lane.stream.context());
    let stream = Arc::clone(&lane.stream);
    let ms = median_ms(&context, &stream, WARMUP, CEILING_REPEATS, || {
        run_variant(device, &mut lane, Variant::GemmOnly, &mut set, shape, false)
    });
    let synced = lane.synchronize();
    let ms = ms?;
    synced?;
    Ok(shape.flops() / (ms / 1e3) / 1e12)
}

/// One independent set of operands.
struct BufferSet<T> {
    a: CudaSlice<T>,
    w: CudaSlice<T>,
    bias: CudaSlice<T>,
    out: CudaSlice<T>,
}

fn bench_typed<T: GpuElement>(
    device: &CudaDevice,
    shape: Shape,
    repeats: usize,
    allow_tf32: bool,
) -> Result<Vec<Measurement>> {
    let inner = &device.inner;
    let mut lane = inner.lanes.acquire()?;
    let count = set_count(shape, T::DTYPE, inner.info.l2_cache_bytes)?;
    let mut sets = (0..count)
        .map(|seed| random_set::<T>(&lane, shape, seed as u64))
        .collect::<Result<Vec<_>>>()?;
    let context = Arc::clone(lane.stream.context());
    let stream = Arc::clone(&lane.stream);
    let shared_limit = inner.kernels.shared_limit()?;
    let mut measurements = Vec::with_capacity(VARIANTS.len() + 1);
    // The sigmoid layers measured: Auto's candidates, as (kernel, label, ms).
    let mut candidates: Vec<(LayerKernel, &str, f64)> = Vec::new();
    let time = |variant: Variant, lane: &mut Lane, sets: &mut [BufferSet<T>]| {
        let total_ms = median_ms(&context, &stream, WARMUP, repeats, || {
            sets.iter_mut()
                .try_for_each(|set| run_variant(device, lane, variant, set, shape, allow_tf32))
        });
        let synced = lane.synchronize();
        let per_layer_ms = total_ms? / count as f64;
        synced?;
        Ok::<f64, Error>(per_layer_ms)
    };
    for (label, variant) in VARIANTS {
        if let Variant::Dense(kernel, activation) = variant {
            let dims = (shape.m, shape.k, shape.n);
            if !kernel.is_candidate(inner, dims, T::DTYPE, activation, shared_limit) {
                continue; // e.g. narrow for wide layers, simt_warp for 16-bit, wgmma off Hopper
            }
        }
        let ms = time(variant, &mut lane, &mut sets)?;
        match variant {
            Variant::Dense(kernel, activation) if activation == SIGMOID => {
                candidates.push((kernel, label, ms));
            }
            _ => {}
        }
        measurements.push(Measurement::new(shape, label, T::DTYPE, ms));
    }
    if let Some(&(pick, label, _)) = candidates.iter().min_by(|a, b| a.2.total_cmp(&b.2)) {
        let ms = time(Variant::Dense(pick, SIGMOID), &mut lane, &mut sets)?;
        let auto = Measurement::new(shape, AUTO_VARIANT, T::DTYPE, ms).with_picked(label);
        measurements.push(auto);
    }
    inner.check_deferred_errors()?;
    Ok(measurements)
}

/// Enough sets to cover twice the L2 cache, within [`MAX_SETS`] and [`MAX_SET_BYTES`].
fn set_count(shape: Shape, dtype: DType, l2_bytes: usize) -> Result<usize> {
    let Shape { m, k, n } = shape;
    let bytes = shape.min_bytes(dtype) as usize;
    if m == 0 || k == 0 || n == 0 || bytes > MAX_SET_BYTES {
        return Err(Error::InvalidArgument(format!(
            "benchmark shape {shape} must be non-empty and need at most {MAX_SET_BYTES} bytes"
        )));
    }
    let wanted = (2 * l2_bytes).div_ceil(bytes).max(1);
    Ok(wanted.min(MAX_SETS).min(MAX_SET_BYTES / bytes).max(1))
}

fn random_set<T: GpuElement>(lane: &Lane, shape: Shape, seed: u64) -> Result<BufferSet<T>> {
    let upload = |rows: usize, cols: usize, salt: u64| {
        let values: Vec<T> = crate::tensor::random_batch(rows, cols, seed * 4 + salt)
            .iter()
            .map(|&x| T::from_f32(x))
            .collect();
        lane.stream
            .clone_htod(&values)
            .during("uploading benchmark operands")
    };
    Ok(BufferSet {
        a: upload(shape.m, shape.k, 0)?,
        w: upload(shape.k, shape.n, 1)?,
        bias: upload(1, shape.n, 2)?,
        out: upload(shape.m, shape.n, 3)?,
    })
}

fn run_variant<T: GpuElement>(
    device: &CudaDevice,
    lane: &mut Lane,
    variant: Variant,
    set: &mut BufferSet<T>,
    shape: Shape,
    allow_tf32: bool,
) -> Result<()> {
    let (a, w, bias) = (set.a.as_view(), set.w.as_view(), set.bias.as_view());
    let mut out = set.out.as_view_mut();
    let Shape { m, k, n } = shape;
    match variant {
        Variant::GemmOnly => {
            let ops = GemmOperands {
                a: &a,
                w: &w,
                z: &mut out,
                m,
                n,
                k,
            };
            blas::gemm(&mut lane.blas, &lane.stream, ops, allow_tf32)
        }
        Variant::Dense(kernel, activation) => {
            let ops = DenseOperands {
                a: &a,
                w: &w,
                bias: &bias,
                out: &mut out,
                m,
                n,
                k,
                activation,
            };
            run_dense(&device.inner, lane, kernel, ops, allow_tf32)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enough_sets_to_cover_the_l2_cache() {
        let small = Shape::new(64, 64, 64);
        let bytes = small.min_bytes(DType::F32) as usize;
        assert_eq!(set_count(small, DType::F32, 50 << 20).unwrap(), MAX_SETS);
        assert_eq!(set_count(small, DType::F32, bytes).unwrap(), 2);
        let huge = Shape::new(16384, 16384, 4096);
        assert_eq!(set_count(huge, DType::F16, 50 << 20).unwrap(), 1);
        let widest_default = Shape::new(65536, 4096, 4096);
        assert_eq!(set_count(widest_default, DType::F32, 50 << 20).unwrap(), 1);
    }
}
