//! Every error a user can cause gets its own clear message.

use crate::helpers;

use helpers::*;
use ndarray::Array2;
use safetensors::tensor::Dtype;
use vecprop::{io, Activation, Device, Error, PlanOptions};

/// The message of the error `result` must hold, checked to contain every fragment.
#[track_caller]
fn assert_message<T: std::fmt::Debug>(result: vecprop::Result<T>, fragments: &[&str]) -> Error {
    let err = result.expect_err("expected an error");
    let message = err.to_string();
    for fragment in fragments {
        assert!(message.contains(fragment), "`{fragment}` not in: {message}");
    }
    assert!(!message.contains('\n'), "multi-line message: {message}");
    err
}

fn model_file(
    dir: &tempfile::TempDir,
    tensors: &[Tensor],
    activations: Option<&str>,
) -> std::path::PathBuf {
    let path = dir.path().join("model.safetensors");
    write_safetensors(&path, tensors, activations);
    path
}

#[test]
fn missing_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.safetensors");
    let err = assert_message(
        io::load_model(&path, None),
        &["cannot access", "nope.safetensors", "No such file"],
    );
    assert!(matches!(err, Error::Io { .. }));
}

#[test]
fn unreadable_model_path() {
    let dir = tempfile::tempdir().unwrap();
    let err = assert_message(
        io::load_model(dir.path(), None),
        &["cannot access", "directory"],
    );
    assert!(err.to_string().contains(&dir.path().display().to_string()));
}

#[test]
fn not_a_safetensors_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    std::fs::write(&path, b"this is not a model at all").unwrap();
    let err = assert_message(
        io::load_model(&path, None),
        &["model.safetensors", "is not a valid safetensors model"],
    );
    assert!(matches!(err, Error::InvalidModelFile { .. }));
}

#[test]
fn truncated_safetensors_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    io::save_model(&worked_example(), &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
    assert_message(
        io::load_model(&path, None),
        &["is not a valid safetensors model"],
    );
    std::fs::write(&path, &bytes[..6]).unwrap();
    assert_message(
        io::load_model(&path, None),
        &["is not a valid safetensors model"],
    );
}

#[test]
fn weight_without_bias_is_a_bias_free_layer() {
    let dir = tempfile::tempdir().unwrap();
    let [weight, _] = torch_layer("fc1", 2, 3, 1.0);
    let path = model_file(&dir, &[weight], Some("relu"));
    let network = io::load_model(&path, None).unwrap();
    assert_eq!(network.layers()[0].bias(), ndarray::Array1::<f32>::zeros(3));
}

#[test]
fn a_transposed_weight_gets_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    // A Keras-style [inputs, units] kernel of 2 inputs and 3 units, with its 3-unit bias.
    let tensors = [
        f32_tensor("0.weight", &[2, 3], &[0.0; 6]),
        f32_tensor("0.bias", &[3], &[0.0; 3]),
    ];
    let path = model_file(&dir, &tensors, Some("relu"));
    assert_message(
        io::load_model(&path, None),
        &[
            "layer `0`",
            "`0.bias` has 3 elements",
            "transposed",
            "kernel.T",
        ],
    );
}

#[test]
fn tensors_of_other_modules_name_the_module_kind_the_same_way_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = Vec::new();
    tensors.extend(torch_layer("0", 2, 3, 1.0));
    tensors.push(f32_tensor("1.running_mean", &[3], &[0.0; 3]));
    tensors.push(f32_tensor("2.weight_ih_l0", &[3, 3], &[0.0; 9]));
    tensors.push(f32_tensor("3.in_proj_weight", &[3, 3], &[0.0; 9]));
    let path = model_file(&dir, &tensors, Some("relu"));
    let first = assert_message(
        io::load_model(&path, None),
        &["layer `1`", "`1.running_var`", "BatchNorm"],
    )
    .to_string();
    for _ in 0..5 {
        assert_eq!(io::load_model(&path, None).unwrap_err().to_string(), first);
    }
    let tensors = [tensors[0].clone(), tensors[1].clone(), tensors[3].clone()];
    let path = model_file(&dir, &tensors, Some("relu"));
    assert_message(
        io::load_model(&path, None),
        &["`2.weight_ih_l0`", "RNN/LSTM/GRU"],
    );
}

