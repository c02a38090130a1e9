//! The GPU's stream pipeline: several passes in flight on separate lanes.
//!
//! Each pass has its own lane (stream) and pinned staging both ways, so while the host
//! converts chunk i+1 into its staging and queues its upload, the GPU can be computing
//! chunk i on another stream and downloading chunk i-1 on a third: copies in, kernels and
//! copies out overlap on the copy engines and the SMs. Passes are reused round-robin, so a
//! warm stream allocates nothing. The ordering (and the bound on what is in flight) is the
//! shared logic in [`crate::execution::pipeline`].

use std::collections::VecDeque;

use ndarray::{ArrayView2, ArrayViewMut2};

use super::pass::Pass;
use super::plan::GpuPlan;
use super::GpuElement;
use crate::error::{Error, Result};
use crate::execution::pipeline::Pipeline;

/// Passes in flight at once: upload, compute and download of three chunks can overlap.
const DEPTH: usize = 3;

/// A plan's pipeline for one `forward_stream` call.
pub(super) struct GpuPipeline<'p, T: GpuElement> {
    plan: &'p GpuPlan<T>,
    /// Oldest first. Dropping one with work queued waits for it (`Pass`'s `Drop`).
    in_flight: VecDeque<Pass<T>>,
    idle: Vec<Pass<T>>,
}

impl<'p, T: GpuElement> GpuPipeline<'p, T> {
    pub(super) fn new(plan: &'p GpuPlan<T>) -> Self {
        GpuPipeline {
            plan,
            in_flight: VecDeque::with_capacity(DEPTH),
            idle: Vec::with_capacity(DEPTH),
        }
    }
}

impl<T: GpuElement> Pipeline for GpuPipeline<'_, T> {
    fn depth(&self) -> usize {
        DEPTH
    }

    fn submit(&mut self, input: ArrayView2<'_, f32>) -> Result<()> {
        let plan = self.plan;
        if input.nrows() == 0 || input.nrows() > plan.max_batch {
            return Err(Error::InvalidArgument(format!(
                "a streamed chunk must have 1 to {} rows, not {}",
                plan.max_batch,
                input.nrows()
            )));
        }
        let mut pass = match self.idle.pop() {
            Some(pass) => pass,
            None => plan.take_pass(plan.max_batch)?,
        };
        // On error the pass drops here, after waiting for whatever it queued.
        plan.queue_pass(&mut pass, input)?;
        self.in_flight.push_back(pass);
        Ok(())
    }

    fn finish_oldest(&mut self, output: ArrayViewMut2<'_, f32>) -> Result<()> {
        let mut pass = self.in_flight.pop_front().ok_or_else(|| {
            Error::InvalidArgument("internal: no streamed chunk is in flight".into())
        })?;
        pass.synchronize()?;
        self.plan.device.inner.check_deferred_errors()?;
        self.plan.read_output(&mut pass, output)?;
        self.idle.push(pass);
        Ok(())
    }
}
