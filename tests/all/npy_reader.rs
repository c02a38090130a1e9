//! The .npy data path: every element type and byte order, pipes read front to back, buffers
//! of any layout, and `forward_npy` overlapping its reads, compute and writes.

use crate::common;
use crate::helpers;

use std::io::Read;

use common::{random_input, random_network, relative_error, worked_example};
use half::f16;
use helpers::{files_in, npy_bytes};
use ndarray::{s, Array2};
use vecprop::io::{self, ByteOrder, NpyDType, NpyReader};
use vecprop::{Activation, Device, Error, PlanOptions};

/// Values exact in float16, float32 and float64: eighths in [-64, 64), with the awkward ones.
fn exact_values(rows: usize, cols: usize) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(r, c)| match (r * cols + c) % 97 {
        0 => f32::INFINITY,
        1 => -f32::INFINITY,
        2 => 2f32.powi(-24), // the smallest float16 subnormal
        i => (i as f32 - 48.0) * 0.125 + r as f32 % 8.0,
    })
}

/// The bytes of `values` stored as `descr`, e.g. `>f2`.
fn encode(values: &Array2<f32>, descr: &str) -> Vec<u8> {
    let (dtype, order) = NpyDType::from_descr(descr).unwrap();
    let big = order == ByteOrder::Big;
    values
        .iter()
        .flat_map(|&v| match (dtype, big) {
            (NpyDType::F2, false) => f16::from_f32(v).to_le_bytes().to_vec(),
            (NpyDType::F2, true) => f16::from_f32(v).to_be_bytes().to_vec(),
            (NpyDType::F4, false) => v.to_le_bytes().to_vec(),
            (NpyDType::F4, true) => v.to_be_bytes().to_vec(),
            (NpyDType::F8, false) => f64::from(v).to_le_bytes().to_vec(),
            (NpyDType::F8, true) => f64::from(v).to_be_bytes().to_vec(),
        })
        .collect()
}

fn npy_file(values: &Array2<f32>, descr: &str) -> Vec<u8> {
    let shape = format!("({}, {})", values.nrows(), values.ncols());
    npy_bytes(1, descr, false, &shape, &encode(values, descr))
}

/// A byte source that cannot seek and hands out at most `step` bytes per read, as a pipe may.
struct Pipe {
    bytes: std::io::Cursor<Vec<u8>>,
    step: usize,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.step);
        self.bytes.read(&mut buf[..n])
    }
}

fn pipe(bytes: Vec<u8>, step: usize) -> Pipe {
    Pipe {
        bytes: std::io::Cursor::new(bytes),
        step,
    }
}

#[test]
fn every_float_width_and_byte_order_reads_as_f32() {
    let dir = tempfile::tempdir().unwrap();
    let x = exact_values(37, 5);
    for descr in ["<f2", ">f2", "<f4", ">f4", "<f8", ">f8"] {
        let path = dir.path().join("x.npy");
        std::fs::write(&path, npy_file(&x, descr)).unwrap();
        assert_eq!(io::read_npy(&path).unwrap(), x, "{descr}");

        let mut reader = NpyReader::open(&path).unwrap();
        assert_eq!(
            reader.dtype().descr(reader.byte_order()),
            descr,
            "reported type"
        );
        let mut chunked = Array2::zeros((0, 5));
        for start in (0..37).step_by(8) {
            let end = (start + 8).min(37);
            let rows = reader.read_rows(start, end).unwrap();
            chunked.append(ndarray::Axis(0), rows.view()).unwrap();
        }
        assert_eq!(chunked, x, "{descr} in chunks of 8");
    }
}

#[test]
fn other_element_types_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.npy");
    for descr in ["<i4", "|u1", "<c8", "<f16"] {
        std::fs::write(&path, npy_bytes(1, descr, false, "(1, 1)", &[0; 16])).unwrap();
        let err = io::read_npy(&path).unwrap_err();
        assert!(matches!(err, Error::UnsupportedDType { .. }), "{err}");
        assert!(err.to_string().contains(descr), "{err}");
    }
}

