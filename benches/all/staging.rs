//! Criterion benchmark of host staging, the host work of every GPU chunk: converting f32
//! rows into the plan's dtype packed into a staging buffer, and the output back. It needs
//! no GPU; criterion reports GB/s of f32 data moved (the side the caller holds).
//!
//! Compare the rates with the bus (about 55 GB/s each way on the H100 run): staging keeps
//! up when it is faster than the copies it feeds. `memcpy` is the same machine's ceiling,
//! measured side by side.

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use half::{bf16, f16};
use ndarray::Array2;
use vecprop::device::staging::{pack_rows, unpack_rows, Staged};
use vecprop::tensor::random_batch;

/// A 16,384 × 784 f32 chunk (51 MB): the input side of a large streamed chunk.
const ROWS: usize = 16_384;
const COLS: usize = 784;

fn pack_and_unpack<T: Staged>(c: &mut Criterion, name: &str) {
    let input = random_batch(ROWS, COLS, 11);
    let mut staged = vec![T::default(); ROWS * COLS];
    let mut output = Array2::<f32>::zeros((ROWS, COLS));
    let bytes = (ROWS * COLS * std::mem::size_of::<f32>()) as u64;
    let mut group = c.benchmark_group("staging");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function(BenchmarkId::new("pack", name), |b| {
        b.iter(|| pack_rows(input.view(), &mut staged))
    });
    group.bench_function(BenchmarkId::new("unpack", name), |b| {
        b.iter(|| unpack_rows(&staged, output.view_mut()))
    });
    group.finish();
}

fn staging(c: &mut Criterion) {
    let source = vec![1.5f32; ROWS * COLS];
    let mut target = vec![0.0f32; ROWS * COLS];
    let mut group = c.benchmark_group("staging");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((ROWS * COLS * 4) as u64));
    group.bench_function("memcpy_one_thread", |b| {
        b.iter(|| target.copy_from_slice(&source))
    });
    group.finish();
    pack_and_unpack::<f32>(c, "f32");
    pack_and_unpack::<f16>(c, "f16");
    pack_and_unpack::<bf16>(c, "bf16");
}

criterion_group!(benches, staging);
