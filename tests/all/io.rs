//! Round trips through the model and batch files.

use crate::helpers;

use helpers::*;
use ndarray::{array, s, Array2};
use safetensors::tensor::Dtype;
use vecprop::io::{self, NpyReader, NpyWriter};
use vecprop::{Activation, DType, Device, Network, PlanOptions};

fn three_layers(dtype: DType) -> Network {
    Network::builder(7)
        .dense(5, Activation::Sigmoid)
        .dense(4, Activation::Relu)
        .dense(3, Activation::Softmax)
        .seed(11)
        .dtype(dtype)
        .build()
        .unwrap()
}

#[test]
fn models_round_trip_in_every_dtype() {
    let dir = tempfile::tempdir().unwrap();
    for dtype in DType::ALL {
        let mut net = three_layers(dtype);
        // Non-zero biases, so that a bias that is dropped or misplaced shows.
        for (i, layer) in net.layers_mut().enumerate() {
            let units = layer.units();
            let bias = Array2::from_shape_fn((1, units), |(_, j)| 0.25 * (i + j) as f32 - 0.5);
            *layer = vecprop::Dense::new(
                layer.name(),
                layer.weight().clone(),
                bias.row(0).to_owned(),
                layer.activation(),
            )
            .unwrap();
        }
        net.set_dtype(dtype);
        let path = dir.path().join(format!("{dtype}.safetensors"));
        io::save_model(&net, &path).unwrap();
        let loaded = io::load_model(&path, None).unwrap();
        assert_eq!(loaded.dtype(), dtype);
        assert_eq!(loaded.layers().len(), 3);
        for (a, b) in net.layers().iter().zip(loaded.layers()) {
            assert_eq!(a.weight(), b.weight(), "{dtype}");
            assert_eq!(a.bias(), b.bias(), "{dtype}");
            assert_eq!(a.activation(), b.activation(), "{dtype}");
        }
    }
    assert_eq!(
        files_in(dir.path()),
        ["bf16.safetensors", "f16.safetensors", "f32.safetensors"]
    );
}

#[test]
fn saved_tensors_use_the_torch_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    io::save_model(&worked_example(), &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let weight = file.tensor("0.weight").unwrap();
    assert_eq!(weight.shape(), [3, 2]);
    assert_eq!(weight.data(), f32_bytes(&[1.0, -2.0, -3.0, 4.0, 5.0, -6.0]));
    assert_eq!(file.tensor("0.bias").unwrap().shape(), [3]);
}

#[test]
fn layers_run_in_the_order_of_their_trailing_integer() {
    let dir = tempfile::tempdir().unwrap();
    // Widths 2 -> 3 -> 4 -> 5 only chain in numeric order (9 before 10), not in text order.
    let mut tensors = Vec::new();
    tensors.extend(torch_layer("layers.10", 4, 5, 0.5));
    tensors.extend(torch_layer("layers.2", 2, 3, 0.5));
    tensors.extend(torch_layer("layers.9", 3, 4, 0.5));
    let path = dir.path().join("m.safetensors");
    write_safetensors(&path, &tensors, Some("relu,tanh,linear"));
    let net = io::load_model(&path, None).unwrap();
    let names: Vec<&str> = net.layers().iter().map(|l| l.name()).collect();
    assert_eq!(names, ["layers.2", "layers.9", "layers.10"]);
    let activations: Vec<Activation> = net.layers().iter().map(|l| l.activation()).collect();
    assert_eq!(
        activations,
        [Activation::Relu, Activation::Tanh, Activation::Linear]
    );

    // torch.nn.Sequential numbering: 0, 2, 4 (the activations sit at 1 and 3).
    let mut tensors = Vec::new();
    tensors.extend(torch_layer("4", 4, 1, 1.0));
    tensors.extend(torch_layer("0", 2, 3, 1.0));
    tensors.extend(torch_layer("2", 3, 4, 1.0));
    write_safetensors(&path, &tensors, Some("linear,linear,linear"));
    let net = io::load_model(&path, None).unwrap();
    assert_eq!((net.input_width(), net.output_width()), (2, 1));
    let y = net
        .compile(&Device::cpu(), PlanOptions::default())
        .unwrap()
        .forward(array![[1.0, 2.0]].view())
        .unwrap();
    assert_eq!(y, array![[3.0 * 3.0 * 4.0]]);
}

#[test]
fn f64_tensors_load_as_f32_and_mixed_dtypes_as_f32() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let tensors = vec![
        (
            "0.weight",
            Dtype::F64,
            vec![3, 2],
            f64_bytes(&[1.0, -2.0, -3.0, 4.0, 5.0, -6.0]),
        ),
        ("0.bias", Dtype::F64, vec![3], f64_bytes(&[-1.0, 1.0, 2.0])),
    ];
    write_safetensors(&path, &tensors, Some("sigmoid"));
    let net = io::load_model(&path, None).unwrap();
    assert_eq!(net.dtype(), DType::F32);
    assert_eq!(
        net.layers()[0].weight(),
        worked_example().layers()[0].weight()
    );
    assert_eq!(net.layers()[0].bias(), &array![-1.0, 1.0, 2.0]);

    let half_bytes: Vec<u8> = [1.0f32, 2.0, 3.0]
        .iter()
        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
        .collect();
    let tensors = vec![
        ("0.weight", Dtype::F16, vec![3, 1], half_bytes),
        ("0.bias", Dtype::F32, vec![3], f32_bytes(&[0.0; 3])),
    ];
    write_safetensors(&path, &tensors, Some("linear"));
    let net = io::load_model(&path, None).unwrap();
    assert_eq!(net.dtype(), DType::F32);
    assert_eq!(net.layers()[0].weight(), &array![[1.0, 2.0, 3.0]]);
}

