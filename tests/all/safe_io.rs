//! `vecprop infer` as a careful user and an attacker would try it (issue 14, cases 1-3 and
//! 5-8): nothing lost, no panic or abort, every failure one `error:` line.

use crate::helpers;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use helpers::*;
use ndarray::{array, Array2};
use vecprop::{io, Device, PlanOptions};

/// `vecprop infer --model <dir>/model.safetensors --input <input> --output <output> <extra>`.
fn infer_command(dir: &Path, input: &Path, output: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(helpers::vecprop_bin());
    command
        .args(["infer", "--quiet", "--model"])
        .arg(dir.join("model.safetensors"))
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(extra);
    command
}

fn infer(dir: &Path, input: &Path, output: &Path, extra: &[&str]) -> Output {
    infer_command(dir, input, output, extra)
        .output()
        .expect("the binary runs")
}

#[track_caller]
fn assert_succeeds(out: &Output) {
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A failure with exit code 1 (not a panic's 101 nor an abort's 134) and exactly one stderr
/// line `error: ...` containing `fragment`.
#[track_caller]
fn assert_fails(out: &Output, fragment: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr must be one line: {stderr:?}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(fragment), "`{fragment}` not in {stderr}");
}

/// A folder holding the worked example's model and `x.npy` = `x`.
fn folder_with(x: &Array2<f32>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    io::save_model(&worked_example(), dir.path().join("model.safetensors")).unwrap();
    io::write_npy(dir.path().join("x.npy"), x).unwrap();
    dir
}

/// What the worked example computes for `x`, in-process.
fn expected(x: &Array2<f32>) -> Array2<f32> {
    let plan = worked_example()
        .compile(&Device::cpu(), PlanOptions::default())
        .unwrap();
    plan.forward(x.view()).unwrap()
}

#[track_caller]
fn assert_close(got: &Array2<f32>, want: &Array2<f32>) {
    assert_eq!(got.dim(), want.dim());
    assert!(got.iter().zip(want).all(|(a, b)| (a - b).abs() <= 1e-6));
}

fn npy_file_bytes(x: &Array2<f32>) -> Vec<u8> {
    let f32s: Vec<f32> = x.iter().copied().collect();
    npy_bytes(
        1,
        "<f4",
        false,
        &format!("({}, {})", x.nrows(), x.ncols()),
        &f32_bytes(&f32s),
    )
}

