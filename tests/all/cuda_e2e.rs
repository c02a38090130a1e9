//! End-to-end GPU tests: CUDA Graph capture and replay, concurrent callers with graphs, and
//! the tuning cache. (Streaming runs on the GPU too, in tests/all/streaming.rs.)
//!
//! They need an NVIDIA GPU (compute capability 8.0+), a driver with CUDA 13.0 (>= 580) and
//! cuBLAS 13. Without one they FAIL: a missing GPU must never read as a pass.
use crate::common;

use common::gpu;

use std::sync::Arc;
use std::thread;

use ndarray::Array2;
use vecprop::{Activation, DType, Device, Network, Plan, PlanOptions, Strategy, TuningCache};

/// Awkward batch sizes: one row, odd sizes, and more rows than a tile row.
const ROWS: [usize; 4] = [1, 3, 17, 1000];

fn network(dtype: DType) -> Network {
    Network::builder(130)
        .dense(257, Activation::Sigmoid)
        .dense(33, Activation::Relu)
        .dense(10, Activation::Softmax)
        .dtype(dtype)
        .build()
        .expect("widths chain")
}

fn compile(network: &Network, device: &Device, options: PlanOptions) -> Plan {
    network
        .compile(device, options)
        .unwrap_or_else(|err| panic!("compiling: {err}"))
}

fn input(rows: usize, seed: u64) -> Array2<f32> {
    vecprop::tensor::random_batch(rows, 130, seed)
}

/// `max |a - b| / max |b|`; NaN anywhere is infinite.
fn gap(a: &Array2<f32>, b: &Array2<f32>) -> f64 {
    let scale = b.iter().fold(1e-30_f64, |m, &v| m.max(f64::from(v).abs()));
    a.iter().zip(b).fold(0.0, |worst, (&x, &y)| {
        let d = (f64::from(x) - f64::from(y)).abs();
        if d.is_nan() {
            f64::INFINITY
        } else {
            worst.max(d / scale)
        }
    })
}

#[test]
fn graph_replay_equals_the_plain_path() {
    let (device, _) = gpu();
    for dtype in DType::ALL {
        for strategy in [Strategy::Cublas, Strategy::CublasLt, Strategy::Fused] {
            let network = network(dtype);
            let options = PlanOptions {
                max_batch: 1000,
                dtype: Some(dtype),
                strategy,
                ..PlanOptions::default()
            };
            let plain = compile(&network, &device, options.clone());
            let graphs = compile(
                &network,
                &device,
                PlanOptions {
                    cuda_graphs: true,
                    ..options
                },
            );
            for rows in ROWS {
                // The first call captures; the next ones replay, each with new input.
                for call in 0..3 {
                    let x = input(rows, (rows * 10 + call) as u64);
                    let want = plain.forward(x.view()).expect("plain");
                    let got = graphs.forward(x.view()).expect("graph");
                    let gap = gap(&got, &want);
                    assert!(
                        gap <= 1e-6,
                        "{dtype} {strategy} rows {rows} call {call}: graph differs by {gap:e}"
                    );
                }
                let status = graphs.graph_status();
                let line = format!("rows {rows}: captured, replayed 2 time(s)");
                assert!(
                    status.iter().any(|l| l == &line),
                    "{dtype} {strategy}: expected `{line}` in {status:?}"
                );
            }
        }
    }
}

#[test]
fn graphs_are_off_by_default_and_say_so() {
    let (device, _) = gpu();
    let plan = compile(
        &network(DType::F32),
        &device,
        PlanOptions::with_max_batch(8),
    );
    plan.forward(input(8, 1).view()).expect("forward");
    assert_eq!(plan.graph_status(), ["cuda graphs: off"]);
}

