//! Where a plan runs: the CPU, or an NVIDIA GPU through CUDA.
//!
//! [`Device`] is an enum dispatched with a static `match`. Without the `cuda` feature the CUDA
//! types still exist (see `cuda_stub.rs`), but cannot be constructed: asking for a GPU
//! returns [`crate::Error::CudaNotBuilt`].

// Used by the CUDA backend; built (and tested) without it too.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) mod capture;
pub mod cpu;
pub mod memory;
pub mod staging;

#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(not(feature = "cuda"))]
#[path = "cuda_stub.rs"]
pub mod cuda;

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use cpu::CpuDevice;
use cuda::CudaDevice;

/// A device that plans compile for.
///
/// ```
/// use vecprop::Device;
/// let cpu: Device = "cpu".parse().unwrap();
/// assert!(!cpu.is_cuda());
/// assert!("tpu".parse::<Device>().is_err());
/// ```
#[derive(Clone, Debug)]
pub enum Device {
    /// The host's cores, through ndarray and a multi-threaded GEMM.
    Cpu(CpuDevice),
    /// One NVIDIA GPU.
    Cuda(CudaDevice),
}

impl Device {
    /// The CPU, using every core rayon sees.
    pub fn cpu() -> Self {
        Device::Cpu(CpuDevice::new())
    }

    /// GPU number `ordinal`. Errors when this build has no CUDA, no driver is installed, or
    /// there is no such GPU.
    pub fn cuda(ordinal: usize) -> Result<Self> {
        Ok(Device::Cuda(CudaDevice::new(ordinal)?))
    }

    /// Whether this is a GPU.
    pub fn is_cuda(&self) -> bool {
        matches!(self, Device::Cuda(_))
    }

    /// A one-line description: kind, ordinal and model.
    pub fn name(&self) -> String {
        match self {
            Device::Cpu(cpu) => cpu.name(),
            Device::Cuda(cuda) => cuda.name(),
        }
    }

    /// Waits until all work queued on the device is done, surfacing any asynchronous error.
    pub fn synchronize(&self) -> Result<()> {
        match self {
            Device::Cpu(_) => Ok(()),
            Device::Cuda(cuda) => cuda.synchronize(),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Device {
    type Err = Error;

    /// `cpu`, `cuda` (GPU 0) or `cuda:N`.
    fn from_str(spec: &str) -> Result<Self> {
        let spec = spec.trim().to_ascii_lowercase();
        match spec.as_str() {
            "cpu" => Ok(Device::cpu()),
            "cuda" | "gpu" => Device::cuda(0),
            _ => match spec.strip_prefix("cuda:") {
                Some(n) => {
                    let ordinal = n.parse().map_err(|_| {
                        Error::InvalidArgument(format!("bad GPU number in device `{spec}`"))
                    })?;
                    Device::cuda(ordinal)
                }
                None => Err(Error::InvalidArgument(format!(
                    "unknown device `{spec}` (expected cpu, cuda or cuda:N)"
                ))),
            },
        }
    }
}

/// Describes every device this build can use, one line each, for `vecprop devices`.
pub fn describe_all() -> Vec<String> {
    let mut lines = vec![format!("cpu: {}", Device::cpu().name())];
    match cuda::describe_devices() {
        Ok(gpus) if gpus.is_empty() => lines.push("cuda: the driver reports no GPU".into()),
        Ok(gpus) => lines.extend(gpus),
        Err(err) => lines.push(format!("cuda: unavailable: {err}")),
    }
    lines
}
