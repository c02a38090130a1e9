//! vecprop against PyTorch: a trained torch.nn.Sequential saved with safetensors
//! (fixtures written by scripts/make_pytorch_fixture.py).

use crate::helpers;

use std::process::Command;

use helpers::{fixture, max_scaled_error, vecprop_bin};
use ndarray::Array2;
use vecprop::{io, Activation, DType, Device, PlanOptions};

fn forward(model: &str) -> (vecprop::Network, Array2<f32>) {
    let network = io::load_model(fixture(model), None).unwrap();
    let input = io::read_npy(fixture("torch_input.npy")).unwrap();
    let plan = network
        .compile(&Device::cpu(), PlanOptions::with_max_batch(16))
        .unwrap();
    let output = plan.forward(input.view()).unwrap();
    (network, output)
}

#[test]
fn the_library_matches_pytorch() {
    let (network, output) = forward("torch_mlp.safetensors");
    let names: Vec<&str> = network.layers().iter().map(|l| l.name()).collect();
    assert_eq!(names, ["0", "2", "4"]);
    let activations: Vec<Activation> = network.layers().iter().map(|l| l.activation()).collect();
    assert_eq!(
        activations,
        [Activation::Sigmoid, Activation::Relu, Activation::Linear]
    );
    assert_eq!((network.input_width(), network.output_width()), (13, 5));
    assert_eq!(network.dtype(), DType::F32);

    let reference = io::read_npy(fixture("torch_output.npy")).unwrap();
    assert_eq!(reference.dim(), (37, 5));
    let err = max_scaled_error(&output, &reference);
    assert!(err <= 1e-5, "max scaled error {err:e}");
}

#[test]
fn the_binary_matches_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("y.npy");
    let out = Command::new(vecprop_bin())
        .arg("infer")
        .arg("--model")
        .arg(fixture("torch_mlp.safetensors"))
        .arg("--input")
        .arg(fixture("torch_input.npy"))
        .arg("--output")
        .arg(&output)
        .args(["--batch-size", "10"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = io::read_npy(&output).unwrap();
    let reference = io::read_npy(fixture("torch_output.npy")).unwrap();
    let err = max_scaled_error(&got, &reference);
    assert!(err <= 1e-5, "max scaled error {err:e}");
}

#[test]
fn the_bf16_model_loads_as_bf16_and_matches() {
    let (network, output) = forward("torch_mlp_bf16.safetensors");
    assert_eq!(network.dtype(), DType::BF16);
    // PyTorch's bf16 parameters computed in f32: what an f32 plan of the bf16 model does,
    // so the parameters load exactly.
    let same_parameters = io::read_npy(fixture("torch_output_bf16.npy")).unwrap();
    let f32_plan = network
        .compile(
            &Device::cpu(),
            PlanOptions {
                dtype: Some(DType::F32),
                ..PlanOptions::with_max_batch(16)
            },
        )
        .unwrap();
    let input = io::read_npy(fixture("torch_input.npy")).unwrap();
    let in_f32 = f32_plan.forward(input.view()).unwrap();
    let err = max_scaled_error(&in_f32, &same_parameters);
    assert!(
        err <= 1e-5,
        "f32 plan against bf16 parameters in f32: {err:e}"
    );
    // The bf16 plan also stores activations in bf16, as a GPU does: bf16's tolerance.
    let err = max_scaled_error(&output, &same_parameters);
    assert!(
        err <= 1e-2,
        "bf16 plan against bf16 parameters in f32: {err:e}"
    );
    // And the f32 model, to bf16's precision.
    let f32_model = io::read_npy(fixture("torch_output.npy")).unwrap();
    let err = max_scaled_error(&output, &f32_model);
    assert!(err <= 1e-2, "against the f32 model: {err:e}");
}
