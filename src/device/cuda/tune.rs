//! Choosing each layer's kernel: the strategy's, or under `Strategy::Auto` the fastest
//! measured, remembered in [`TuningCache`]s.
//!
//! Auto looks a layer up first in the plan's shared cache (usually a file beside the model,
//! `PlanOptions::tuning`), then in the device's in-memory cache, and times the candidates
//! only when neither knows the shape. What it measures goes into both. A remembered choice
//! that names no kernel this build has (a stale file) is ignored and re-measured.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::dense::LayerKernel;
use super::error::CudaResultExt;
use super::pass::Scratch;
use super::plan::{GpuLayer, GpuPlan};
use super::stream::{median_ms, Lane};
use super::GpuElement;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::plan::{PlanOptions, Strategy};
use crate::graph::tuning::{TuningCache, TuningKey, TuningRecord};

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
            return Ok(self
                .layers
                .iter()
                .map(|layer| {
                    let kernel = LayerKernel::for_strategy(
                        strategy,
                        self.max_batch,
                        layer.units,
                        multiprocessors,
                        forced_tile,
                    )
                    .unwrap_or(LayerKernel::Cublas);
                    (kernel, format!("strategy {strategy}"))
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

    /// Timing needs realistic operands: random values, never zeros.
    fn fill_tuning_input(&self, lane: &mut Lane, scratch: &mut Scratch<T>) -> Result<()> {
        let len = scratch.ping.len();
        let random = crate::tensor::random_batch(1, len, 0x7a11);
        let values: Vec<T> = random.iter().map(|&x| T::from_f32(x)).collect();
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
        let device = &self.device.inner;
        for kernel in LayerKernel::ALL
            .into_iter()
            .filter(|kernel| kernel.runs_on(device, T::DTYPE))
        {
            let result = median_ms(&context, &stream, TUNE_WARMUP, TUNE_REPEATS, || {
                self.run_layer(lane, scratch, layer, kernel)
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
