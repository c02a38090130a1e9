//! One helper thread that takes a job within about a microsecond of being handed it.
//!
//! Why by hand: a small batch is 10 to 400 µs of work per call, in two to four pieces that
//! must run one after another (one per layer). Rayon, called from a thread outside its pool,
//! queues each piece and blocks the caller on a condition variable, and its idle workers go
//! to sleep within microseconds: measured on 2 cores, one 1 × 784 × 512 layer took 25.7 µs
//! split over rayon's two threads against 14.4 µs on one (BENCHMARKS.md). This worker
//! instead spins on an atomic counter for [`SPIN`] after each job, so a caller that posts
//! jobs back to back never waits for a wake-up, and parks after that, so an idle plan costs
//! no CPU. A job the worker has not picked up by the time the caller needs its result (the
//! worker is waking, or descheduled by a busy machine) is taken back and run by the caller,
//! so a call is never slower than one core by more than the hand-off. The job is a plain `Copy` value and the work a `'static` closure over shared
//! state, so no borrow crosses threads and nothing here is `unsafe`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long the worker spins for the next job before it parks.
const SPIN: Duration = Duration::from_micros(500);

struct Slot<J> {
    job: Mutex<Option<J>>,
    /// Jobs posted so far.
    posted: AtomicU64,
    /// Jobs finished so far (a job that panicked counts, and sets `failed`).
    finished: AtomicU64,
    failed: AtomicBool,
    stop: AtomicBool,
}

/// A helper thread running `work(job)` for each posted job, one at a time.
pub(super) struct SpinWorker<J> {
    slot: Arc<Slot<J>>,
    thread: Option<JoinHandle<()>>,
}

/// The worker's job panicked (a bug); the caller's result is not to be trusted.
#[derive(Debug)]
pub(super) struct WorkerFailed;

impl<J: Send + 'static> SpinWorker<J> {
    /// Starts the thread. Errors only if the OS refuses a new thread.
    pub(super) fn spawn(name: &str, work: impl Fn(J) + Send + 'static) -> std::io::Result<Self> {
        let slot = Arc::new(Slot {
            job: Mutex::new(None),
            posted: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let worker_slot = Arc::clone(&slot);
        let thread = thread::Builder::new()
            .name(name.to_string())
            .spawn(move || serve(&worker_slot, work))?;
        Ok(SpinWorker {
            slot,
            thread: Some(thread),
        })
    }

    /// Hands `job` to the worker. At most one job is outstanding: call
    /// [`Self::take_back_or_wait`] before the next.
    pub(super) fn post(&self, job: J) {
        *self.slot.job.lock().unwrap_or_else(|p| p.into_inner()) = Some(job);
        self.slot.posted.fetch_add(1, Ordering::Release);
        if let Some(thread) = &self.thread {
            // A cheap atomic swap while the worker spins; a futex wake once it has parked.
            thread.thread().unpark();
        }
    }

    /// Takes the posted job back if the worker has not started it (it is parked and waking
    /// up, or descheduled on a busy machine), for the caller to run itself; otherwise waits,
    /// spinning (the job is microseconds long), until the worker has finished it.
    pub(super) fn take_back_or_wait(&self) -> Result<Option<J>, WorkerFailed> {
        if let Some(job) = self
            .slot
            .job
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Ok(Some(job));
        }
        let posted = self.slot.posted.load(Ordering::Relaxed);
        let mut spins = 0_u32;
        while self.slot.finished.load(Ordering::Acquire) < posted {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1024) {
                // The worker may have been descheduled mid-job: give it the core.
                thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        if self.slot.failed.load(Ordering::Relaxed) {
            Err(WorkerFailed)
        } else {
            Ok(None)
        }
    }
}

impl<J> Drop for SpinWorker<J> {
    fn drop(&mut self) {
        self.slot.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            // A worker that panicked outside a job has nothing left to report.
            let _ = thread.join();
        }
    }
}

fn serve<J>(slot: &Slot<J>, work: impl Fn(J)) {
    let mut done = 0_u64;
    loop {
        let idle_since = Instant::now();
        while slot.posted.load(Ordering::Acquire) == done {
            if slot.stop.load(Ordering::Acquire) {
                return;
            }
            if idle_since.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                // Returns at once if `post` unparked us since; the loop re-checks either way.
                thread::park();
            }
        }
        let job = slot.job.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(job) = job {
            if catch_unwind(AssertUnwindSafe(|| work(job))).is_err() {
                slot.failed.store(true, Ordering::Relaxed);
            }
        }
        done += 1;
        slot.finished.store(done, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn runs_each_posted_job_before_wait_returns_even_after_parking() {
        let sum = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&sum);
        let worker = SpinWorker::spawn("test", move |n: usize| {
            seen.fetch_add(n, Ordering::SeqCst);
        })
        .unwrap();
        let mut taken_back = 0;
        for n in 1..=100 {
            worker.post(n);
            if n % 10 == 0 {
                thread::sleep(SPIN * 4); // long enough to park
            }
            if let Some(job) = worker.take_back_or_wait().unwrap() {
                taken_back += job;
            }
            assert_eq!(sum.load(Ordering::SeqCst) + taken_back, n * (n + 1) / 2);
        }
        // Posted to a parked worker and given time, it runs the job and nothing comes back.
        // A loaded machine may not schedule it in that time: then the job comes back
        // untouched and is posted again (bounded).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            thread::sleep(SPIN * 4);
            worker.post(1000);
            thread::sleep(SPIN * 4);
            match worker.take_back_or_wait().unwrap() {
                None => break,
                Some(_) => assert!(Instant::now() < deadline, "the parked worker never woke"),
            }
        }
        assert_eq!(sum.load(Ordering::SeqCst) + taken_back, 5050 + 1000);
    }

    #[test]
    fn a_panicking_job_is_reported_not_hung() {
        let worker = SpinWorker::spawn("test", |fail: bool| assert!(!fail, "job failed")).unwrap();
        // On a loaded machine the worker may not have started the job when we look, and
        // then it comes back untouched: post it again until the worker runs it (bounded).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            worker.post(true);
            thread::sleep(SPIN * 4);
            match worker.take_back_or_wait() {
                Err(_) => break,
                Ok(Some(_)) => assert!(
                    Instant::now() < deadline,
                    "the worker never started the job"
                ),
                Ok(None) => panic!("the job ran, and its panic was not reported"),
            }
        }
    }
}
