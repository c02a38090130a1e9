//! The commands of README.md's "From PyTorch" and "From ONNX" sections, run as written on
//! models that PyTorch exported (tests/fixtures, from scripts/make_model_fixtures.py).

use std::path::Path;
use std::process::Command;

use vecprop::io;

use crate::helpers::fixture;

/// The `vecprop ...` lines of the ```sh blocks in the README section titled `title`.
fn commands(title: &str) -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find(&format!("### {title}\n"))
        .unwrap_or_else(|| panic!("README has no section {title}"));
    let section = &readme[start + 4..];
    let section = &section[..section.find("\n#").unwrap_or(section.len())];
    let mut in_sh = false;
    let mut out = Vec::new();
    for line in section.lines() {
        match line.trim() {
            "```sh" => in_sh = true,
            "```" => in_sh = false,
            command if in_sh && command.starts_with("vecprop ") => out.push(command.to_string()),
            _ => {}
        }
    }
    out
}

/// Runs the section's commands in a folder holding `model_name` (a copy of `model`) and
/// `x.npy`; the `infer` output must match PyTorch's to 1e-5.
fn run_section(title: &str, model_name: &str, model: &str, reference: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture(model), dir.path().join(model_name)).unwrap();
    std::fs::copy(fixture("torch_input.npy"), dir.path().join("x.npy")).unwrap();
    let commands = commands(title);
    assert!(
        commands.iter().any(|c| c.contains(" infer ")),
        "{title}: {commands:?}"
    );
    for command in &commands {
        let mut words = command.split_whitespace().skip(1);
        let out = Command::new(env!("CARGO_BIN_EXE_vecprop"))
            .args(words.by_ref())
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`{command}`: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let got = io::read_npy(dir.path().join("y.npy")).unwrap();
    let want = io::read_npy(fixture(reference)).unwrap();
    let err = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs() / w.abs().max(1.0))
        .fold(0.0, f32::max);
    assert_eq!(got.dim(), want.dim());
    assert!(err <= 1e-5, "{title}: max scaled error {err:e}");
}

#[test]
fn from_pytorch() {
    run_section(
        "From PyTorch",
        "model.safetensors",
        "models_nested.safetensors",
        "models_nested_output.npy",
    );
}

#[test]
fn from_onnx() {
    run_section(
        "From ONNX",
        "model.onnx",
        "models_onnx_legacy.onnx",
        "models_onnx_mlp_output.npy",
    );
}
