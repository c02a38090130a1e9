//! The CUDA timings when vecprop is built without the `cuda` feature: no [`CudaDevice`] can
//! exist, so none of these can be called.

use super::{Ceilings, Measurement, Shape};
use crate::device::cuda::CudaDevice;
use crate::dtype::DType;
use crate::error::Result;

/// Unreachable: no [`CudaDevice`] exists in this build.
pub fn bench_dense(
    device: &CudaDevice,
    _shape: Shape,
    _dtype: DType,
    _repeats: usize,
) -> Result<Vec<Measurement>> {
    match *device {}
}

/// Unreachable: no [`CudaDevice`] exists in this build.
pub fn bench_dense_with(
    device: &CudaDevice,
    _shape: Shape,
    _dtype: DType,
    _repeats: usize,
    _allow_tf32: bool,
) -> Result<Vec<Measurement>> {
    match *device {}
}

/// The variant of `vecprop bench`'s `auto` rows (as in the CUDA build).
pub const AUTO_VARIANT: &str = "auto";

/// Unreachable: no [`CudaDevice`] exists in this build.
pub fn bench_copies(
    device: &CudaDevice,
    _h2d_bytes: usize,
    _d2h_bytes: usize,
    _repeats: usize,
) -> Result<(f64, f64)> {
    match *device {}
}

/// Unreachable: no [`CudaDevice`] exists in this build.
pub fn bench_ceilings(device: &CudaDevice) -> Result<Ceilings> {
    match *device {}
}