// Case 1: two runs writing one output at once.
#[test]
fn two_runs_writing_one_output_leave_one_complete_result() {
    let (a, b) = (
        vecprop::tensor::random_batch(30_000, 2, 1) * 5.0,
        vecprop::tensor::random_batch(50_000, 2, 2) * 5.0,
    );
    let dir = folder_with(&a);
    let (xa, xb, y) = (
        dir.path().join("x.npy"),
        dir.path().join("b.npy"),
        dir.path().join("y.npy"),
    );
    io::write_npy(&xb, &b).unwrap();
    for round in 0..3 {
        let spawn = |x: &Path| {
            infer_command(dir.path(), x, &y, &["--batch-size", "100"])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (first, second) = (spawn(&xa), spawn(&xb));
        for child in [first, second] {
            assert_succeeds(&child.wait_with_output().unwrap());
        }
        let got = io::read_npy(&y).unwrap();
        let want = if got.nrows() == a.nrows() {
            expected(&a)
        } else {
            expected(&b)
        };
        assert_close(&got, &want);
        assert_eq!(
            files_in(dir.path()),
            ["b.npy", "model.safetensors", "x.npy", "y.npy"],
            "round {round}"
        );
    }
}

// Case 2: a file at `<output>.partial` is somebody else's, a symlink there is never followed.
#[test]
fn a_file_or_symlink_at_the_old_partial_name_is_left_alone() {
    let x = array![[200.0, 17.0], [1.0, 2.0]];
    let dir = folder_with(&x);
    let (input, y) = (dir.path().join("y.npy.partial"), dir.path().join("y.npy"));
    std::fs::rename(dir.path().join("x.npy"), &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    assert_succeeds(&infer(dir.path(), &input, &y, &[]));
    assert_eq!(std::fs::read(&input).unwrap(), before);
    assert_close(&io::read_npy(&y).unwrap(), &expected(&x));

    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, b"keep me").unwrap();
    let z = dir.path().join("z.npy");
    std::os::unix::fs::symlink(&victim, dir.path().join("z.npy.partial")).unwrap();
    assert_succeeds(&infer(dir.path(), &input, &z, &[]));
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    assert_close(&io::read_npy(&z).unwrap(), &expected(&x));
}

// Case 3: outputs that are not regular files are streamed to, never replaced.
#[test]
fn devices_fifos_and_stdout_are_streamed_to_not_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let x = vecprop::tensor::random_batch(1000, 2, 3);
    let dir = folder_with(&x);
    let input = dir.path().join("x.npy");

    assert_succeeds(&infer(dir.path(), &input, Path::new("/dev/null"), &[]));
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());

    let out = infer(dir.path(), &input, Path::new("-"), &["--batch-size", "7"]);
    assert_succeeds(&out);
    let from_stdout = dir.path().join("stdout.npy");
    std::fs::write(&from_stdout, &out.stdout).unwrap();
    assert_close(&io::read_npy(&from_stdout).unwrap(), &expected(&x));

    let fifo = dir.path().join("fifo.npy");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    assert_succeeds(&infer(dir.path(), &input, &fifo, &["--batch-size", "7"]));
    let streamed = reader.join().unwrap();
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    std::fs::write(&from_stdout, streamed).unwrap();
    assert_close(&io::read_npy(&from_stdout).unwrap(), &expected(&x));
}

// Case 3: an output that is the input or the model.
#[test]
fn an_output_that_is_the_input_or_the_model_is_refused() {
    let x = array![[200.0, 17.0]];
    let dir = folder_with(&x);
    let (input, model) = (
        dir.path().join("x.npy"),
        dir.path().join("model.safetensors"),
    );
    let (input_bytes, model_bytes) = (
        std::fs::read(&input).unwrap(),
        std::fs::read(&model).unwrap(),
    );
    assert_fails(
        &infer(dir.path(), &input, &input, &[]),
        "is the same file as the input",
    );
    assert_fails(
        &infer(dir.path(), &input, &model, &[]),
        "is the same file as the model",
    );
    let link = dir.path().join("link.npy");
    std::fs::hard_link(&input, &link).unwrap();
    assert_fails(
        &infer(dir.path(), &input, &link, &[]),
        "is the same file as the input",
    );
    assert_eq!(std::fs::read(&input).unwrap(), input_bytes);
    assert_eq!(std::fs::read(&model).unwrap(), model_bytes);
    assert_eq!(
        files_in(dir.path()),
        ["link.npy", "model.safetensors", "x.npy"]
    );
}

/// A v1 .npy file whose header dict is exactly `dict`, then `data`.
fn npy_with_dict(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut text = dict.to_string();
    text.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((text.len() as u16).to_le_bytes());
    out.extend(text.as_bytes());
    out.extend(data);
    out
}

