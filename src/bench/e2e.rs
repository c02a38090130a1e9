//! End-to-end benchmarks of whole networks, host to host: latency of small batches (with
//! and without CUDA Graphs), throughput of one large batch, streaming many batches against
//! the copy and compute bounds, and concurrent callers of one plan.
//!
//! Every time is wall-clock around calls that return only after the device is done (a
//! forward pass synchronises before it returns), so no extra sync is needed to stop a clock.

use std::time::Instant;

use ndarray::Array2;
use serde::Serialize;

use crate::activation::Activation;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::execution::PlanOptions;
use crate::graph::network::Network;
use crate::plan::Plan;
use crate::tensor::random_batch;

/// Untimed calls before each latency series (on a GPU, the first captures the graph).
const LATENCY_WARMUP: usize = 50;

/// The 784-512-256-10 network (sigmoid, relu, linear) with random weights.
pub fn mlp_784() -> Result<Network> {
    Network::builder(784)
        .dense(512, Activation::Sigmoid)
        .dense(256, Activation::Relu)
        .dense(10, Activation::Linear)
        .build()
}

/// A 64-64-64 network (relu, linear): copies dominate, compute is small.
pub fn mlp_64() -> Result<Network> {
    Network::builder(64)
        .dense(64, Activation::Relu)
        .dense(64, Activation::Linear)
        .build()
}

/// Latency of one batch size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyResult {
    /// Rows per call.
    pub batch: usize,
    /// Whether the plan had CUDA Graphs on.
    pub cuda_graphs: bool,
    /// Whether a graph was actually captured for this batch size (false: plain path).
    pub graph_captured: bool,
    /// Timed calls.
    pub runs: usize,
    /// Median host-to-host time of one call, µs.
    pub median_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
}

/// Throughput of one large batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThroughputResult {
    /// Compute precision.
    pub dtype: DType,
    /// Rows in the batch (and the plan's max_batch).
    pub rows: usize,
    /// Median host-to-host time, ms.
    pub median_ms: f64,
    /// Median time of the same pass with the input already on the device (the layers
    /// alone; on the CPU a plain pass), ms: what PyTorch timings on device tensors show.
    pub resident_ms: f64,
    /// Rows per second, host to host.
    pub examples_per_s: f64,
    /// The network's 2·M·K·N summed over layers, over the median time, TFLOP/s.
    pub tflops: f64,
}

/// Streaming many batches through `forward_stream`, against what bounds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamingResult {
    /// The network, e.g. `784-512-256-10`.
    pub network: String,
    /// Compute precision.
    pub dtype: DType,
    /// Batches streamed.
    pub batches: usize,
    /// Rows per batch.
    pub rows_per_batch: usize,
    /// Rows per second through `forward_stream`, host to host.
    pub rows_per_s: f64,
    /// Rows per second that the layers alone reach, data already on the device.
    pub compute_alone_rows_per_s: f64,
    /// `rows_per_s` as a percentage of `compute_alone_rows_per_s`.
    pub pct_of_compute_alone: f64,
    /// GPU only: rows per second that pinned copies alone allow, uploads and downloads
    /// overlapping (the slower direction bounds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_bound_rows_per_s: Option<f64>,
    /// GPU only: `rows_per_s` as a percentage of `copy_bound_rows_per_s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pct_of_copy_bound: Option<f64>,
    /// GPU only: measured pinned host→device bandwidth, GB/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h2d_gb_per_s: Option<f64>,
    /// GPU only: measured pinned device→host bandwidth, GB/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub d2h_gb_per_s: Option<f64>,
}

/// Several threads calling `forward` on one shared plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallersResult {
    /// Calling threads.
    pub threads: usize,
    /// Rows per call.
    pub batch: usize,
    /// Calls per thread (timed).
    pub calls_per_thread: usize,
    /// Rows per second, all threads together.
    pub examples_per_s: f64,
}

