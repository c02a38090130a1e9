//! The `vecprop` binary end to end, in a temporary folder.

use crate::helpers;

use std::path::Path;
use std::process::{Command, Output};

use helpers::*;
use ndarray::array;
use vecprop::{io, DType};

fn vecprop(args: &[&str]) -> Output {
    Command::new(vecprop_bin())
        .args(args)
        .output()
        .expect("the binary runs")
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A failure: non-zero exit, exactly one stderr line `error: ...` containing `fragment`.
#[track_caller]
fn assert_fails(out: &Output, fragment: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr must be one line: {stderr:?}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(fragment), "`{fragment}` not in {stderr}");
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(out));
}

/// A folder with the worked example's model and input.
fn worked_example_files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    io::save_model(&worked_example(), dir.path().join("model.safetensors")).unwrap();
    io::write_npy(dir.path().join("x.npy"), &array![[200.0, 17.0]]).unwrap();
    dir
}

fn infer(dir: &Path, extra: &[&str]) -> Output {
    let (model, x, y) = (
        dir.join("model.safetensors"),
        dir.join("x.npy"),
        dir.join("y.npy"),
    );
    let mut args = vec![
        "infer",
        "--model",
        path_arg(&model),
        "--input",
        path_arg(&x),
        "--output",
        path_arg(&y),
    ];
    args.extend_from_slice(extra);
    vecprop(&args)
}

