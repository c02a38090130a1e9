//! Whether a plan runs its whole network as one kernel ([`network_kernel`](crate::device::cuda::network_kernel)),
//! and queuing it.
//!
//! Under `Strategy::Network` the kernel runs whenever the network fits it. Under
//! `Strategy::Auto` it runs only if its output agrees with, and it measured faster than, the
//! layer-by-layer pass with the kernels Auto chose per layer, both at max_batch rows; the
//! outcome is remembered in the tuning caches under a key that names the whole network.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::pass::Scratch;
use super::tune::{disagreement, download, poison};
use super::GpuPlan;
use crate::device::cuda::network_kernel::{network_forward, unsupported, NetworkLayer};
use crate::device::cuda::pool::PooledBuffer;
use crate::device::cuda::stream::{median_ms, Lane};
use crate::device::cuda::GpuElement;
use crate::dtype::DType;
use crate::error::Result;
use crate::execution::tuning::{TuningKey, TuningRecord};
use crate::execution::{PlanOptions, Strategy};

/// The two ways a plan may run its layers, as remembered in tuning files.
const WHOLE: &str = "network";
const LAYERS: &str = "layers";
const WARMUP: usize = 2;
const REPEATS: usize = 5;

impl<T: GpuElement> GpuPlan<T> {
    fn network_layers(&self) -> Vec<NetworkLayer<'_, T>> {
        self.layers
            .iter()
            .map(|layer| NetworkLayer {
                weight: &layer.weight,
                bias: &layer.bias,
                inputs: layer.inputs,
                units: layer.units,
                activation: layer.activation,
            })
            .collect()
    }

    /// Queues every layer in one launch over `rows` rows of `scratch.ping`; returns the
    /// buffer that holds the output (`scratch.pong`).
    pub(super) fn queue_network<'s>(
        &self,
        lane: &mut Lane,
        scratch: &'s mut Scratch<T>,
        rows: usize,
    ) -> Result<&'s PooledBuffer<T>> {
        let Scratch { ping, pong } = scratch;
        let input = ping.view(rows * self.input_width)?;
        let mut out = pong.view_mut(rows * self.output_width)?;
        network_forward(
            &self.device.inner.kernels,
            &lane.stream,
            &self.network_layers(),
            &input,
            &mut out,
            rows,
        )?;
        Ok(pong)
    }

    /// Whether this plan runs the whole-network kernel, and why (`None`: layer by layer).
    /// Called once the per-layer kernels are chosen.
    pub(super) fn choose_network(
        &self,
        lane: &mut Lane,
        scratch: &mut Scratch<T>,
        options: &PlanOptions,
    ) -> Result<Option<String>> {
        if !matches!(options.strategy, Strategy::Auto | Strategy::Network) {
            return Ok(None);
        }
        let shared_limit = self.device.inner.kernels.shared_limit()?;
        if unsupported(&self.network_layers(), shared_limit).is_some() {
            return Ok(None);
        }
        if options.strategy == Strategy::Network {
            return Ok(Some("strategy network".to_string()));
        }
        let key = self.network_tuning_key();
        let own = &self.device.inner.tuning;
        let shared = options.tuning.as_deref();
        let remembered = shared
            .and_then(|cache| cache.get(&key))
            .or_else(|| own.get(&key))
            .filter(|record| record.choice == WHOLE || record.choice == LAYERS);
        let (record, how) = match remembered {
            Some(record) => (record, "cached, "),
            None => {
                let record = self.time_network_against_layers(lane, scratch)?;
                self.device
                    .inner
                    .tuning_runs
                    .fetch_add(1, Ordering::Relaxed);
                (record, "")
            }
        };
        own.insert(&key, record.clone());
        if let Some(cache) = shared {
            cache.insert(&key, record.clone());
        }
        Ok((record.choice == WHOLE)
            .then(|| format!("auto: {how}{} at {} rows", record.explain(), self.max_batch)))
    }

    /// The key of the whole network: the per-layer key's fields, with the device name
    /// extended by every width and activation (`... | network 64:relu-64:sigmoid`).
    fn network_tuning_key(&self) -> TuningKey {
        let layers: Vec<String> = self
            .layers
            .iter()
            .map(|layer| format!("{}:{}", layer.units, layer.activation))
            .collect();
        let device = format!(
            "{} | network {}-{}",
            self.device.inner.info.tuning_name(),
            self.input_width,
            layers.join("-")
        );
        let last = self.layers.last().map(|l| l.activation);
        TuningKey::new(
            &device,
            (self.max_batch, self.input_width, self.output_width),
            T::DTYPE,
            last.unwrap_or(crate::activation::Activation::Linear),
        )
        .with_tf32(T::DTYPE == DType::F32 && self.allow_tf32)
    }

    /// Times the layer-by-layer pass and the whole-network kernel at max_batch rows; the
    /// kernel is timed (and can win) only if its output agrees with the layers'.
    fn time_network_against_layers(
        &self,
        lane: &mut Lane,
        scratch: &mut Scratch<T>,
    ) -> Result<TuningRecord> {
        let rows = self.max_batch;
        let len = rows * self.output_width;
        // Both ways must compute the same thing: each from the same input, into NaN.
        self.fill_tuning_input(lane, scratch)?;
        poison(lane, &mut scratch.pong, len)?;
        let out = self.queue_layers(lane, scratch, rows)?;
        let want = download(lane, out, len)?;
        self.fill_tuning_input(lane, scratch)?;
        poison(lane, &mut scratch.pong, len)?;
        let out = self.queue_network(lane, scratch, rows)?;
        let got = download(lane, out, len)?;
        let agrees = disagreement(&got, &want, T::DTYPE, self.allow_tf32).is_none();

        let context = Arc::clone(lane.stream.context());
        let stream = Arc::clone(&lane.stream);
        let layers = median_ms(&context, &stream, WARMUP, REPEATS, || {
            self.queue_layers(lane, scratch, rows).map(|_| ())
        })?;
        let mut timings = vec![(LAYERS.to_string(), layers)];
        // A network kernel that computes something else is never chosen.
        if agrees {
            let whole = median_ms(&context, &stream, WARMUP, REPEATS, || {
                self.queue_network(lane, scratch, rows).map(|_| ())
            })?;
            timings.push((WHOLE.to_string(), whole));
        }
        TuningRecord::from_timings(timings)
            .ok_or_else(|| crate::error::Error::InvalidArgument("nothing was timed".into()))
    }
}