#[test]
fn module_names_that_give_no_order_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = Vec::new();
    tensors.extend(torch_layer("encoder.0", 2, 3, 1.0));
    tensors.extend(torch_layer("head", 3, 1, 1.0));
    let path = model_file(&dir, &tensors, Some("relu,linear"));
    assert_message(
        io::load_model(&path, None),
        &[
            "`encoder.0` and `head` do not say which runs first",
            "torch.onnx.export",
        ],
    );
}

#[test]
fn bias_without_weight() {
    let dir = tempfile::tempdir().unwrap();
    let [w0, b0] = torch_layer("0", 2, 3, 1.0);
    let [_, b2] = torch_layer("2", 3, 1, 1.0);
    let path = model_file(&dir, &[w0, b0, b2], Some("relu,linear"));
    assert_message(
        io::load_model(&path, None),
        &["layer `2` has `2.bias` but no `2.weight`"],
    );
}

#[test]
fn widths_that_do_not_chain() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = Vec::new();
    tensors.extend(torch_layer("0", 2, 3, 1.0));
    tensors.extend(torch_layer("2", 5, 4, 1.0));
    let path = model_file(&dir, &tensors, Some("relu,linear"));
    let err = assert_message(
        io::load_model(&path, None),
        &[
            "layer `2` takes 5 inputs",
            "(5, 4)",
            "receives 3 from layer `0`",
            "output width 3",
        ],
    );
    assert!(matches!(err, Error::WidthMismatch { .. }));
}

#[test]
fn bad_tensor_ranks_names_and_dtypes() {
    let dir = tempfile::tempdir().unwrap();
    let tensors = [
        f32_tensor("0.weight", &[6], &[0.0; 6]),
        f32_tensor("0.bias", &[3], &[0.0; 3]),
    ];
    let path = model_file(&dir, &tensors, Some("relu"));
    assert_message(
        io::load_model(&path, None),
        &["layer `0`", "`0.weight` is 1-D", "LayerNorm"],
    );

    let tensors = [
        f32_tensor("0.weight", &[3, 2], &[0.0; 6]),
        f32_tensor("0.bias", &[1, 3], &[0.0; 3]),
    ];
    let path = model_file(&dir, &tensors, Some("relu"));
    assert_message(
        io::load_model(&path, None),
        &["`0.bias` has shape [1, 3]", "1-D"],
    );

    let tensors = [f32_tensor("0.weight", &[3, 2, 1, 1], &[0.0; 6])];
    let path = model_file(&dir, &tensors, Some("relu"));
    assert_message(
        io::load_model(&path, None),
        &["`0.weight` has shape [3, 2, 1, 1]", "Conv2d"],
    );

    let tensors = [
        ("0.weight", Dtype::I32, vec![3, 2], vec![0u8; 24]),
        f32_tensor("0.bias", &[3], &[0.0; 3]),
    ];
    let path = model_file(&dir, &tensors, Some("relu"));
    let err = assert_message(
        io::load_model(&path, None),
        &["unsupported dtype `I32`", "`0.weight`"],
    );
    assert!(matches!(err, Error::UnsupportedDType { .. }));
}

#[test]
fn model_without_layers() {
    let dir = tempfile::tempdir().unwrap();
    let path = model_file(&dir, &[], Some("relu"));
    assert_message(io::load_model(&path, None), &["holds no dense layers"]);
}

#[test]
fn unknown_activation() {
    let dir = tempfile::tempdir().unwrap();
    let path = model_file(&dir, &torch_layer("0", 2, 3, 1.0), Some("swish"));
    assert_message(
        io::load_model(&path, None),
        &["unknown activation `swish`", "sigmoid, relu"],
    );
}

#[test]
fn activation_count_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let path = model_file(&dir, &torch_layer("0", 2, 3, 1.0), Some("relu,linear"));
    assert_message(
        io::load_model(&path, None),
        &[
            "the model has 1 dense layers but 2 activations were given",
            "metadata",
        ],
    );
    let list = [Activation::Relu, Activation::Relu, Activation::Relu];
    assert_message(
        io::load_model(&path, Some(&list)),
        &["1 dense layers but 3 activations were given", "override"],
    );
}