#[test]
fn npy_round_trips_and_reads_f8() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.npy");
    let x = array![[1.5, -2.0, 3.25], [4.0, 5.0, -6.5]];
    io::write_npy(&path, &x).unwrap();
    assert_eq!(io::read_npy(&path).unwrap(), x);
    assert_eq!(files_in(dir.path()), ["x.npy"]);

    let values = [0.1f64, 0.2, 1e300, -0.3, 0.5, 1e-50];
    for major in [1, 2, 3] {
        std::fs::write(
            &path,
            npy_bytes(major, "<f8", false, "(2, 3)", &f64_bytes(&values)),
        )
        .unwrap();
        let read = io::read_npy(&path).unwrap();
        let expected = Array2::from_shape_fn((2, 3), |(i, j)| values[i * 3 + j] as f32);
        assert_eq!(read, expected, "version {major}");
    }
}

#[test]
fn fortran_order_is_read_column_major_including_row_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.npy");
    let x = Array2::from_shape_fn((5, 3), |(i, j)| (10 * i + j) as f32);
    // Column-major bytes: column 0 first.
    let column_major: Vec<f32> = x.t().iter().copied().collect();
    std::fs::write(
        &path,
        npy_bytes(1, "<f4", true, "(5, 3)", &f32_bytes(&column_major)),
    )
    .unwrap();
    assert_eq!(io::read_npy(&path).unwrap(), x);
    let mut reader = NpyReader::open(&path).unwrap();
    assert!(reader.fortran_order());
    assert_eq!(reader.read_rows(1, 4).unwrap(), x.slice(s![1..4, ..]));
    assert_eq!(reader.read_rows(4, 5).unwrap(), x.slice(s![4..5, ..]));
}

#[test]
fn npy_writer_streams_chunks_and_leaves_nothing_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("y.npy");
    let x = Array2::from_shape_fn((10, 4), |(i, j)| (i * 4 + j) as f32 * 0.5);
    let mut writer = NpyWriter::create(&path, 4).unwrap();
    for start in (0..10).step_by(3) {
        writer
            .write_rows(x.slice(s![start..(start + 3).min(10), ..]))
            .unwrap();
    }
    assert!(!path.exists(), "the file must not appear before finish");
    assert_eq!(writer.finish().unwrap(), 10);
    assert_eq!(io::read_npy(&path).unwrap(), x);

    let other = dir.path().join("z.npy");
    let mut writer = NpyWriter::create(&other, 4).unwrap();
    writer.write_rows(x.view()).unwrap();
    assert!(writer.write_rows(array![[1.0]].view()).is_err());
    drop(writer);
    assert_eq!(files_in(dir.path()), ["y.npy"]);
}

#[test]
fn forward_npy_in_chunks_equals_one_forward_pass() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    let net = three_layers(DType::F32);
    let x = vecprop::tensor::random_batch(11, 7, 3);
    io::write_npy(&input, &x).unwrap();
    let plan = net
        .compile(&Device::cpu(), PlanOptions::with_max_batch(4))
        .unwrap();
    let mut calls = Vec::new();
    let shape = io::forward_npy(&plan, &input, &output, 3, |done, total| {
        calls.push((done, total))
    })
    .unwrap();
    assert_eq!(shape, (11, 3));
    assert_eq!(calls, [(3, 11), (6, 11), (9, 11), (11, 11)]);
    let expected = plan.forward(x.view()).unwrap();
    let got = io::read_npy(&output).unwrap();
    assert_eq!(got.dim(), expected.dim());
    for (a, b) in got.iter().zip(&expected) {
        assert!((a - b).abs() <= 1e-6, "{a} vs {b}");
    }
}

/// NumPy itself reads the .npy files vecprop writes. It needs a `python3` with numpy on
/// PATH, which a bare machine lacks, so plain `cargo test` lists it as ignored (never as a
/// silent pass) and scripts/python-ci.sh runs it with its venv's python first on PATH.
#[test]
#[ignore = "needs python3 with numpy on PATH; scripts/python-ci.sh runs it (--ignored)"]
fn numpy_reads_what_we_write() {
    let python = std::process::Command::new("python3")
        .args(["-c", "import numpy"])
        .status();
    assert!(
        matches!(python, Ok(s) if s.success()),
        "this test needs a python3 with numpy on PATH"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("y.npy");
    io::write_npy(&path, &array![[1.0, 2.5], [-3.0, 4.0], [5.0, 6.0]]).unwrap();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import numpy as np; a = np.load({:?}); print(a.dtype, a.shape, a.flags['C_CONTIGUOUS'], a.sum())",
            path.display().to_string()
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "float32 (3, 2) True 15.5"
    );
}