/// What the end-to-end benchmarks run, and how large.
#[derive(Debug, Clone, PartialEq)]
pub struct EndToEnd {
    /// Latency at batch 1, 8 and 64, with and (on a GPU) without graphs.
    pub latency: bool,
    /// Timed calls per latency series (at least 1000 for a meaningful p99).
    pub latency_runs: usize,
    /// One large batch per dtype.
    pub network_throughput: bool,
    /// Rows of that batch.
    pub throughput_rows: usize,
    /// Streaming a small and a large network.
    pub streaming: bool,
    /// Batches and rows per batch streamed.
    pub stream_batches: usize,
    pub stream_rows: usize,
    /// Thread counts for the concurrent-callers benchmark (empty: skip it).
    pub callers: Vec<usize>,
    /// Rows per call and timed calls per thread there.
    pub caller_batch: usize,
    pub caller_calls: usize,
}

impl EndToEnd {
    /// Nothing selected, sized for `device`: the brief's sizes on a GPU, smaller on the CPU
    /// so that a run takes seconds, not minutes.
    pub fn sized_for(device: &Device) -> Self {
        let gpu = device.is_cuda();
        EndToEnd {
            latency: false,
            latency_runs: 1000,
            network_throughput: false,
            throughput_rows: 65_536,
            streaming: false,
            stream_batches: if gpu { 32 } else { 8 },
            stream_rows: if gpu { 65_536 } else { 8192 },
            callers: Vec::new(),
            caller_batch: if gpu { 4096 } else { 512 },
            caller_calls: if gpu { 200 } else { 10 },
        }
    }

    /// Whether anything is selected.
    pub fn any(&self) -> bool {
        self.latency || self.network_throughput || self.streaming || !self.callers.is_empty()
    }
}

/// Median and 99th percentile of `values` (sorted here).
fn median_and_p99(values: &mut [f64]) -> (f64, f64) {
    let median = crate::stats::median(values);
    let p99 = match values.len() {
        0 => 0.0,
        n => values[((n as f64 * 0.99).ceil() as usize).clamp(1, n) - 1],
    };
    (median, p99)
}

fn compile(network: &Network, device: &Device, options: PlanOptions) -> Result<Plan> {
    network.compile(device, options)
}

/// Latency of the 784-512-256-10 network at batch 1, 8 and 64, host to host.
pub fn latency(device: &Device, runs: usize) -> Result<Vec<LatencyResult>> {
    let network = mlp_784()?;
    let graph_settings: &[bool] = if device.is_cuda() {
        &[false, true]
    } else {
        &[false]
    };
    let mut results = Vec::new();
    for &cuda_graphs in graph_settings {
        let options = PlanOptions {
            cuda_graphs,
            ..PlanOptions::with_max_batch(64)
        };
        let plan = compile(&network, device, options)?;
        for batch in [1, 8, 64] {
            let input = random_batch(batch, network.input_width(), batch as u64);
            let mut output = Array2::zeros((batch, network.output_width()));
            for _ in 0..LATENCY_WARMUP {
                plan.forward_into(input.view(), output.view_mut())?;
            }
            let mut micros = Vec::with_capacity(runs);
            for _ in 0..runs.max(1) {
                let start = Instant::now();
                plan.forward_into(input.view(), output.view_mut())?;
                micros.push(start.elapsed().as_secs_f64() * 1e6);
            }
            let (median_us, p99_us) = median_and_p99(&mut micros);
            let captured = format!("rows {batch}: captured");
            let graph_captured = plan
                .graph_status()
                .iter()
                .any(|line| line.starts_with(&captured));
            results.push(LatencyResult {
                batch,
                cuda_graphs,
                graph_captured,
                runs: micros.len(),
                median_us,
                p99_us,
            });
        }
    }
    Ok(results)
}

