//! CUDA Graphs: a whole forward pass captured once per batch size and replayed.
//!
//! With `PlanOptions::cuda_graphs`, the first call with a given row count runs the plain
//! pass on a lane of its own (which also creates that lane's cuBLAS/cuBLASLt handles and
//! plans, and loads every kernel module: none of that may happen under capture), then
//! captures the same pass on that lane: the upload from pinned staging, every layer, and
//! the download into pinned staging. Later calls with that row count convert the input into
//! the staging buffer, replay the graph, and convert the output back; only those two host
//! conversions stay outside the graph.
//!
//! A captured graph owns its lane, activation buffers and staging buffers for good: the
//! addresses baked into it must stay valid and unshared. One caller replays a graph at a
//! time; a concurrent caller with the same row count finds its slot busy (`try_lock`) and
//! takes the plain path instead of waiting.
//!
//! Cold starts: everything loaded or allocated on first use happens before the capture.
//! The plan's compile runs one pass (loading vecprop's kernels), the plain pass above runs
//! every cuBLAS/cuBLASLt call of this row count on the capturing lane (handles, fixed
//! workspaces, cuBLASLt's algorithm and the lazy load of its kernel), and the capture
//! itself excludes vecprop's queueing on other threads, where their first uses happen
//! ([`DeviceInner::capturing`](crate::device::cuda::DeviceInner::capturing)). If a capture still fails,
//! it has been ended (the stream is out of capture mode), its lane is destroyed, the call
//! still answers through the plain path, the reason shows in [`GraphCache::status`], and
//! the next call with that row count tries once more; after a second failure that row
//! count keeps the plain path.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::CudaGraph;
use ndarray::{ArrayView2, ArrayViewMut2};

use super::pass::Pass;
use super::GpuPlan;
use crate::device::capture::CaptureRecord;
use crate::device::cuda::error::CudaResultExt;
use crate::device::cuda::GpuElement;
use crate::device::staging::{pack_rows, unpack_rows};
use crate::error::{Error, Result};

/// The most batch sizes one plan captures; further sizes take the plain path.
const MAX_GRAPHS: usize = 32;

/// An executable graph. cudarc's `CudaGraph` is not `Send` because CUDA requires graph
/// objects to be used by one thread at a time.
struct Graph(CudaGraph);

// SAFETY: a `Graph` lives only inside a `Captured`, inside a slot's `Mutex`, so every use
// (launch, and destruction when the plan drops) is serialised by that mutex or by exclusive
// ownership, which is the external synchronisation CUDA requires of graph objects.
unsafe impl Send for Graph {}

/// A captured pass and what it was captured with.
///
/// Fields drop in declaration order: the graph before the buffers and lane it refers to.
struct Captured<T: GpuElement> {
    graph: Graph,
    pass: Pass<T>,
}

/// One capture attempt: the captured pass, or why capturing failed.
type Attempt<T> = std::result::Result<Box<Captured<T>>, String>;

/// What one batch size has: the record of its captures (the retry policy lives there,
/// testable without a GPU) and, once captured, the graph.
#[derive(Default)]
struct Slot<T: GpuElement> {
    record: CaptureRecord,
    captured: Option<Box<Captured<T>>>,
}

/// A plan's graphs, by row count.
pub(super) struct GraphCache<T: GpuElement> {
    slots: Mutex<BTreeMap<usize, Arc<Mutex<Slot<T>>>>>,
}

impl<T: GpuElement> GraphCache<T> {
    pub(super) fn new() -> Self {
        GraphCache {
            slots: Mutex::new(BTreeMap::new()),
        }
    }

    /// The slot for `rows`, created empty on first use; `None` once the cache is full.
    fn slot(&self, rows: usize) -> Option<Arc<Mutex<Slot<T>>>> {
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.get(&rows) {
            return Some(Arc::clone(slot));
        }
        if slots.len() >= MAX_GRAPHS {
            return None;
        }
        let slot = Arc::new(Mutex::new(Slot::default()));
        slots.insert(rows, Arc::clone(&slot));
        Some(slot)
    }

    /// One line for the setting, then one per batch size seen.
    pub(super) fn status(&self, enabled: bool) -> Vec<String> {
        if !enabled {
            return vec!["cuda graphs: off".to_string()];
        }
        let slots = lock(&self.slots);
        let mut lines = vec![format!(
            "cuda graphs: on, {} batch size(s) seen (at most {MAX_GRAPHS} captured)",
            slots.len()
        )];
        for (rows, slot) in slots.iter() {
            let line = match slot.try_lock() {
                Ok(slot) => slot.record.describe(*rows),
                Err(TryLockError::Poisoned(poisoned)) => {
                    poisoned.into_inner().record.describe(*rows)
                }
                Err(TryLockError::WouldBlock) => format!("rows {rows}: in use"),
            };
            lines.push(line);
        }
        lines
    }
}

