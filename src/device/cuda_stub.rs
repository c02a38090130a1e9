//! The CUDA types of a build without the `cuda` feature.
//!
//! They keep the names and signatures of the real backend so that the rest of the crate
//! compiles unchanged, but none can be constructed: each is an empty enum, and every entry
//! point returns [`Error::CudaNotBuilt`].

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::execution::pipeline::Pipeline;
use crate::execution::PlanOptions;
use crate::graph::network::Network;

/// A GPU. Uninhabited in this build.
#[derive(Clone, Debug)]
pub enum CudaDevice {}

impl CudaDevice {
    /// Always [`Error::CudaNotBuilt`].
    pub fn new(_ordinal: usize) -> Result<Self> {
        Err(Error::CudaNotBuilt)
    }

    /// Unreachable: no value of this type exists.
    pub fn name(&self) -> String {
        match *self {}
    }

    /// Unreachable: no value of this type exists.
    pub fn synchronize(&self) -> Result<()> {
        match *self {}
    }

    /// Unreachable: no value of this type exists.
    pub fn pool_stats(&self) -> PoolStats {
        match *self {}
    }

    /// Unreachable: no value of this type exists.
    pub fn tuning_runs(&self) -> u64 {
        match *self {}
    }

    /// Unreachable: no value of this type exists.
    pub fn memory_info(&self) -> Result<(usize, usize)> {
        match *self {}
    }

    /// Unreachable: no value of this type exists.
    pub fn lane_workspace_bytes(&self) -> u64 {
        match *self {}
    }

    /// Unreachable: no value of this type exists.
    pub fn release_cached_memory(&self) {
        match *self {}
    }

    /// Unreachable: no value of this type exists.
    #[doc(hidden)]
    pub fn poison_outputs(&self, _on: bool) {
        match *self {}
    }

    /// Unreachable: no value of this type exists.
    #[doc(hidden)]
    pub fn force_fused_tile(&self, _tile: Option<usize>) {
        match *self {}
    }

    /// Unreachable: no value of this type exists.
    #[doc(hidden)]
    pub fn force_fused_kernel(&self, _name: Option<&str>, _dtype: DType) -> Result<()> {
        match *self {}
    }
}

/// Counters of a device's buffer pools (device buffers and pinned host staging buffers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Buffers obtained from the driver so far.
    pub allocations: u64,
    /// Requests served from the cache instead.
    pub reuses: u64,
    /// Bytes obtained from the driver so far.
    pub bytes_allocated: u64,
}

/// A plan on a GPU. Uninhabited in this build.
pub enum CudaPlan {}

impl CudaPlan {
    pub(crate) fn new(
        device: &CudaDevice,
        _network: &Network,
        _options: &PlanOptions,
        _dtype: DType,
    ) -> Result<Self> {
        match *device {}
    }

    pub(crate) fn run(
        &self,
        _input: ArrayView2<'_, f32>,
        _output: ArrayViewMut2<'_, f32>,
    ) -> Result<()> {
        match *self {}
    }

    pub(crate) fn run_whole(
        &self,
        _input: ArrayView2<'_, f32>,
        _output: ArrayViewMut2<'_, f32>,
        _progress: &mut dyn FnMut(usize),
    ) -> Result<bool> {
        match *self {}
    }

    pub(crate) fn kernel_choices(&self) -> Vec<String> {
        match *self {}
    }

    pub(crate) fn graph_status(&self) -> Vec<String> {
        match *self {}
    }

    pub(crate) fn pipeline(&self) -> Result<Box<dyn Pipeline + '_>> {
        match *self {}
    }

    pub(crate) fn time_resident_pass(&self, _rows: usize, _repeats: usize) -> Result<f64> {
        match *self {}
    }

    pub(crate) fn memory(&self) -> crate::device::memory::PlanMemory {
        match *self {}
    }
}

/// Always [`Error::CudaNotBuilt`].
pub fn describe_devices() -> Result<Vec<String>> {
    Err(Error::CudaNotBuilt)
}