/// One batch of `rows` through the 784-512-256-10 network per dtype with max_batch = rows
/// (on a GPU a batch this large streams through the overlapped pipeline): the median of
/// `repeats` host-to-host calls after one warm-up, and of `repeats` passes over inputs
/// already on the device.
pub fn network_throughput(
    device: &Device,
    rows: usize,
    dtypes: &[DType],
    repeats: usize,
) -> Result<Vec<ThroughputResult>> {
    let network = mlp_784()?;
    let input = random_batch(rows, network.input_width(), 3);
    let mut output = Array2::zeros((rows, network.output_width()));
    let mut results = Vec::new();
    for &dtype in dtypes {
        let options = PlanOptions {
            dtype: Some(dtype),
            ..PlanOptions::with_max_batch(rows)
        };
        let plan = compile(&network, device, options)?;
        plan.forward_into(input.view(), output.view_mut())?;
        let mut seconds = Vec::with_capacity(repeats);
        for _ in 0..repeats.max(1) {
            let start = Instant::now();
            plan.forward_into(input.view(), output.view_mut())?;
            seconds.push(start.elapsed().as_secs_f64());
        }
        let median = crate::stats::median(&mut seconds).max(f64::MIN_POSITIVE);
        let resident_ms = plan.time_resident_pass(rows, repeats.max(1))?;
        results.push(ThroughputResult {
            dtype,
            rows,
            median_ms: median * 1e3,
            resident_ms,
            examples_per_s: rows as f64 / median,
            tflops: network.flops(rows) / median / 1e12,
        });
    }
    Ok(results)
}

/// `batches` batches of `rows` rows through `forward_stream`, for a small (64-64-64) and
/// a large (784-512-256-10) network per dtype, with the compute-alone and (on a GPU)
/// copy-alone bounds measured in the same run.
pub fn streaming(
    device: &Device,
    batches: usize,
    rows: usize,
    dtypes: &[DType],
) -> Result<Vec<StreamingResult>> {
    if batches == 0 || rows == 0 {
        return Err(Error::InvalidArgument(
            "streaming needs at least one batch of one row".into(),
        ));
    }
    let mut results = Vec::new();
    for (name, network) in [("64-64-64", mlp_64()?), ("784-512-256-10", mlp_784()?)] {
        let input = random_batch(rows, network.input_width(), 9);
        for &dtype in dtypes {
            let options = PlanOptions {
                dtype: Some(dtype),
                ..PlanOptions::with_max_batch(rows)
            };
            let plan = compile(&network, device, options)?;
            let run = |count: usize| -> Result<f64> {
                let start = Instant::now();
                let mut seen = 0usize;
                plan.forward_stream((0..count).map(|_| Ok(input.view())), |out| {
                    seen += out.nrows();
                    Ok(())
                })?;
                let seconds = start.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
                if seen != count * rows {
                    return Err(Error::InvalidArgument(format!(
                        "streaming returned {seen} rows, expected {}",
                        count * rows
                    )));
                }
                Ok(seconds)
            };
            // Warm-up: enough batches that every pipeline slot has its buffers.
            run(4)?;
            let rows_per_s = (batches * rows) as f64 / run(batches)?;
            let compute_ms = plan.time_resident_pass(rows, 5)?.max(1e-9);
            let compute_alone_rows_per_s = rows as f64 / (compute_ms / 1e3);
            let copies = copy_bound(device, &network, dtype, rows)?;
            results.push(StreamingResult {
                network: name.to_string(),
                dtype: plan.dtype(),
                batches,
                rows_per_batch: rows,
                rows_per_s,
                compute_alone_rows_per_s,
                pct_of_compute_alone: 100.0 * rows_per_s / compute_alone_rows_per_s,
                copy_bound_rows_per_s: copies.map(|c| c.rows_per_s),
                pct_of_copy_bound: copies.map(|c| 100.0 * rows_per_s / c.rows_per_s),
                h2d_gb_per_s: copies.map(|c| c.h2d_gb_per_s),
                d2h_gb_per_s: copies.map(|c| c.d2h_gb_per_s),
            });
        }
    }
    Ok(results)
}

/// What copies alone allow for one batch.
#[derive(Debug, Clone, Copy)]
struct CopyBound {
    rows_per_s: f64,
    h2d_gb_per_s: f64,
    d2h_gb_per_s: f64,
}