#[test]
fn concurrent_callers_with_graphs_get_their_own_results() {
    let (device, _) = gpu();
    let network = network(DType::BF16);
    let options = PlanOptions {
        max_batch: 64,
        dtype: Some(DType::BF16),
        ..PlanOptions::default()
    };
    let plain = compile(&network, &device, options.clone());
    let graphs = Arc::new(compile(
        &network,
        &device,
        PlanOptions {
            cuda_graphs: true,
            ..options
        },
    ));
    let cases: Vec<(Array2<f32>, Array2<f32>)> = (0..16)
        .map(|i| {
            let rows = [3, 17, 64, 1][i % 4];
            let x = input(rows, 500 + i as u64);
            let y = plain.forward(x.view()).expect("plain");
            (x, y)
        })
        .collect();
    let cases = Arc::new(cases);
    let workers: Vec<_> = (0..8)
        .map(|t| {
            let (graphs, cases) = (Arc::clone(&graphs), Arc::clone(&cases));
            thread::spawn(move || {
                for round in 0..25 {
                    let (x, want) = &cases[(t * 3 + round) % cases.len()];
                    let got = graphs.forward(x.view()).expect("graph forward");
                    let gap = gap(&got, want);
                    assert!(gap <= 1e-6, "thread {t} round {round}: off by {gap:e}");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a caller panicked");
    }
    let status = graphs.graph_status();
    assert!(
        status.iter().any(|l| l.contains(": captured")),
        "nothing was captured: {status:?}"
    );
}

#[test]
fn the_tuning_cache_is_written_reread_and_spares_a_second_timing() {
    let (device, cuda) = gpu();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("mlp.safetensors");
    let path = TuningCache::path_beside(&model);
    let network = network(DType::F16);
    let options = |cache: &Arc<TuningCache>| PlanOptions {
        max_batch: 512,
        dtype: Some(DType::F16),
        strategy: Strategy::Auto,
        tuning: Some(Arc::clone(cache)),
        ..PlanOptions::default()
    };

    let cache = Arc::new(TuningCache::with_file(&path));
    let before = cuda.tuning_runs();
    let first = compile(&network, &device, options(&cache));
    assert_eq!(cuda.tuning_runs() - before, 3, "every layer is timed once");
    assert_eq!(cache.len(), 3);
    cache.save().expect("save");
    assert!(path.exists(), "no tuning file at {}", path.display());

    // The same device again: its own cache answers, nothing is timed.
    let again = compile(
        &network,
        &device,
        PlanOptions {
            dtype: Some(DType::F16),
            ..PlanOptions::with_max_batch(512)
        },
    );
    assert_eq!(cuda.tuning_runs() - before, 3, "the second compile timed");
    assert!(again
        .kernel_choices()
        .iter()
        .all(|c| c.contains("auto: cached")));
    let kernels = |plan: &Plan| -> Vec<String> {
        plan.kernel_choices()
            .iter()
            .map(|c| c.split(" [").next().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(kernels(&first), kernels(&again));

    // A fresh device (empty in-memory cache) with the file re-read: nothing is timed.
    let (fresh_device, fresh) = gpu();
    let reread = Arc::new(TuningCache::with_file(&path));
    assert_eq!(reread.len(), 3);
    let from_file = compile(&network, &fresh_device, options(&reread));
    assert_eq!(fresh.tuning_runs(), 0, "the file's choices were not used");
    assert_eq!(kernels(&first), kernels(&from_file));

    // A stale file naming a kernel this build lacks is ignored, and re-measured.
    let text = std::fs::read_to_string(&path).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    for record in json["layers"].as_object_mut().unwrap().values_mut() {
        record["choice"] = serde_json::Value::from("warp_specialized_v9");
    }
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let (stale_device, stale) = gpu();
    let stale_cache = Arc::new(TuningCache::with_file(&path));
    let plan = compile(&network, &stale_device, options(&stale_cache));
    assert_eq!(stale.tuning_runs(), 3, "stale entries must be re-timed");
    assert!(plan.forward(input(5, 2).view()).is_ok());
}

#[test]
fn resident_timing_and_copy_timing_are_positive() {
    let (device, cuda) = gpu();
    let plan = compile(
        &network(DType::F32),
        &device,
        PlanOptions::with_max_batch(256),
    );
    let ms = plan.time_resident_pass(256, 5).expect("resident");
    assert!(ms > 0.0 && ms.is_finite(), "{ms}");
    let (up, down) = vecprop::bench::bench_copies(&cuda, 1 << 20, 1 << 16, 5).expect("copies");
    assert!(up > 0.0 && down > 0.0, "{up} {down}");
}
