//! Choosing each layer's kernel: the strategy's, or under `Strategy::Auto` the fastest
//! measured, remembered in [`TuningCache`]s.
//!
//! Auto looks a layer up first in the plan's shared cache (usually a file beside the model,
//! `PlanOptions::tuning`), then in the device's in-memory cache, and times the candidates
//! only when neither knows the shape, and only kernels whose output agrees with the first
//! candidate's (cuBLAS's) can win. What it measures goes into both. A remembered choice
//! that names no kernel this build has (a stale file) is ignored and re-measured.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::pass::Scratch;
use super::{GpuLayer, GpuPlan};
use crate::device::cuda::dense::LayerKernel;
use crate::device::cuda::error::CudaResultExt;
use crate::device::cuda::pool::PooledBuffer;
use crate::device::cuda::stream::{median_ms, Lane};
use crate::device::cuda::GpuElement;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::execution::tuning::{TuningCache, TuningKey, TuningRecord};
use crate::execution::{PlanOptions, Strategy};

/// Untimed runs before Auto times a candidate, then timed runs (the median wins).
const TUNE_WARMUP: usize = 2;
const TUNE_REPEATS: usize = 5;

/// A remembered record whose choice this build can run.
fn usable(record: Option<TuningRecord>) -> Option<(LayerKernel, TuningRecord)> {
    let record = record?;
    let kernel = record.choice.parse().ok()?;
    Some((kernel, record))
}

impl<T: GpuElement> GpuPlan<T> {
    /// Per layer, the kernel and why: the strategy's, or Auto's fastest at max_batch rows.
    pub(super) fn choose_kernels(
        &self,
        lane: &mut Lane,
        scratch: &mut Scratch<T>,
        options: &PlanOptions,
    ) -> Result<Vec<(LayerKernel, String)>> {
        let strategy = options.strategy;
        if strategy != Strategy::Auto {
            let multiprocessors = self.device.inner.info.multiprocessors;
            let forced_tile = match self.device.inner.forced_fused_tile.load(Ordering::Relaxed) {
                0 => None,
                edge => Some(edge),
            };
            let forced_kernel = *self
                .device
                .inner
                .forced_fused_kernel
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let (Strategy::Fused, Some(kernel)) = (strategy, forced_kernel) {
                let reason = format!("strategy {strategy}, forced {kernel}");
                return Ok(self
                    .layers
                    .iter()
                    .map(|_| (kernel, reason.clone()))
                    .collect());
            }
            let shared_limit = self.device.inner.kernels.shared_limit()?;
            return Ok(self
                .layers
                .iter()
                .map(|layer| {
                    let wanted = LayerKernel::for_strategy(
                        strategy,
                        self.max_batch,
                        layer.units,
                        multiprocessors,
                        forced_tile,
                    )
                    .unwrap_or(LayerKernel::Cublas);
                    let kernel = wanted.or_fallback(
                        (self.max_batch, layer.inputs, layer.units),
                        T::DTYPE,
                        layer.activation,
                        shared_limit,
                        multiprocessors,
                    );
                    let reason = if kernel == wanted {
                        format!("strategy {strategy}")
                    } else {
                        format!("strategy {strategy}: {wanted} cannot take this layer, {kernel}")
                    };
                    (kernel, reason)
                })
                .collect());
        }
        let shared = options.tuning.as_deref();
        let mut filled = false;
        self.layers
            .iter()
            .map(|layer| self.choose_auto(lane, scratch, layer, shared, &mut filled))
            .collect()
    }

    /// The tuning key of `layer` at this plan's max_batch.
    fn tuning_key(&self, layer: &GpuLayer<T>) -> TuningKey {
        TuningKey::new(
            &self.device.inner.info.tuning_name(),
            (self.max_batch, layer.inputs, layer.units),
            T::DTYPE,
            layer.activation,
        )
        .with_tf32(T::DTYPE == DType::F32 && self.allow_tf32)
    }