/// On a GPU: times pinned copies of one batch's input up and output down, each alone; the
/// bound is the slower direction, since the two directions use separate copy engines and
/// overlap in a pipeline. `None` on the CPU.
fn copy_bound(
    device: &Device,
    network: &Network,
    dtype: DType,
    rows: usize,
) -> Result<Option<CopyBound>> {
    let Device::Cuda(cuda) = device else {
        return Ok(None);
    };
    let size = dtype.size_in_bytes();
    let h2d_bytes = rows * network.input_width() * size;
    let d2h_bytes = rows * network.output_width() * size;
    let (h2d_ms, d2h_ms) = super::bench_copies(cuda, h2d_bytes, d2h_bytes, 10)?;
    let bound_s = (h2d_ms.max(d2h_ms) / 1e3).max(f64::MIN_POSITIVE);
    let gb_per_s = |bytes: usize, ms: f64| bytes as f64 / (ms / 1e3).max(f64::MIN_POSITIVE) / 1e9;
    Ok(Some(CopyBound {
        rows_per_s: rows as f64 / bound_s,
        h2d_gb_per_s: gb_per_s(h2d_bytes, h2d_ms),
        d2h_gb_per_s: gb_per_s(d2h_bytes, d2h_ms),
    }))
}

/// Throughput with `threads` threads calling `forward` on one plan at once, per entry.
pub fn callers(
    device: &Device,
    thread_counts: &[usize],
    batch: usize,
    calls: usize,
) -> Result<Vec<CallersResult>> {
    let network = mlp_784()?;
    let plan = compile(&network, device, PlanOptions::with_max_batch(batch))?;
    let input = random_batch(batch, network.input_width(), 21);
    let mut results = Vec::new();
    for &threads in thread_counts {
        if threads == 0 {
            return Err(Error::InvalidArgument(
                "--callers needs counts of at least 1".into(),
            ));
        }
        let call_all = |count: usize| -> Result<()> {
            std::thread::scope(|scope| {
                let workers: Vec<_> = (0..threads)
                    .map(|_| {
                        scope.spawn(|| -> Result<()> {
                            for _ in 0..count {
                                plan.forward(input.view())?;
                            }
                            Ok(())
                        })
                    })
                    .collect();
                workers.into_iter().try_for_each(|worker| {
                    worker.join().unwrap_or_else(|_| {
                        Err(Error::InvalidArgument("a benchmark thread panicked".into()))
                    })
                })
            })
        };
        call_all(2)?;
        let start = Instant::now();
        call_all(calls.max(1))?;
        let seconds = start.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
        results.push(CallersResult {
            threads,
            batch,
            calls_per_thread: calls.max(1),
            examples_per_s: (threads * calls.max(1) * batch) as f64 / seconds,
        });
    }
    Ok(results)
}

/// Runs what `what` selects on `device` into the report's optional sections.
pub fn run_end_to_end(
    device: &Device,
    what: &EndToEnd,
    report: &mut super::BenchReport,
) -> Result<()> {
    let dtypes: &[DType] = if device.is_cuda() {
        &[DType::F32, DType::BF16]
    } else {
        // The CPU computes every dtype in f32.
        &[DType::F32]
    };
    if what.latency {
        report.latency = Some(latency(device, what.latency_runs)?);
    }
    if what.network_throughput {
        let repeats = if device.is_cuda() { 10 } else { 3 };
        report.network_throughput = Some(network_throughput(
            device,
            what.throughput_rows,
            dtypes,
            repeats,
        )?);
    }
    if what.streaming {
        report.streaming = Some(streaming(
            device,
            what.stream_batches,
            what.stream_rows,
            dtypes,
        )?);
    }
    if !what.callers.is_empty() {
        report.callers = Some(callers(
            device,
            &what.callers,
            what.caller_batch,
            what.caller_calls,
        )?);
    }
    Ok(())
}