#[test]
fn a_pipe_is_read_front_to_back_in_chunks() {
    let x = random_input(1000, 13, 7);
    let bytes = npy_file(&x, "<f4");
    let mut reader = NpyReader::from_reader("<stdin>", pipe(bytes.clone(), 4093)).unwrap();
    assert_eq!(reader.shape(), (1000, 13));
    for start in (0..1000).step_by(17) {
        let end = (start + 17).min(1000);
        assert_eq!(
            reader.read_rows(start, end).unwrap(),
            x.slice(s![start..end, ..]),
            "rows {start}..{end}"
        );
    }

    // Skipping ahead is reading and dropping; going back is an error that says why.
    let mut reader = NpyReader::from_reader("<stdin>", pipe(bytes.clone(), 1 << 20)).unwrap();
    assert_eq!(
        reader.read_rows(500, 503).unwrap(),
        x.slice(s![500..503, ..])
    );
    let err = reader.read_rows(0, 1).unwrap_err();
    assert!(err.to_string().contains("<stdin>"), "{err}");
    assert!(err.to_string().contains("in order"), "{err}");

    // A stream cut short is found when its missing rows are read.
    let cut = bytes[..bytes.len() - 10].to_vec();
    let mut reader = NpyReader::from_reader("<stdin>", pipe(cut, 64)).unwrap();
    assert!(reader.read_rows(0, 900).is_ok());
    let err = reader.read_rows(900, 1000).unwrap_err();
    assert!(matches!(err, Error::InvalidNpy { .. }), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn a_fortran_order_pipe_reads_whole_but_not_in_later_chunks() {
    let x = exact_values(6, 4);
    let column_major: Vec<f32> = x.t().iter().copied().collect();
    let bytes = npy_bytes(1, "<f4", true, "(6, 4)", &helpers::f32_bytes(&column_major));
    let mut reader = NpyReader::from_reader("pipe", pipe(bytes.clone(), 5)).unwrap();
    assert_eq!(reader.read_rows(0, 6).unwrap(), x);
    // The first rows of every column lie ahead of the cursor; the next ones behind it.
    let mut reader = NpyReader::from_reader("pipe", pipe(bytes, 5)).unwrap();
    assert_eq!(reader.read_rows(0, 3).unwrap(), x.slice(s![0..3, ..]));
    let err = reader.read_rows(3, 6).unwrap_err();
    assert!(err.to_string().contains("Fortran"), "{err}");
}

#[test]
fn rows_land_in_buffers_of_any_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.npy");
    let x = random_input(9, 6, 2);
    for descr in ["<f4", "<f2"] {
        let want = if descr == "<f2" {
            x.mapv(|v| f16::from_f32(v).to_f32())
        } else {
            x.clone()
        };
        std::fs::write(&path, npy_file(&x, descr)).unwrap();
        let mut reader = NpyReader::open(&path).unwrap();
        // Columns reversed: not contiguous in memory.
        let mut out = Array2::from_elem((9, 6), f32::NAN);
        reader
            .read_rows_into(0, out.slice_mut(s![.., ..;-1]))
            .unwrap();
        assert_eq!(out.slice(s![.., ..;-1]), want, "{descr}");
        // Transposed storage (column-major) as the destination.
        let mut out = Array2::from_elem((6, 9), f32::NAN);
        reader
            .read_rows_into(0, out.view_mut().reversed_axes())
            .unwrap();
        assert_eq!(out.t(), want, "{descr}");
    }
}

#[test]
fn the_cpu_reads_wide_inputs_in_cache_sized_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    // 1,024 columns of f32 are 4 KiB a row: 2 MiB is 512 rows, whatever the batch size.
    let x = random_input(1000, 1024, 5);
    io::write_npy(&input, &x).unwrap();
    let network = random_network(&[1024, 2], &[Activation::Linear], 6);
    let plan = network
        .compile(&Device::cpu(), PlanOptions::with_max_batch(4096))
        .unwrap();
    let mut seen = Vec::new();
    io::forward_npy(&plan, &input, &output, 4096, |done, _| seen.push(done)).unwrap();
    assert_eq!(seen, [512, 1000]);
    let expected = plan.forward(x.view()).unwrap().mapv(f64::from);
    assert!(relative_error(&io::read_npy(&output).unwrap(), &expected) <= 1e-6);
}

fn forward_npy_matches_forward_on_awkward_shapes(device: &Device) {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    let network = random_network(&[19, 23, 5], &[Activation::Relu, Activation::Sigmoid], 4);
    let plan = network
        .compile(device, PlanOptions::with_max_batch(64))
        .unwrap();
    for rows in [1, 3, 17, 1000] {
        let x = random_input(rows, 19, rows as u64);
        io::write_npy(&input, &x).unwrap();
        let expected = plan.forward(x.view()).unwrap().mapv(f64::from);
        for chunk in [1, 7, 64, 4096] {
            let mut seen = Vec::new();
            let shape = io::forward_npy(&plan, &input, &output, chunk, |done, total| {
                seen.push((done, total));
            })
            .unwrap();
            assert_eq!(shape, (rows, 5));
            let want: Vec<(usize, usize)> = (1..=rows.div_ceil(chunk))
                .map(|i| ((i * chunk).min(rows), rows))
                .collect();
            assert_eq!(seen, want, "progress, {rows} rows in chunks of {chunk}");
            let got = io::read_npy(&output).unwrap();
            assert_eq!(got.dim(), (rows, 5));
            let error = relative_error(&got, &expected);
            assert!(error <= 1e-6, "{rows} rows, chunks of {chunk}: {error}");
        }
    }
}

fn forward_npy_reads_f16_input_and_pipes(device: &Device) {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("y.npy");
    let (network, x) = worked_example();
    let plan = network.compile(device, PlanOptions::default()).unwrap();
    // 200 and 17 are exact in float16.
    let reader = NpyReader::from_reader("<stdin>", pipe(npy_file(&x, "<f2"), 3)).unwrap();
    assert_eq!(
        io::forward_npy_from(&plan, reader, &output, 4096, |_, _| {}).unwrap(),
        (1, 3)
    );
    let y = io::read_npy(&output).unwrap();
    assert_eq!(y.mapv(f32::round), ndarray::array![[1.0, 0.0, 1.0]]);
}

fn forward_npy_from_a_cut_pipe_fails_and_leaves_nothing(device: &Device) {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("y.npy");
    let network = random_network(&[8, 3], &[Activation::Tanh], 1);
    let plan = network
        .compile(device, PlanOptions::with_max_batch(16))
        .unwrap();
    let bytes = npy_file(&random_input(500, 8, 3), "<f4");
    let cut = bytes[..bytes.len() - 4 * 8 * 100].to_vec();
    let reader = NpyReader::from_reader("<stdin>", pipe(cut, 1000)).unwrap();
    let mut last = 0;
    let err = io::forward_npy_from(&plan, reader, &output, 16, |done, _| last = done).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    assert!(last <= 400, "rows past the cut were reported done: {last}");
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

test_device!(
    forward_npy_matches_forward_on_awkward_shapes,
    forward_npy_reads_f16_input_and_pipes,
    forward_npy_from_a_cut_pipe_fails_and_leaves_nothing,
);
