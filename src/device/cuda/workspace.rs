//! A lane's scratch on the device for split-K's partial sums: owned by the lane (`stream`),
//! used by the split-K launcher (`splitk`).

use cudarc::driver::{CudaSlice, CudaStream};

use super::error::CudaResultExt;
use crate::error::Result;

/// A lane's f32 scratch for partial sums, grown on demand and kept.
#[derive(Default)]
pub(crate) struct SplitkWorkspace {
    buffer: Option<CudaSlice<f32>>,
}

impl SplitkWorkspace {
    /// At least `len` floats, allocated on `stream` when the current buffer is smaller.
    pub(super) fn at_least(
        &mut self,
        stream: &std::sync::Arc<CudaStream>,
        len: usize,
    ) -> Result<&mut CudaSlice<f32>> {
        if self.buffer.as_ref().is_none_or(|b| b.len() < len) {
            self.buffer = None; // free the old one first
            let fresh = stream
                .alloc_zeros::<f32>(len)
                .during("allocating the split-K workspace")?;
            self.buffer = Some(fresh);
        }
        match &mut self.buffer {
            Some(buffer) => Ok(buffer),
            None => unreachable!("allocated above"),
        }
    }
}