fn lock<V>(mutex: &Mutex<V>) -> MutexGuard<'_, V> {
    // The map stays valid whatever panicked while it was held.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl<T: GpuElement> GpuPlan<T> {
    /// A forward pass through this row count's graph: captured on first use, replayed
    /// afterwards, or the plain path when the graph is busy, failed, or over the limit.
    pub(super) fn run_with_graph(
        &self,
        input: ArrayView2<'_, f32>,
        output: ArrayViewMut2<'_, f32>,
    ) -> Result<()> {
        let Some(slot) = self.graphs.slot(input.nrows()) else {
            return self.run_plain(input, output);
        };
        let mut slot = match slot.try_lock() {
            Ok(slot) => slot,
            // A panic mid-replay leaves nothing half-done that the next replay depends on:
            // each replay rewrites the staging input and reads the output after a sync.
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return self.run_plain(input, output),
        };
        let slot = &mut *slot;
        if let Some(captured) = &mut slot.captured {
            self.replay(captured, input, output)?;
            slot.record.replayed();
            return Ok(());
        }
        if !slot.record.should_try() {
            return self.run_plain(input, output);
        }
        let (result, attempt) = self.first_run(input, output);
        match attempt {
            Some(Ok(captured)) => {
                slot.record = slot.record.captured();
                slot.captured = Some(captured);
            }
            Some(Err(reason)) => slot.record = slot.record.failed(reason),
            None => {}
        }
        result
    }

    /// Runs the pass plainly on a lane of its own, then tries to capture it there.
    /// Returns the call's result and the capture attempt: the captured pass, or why it
    /// failed (`None`: not attempted, after a plain error).
    fn first_run(
        &self,
        input: ArrayView2<'_, f32>,
        output: ArrayViewMut2<'_, f32>,
    ) -> (Result<()>, Option<Attempt<T>>) {
        let rows = input.nrows();
        let queueing = self.device.inner.queueing();
        let mut pass = match self.take_pass(rows) {
            Ok(pass) => pass,
            Err(err) => return (Err(err), None),
        };
        let queued = self.queue_pass(&mut pass, input);
        drop(queueing);
        let synced = pass.synchronize();
        let ran = queued
            .and(synced)
            .and_then(|()| self.device.inner.check_deferred_errors())
            .and_then(|()| self.read_output(&mut pass, output));
        if let Err(err) = ran {
            return (Err(err), None);
        }
        match self.capture(&mut pass, rows) {
            Ok(graph) => (
                Ok(()),
                Some(Ok(Box::new(Captured {
                    graph: Graph(graph),
                    pass,
                }))),
            ),
            Err(err) => {
                // Whatever the failed capture left on the context is part of its reason,
                // not an error of this (successful) call.
                let leftover = self.device.inner.check_deferred_errors().err();
                let reason = match leftover {
                    Some(more) => format!("{err}; then {more}"),
                    None => err.to_string(),
                };
                // The capture was ended on every path, so the stream left capture mode;
                // still, a lane whose capture failed is not reused.
                pass.discard_lane = true;
                (Ok(()), Some(Err(reason)))
            }
        }
    }

    /// Captures the pass over `rows` rows on `pass`'s lane and instantiates it.
    fn capture(&self, pass: &mut Pass<T>, rows: usize) -> Result<CudaGraph> {
        let (in_len, out_len) = (rows * self.input_width, rows * self.output_width);
        let stream = Arc::clone(&pass.lane.stream);
        // Reach the host memory before capturing: reaching it waits on the buffers' events.
        let host_in: &[T] = pass.staging_in.host_mut(in_len)?;
        let host_out: &mut [T] = pass.staging_out.host_mut(out_len)?;
        // Thread-local: only this thread's capture-unsafe calls are refused; other threads'
        // CUDA calls (other plans, other lanes) do not join this capture. Their first uses
        // (lazy module loading) could still invalidate it, so vecprop's other queueing on
        // this device waits until the capture has ended (`capturing`).
        let gate = self.device.inner.capturing();
        stream
            .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .during("beginning a CUDA graph capture")?;
        let queued = (|| {
            stream
                .memcpy_htod(host_in, &mut pass.scratch.ping.view_mut(in_len)?)
                .during("capturing the input copy")?;
            let output = self.queue_layers(&mut pass.lane, &mut pass.scratch, rows)?;
            stream
                .memcpy_dtoh(&output.view(out_len)?, host_out)
                .during("capturing the output copy")
        })();
        // End the capture on every path, so the stream leaves capture mode.
        let ended = stream.end_capture(CUgraphInstantiate_flags(0));
        drop(gate);
        queued?;
        let graph = ended
            .during("ending the CUDA graph capture")?
            .ok_or_else(|| Error::Cuda {
                context: "ending the CUDA graph capture".into(),
                message: "the capture recorded nothing".into(),
            })?;
        graph.upload().during("uploading the CUDA graph")?;
        pass.lane.synchronize()?;
        Ok(graph)
    }

    /// Replays a captured pass: input into its staging, launch, wait, output back.
    fn replay(
        &self,
        captured: &mut Captured<T>,
        input: ArrayView2<'_, f32>,
        output: ArrayViewMut2<'_, f32>,
    ) -> Result<()> {
        let pass = &mut captured.pass;
        let rows = input.nrows();
        if self
            .device
            .inner
            .poison
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            self.poison(pass)?;
        }
        pack_rows(input, pass.staging_in.host_mut(rows * self.input_width)?)?;
        pass.in_flight = true;
        let launched = captured.graph.0.launch().during("replaying a CUDA graph");
        let synced = pass.synchronize();
        launched?;
        synced?;
        self.device.inner.check_deferred_errors()?;
        unpack_rows(pass.staging_out.host_mut(rows * self.output_width)?, output)?;
        Ok(())
    }
}
