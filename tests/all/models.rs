//! Models as people have them, against PyTorch's outputs: nested state_dicts, bias-free
//! Linear, BatchNorm folded before and after, ONNX from both exporters and with external
//! data, and the files vecprop refuses (fixtures by scripts/make_model_fixtures.py).

use std::path::Path;
use std::process::Command;

use vecprop::{io, Activation, Device, Error, PlanOptions};

use crate::helpers::{fixture, max_scaled_error};

/// Loads `model`, runs the shared input batch through it on the CPU, and checks the output
/// against `models_<reference>_output.npy` to 1e-5.
fn matches_pytorch(model: &str, reference: &str) -> vecprop::Network {
    let network = io::load_model(fixture(model), None).unwrap();
    let input = io::read_npy(fixture("torch_input.npy")).unwrap();
    let plan = network
        .compile(&Device::cpu(), PlanOptions::with_max_batch(16))
        .unwrap();
    let output = plan.forward(input.view()).unwrap();
    let want = io::read_npy(fixture(&format!("models_{reference}_output.npy"))).unwrap();
    let err = max_scaled_error(&output, &want);
    assert!(err <= 1e-5, "{model}: max scaled error {err:e}");
    network
}

fn activations(network: &vecprop::Network) -> Vec<Activation> {
    network.layers().iter().map(|l| l.activation()).collect()
}

#[test]
fn a_nested_state_dict_runs_in_module_order() {
    let network = matches_pytorch("models_nested.safetensors", "nested");
    let names: Vec<&str> = network.layers().iter().map(|l| l.name()).collect();
    assert_eq!(names, ["0.0", "1.0.0", "1.1", "10"]);
    // 1.0.0 has no bias in the file: a zero bias.
    assert!(network.layers()[1].bias().iter().all(|b| *b == 0.0));
}

#[test]
fn batchnorm_folds_before_and_after_a_linear() {
    let network = matches_pytorch("models_bn.safetensors", "bn");
    let folded: Vec<&[String]> = network.layers().iter().map(|l| l.folded()).collect();
    assert_eq!(
        folded,
        [
            &["BatchNorm `0`".to_string(), "BatchNorm `2`".to_string()][..],
            &["BatchNorm `5`".to_string()][..],
            &[][..],
        ]
    );
    let summary = network.summary();
    assert!(summary.contains("BatchNorm `5`"), "{summary}");
}

#[test]
fn batchnorm_after_an_activation_folds_into_the_next_linear() {
    let network = matches_pytorch("models_bn_after_relu.safetensors", "bn_after_relu");
    assert!(network.layers()[0].folded().is_empty());
    assert_eq!(network.layers()[1].folded(), ["BatchNorm `2`"]);
}

#[test]
fn batchnorm_eps_comes_from_the_metadata() {
    matches_pytorch("models_bn_eps.safetensors", "bn_eps");
}

#[test]
fn onnx_from_the_legacy_exporter() {
    let network = matches_pytorch("models_onnx_legacy.onnx", "onnx_mlp");
    assert_eq!(
        activations(&network),
        [
            Activation::Relu,
            Activation::Relu,
            Activation::Tanh,
            Activation::Softmax
        ]
    );
}

#[test]
fn onnx_from_the_dynamo_exporter() {
    matches_pytorch("models_onnx_dynamo.onnx", "onnx_mlp");
}

#[test]
fn onnx_with_external_data() {
    matches_pytorch("models_onnx_external.onnx", "onnx_mlp");
}

/// GELU, LeakyReLU(0.2), SiLU and tanh-GELU are recognised in both exporters' spellings.
/// Until this build computes them, the error names the first; afterwards the outputs must match.
#[test]
fn onnx_activations_match_or_are_named_as_unsupported() {
    for model in ["models_act_legacy.onnx", "models_act_dynamo.onnx"] {
        match io::load_model(fixture(model), None) {
            Ok(_) => {
                matches_pytorch(model, "act");
            }
            Err(err) => {
                let message = err.to_string();
                assert!(
                    message.contains("unsupported activation `gelu`"),
                    "{model}: {message}"
                );
            }
        }
    }
}

