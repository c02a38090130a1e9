//! Small batches and narrow layers on the CPU (issue 21), old and new kernels side by side
//! in one run: `cargo bench --bench all -- small_batch`.
//!
//! `small_batch_layer` times one dense+sigmoid layer two ways: `gemm`, the `gemm` crate plus
//! the epilogue sweep ([`dense_forward`], what every layer ran before), and `chosen`, what a
//! plan now runs ([`CpuDense::forward`]: the packed panel kernel for these shapes). The
//! ratio of the two is the result; absolute times on a shared 2-core machine are noisy.
//! Criterion has no FLOP unit, so throughput is given as multiply-adds, labelled elements.

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use ndarray::Array2;
use vecprop::bench::{layer_parameters, Shape};
use vecprop::device::cpu::{dense_forward, CpuDense};
use vecprop::tensor::random_batch;
use vecprop::Activation;

const SHAPES: [(usize, usize, usize); 6] = [
    (1, 784, 512),
    (8, 784, 512),
    (64, 784, 512),
    (1, 512, 256),
    (64, 256, 10),
    (65536, 64, 64),
];

fn small_batch_layer(c: &mut Criterion) {
    let mut group = c.benchmark_group("small_batch_layer");
    group.sample_size(20);
    let threads = rayon::current_num_threads();
    for (m, k, n) in SHAPES {
        let shape = Shape { m, k, n };
        let input = random_batch(m, k, 1);
        let (weight, bias) = layer_parameters(shape);
        let layer = CpuDense::new(weight.clone(), bias.clone(), Activation::Sigmoid);
        let mut out = Array2::zeros((m, n));
        group.throughput(Throughput::Elements((m * k * n) as u64));
        group.bench_function(BenchmarkId::new("gemm", shape), |b| {
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
        group.bench_function(BenchmarkId::new("chosen", shape), |b| {
            b.iter(|| layer.forward(input.view(), out.view_mut(), threads))
        });
    }
    group.finish();
}

criterion_group!(benches, small_batch_layer);