/// The end-to-end sections of `report` as text tables (empty when none was run).
pub(super) fn tables(report: &super::BenchReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if let Some(rows) = &report.latency {
        let _ = writeln!(out, "\nlatency, 784-512-256-10, host to host");
        let _ = writeln!(
            out,
            "{:>6} {:<12} {:>7} {:>12} {:>12}",
            "batch", "cuda graphs", "runs", "median us", "p99 us"
        );
        for r in rows {
            let graphs = match (r.cuda_graphs, r.graph_captured) {
                (false, _) => "off",
                (true, true) => "on",
                (true, false) => "on (failed)",
            };
            let _ = writeln!(
                out,
                "{:>6} {:<12} {:>7} {:>12.1} {:>12.1}",
                r.batch, graphs, r.runs, r.median_us, r.p99_us
            );
        }
    }
    if let Some(rows) = &report.network_throughput {
        let _ = writeln!(out, "\nnetwork throughput, 784-512-256-10");
        let _ = writeln!(
            out,
            "{:<5} {:>8} {:>13} {:>13} {:>14} {:>9}",
            "dtype", "rows", "host ms", "on-device ms", "examples/s", "TFLOP/s"
        );
        for r in rows {
            let _ = writeln!(
                out,
                "{:<5} {:>8} {:>13.3} {:>13.3} {:>14.0} {:>9.2}",
                r.dtype, r.rows, r.median_ms, r.resident_ms, r.examples_per_s, r.tflops
            );
        }
    }
    if let Some(rows) = &report.streaming {
        let _ = writeln!(out, "\nstreaming (forward_stream), rows/s");
        let _ = writeln!(
            out,
            "{:<15} {:<5} {:>14} {:>13} {:>9} {:>13} {:>9}",
            "network", "dtype", "batches x rows", "rows/s", "% compute", "copy bound", "% copies"
        );
        for r in rows {
            let size = format!("{}x{}", r.batches, r.rows_per_batch);
            let bound = r
                .copy_bound_rows_per_s
                .map_or("-".to_string(), |b| format!("{b:.0}"));
            let pct = r
                .pct_of_copy_bound
                .map_or("-".to_string(), |p| format!("{p:.1}"));
            let _ = writeln!(
                out,
                "{:<15} {:<5} {:>14} {:>13.0} {:>9.1} {:>13} {:>9}",
                r.network, r.dtype, size, r.rows_per_s, r.pct_of_compute_alone, bound, pct
            );
        }
    }
    if let Some(rows) = &report.callers {
        let _ = writeln!(out, "\nconcurrent callers, 784-512-256-10, one shared plan");
        let _ = writeln!(
            out,
            "{:>7} {:>6} {:>8} {:>14}",
            "threads", "batch", "calls", "examples/s"
        );
        for r in rows {
            let _ = writeln!(
                out,
                "{:>7} {:>6} {:>8} {:>14.0}",
                r.threads, r.batch, r.calls_per_thread, r.examples_per_s
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_is_the_value_below_which_99_percent_fall() {
        let mut values: Vec<f64> = (1..=1000).map(f64::from).collect();
        values.reverse();
        let (median, p99) = median_and_p99(&mut values);
        assert_eq!(median, 500.5);
        assert_eq!(p99, 990.0);
        assert_eq!(median_and_p99(&mut [7.0]), (7.0, 7.0));
    }

    #[test]
    fn every_benchmark_runs_small_on_the_cpu() {
        let cpu = Device::cpu();
        let mut what = EndToEnd::sized_for(&cpu);
        what.latency = true;
        what.latency_runs = 5;
        what.network_throughput = true;
        what.throughput_rows = 64;
        what.streaming = true;
        what.stream_batches = 3;
        what.stream_rows = 50;
        what.callers = vec![1, 2];
        what.caller_batch = 16;
        what.caller_calls = 2;
        let mut report = super::super::BenchReport::new(cpu.name());
        run_end_to_end(&cpu, &what, &mut report).unwrap();
        assert_eq!(report.latency.as_ref().unwrap().len(), 3);
        assert_eq!(report.streaming.as_ref().unwrap().len(), 2);
        assert_eq!(report.callers.as_ref().unwrap().len(), 2);
        let json = serde_json::to_string(&report).unwrap();
        assert!(
            json.contains("\"latency\"") && !json.contains("copy_bound"),
            "{json}"
        );
        assert!(report.table().contains("p99"));
    }
}
