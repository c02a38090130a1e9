//! Criterion benchmarks of one dense layer (GEMM + bias + sigmoid) and of a whole network.
//!
//! `cpu_layer` times `dense_forward`, the kernel `vecprop bench --device cpu` times.
//! `network` times `Plan::forward` host to host, on the CPU and, with `--features cuda`,
//! on GPU 0 once per kernel strategy. Device-only GPU kernel timings with CUDA events come
//! from `vecprop bench --device cuda`.

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use ndarray::Array2;
use vecprop::bench::{layer_parameters, CPU_DEFAULT_SHAPES};
use vecprop::device::cpu::dense_forward;
use vecprop::tensor::random_batch;
use vecprop::{Activation, DType, Device, Network, PlanOptions, Strategy};

fn cpu_layer(c: &mut Criterion) {
    let mut group = c.benchmark_group("cpu_layer");
    group.sample_size(10);
    let threads = rayon::current_num_threads();
    for shape in CPU_DEFAULT_SHAPES {
        let input = random_batch(shape.m, shape.k, 1);
        let (weight, bias) = layer_parameters(shape);
        let mut out = Array2::zeros((shape.m, shape.n));
        // Criterion has no FLOP unit: report the layer's minimum traffic, labelled as bytes.
        group.throughput(Throughput::Bytes(shape.min_bytes(DType::F32) as u64));
        group.bench_function(BenchmarkId::from_parameter(shape), |b| {
            b.iter(|| {
                dense_forward(
                    input.view(),
                    weight.view(),
                    &bias,
                    Activation::Sigmoid,
                    out.view_mut(),
                    threads,
                )
            })
        });
    }
    group.finish();
}

/// The demo's 784-512-256-10 network (sigmoid, relu, linear).
fn demo_network() -> Network {
    Network::builder(784)
        .dense(512, Activation::Sigmoid)
        .dense(256, Activation::Relu)
        .dense(10, Activation::Linear)
        .build()
        .expect("a valid network")
}

fn devices() -> Vec<(String, Device, Strategy)> {
    let mut devices = vec![("cpu".to_string(), Device::cpu(), Strategy::Auto)];
    if cfg!(feature = "cuda") {
        match Device::cuda(0) {
            Ok(gpu) => {
                for strategy in [
                    Strategy::Cublas,
                    Strategy::CublasLt,
                    Strategy::Fused,
                    Strategy::Auto,
                ] {
                    devices.push((format!("cuda-{strategy}"), gpu.clone(), strategy));
                }
            }
            Err(err) => eprintln!("skipping GPU benchmarks: {err}"),
        }
    }
    devices
}

fn network(c: &mut Criterion) {
    let mut group = c.benchmark_group("network_784_512_256_10");
    group.sample_size(10);
    let network = demo_network();
    for rows in [1, 64, 4096] {
        let input = random_batch(rows, 784, 4);
        // Elements are examples: criterion prints examples per second.
        group.throughput(Throughput::Elements(rows as u64));
        for (label, device, strategy) in devices() {
            let options = PlanOptions {
                max_batch: rows,
                strategy,
                ..PlanOptions::default()
            };
            let plan = match network.compile(&device, options) {
                Ok(plan) => plan,
                Err(err) => {
                    eprintln!("skipping {label}: {err}");
                    continue;
                }
            };
            let mut out = Array2::zeros((rows, 10));
            group.bench_function(BenchmarkId::new(label, rows), |b| {
                b.iter(|| {
                    plan.forward_into(input.view(), out.view_mut())
                        .expect("forward")
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, cpu_layer, network);
