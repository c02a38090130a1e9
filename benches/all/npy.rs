//! Criterion benchmarks of the `.npy` data path on the CPU, in GB/s.
//!
//! `npy_read` reads a 32,768 x 784 batch (103 MB as float32, in the page cache) in chunks of
//! 4,096 rows into one reused f32 buffer, as `vecprop infer` does, for each element type
//! on disk. Its throughput counts the f32 bytes delivered, so the element types compare
//! directly. `plain_read` is the ceiling: the same bytes read with `read_exact` into a
//! reused byte buffer, with no .npy code at all.
//!
//! `npy_write` appends the same batch through [`NpyWriter`] in chunks of 4,096 rows (the file
//! is dropped unfinished, so the commit's fsync is not timed); `plain_write` writes the same
//! bytes with `write_all` to a plain file.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use half::f16;
use ndarray::{s, Array2};
use vecprop::io::{NpyReader, NpyWriter};
use vecprop::tensor::random_batch;

const ROWS: usize = 32_768;
const COLS: usize = 784;
const CHUNK: usize = 4_096;

/// A version 1.0 `.npy` file of `batch` stored as `descr` (`<f4`, `>f4`, `<f2` or `<f8`).
fn write_as(path: &Path, batch: &Array2<f32>, descr: &str) {
    let data: Vec<u8> = match descr {
        "<f4" => batch.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ">f4" => batch.iter().flat_map(|v| v.to_be_bytes()).collect(),
        "<f2" => batch
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_le_bytes())
            .collect(),
        "<f8" => batch
            .iter()
            .flat_map(|v| f64::from(*v).to_le_bytes())
            .collect(),
        other => panic!("no encoder for {other}"),
    };
    let mut dict = format!(
        "{{'descr': '{descr}', 'fortran_order': False, 'shape': ({}, {}), }}",
        batch.nrows(),
        batch.ncols()
    );
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut file = File::create(path).expect("create the bench input");
    file.write_all(b"\x93NUMPY\x01\x00").unwrap();
    file.write_all(&(dict.len() as u16).to_le_bytes()).unwrap();
    file.write_all(dict.as_bytes()).unwrap();
    file.write_all(&data).unwrap();
}

fn npy_read(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let batch = random_batch(ROWS, COLS, 1);
    let mut group = c.benchmark_group("npy_read");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((ROWS * COLS * 4) as u64));
    let mut out = Array2::<f32>::zeros((CHUNK, COLS));
    for descr in ["<f4", ">f4", "<f2", "<f8"] {
        let path = dir.path().join(format!("x{}.npy", &descr[1..]));
        write_as(&path, &batch, descr);
        group.bench_function(BenchmarkId::from_parameter(descr), |b| {
            b.iter(|| {
                let mut reader = NpyReader::open(&path).expect("open");
                for start in (0..ROWS).step_by(CHUNK) {
                    reader
                        .read_rows_into(start, out.view_mut())
                        .expect("read rows");
                }
            })
        });
    }
    let path = dir.path().join("xf4.npy");
    let mut bytes = vec![0u8; CHUNK * COLS * 4];
    group.bench_function("plain_read", |b| {
        b.iter(|| {
            let mut file = File::open(&path).expect("open");
            file.read_exact(&mut [0u8; 128]).expect("header");
            for _ in (0..ROWS).step_by(CHUNK) {
                file.read_exact(&mut bytes).expect("read");
            }
        })
    });
    group.finish();
}

fn npy_write(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let batch = random_batch(ROWS, COLS, 2);
    let mut group = c.benchmark_group("npy_write");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((ROWS * COLS * 4) as u64));
    let path = dir.path().join("y.npy");
    group.bench_function("NpyWriter", |b| {
        b.iter(|| {
            let mut writer = NpyWriter::create(&path, COLS).expect("create");
            for start in (0..ROWS).step_by(CHUNK) {
                writer
                    .write_rows(batch.slice(s![start..start + CHUNK, ..]))
                    .expect("write rows");
            }
            // Dropped unfinished: the temporary file is removed, and no fsync is timed.
        })
    });
    let bytes: Vec<u8> = batch.iter().flat_map(|v| v.to_le_bytes()).collect();
    let plain = dir.path().join("plain.bin");
    group.bench_function("plain_write", |b| {
        b.iter(|| {
            let mut file = File::create(&plain).expect("create");
            for chunk in bytes.chunks(CHUNK * COLS * 4) {
                file.write_all(chunk).expect("write");
            }
        })
    });
    group.finish();
}

criterion_group!(benches, npy_read, npy_write);