#[test]
fn infer_runs_the_worked_example() {
    let dir = worked_example_files();
    let out = infer(dir.path(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let y = io::read_npy(dir.path().join("y.npy")).unwrap();
    assert_eq!(y.mapv(f32::round), array![[1.0, 0.0, 1.0]]);
    for (got, want) in y.iter().zip(worked_example_f64()) {
        assert!((*got as f64 - want).abs() <= 1e-6, "{got} vs {want}");
    }
    assert_eq!(
        files_in(dir.path()),
        ["model.safetensors", "x.npy", "y.npy"]
    );
}

#[test]
fn infer_streams_many_chunks() {
    let dir = worked_example_files();
    let x = vecprop::tensor::random_batch(1000, 2, 9) * 5.0;
    io::write_npy(dir.path().join("x.npy"), &x).unwrap();
    let out = infer(dir.path(), &["--batch-size", "7", "--quiet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty());
    let y = io::read_npy(dir.path().join("y.npy")).unwrap();
    let plan = worked_example()
        .compile(&vecprop::Device::cpu(), vecprop::PlanOptions::default())
        .unwrap();
    let expected = plan.forward(x.view()).unwrap();
    assert_eq!(y.dim(), (1000, 3));
    assert!(y.iter().zip(&expected).all(|(a, b)| (a - b).abs() <= 1e-6));
}

#[test]
fn infer_activations_override() {
    let dir = worked_example_files();
    let out = infer(dir.path(), &["--activations", "linear"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let y = io::read_npy(dir.path().join("y.npy")).unwrap();
    assert_eq!(y, array![[165.0, -531.0, 900.0]]);
}

#[test]
fn infer_failures_leave_no_output() {
    let dir = worked_example_files();
    io::write_npy(dir.path().join("x.npy"), &array![[1.0, 2.0, 3.0]]).unwrap();
    assert_fails(
        &infer(dir.path(), &[]),
        "input has 3 columns but the network expects 2",
    );
    assert_eq!(files_in(dir.path()), ["model.safetensors", "x.npy"]);

    let dir = worked_example_files();
    assert_fails(
        &infer(dir.path(), &["--activations", "relu,relu"]),
        "1 dense layers but 2 activations",
    );
    assert_fails(
        &infer(dir.path(), &["--activations", "swish"]),
        "unknown activation `swish`",
    );
    assert_fails(
        &infer(dir.path(), &["--kernel", "magic"]),
        "unknown kernel strategy `magic`",
    );
    assert_fails(
        &infer(dir.path(), &["--dtype", "f64"]),
        "unsupported dtype `f64`",
    );
    assert_fails(
        &infer(dir.path(), &["--device", "tpu"]),
        "unknown device `tpu`",
    );
    assert_fails(&infer(dir.path(), &["--batch-size", "0"]), "at least 1");
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    assert_fails(&infer(dir.path(), &[]), "model.safetensors: No such file");
    assert_eq!(files_in(dir.path()), ["x.npy"]);
}

#[test]
fn infer_of_an_empty_batch_writes_an_empty_output() {
    let dir = worked_example_files();
    std::fs::write(
        dir.path().join("x.npy"),
        npy_bytes(1, "<f4", false, "(0, 2)", &[]),
    )
    .unwrap();
    let out = infer(dir.path(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No rows in, no rows out (as in PyTorch), and the file is a complete .npy.
    let y = io::read_npy(dir.path().join("y.npy")).unwrap();
    assert_eq!(y.dim(), (0, 3));
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_on_a_build_without_cuda_says_so() {
    let dir = worked_example_files();
    assert_fails(
        &infer(dir.path(), &["--device", "cuda"]),
        "built without CUDA",
    );
    assert_fails(
        &infer(dir.path(), &["--device", "cuda:1"]),
        "built without CUDA",
    );
    assert_eq!(files_in(dir.path()), ["model.safetensors", "x.npy"]);
    assert_fails(
        &vecprop(&["demo", "--device", "cuda"]),
        "built without CUDA",
    );
}

#[test]
fn usage_errors_are_one_line_too() {
    assert_fails(
        &vecprop(&["infer", "--model", "m.safetensors"]),
        "required arguments",
    );
    assert_fails(&vecprop(&["frobnicate"]), "frobnicate");
    let help = vecprop(&["--help"]);
    assert!(help.status.success());
    assert!(stdout(&help).contains("infer"));
}

#[test]
fn demo_prints_the_worked_example() {
    let out = vecprop(&["demo", "--rows", "64"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(text.contains("[[1, 0, 1]]"), "{text}");
    assert!(text.contains("[[1.0, 0.0, 1.0]]"), "{text}");
    assert!(text.contains("examples/s"), "{text}");
    assert!(text.contains("GFLOP/s"), "{text}");
}

#[test]
fn summary_lists_the_layers() {
    let dir = worked_example_files();
    let model = dir.path().join("model.safetensors");
    let out = vecprop(&["summary", "--model", path_arg(&model)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(text.contains("0 (Dense, sigmoid)"), "{text}");
    assert!(text.contains("Total params: 9"), "{text}");

    let out = vecprop(&[
        "summary",
        "--model",
        path_arg(&model),
        "--activations",
        "tanh",
        "--device",
        "cpu",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("0 (Dense, tanh)"), "{}", stdout(&out));

    assert_fails(
        &vecprop(&["summary", "--model", path_arg(dir.path())]),
        "cannot access",
    );
}

#[test]
fn devices_lists_the_cpu() {
    let out = vecprop(&["devices"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(
        text.lines().next().is_some_and(|l| l.starts_with("cpu: ")),
        "{text}"
    );
    assert!(text.contains("cuda"), "{text}");
}

#[test]
fn bench_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = vecprop(&[
        "bench",
        "--shapes",
        "8x16x4",
        "--repeats",
        "2",
        "--json",
        path_arg(&json),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(
        value["device"]
            .as_str()
            .is_some_and(|d| d.starts_with("cpu")),
        "{value}"
    );
    assert!(value["results"].is_array(), "{value}");
    assert_eq!(files_in(dir.path()), ["bench.json"]);
    assert_fails(&vecprop(&["bench", "--shapes", "8x16"]), "bad shape `8x16`");
}

#[test]
fn flags_that_cannot_apply_are_refused_by_name() {
    let dir = worked_example_files();
    let cases: [(&[&str], &str); 5] = [
        (&["--batch-size", "0"], "--batch-size must be at least 1"),
        (&["--threads", "0"], "--threads must be at least 1"),
        (&["--kernel", "fused"], "(--kernel) is for CUDA devices"),
        (&["--tf32"], "TF32 (--tf32) is a GPU tensor-core mode"),
        (
            &["--kernel", "cublas_v9"],
            "unknown kernel strategy `cublas_v9`",
        ),
    ];
    for (extra, message) in cases {
        assert_fails(&infer(dir.path(), extra), message);
        assert_eq!(
            files_in(dir.path()),
            ["model.safetensors", "x.npy"],
            "{extra:?}"
        );
    }
}

#[test]
fn infer_writes_npy_names_only() {
    let dir = worked_example_files();
    let csv = dir.path().join("y.csv");
    let out = vecprop(&[
        "infer",
        "--model",
        path_arg(&dir.path().join("model.safetensors")),
        "--input",
        path_arg(&dir.path().join("x.npy")),
        "--output",
        path_arg(&csv),
    ]);
    assert_fails(&out, "must end in .npy");
    assert!(!csv.exists());
    // A stream takes the .npy bytes whatever its name.
    let out = vecprop(&[
        "infer",
        "--quiet",
        "--model",
        path_arg(&dir.path().join("model.safetensors")),
        "--input",
        path_arg(&dir.path().join("x.npy")),
        "--output",
        "-",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.starts_with(b"\x93NUMPY"));
}

#[test]
fn threads_and_16_bit_on_the_cpu_do_what_they_say() {
    let dir = worked_example_files();
    let out = infer(dir.path(), &["--threads", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cpu (1 thread)"));
    // bf16 on the CPU computes as the GPU does: every output is a bf16 value.
    io::write_npy(dir.path().join("x.npy"), &array![[0.3, -0.7], [1.1, 0.2]]).unwrap();
    let out = infer(dir.path(), &["--dtype", "bf16"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let y = io::read_npy(dir.path().join("y.npy")).unwrap();
    assert!(y.iter().all(|&v| DType::BF16.round(v) == v), "{y}");
}