// Case 5: the header as numpy reads it; bounded length and nesting.
#[test]
fn npy_headers_are_read_as_numpy_reads_them() {
    let dir = folder_with(&array![[0.0, 0.0]]);
    let (input, y) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    let data = f32_bytes(&[200.0, 17.0]);
    // numpy (a Python dict literal) keeps the last `shape`: (1, 2).
    let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), 'shape': (1, 2), }";
    std::fs::write(&input, npy_with_dict(dict, &data)).unwrap();
    assert_succeeds(&infer(dir.path(), &input, &y, &[]));
    assert_close(
        &io::read_npy(&y).unwrap(),
        &expected(&array![[200.0, 17.0]]),
    );

    let extra = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), 'x': 1}";
    std::fs::write(&input, npy_with_dict(extra, &data)).unwrap();
    assert_fails(&infer(dir.path(), &input, &y, &[]), "key `x`");

    let deep = format!("{}{}", "[".repeat(9_000), "]".repeat(900));
    std::fs::write(&input, npy_with_dict(&deep, &data)).unwrap();
    assert_fails(
        &infer(dir.path(), &input, &y, &[]),
        "nested more than 32 levels",
    );

    // A 20 KB header: version 2 allows it, numpy and vecprop refuse it.
    let mut huge = npy_bytes(2, "<f4", false, "(1, 2)", &data);
    let text = format!("{}\n", "(".repeat(20_000));
    huge.truncate(8);
    huge.extend((text.len() as u32).to_le_bytes());
    huge.extend(text.as_bytes());
    std::fs::write(&input, huge).unwrap();
    assert_fails(&infer(dir.path(), &input, &y, &[]), "more than the 10000");
    assert_close(
        &io::read_npy(&y).unwrap(),
        &expected(&array![[200.0, 17.0]]),
    );
}

// Case 6: batch sizes far beyond the rows, beyond memory, beyond usize arithmetic.
#[test]
fn batch_sizes_are_bounded_by_the_rows_and_checked_against_memory() {
    let x = vecprop::tensor::random_batch(4096, 2, 4);
    let dir = folder_with(&x);
    let (input, y) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    for batch in ["100000000", "4611686018427387904", &usize::MAX.to_string()] {
        std::fs::remove_file(&y).ok();
        assert_succeeds(&infer(dir.path(), &input, &y, &["--batch-size", batch]));
        assert_close(&io::read_npy(&y).unwrap(), &expected(&x));
    }

    // 10^10 rows really exist (a sparse 80 GB file); one batch of them needs 840 GB.
    let rows: u64 = 10_000_000_000;
    let huge = dir.path().join("huge.npy");
    let header = npy_bytes(1, "<f4", false, &format!("({rows}, 2)"), &[]);
    std::fs::write(&huge, &header).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&huge).unwrap();
    file.set_len(header.len() as u64 + rows * 8).unwrap();
    let out = infer(
        dir.path(),
        &huge,
        &dir.path().join("z.npy"),
        &["--batch-size", &rows.to_string()],
    );
    assert_fails(
        &out,
        "the plan needs 840.0 GB at --batch-size 10000000000; this machine has",
    );
    assert_eq!(
        files_in(dir.path()),
        ["huge.npy", "model.safetensors", "x.npy", "y.npy"]
    );
}

/// Spawns `infer --input -` with a piped stdin (and stdout, stderr).
fn spawn_from_stdin(dir: &Path, output: &Path, extra: &[&str]) -> Child {
    infer_command(dir, Path::new("-"), output, extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

// Case 7: pipes are read front to back.
#[test]
fn input_from_a_pipe_is_streamed() {
    let x = vecprop::tensor::random_batch(5000, 2, 5);
    let dir = folder_with(&x);
    let y = dir.path().join("y.npy");
    let mut child = spawn_from_stdin(dir.path(), &y, &["--batch-size", "64"]);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&npy_file_bytes(&x))
        .unwrap();
    assert_succeeds(&child.wait_with_output().unwrap());
    assert_close(&io::read_npy(&y).unwrap(), &expected(&x));

    // Process substitution hands over /dev/fd/N, a pipe: it used to fail with "Illegal seek".
    let (x_path, z) = (dir.path().join("x.npy"), dir.path().join("z.npy"));
    let out = Command::new("bash")
        .args([
            "-c",
            r#""$0" infer --quiet --model "$1" --input <(cat "$2") --output "$3""#,
        ])
        .arg(helpers::vecprop_bin())
        .args([dir.path().join("model.safetensors"), x_path, z.clone()])
        .output()
        .unwrap();
    assert_succeeds(&out);
    assert_close(&io::read_npy(&z).unwrap(), &expected(&x));
    std::fs::remove_file(&z).unwrap();

    // Fortran order read in several chunks needs seeking: a clear error, not "Illegal seek".
    let fortran = npy_bytes(1, "<f4", true, "(2, 2)", &f32_bytes(&[1.0, 2.0, 3.0, 4.0]));
    let mut child = spawn_from_stdin(
        dir.path(),
        &dir.path().join("z.npy"),
        &["--batch-size", "1"],
    );
    child.stdin.take().unwrap().write_all(&fortran).unwrap();
    assert_fails(&child.wait_with_output().unwrap(), "read front to back");

    // A pipe that ends early is reported as truncated.
    let mut child = spawn_from_stdin(dir.path(), &dir.path().join("z.npy"), &[]);
    let bytes = npy_file_bytes(&x);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&bytes[..bytes.len() - 4])
        .unwrap();
    assert_fails(&child.wait_with_output().unwrap(), "truncated");
    assert_eq!(
        files_in(dir.path()),
        ["model.safetensors", "x.npy", "y.npy"]
    );
}