    /// Auto for one layer: a remembered choice, or a measured one (then remembered).
    fn choose_auto(
        &self,
        lane: &mut Lane,
        scratch: &mut Scratch<T>,
        layer: &GpuLayer<T>,
        shared: Option<&TuningCache>,
        filled: &mut bool,
    ) -> Result<(LayerKernel, String)> {
        let key = self.tuning_key(layer);
        let own = &self.device.inner.tuning;
        let remembered =
            usable(shared.and_then(|cache| cache.get(&key))).or_else(|| usable(own.get(&key)));
        if let Some((kernel, record)) = remembered {
            own.insert(&key, record.clone());
            if let Some(cache) = shared {
                cache.insert(&key, record.clone());
            }
            let reason = format!(
                "auto: cached, {} at {} rows",
                record.explain(),
                self.max_batch
            );
            return Ok((kernel, reason));
        }
        if !*filled {
            self.fill_tuning_input(lane, scratch)?;
            *filled = true;
        }
        let (kernel, record, failed) = self.time_candidates(lane, scratch, layer)?;
        self.device
            .inner
            .tuning_runs
            .fetch_add(1, Ordering::Relaxed);
        own.insert(&key, record.clone());
        if let Some(cache) = shared {
            cache.insert(&key, record.clone());
        }
        let failed: Vec<String> = failed.iter().map(|k| format!(", {k} failed")).collect();
        let reason = format!(
            "auto: {}{} at {} rows",
            record.explain(),
            failed.concat(),
            self.max_batch
        );
        Ok((kernel, reason))
    }

    /// Timing needs realistic operands: random values, never zeros. The first element is
    /// NaN, so that every layer's first output row is NaN in the reference (NaN propagates,
    /// as in PyTorch) and a candidate that turns NaN into a number (a `max(z, 0)` relu in a
    /// library epilogue, say) disagrees and is never chosen.
    pub(super) fn fill_tuning_input(
        &self,
        lane: &mut Lane,
        scratch: &mut Scratch<T>,
    ) -> Result<()> {
        let len = scratch.ping.len();
        let random = crate::tensor::random_batch(1, len, 0x7a11);
        let mut values: Vec<T> = random.iter().map(|&x| T::from_f32(x)).collect();
        if let Some(first) = values.first_mut() {
            *first = T::from_f32(f32::NAN);
        }
        lane.stream
            .memcpy_htod(&values, &mut scratch.ping.view_mut(len)?)
            .during("filling the tuning input")
    }

    /// Times every kernel on `layer`: the fastest, the record of all timings, and the
    /// kernels that failed to run.
    fn time_candidates(
        &self,
        lane: &mut Lane,
        scratch: &mut Scratch<T>,
        layer: &GpuLayer<T>,
    ) -> Result<(LayerKernel, TuningRecord, Vec<LayerKernel>)> {
        let context = Arc::clone(lane.stream.context());
        let stream = Arc::clone(&lane.stream);
        let mut timings = Vec::new();
        let mut failed = Vec::new();
        let mut first_error = None;
        let shared_limit = self.device.inner.kernels.shared_limit()?;
        let shape = (self.max_batch, layer.inputs, layer.units);
        let device = &self.device.inner;
        let candidates = LayerKernel::ALL.into_iter().filter(|kernel| {
            kernel.is_candidate(device, shape, T::DTYPE, layer.activation, shared_limit)
        });
        // The first kernel that runs (cuBLAS, when present) is the reference the others must
        // agree with: a kernel that computes something else is never chosen, however fast.
        let mut reference: Option<Vec<f32>> = None;
        for kernel in candidates {
            let result = self
                .poison_output(lane, scratch, layer)
                .and_then(|()| {
                    median_ms(&context, &stream, TUNE_WARMUP, TUNE_REPEATS, || {
                        self.run_layer(lane, scratch, layer, kernel)
                    })
                })
                .and_then(|ms| {
                    self.agrees(lane, scratch, layer, kernel, &mut reference)?;
                    Ok(ms)
                });
            match result {
                Ok(ms) => timings.push((kernel.name().to_string(), ms)),
                Err(err) => {
                    failed.push(kernel);
                    first_error.get_or_insert(err);
                }
            }
        }
        let Some(record) = TuningRecord::from_timings(timings) else {
            return Err(
                first_error.unwrap_or_else(|| Error::InvalidArgument("no kernel to time".into()))
            );
        };
        let best = record.choice.parse()?;
        Ok((best, record, failed))
    }

    /// Fills the layer's output in `scratch.pong` with NaN, so that an element a candidate
    /// does not write cannot pass as the previous candidate's result.
    fn poison_output(
        &self,
        lane: &Lane,
        scratch: &mut Scratch<T>,
        layer: &GpuLayer<T>,
    ) -> Result<()> {
        poison(lane, &mut scratch.pong, self.max_batch * layer.units)
    }

