//! Streams: one per concurrent caller, each with its own cuBLAS handles, plus event timing.
//!
//! A [`Lane`] is a stream and the library handles bound to it. Callers take a lane from the
//! [`LanePool`] for the length of one forward pass and give it back when done; a caller that
//! finds none idle creates one, so the pool grows to the peak number of concurrent callers
//! and no lock is held while the GPU works.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaContext, CudaEvent, CudaStream};

use super::blas::LaneBlas;
use super::error::{CudaResultExt, DropErrors};
use super::workspace::SplitkWorkspace;
use crate::error::Result;

/// A stream and the cuBLAS/cuBLASLt handles that launch on it.
///
/// Fields drop in declaration order: the handles go before the stream they are bound to.
pub(crate) struct Lane {
    /// Handles bound to `stream`, created on first use.
    pub(crate) blas: LaneBlas,
    /// Partial sums of the split-K kernel, allocated on first use.
    pub(crate) splitk: SplitkWorkspace,
    /// Work queued by one caller, in order.
    pub(crate) stream: Arc<CudaStream>,
}

impl Lane {
    /// Waits for everything queued on this lane; asynchronous kernel errors surface here.
    pub(crate) fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .during("waiting for the GPU (an earlier kernel or copy may have failed)")
    }
}

/// Idle lanes of one GPU.
pub(crate) struct LanePool {
    context: Arc<CudaContext>,
    idle: Mutex<Vec<Lane>>,
    drop_errors: Arc<DropErrors>,
}

impl LanePool {
    pub(crate) fn new(context: Arc<CudaContext>, drop_errors: Arc<DropErrors>) -> Self {
        LanePool {
            context,
            idle: Mutex::new(Vec::new()),
            drop_errors,
        }
    }

    /// An idle lane, or a new one when every lane is busy.
    pub(crate) fn acquire(self: &Arc<Self>) -> Result<LaneGuard> {
        let idle = self.lock().pop();
        let lane = match idle {
            Some(lane) => lane,
            None => Lane {
                blas: LaneBlas::new(Arc::clone(&self.drop_errors)),
                splitk: SplitkWorkspace::default(),
                stream: self.context.new_stream().during("creating a CUDA stream")?,
            },
        };
        Ok(LaneGuard {
            lane: Some(lane),
            pool: Arc::clone(self),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Lane>> {
        // The Vec stays valid whatever panicked while it was held.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A lane borrowed from a [`LanePool`]; dropping it returns it.
pub(crate) struct LaneGuard {
    /// `Some` from construction until `drop`.
    lane: Option<Lane>,
    pool: Arc<LanePool>,
}

impl Deref for LaneGuard {
    type Target = Lane;
    fn deref(&self) -> &Lane {
        match &self.lane {
            Some(lane) => lane,
            None => unreachable!("a lane guard holds its lane until it is dropped"),
        }
    }
}

impl DerefMut for LaneGuard {
    fn deref_mut(&mut self) -> &mut Lane {
        match &mut self.lane {
            Some(lane) => lane,
            None => unreachable!("a lane guard holds its lane until it is dropped"),
        }
    }
}

impl LaneGuard {
    /// Destroys the lane instead of returning it to the pool, for a lane whose stream may
    /// be in an unknown state (after a failed graph capture). The guard must not be used
    /// afterwards; it is meant to be called from its owner's `Drop`.
    pub(crate) fn discard(&mut self) {
        drop(self.lane.take());
    }
}

impl Drop for LaneGuard {
    fn drop(&mut self) {
        if let Some(lane) = self.lane.take() {
            self.pool.lock().push(lane);
        }
    }
}

/// A pair of timing events around work queued on one stream.
pub(crate) struct EventTimer {
    start: CudaEvent,
    end: CudaEvent,
}

impl EventTimer {
    pub(crate) fn new(context: &Arc<CudaContext>) -> Result<Self> {
        let timing = Some(CUevent_flags::CU_EVENT_DEFAULT);
        Ok(EventTimer {
            start: context
                .new_event(timing)
                .during("creating a timing event")?,
            end: context
                .new_event(timing)
                .during("creating a timing event")?,
        })
    }

    /// Milliseconds the GPU spent on what `work` queues on `stream`. Waits for it to finish.
    pub(crate) fn time(
        &self,
        stream: &CudaStream,
        work: impl FnOnce() -> Result<()>,
    ) -> Result<f64> {
        self.start
            .record(stream)
            .during("recording a timing event")?;
        work()?;
        self.end.record(stream).during("recording a timing event")?;
        // `elapsed_ms` synchronises on both events first, so the clock stops after the work.
        let ms = self
            .start
            .elapsed_ms(&self.end)
            .during("reading a timing event")?;
        Ok(f64::from(ms))
    }
}

/// Runs `work` `warmup` times untimed, then `repeats` times timed; the median in ms.
pub(crate) fn median_ms(
    context: &Arc<CudaContext>,
    stream: &CudaStream,
    warmup: usize,
    repeats: usize,
    mut work: impl FnMut() -> Result<()>,
) -> Result<f64> {
    for _ in 0..warmup {
        work()?;
    }
    let timer = EventTimer::new(context)?;
    let mut times = (0..repeats.max(1))
        .map(|_| timer.time(stream, &mut work))
        .collect::<Result<Vec<f64>>>()?;
    Ok(crate::stats::median(&mut times))
}
