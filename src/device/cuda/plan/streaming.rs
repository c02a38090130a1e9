//! The GPU's stream pipeline: several passes in flight on separate lanes.
//!
//! Each pass has its own lane (stream) and pinned staging both ways, so while the host
//! converts chunk i+1 into its staging and queues its upload, the GPU can be computing
//! chunk i on another stream and downloading chunk i-1 on a third: copies in, kernels and
//! copies out overlap on the copy engines and the SMs. Passes are reused round-robin, so a
//! warm stream allocates nothing. The ordering (and the bound on what is in flight) is the
//! shared logic in [`crate::execution::pipeline`]; [`GpuPlan::run_streamed`] drives the same
//! pipeline over one large batch, so whole batches overlap their copies and compute too.

use std::collections::VecDeque;

use ndarray::{ArrayView2, ArrayViewMut2};

use super::pass::Pass;
use super::GpuPlan;
use crate::device::cuda::GpuElement;
use crate::device::staging::stream_whole;
use crate::error::{Error, Result};
use crate::execution::pipeline::Pipeline;

/// Passes in flight at once: upload, compute and download of three chunks can overlap.
const DEPTH: usize = crate::device::memory::PIPELINE_DEPTH;

/// A plan's pipeline for one `forward_stream` call.
pub(super) struct GpuPipeline<'p, T: GpuElement> {
    plan: &'p GpuPlan<T>,
    /// Oldest first. Dropping one with work queued waits for it (`Pass`'s `Drop`).
    in_flight: VecDeque<Pass<T>>,
    idle: Vec<Pass<T>>,
    /// Rows each pass's buffers hold: the most one chunk may have.
    pass_rows: usize,
}

impl<'p, T: GpuElement> GpuPipeline<'p, T> {
    /// A pipeline for chunks of at most `pass_rows` rows (at most the plan's max_batch).
    pub(super) fn new(plan: &'p GpuPlan<T>, pass_rows: usize) -> Self {
        GpuPipeline {
            plan,
            in_flight: VecDeque::with_capacity(DEPTH),
            idle: Vec::with_capacity(DEPTH),
            pass_rows: pass_rows.clamp(1, plan.max_batch.max(1)),
        }
    }
}

impl<T: GpuElement> GpuPlan<T> {
    /// Runs one batch through the pipeline in chunks of `chunk_rows` rows, writing each
    /// chunk's output into its rows of `output`: while the host packs chunk i+1, the GPU
    /// computes chunk i and downloads chunk i−1.
    /// `progress(rows_done)` is called after each chunk's output has landed.
    pub(super) fn run_streamed(
        &self,
        input: ArrayView2<'_, f32>,
        output: ArrayViewMut2<'_, f32>,
        chunk_rows: usize,
        progress: &mut dyn FnMut(usize),
    ) -> Result<()> {
        let chunk_rows = chunk_rows.clamp(1, self.max_batch.max(1));
        let mut pipeline = GpuPipeline::new(self, chunk_rows);
        stream_whole(&mut pipeline, input, output, chunk_rows, progress)
    }
}

impl<T: GpuElement> Pipeline for GpuPipeline<'_, T> {
    fn depth(&self) -> usize {
        DEPTH
    }

    fn submit(&mut self, input: ArrayView2<'_, f32>) -> Result<()> {
        let plan = self.plan;
        if input.nrows() == 0 || input.nrows() > self.pass_rows {
            return Err(Error::InvalidArgument(format!(
                "a streamed chunk must have 1 to {} rows, not {}",
                self.pass_rows,
                input.nrows()
            )));
        }
        let queueing = plan.device.inner.queueing();
        let mut pass = match self.idle.pop() {
            Some(pass) => pass,
            None => plan.take_pass(self.pass_rows)?,
        };
        // On error the pass drops here, after waiting for whatever it queued.
        plan.queue_pass(&mut pass, input)?;
        drop(queueing);
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