#[test]
fn missing_activations() {
    let dir = tempfile::tempdir().unwrap();
    let path = model_file(&dir, &torch_layer("0", 2, 3, 1.0), None);
    let err = assert_message(
        io::load_model(&path, None),
        &["has no `activations` metadata entry", "--activations"],
    );
    assert!(matches!(err, Error::MissingActivations { .. }));
    // An override makes the metadata unnecessary.
    assert!(io::load_model(&path, Some(&[Activation::Tanh])).is_ok());
}

/// Runs the worked example over an input .npy given as raw bytes.
fn forward_bytes(npy: Vec<u8>) -> (vecprop::Result<(usize, usize)>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    std::fs::write(&input, npy).unwrap();
    let plan = worked_example()
        .compile(&Device::cpu(), PlanOptions::default())
        .unwrap();
    let result = io::forward_npy(&plan, &input, &output, 4096, |_, _| {});
    (result, files_in(dir.path()))
}

#[test]
fn input_of_the_wrong_width() {
    let (result, files) =
        forward_bytes(npy_bytes(1, "<f4", false, "(2, 3)", &f32_bytes(&[0.0; 6])));
    assert_message(result, &["input has 3 columns but the network expects 2"]);
    assert_eq!(files, ["x.npy"], "no output may be left behind");
}

#[test]
fn input_of_the_wrong_dimensionality() {
    let (result, _) = forward_bytes(npy_bytes(1, "<f4", false, "(4,)", &f32_bytes(&[0.0; 4])));
    assert_message(
        result,
        &["must be a 2-D array", "1 dimensions with shape [4]"],
    );
    let (result, files) = forward_bytes(npy_bytes(
        1,
        "<f4",
        false,
        "(2, 2, 2)",
        &f32_bytes(&[0.0; 8]),
    ));
    assert_message(
        result,
        &["must be a 2-D array", "3 dimensions with shape [2, 2, 2]"],
    );
    assert_eq!(files, ["x.npy"]);
}

#[test]
fn input_of_an_unsupported_dtype() {
    let (result, _) = forward_bytes(npy_bytes(1, "<i8", false, "(1, 2)", &[0u8; 16]));
    let err = assert_message(result, &["unsupported dtype `<i8`", "x.npy", "<f4"]);
    assert!(matches!(err, Error::UnsupportedDType { .. }));
    let (result, _) = forward_bytes(npy_bytes(1, ">i4", false, "(1, 2)", &[0u8; 8]));
    assert_message(result, &["unsupported dtype `>i4`"]);
}

#[test]
fn truncated_or_malformed_input() {
    let (result, files) =
        forward_bytes(npy_bytes(1, "<f4", false, "(3, 2)", &f32_bytes(&[0.0; 5])));
    let err = assert_message(
        result,
        &[
            "x.npy is not a valid .npy file",
            "truncated",
            "needs 24 bytes",
            "holds 20",
        ],
    );
    assert!(matches!(err, Error::InvalidNpy { .. }));
    assert_eq!(files, ["x.npy"]);

    let whole = npy_bytes(1, "<f4", false, "(3, 2)", &[]);
    let (result, _) = forward_bytes(whole[..40].to_vec());
    assert_message(result, &["truncated"]);
    let (result, _) = forward_bytes(b"PK\x03\x04 a zip file".to_vec());
    assert_message(result, &["is not a valid .npy file", "magic"]);
}

#[test]
fn empty_batch() {
    // From a file, an empty batch writes an empty but complete output...
    let (result, files) = forward_bytes(npy_bytes(1, "<f4", false, "(0, 2)", &[]));
    assert_eq!(result.unwrap(), (0, 3));
    assert_eq!(files, ["x.npy", "y.npy"]);
    // ...unless its width is wrong: that is still an error, with nothing written.
    let (result, files) = forward_bytes(npy_bytes(1, "<f4", false, "(0, 5)", &[]));
    assert_message(result, &["input has 5 columns but the network expects 2"]);
    assert_eq!(files, ["x.npy"]);

    // In memory, an empty batch has an empty output, as in PyTorch.
    let plan = worked_example()
        .compile(&Device::cpu(), PlanOptions::default())
        .unwrap();
    let output = plan.forward(Array2::zeros((0, 2)).view()).unwrap();
    assert_eq!(output.dim(), (0, 3));
}