/// Starts a run reading a pipe that delivers `rows_sent` of 300,000 declared rows and then
/// stalls, and waits until its temporary output file holds data. Returns the child, its
/// stdin (keep it open) and the temporary file's path.
#[allow(clippy::zombie_processes)] // the caller waits for the child it is handed
fn stalled_run(dir: &Path) -> (Child, std::process::ChildStdin, PathBuf) {
    let x = vecprop::tensor::random_batch(200_000, 2, 6);
    let mut bytes = npy_bytes(1, "<f4", false, "(300000, 2)", &[]);
    bytes.extend(f32_bytes(&x.iter().copied().collect::<Vec<_>>()));
    let mut child = spawn_from_stdin(dir, &dir.join("y.npy"), &["--batch-size", "1000"]);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes).unwrap();
    let started = Instant::now();
    loop {
        let partial = std::fs::read_dir(dir).unwrap().find_map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let size = entry.metadata().unwrap().len();
            (name.ends_with(".partial") && size > 0).then(|| entry.path())
        });
        if let Some(partial) = partial {
            return (child, stdin, partial);
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("no temporary file with data appeared; stderr: {stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// Case 8: SIGINT, SIGTERM, SIGHUP remove the temporary file; SIGKILL's leftover never loads.
#[test]
fn signals_leave_nothing_that_looks_like_a_result() {
    let dir = folder_with(&array![[0.0, 0.0]]);
    std::fs::remove_file(dir.path().join("x.npy")).unwrap();
    for (signal, code) in [("INT", 130), ("TERM", 143), ("HUP", 129)] {
        let (child, stdin, _) = stalled_run(dir.path());
        let killed = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(killed.success());
        let out = child.wait_with_output().unwrap();
        drop(stdin);
        assert_eq!(out.status.code(), Some(code), "SIG{signal}: {:?}", out);
        assert_eq!(
            files_in(dir.path()),
            ["model.safetensors"],
            "after SIG{signal}"
        );
    }

    let (mut child, stdin, partial) = stalled_run(dir.path());
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    let leftover = std::fs::read(&partial).unwrap();
    assert_ne!(
        leftover.first(),
        Some(&0x93),
        "a leftover must not start with the magic"
    );
    assert!(io::read_npy(&partial).is_err());
    assert!(!dir.path().join("y.npy").exists());
}

// Case 6, in the library: a huge max_batch allocates nothing up front, an impossible one is
// an error, never a panic.
#[test]
fn plans_size_buffers_by_the_rows_they_run() {
    let network = worked_example();
    let x = array![[200.0, 17.0]];
    let plan = network
        .compile(&Device::cpu(), PlanOptions::with_max_batch(1 << 40))
        .unwrap();
    assert_close(&plan.forward(x.view()).unwrap(), &expected(&x));
    for max_batch in [1 << 62, usize::MAX] {
        let err = network
            .compile(&Device::cpu(), PlanOptions::with_max_batch(max_batch))
            .err()
            .expect("an overflowing batch is refused");
        assert!(err.to_string().contains("does not fit in memory"), "{err}");
    }
}