    /// Errors unless `kernel`'s output (in `scratch.pong`) matches the reference (the first
    /// candidate's output, which becomes the reference when there is none yet); see
    /// [`disagreement`].
    fn agrees(
        &self,
        lane: &Lane,
        scratch: &Scratch<T>,
        layer: &GpuLayer<T>,
        kernel: LayerKernel,
        reference: &mut Option<Vec<f32>>,
    ) -> Result<()> {
        let got = download(lane, &scratch.pong, self.max_batch * layer.units)?;
        let Some(want) = reference.as_ref() else {
            *reference = Some(got);
            return Ok(());
        };
        match disagreement(&got, want, T::DTYPE, self.allow_tf32) {
            None => Ok(()),
            Some(difference) => Err(Error::Cuda {
                context: format!("checking kernel `{kernel}` while tuning"),
                message: format!(
                    "its output differs from the reference kernel's by {difference:e} \
                     (relative); it is not used"
                ),
            }),
        }
    }

    /// Queues `layer` on max_batch rows, reading `scratch.ping` and writing `scratch.pong`.
    fn run_layer(
        &self,
        lane: &mut Lane,
        scratch: &mut Scratch<T>,
        layer: &GpuLayer<T>,
        kernel: LayerKernel,
    ) -> Result<()> {
        let Scratch { ping, pong } = scratch;
        self.queue_layer(lane, layer, kernel, ping, pong, self.max_batch)
    }
}

/// Fills the first `len` elements of `buffer` with NaN and waits for the copy.
pub(super) fn poison<T: GpuElement>(
    lane: &Lane,
    buffer: &mut PooledBuffer<T>,
    len: usize,
) -> Result<()> {
    let nan = vec![T::from_f32(f32::NAN); len];
    lane.stream
        .memcpy_htod(&nan, &mut buffer.view_mut(len)?)
        .during("poisoning a tuning output")?;
    // The copy reads pageable memory: wait before `nan` is freed.
    lane.synchronize()
}

/// The first `len` elements of `buffer`, as f32, once the lane's work is done.
pub(super) fn download<T: GpuElement>(
    lane: &Lane,
    buffer: &PooledBuffer<T>,
    len: usize,
) -> Result<Vec<f32>> {
    let mut host = vec![T::from_f32(0.0); len];
    lane.stream
        .memcpy_dtoh(&buffer.view(len)?, &mut host)
        .during("reading a tuning output")?;
    lane.synchronize()?;
    Ok(host.iter().map(|x| x.to_f32()).collect())
}

/// `None` when `got` matches `want`, else their norm-wise relative difference
/// (`max |got - want| / max(max |want|, 1e-3)`): at most 1e-4 in strict f32, 1e-2 when TF32
/// may differ, 2e-2 in f16/bf16, and NaN exactly where `want` has NaN.
pub(super) fn disagreement(got: &[f32], want: &[f32], dtype: DType, tf32: bool) -> Option<f32> {
    let tolerance = match (dtype, tf32) {
        (DType::F32, false) => 1e-4,
        (DType::F32, true) => 1e-2,
        _ => 2e-2,
    };
    let scale = want.iter().fold(1e-3_f32, |m, w| m.max(w.abs()));
    let worst = got.iter().zip(want).fold(0.0_f32, |worst, (&g, &w)| {
        if g.is_nan() != w.is_nan() {
            f32::INFINITY
        } else if w.is_nan() {
            worst
        } else {
            worst.max((g - w).abs())
        }
    });
    let relative = worst / scale;
    (got.len() != want.len() || relative > tolerance).then_some(relative)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disagreement_flags_wrong_and_unwritten_outputs() {
        let want = [1.0, -2.0, 0.5];
        assert_eq!(disagreement(&want, &want, DType::F32, false), None);
        assert_eq!(
            disagreement(&[1.0, -2.0, 0.50001], &want, DType::F32, false),
            None
        );
        assert!(disagreement(&[1.0, -2.0, 0.6], &want, DType::F32, false).is_some());
        assert_eq!(
            disagreement(&[1.0, -2.0, 0.51], &want, DType::BF16, false),
            None
        );
        assert!(disagreement(&[1.0, f32::NAN, 0.5], &want, DType::BF16, false).is_some());
        // A candidate that turns the reference's NaN into a number disagrees too.
        let with_nan = [1.0, f32::NAN, 0.5];
        assert_eq!(disagreement(&with_nan, &with_nan, DType::F32, false), None);
        assert!(disagreement(&[1.0, 0.0, 0.5], &with_nan, DType::F32, false).is_some());
        assert!(disagreement(&[1.0, -2.0], &want, DType::F32, false).is_some());
    }
}
