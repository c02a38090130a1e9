//! One CUDA context per GPU, and what the driver says about the GPU.
//!
//! cudarc loads `libcuda` on first use and panics when it is missing, so every entry point
//! here first checks, once per process, that the library can be loaded.

use std::sync::{Arc, OnceLock};

use cudarc::driver::result as driver;
use cudarc::driver::sys::{self, CUdevice_attribute};
use cudarc::driver::CudaContext;

use super::error::CudaResultExt;
use crate::error::{Error, Result};

/// The oldest compute capability the embedded `compute_80` PTX can run on.
pub const MIN_COMPUTE_CAPABILITY: (i32, i32) = (8, 0);

/// What vecprop needs to know about one GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    /// The driver's device number.
    pub ordinal: usize,
    /// The model, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// (major, minor), e.g. (9, 0) for Hopper.
    pub compute_capability: (i32, i32),
    /// Streaming multiprocessors.
    pub multiprocessors: usize,
    /// Device memory in bytes.
    pub total_memory: usize,
    /// L2 cache size in bytes.
    pub l2_cache_bytes: usize,
}

impl DeviceInfo {
    /// `cuda:0 (NVIDIA H100 80GB HBM3, sm_90, 132 SMs, 79.2 GiB)`.
    pub fn describe(&self) -> String {
        let (major, minor) = self.compute_capability;
        format!(
            "cuda:{} ({}, sm_{major}{minor}, {} SMs, {:.1} GiB)",
            self.ordinal,
            self.name,
            self.multiprocessors,
            self.total_memory as f64 / (1u64 << 30) as f64
        )
    }
}

impl DeviceInfo {
    /// Whether the embedded kernels run on it (compute capability 8.0 or newer).
    pub fn usable(&self) -> bool {
        self.compute_capability >= MIN_COMPUTE_CAPABILITY
    }

    /// The model and compute capability, e.g. `NVIDIA H100 80GB HBM3 (sm_90)`: what tuning
    /// results are keyed by, since they hold for every GPU of that model.
    pub fn tuning_name(&self) -> String {
        let (major, minor) = self.compute_capability;
        format!("{} (sm_{major}{minor})", self.name)
    }
}

/// Errors unless the CUDA driver library can be loaded.
pub(crate) fn require_driver() -> Result<()> {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: `is_culib_present` only tries to `dlopen` the driver library under its usual
    // names and closes it again; the NVIDIA driver library's initialisers are sound to run.
    let present = *PRESENT.get_or_init(|| unsafe { sys::is_culib_present() });
    if present {
        Ok(())
    } else {
        Err(Error::CudaUnavailable(
            "the CUDA driver library (libcuda.so.1) was not found; install the NVIDIA driver \
             or put the folder holding libcuda.so.1 on LD_LIBRARY_PATH"
                .to_string(),
        ))
    }
}

/// The driver's CUDA version, e.g. (13, 0).
pub(crate) fn driver_version() -> Result<(i32, i32)> {
    require_driver()?;
    let mut version = 0;
    // SAFETY: `cuDriverGetVersion` writes one `int` through the pointer, which points at
    // a live local `i32`.
    unsafe { sys::cuDriverGetVersion(&mut version) }
        .result()
        .during("querying the driver version")?;
    Ok((version / 1000, (version % 1000) / 10))
}

/// Retains GPU `ordinal`'s primary context and reads its properties.
pub(crate) fn open(ordinal: usize) -> Result<(Arc<CudaContext>, DeviceInfo)> {
    require_driver()?;
    let count = device_count()?;
    if ordinal >= count {
        return Err(Error::CudaUnavailable(format!(
            "there is no GPU cuda:{ordinal}; the driver reports {count} GPU(s)"
        )));
    }
    let info = query(ordinal)?;
    if info.compute_capability < MIN_COMPUTE_CAPABILITY {
        let (major, minor) = info.compute_capability;
        return Err(Error::CudaUnavailable(format!(
            "{} has compute capability {major}.{minor}; vecprop's kernels need 8.0 or newer",
            info.describe()
        )));
    }
    let context = CudaContext::new(ordinal).during("creating the CUDA context")?;
    Ok((context, info))
}

fn device_count() -> Result<usize> {
    driver::init().during("initialising the CUDA driver")?;
    let count = driver::device::get_count().during("counting GPUs")?;
    Ok(usize::try_from(count).unwrap_or(0))
}

/// Reads a GPU's properties without creating a context.
fn query(ordinal: usize) -> Result<DeviceInfo> {
    let index = i32::try_from(ordinal)
        .map_err(|_| Error::InvalidArgument(format!("GPU number {ordinal} is too large")))?;
    let device = driver::device::get(index).during("opening the GPU")?;
    // SAFETY: `device` is a handle the driver just returned for an existing GPU, and each
    // attribute is a valid `CUdevice_attribute`; the call only writes an `int`.
    let attribute = |attribute: CUdevice_attribute| unsafe {
        driver::device::get_attribute(device, attribute).during("reading a GPU attribute")
    };
    let major = attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
    let minor = attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
    let multiprocessors = attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
    let l2_cache = attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)?;
    // SAFETY: as above; `cuDeviceTotalMem` writes one `size_t`.
    let total_memory =
        unsafe { driver::device::total_mem(device) }.during("reading the GPU's memory size")?;
    Ok(DeviceInfo {
        ordinal,
        name: driver::device::get_name(device).during("reading the GPU's name")?,
        compute_capability: (major, minor),
        multiprocessors: usize::try_from(multiprocessors).unwrap_or(1).max(1),
        total_memory,
        l2_cache_bytes: usize::try_from(l2_cache).unwrap_or(0),
    })
}

/// One line for the driver and one per GPU, for `vecprop devices`.
pub fn describe_devices() -> Result<Vec<String>> {
    let (major, minor) = driver_version()?;
    let gpus = gpus()?;
    let mut lines = vec![format!(
        "cuda driver: supports CUDA {major}.{minor}, {} GPU(s)",
        gpus.len()
    )];
    for info in gpus {
        let usable = if info.usable() {
            ""
        } else {
            " [unsupported: needs compute capability 8.0+]"
        };
        lines.push(format!("{}{usable}", info.describe()));
    }
    Ok(lines)
}

/// Every GPU the driver reports, with its properties, asked once: no context is created and
/// nothing is allocated. Errors when the driver cannot be loaded or initialised.
pub fn gpus() -> Result<Vec<DeviceInfo>> {
    require_driver()?;
    (0..device_count()?).map(query).collect()
}