/// The one-line error of a command, checked for fragments; no output file is left.
fn refused(model: &Path, fragments: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("y.npy");
    let out = Command::new(env!("CARGO_BIN_EXE_vecprop"))
        .arg("infer")
        .arg("--model")
        .arg(model)
        .arg("--input")
        .arg(fixture("torch_input.npy"))
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    for fragment in fragments {
        assert!(stderr.contains(fragment), "`{fragment}` not in: {stderr}");
    }
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[test]
fn pytorch_checkpoints_and_pickles_get_the_export_line() {
    let line = "safetensors.torch.save_file(model.state_dict()";
    refused(
        &fixture("models_checkpoint.pt"),
        &["PyTorch checkpoint", "data.pkl", line, "torch.onnx.export"],
    );
    refused(
        &fixture("models_legacy.pt"),
        &["Python pickle", line, "torch.onnx.export"],
    );
}

#[test]
fn an_unsupported_onnx_node_is_named_with_its_op_and_position() {
    refused(
        &fixture("models_logsoftmax.onnx"),
        &[
            "unsupported ops: LogSoftmax (1 node, first `/3/LogSoftmax`)",
            "vecprop runs chains of dense layers",
        ],
    );
}

#[test]
fn a_skip_connection_is_named() {
    refused(
        &fixture("models_residual.onnx"),
        &["op Add", "position 2", "skip connections"],
    );
}

#[test]
fn non_regular_files_are_refused_without_reading() {
    refused(Path::new("/dev/zero"), &["/dev/zero", "not a regular file"]);
    // A FIFO with no writer: opening it for reading would block forever.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("model.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    refused(&fifo, &["model.fifo", "not a regular file"]);
    let err = io::load_model("/dev/zero", None).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

#[test]
fn a_header_that_declares_more_than_the_file_holds_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.safetensors");
    let mut bytes = (1u64 << 40).to_le_bytes().to_vec();
    bytes.extend(b"{}");
    std::fs::write(&path, &bytes).unwrap();
    let message = io::load_model(&path, None).unwrap_err().to_string();
    assert!(message.contains("over the limit"), "{message}");

    let bytes = std::fs::read(fixture("models_nested.safetensors")).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let message = io::load_model(&path, None).unwrap_err().to_string();
    assert!(message.contains("truncated"), "{message}");
}

#[test]
fn external_data_outside_the_model_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = std::fs::read(fixture("models_onnx_external.onnx")).unwrap();
    let location = b"models_onnx_external.onnx.data";
    let escaped = b"../../../../../../etc/passwd.xx";
    assert_eq!(location.len() + 1, escaped.len());
    // Same-length replacement keeps the protobuf lengths valid: `..//etc/...` style path.
    let escaped = &escaped[1..];
    let mut patched = Vec::new();
    let mut i = 0;
    while i < onnx.len() {
        if onnx[i..].starts_with(location) {
            patched.extend_from_slice(escaped);
            i += location.len();
        } else {
            patched.push(onnx[i]);
            i += 1;
        }
    }
    let path = dir.path().join("m.onnx");
    std::fs::write(&path, &patched).unwrap();
    let message = io::load_model(&path, None).unwrap_err().to_string();
    assert!(message.contains("inside the model's folder"), "{message}");
}

/// Runs `vecprop infer` on the scikit-learn input, optionally picking an output by name, and
/// returns the bytes of the .npy it wrote.
fn infer_skl(model: &str, output_name: Option<&str>) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("y.npy");
    let mut command = Command::new(env!("CARGO_BIN_EXE_vecprop"));
    command
        .arg("infer")
        .arg("--model")
        .arg(fixture(model))
        .arg("--input")
        .arg(fixture("skl_input.npy"))
        .arg("--output")
        .arg(&output)
        .arg("--quiet");
    if let Some(name) = output_name {
        command.arg("--output-name").arg(name);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&output).unwrap()
}

/// The data section of a .npy file: what follows its header.
fn npy_data(bytes: &[u8]) -> &[u8] {
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    &bytes[10 + header_len..]
}

/// scikit-learn MLPs converted by skl2onnx (scripts/make_skl2onnx_fixtures.py), against what
/// ONNX Runtime computed on the same files: the regressor's Reshape to (N, 1), the
/// classifier's probabilities (the default output) and its int64 labels.
#[test]
fn skl2onnx_models_match_onnx_runtime() {
    let dir = tempfile::tempdir().unwrap();
    for (model, name, reference) in [
        ("skl_regressor.onnx", None, "skl_regressor_variable.npy"),
        (
            "skl_classifier.onnx",
            None,
            "skl_classifier_probabilities.npy",
        ),
        (
            "skl_classifier.onnx",
            Some("probabilities"),
            "skl_classifier_probabilities.npy",
        ),
        (
            "skl_binary.onnx",
            Some("output_probability"),
            "skl_binary_output_probability.npy",
        ),
    ] {
        let written = dir.path().join("out.npy");
        std::fs::write(&written, infer_skl(model, name)).unwrap();
        let got = io::read_npy(&written).unwrap();
        let want = io::read_npy(fixture(reference)).unwrap();
        assert_eq!(got.dim(), want.dim(), "{model} {name:?}");
        let err = max_scaled_error(&got, &want);
        assert!(
            err < 1e-5,
            "{model} {name:?}: error {err} against ONNX Runtime"
        );
    }
    for (model, name, reference) in [
        ("skl_classifier.onnx", "label", "skl_classifier_label.npy"),
        (
            "skl_binary.onnx",
            "output_label",
            "skl_binary_output_label.npy",
        ),
        (
            "skl_classifier_zipmap.onnx",
            "output_label",
            "skl_classifier_zipmap_output_label.npy",
        ),
    ] {
        let got = infer_skl(model, Some(name));
        assert!(
            String::from_utf8_lossy(&got[..128]).contains("<i8"),
            "{model}: int64 labels"
        );
        let want = std::fs::read(fixture(reference)).unwrap();
        assert_eq!(
            npy_data(&got),
            npy_data(&want),
            "{model}: labels differ from ORT's"
        );
    }
}
