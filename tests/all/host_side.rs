//! The host side of a device (issue 10): whole batches through the overlapped pipeline,
//! the plan's memory, out-of-memory errors, and `infer`'s batch-size and graph flags.
//!
//! Each device test is written once and runs per device (`test_device!`); the CUDA ones
//! fail loudly without a GPU.

use crate::common;
use crate::helpers;

use std::process::Command;

use common::{reference_forward, relative_error, tolerance};
use ndarray::Array2;
use vecprop::device::memory::{plan_memory, MemoryShape};
use vecprop::device::staging::stream_chunk_rows;
use vecprop::{io, Activation, DType, Device, Network, PlanOptions};

/// 784 inputs: 3001 rows are 9.4 MB of f32, enough for a GPU to stream one batch.
fn wide_network(dtype: DType) -> Network {
    Network::builder(784)
        .dense(9, Activation::Relu)
        .dense(10, Activation::Sigmoid)
        .dtype(dtype)
        .seed(17)
        .build()
        .expect("widths chain")
}

/// A batch large enough to stream, through plans whose max_batch holds it whole and
/// splits it; progress reports every chunk, in order, up to the last row.
fn whole_batches_match_the_reference(device: &Device) {
    let rows = 3001;
    assert!(
        stream_chunk_rows(rows, 784 * 4).is_some(),
        "the batch must stream"
    );
    let input = vecprop::tensor::random_batch(rows, 784, 99);
    for dtype in [DType::F32, DType::BF16] {
        let network = wide_network(dtype);
        let want = reference_forward(&network, &input);
        for max_batch in [rows, 1000] {
            let plan = network
                .compile(device, PlanOptions::with_max_batch(max_batch))
                .unwrap_or_else(|err| panic!("compiling: {err}"));
            let mut output = Array2::from_elem((rows, 10), f32::NAN);
            let mut seen = Vec::new();
            plan.forward_with_progress(input.view(), output.view_mut(), |done| seen.push(done))
                .unwrap();
            let error = relative_error(&output, &want);
            assert!(
                error <= tolerance(device, dtype),
                "{dtype} max_batch {max_batch}: relative error {error}"
            );
            assert_eq!(seen.last(), Some(&rows), "{seen:?}");
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
            // The same plan again, warm (buffers reused from the pools): still right.
            let again = plan.forward(input.view()).unwrap();
            let error = relative_error(&again, &want);
            assert!(
                error <= tolerance(device, dtype),
                "{dtype} max_batch {max_batch}, warm: relative error {error}"
            );
        }
    }
}

/// `Plan::memory` describes a GPU plan (what its pools will hold); the CPU has none.
fn plan_memory_is_reported(device: &Device) {
    let network = wide_network(DType::F32);
    let plan = network
        .compile(device, PlanOptions::with_max_batch(512))
        .unwrap();
    match (device, plan.memory()) {
        (Device::Cpu(_), memory) => assert_eq!(memory, None),
        (Device::Cuda(gpu), Some(memory)) => {
            let want = plan_memory(
                &MemoryShape::of(&network),
                DType::F32,
                512,
                gpu.lane_workspace_bytes(),
            )
            .unwrap();
            assert_eq!(memory, want);
            assert!(memory.to_string().contains("GPU memory at batch 512"));
        }
        (Device::Cuda(_), None) => panic!("a GPU plan reports its memory"),
    }
}

test_device!(whole_batches_match_the_reference, plan_memory_is_reported);

#[cfg(feature = "cuda")]
mod gpu_only {
    use super::*;

    /// The case: a batch that cannot fit is refused with the numbers, before the
    /// plan allocates anything.
    #[test]
    fn an_impossible_batch_is_refused_before_allocating() {
        let (device, cuda) = common::gpu();
        let network = Network::builder(784)
            .dense(512, Activation::Relu)
            .dense(256, Activation::Relu)
            .dense(10, Activation::Linear)
            .build()
            .unwrap();
        let before = cuda.pool_stats();
        let err = network
            .compile(&device, PlanOptions::with_max_batch(200_000_000))
            .err()
            .expect("200M rows of 784 f32 cannot fit");
        assert!(
            matches!(
                err,
                vecprop::Error::OutOfGpuMemory {
                    batch: 200_000_000,
                    ..
                }
            ),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("out of GPU memory: the plan needs "),
            "{text}"
        );
        assert!(text.ends_with("are free; lower --batch-size"), "{text}");
        assert_eq!(cuda.pool_stats(), before, "nothing may be allocated");
    }

    /// A warm whole-batch pass allocates nothing: the stream's passes come from the pools.
    #[test]
    fn a_warm_whole_batch_allocates_nothing() {
        let (device, cuda) = common::gpu();
        let network = wide_network(DType::F32);
        let plan = network
            .compile(&device, PlanOptions::with_max_batch(3001))
            .unwrap();
        let input = vecprop::tensor::random_batch(3001, 784, 5);
        plan.forward(input.view()).unwrap();
        let warm = cuda.pool_stats().allocations;
        plan.forward(input.view()).unwrap();
        assert_eq!(cuda.pool_stats().allocations, warm);
    }
}

/// Runs the binary with `args` after `command`, the model, and (for infer) input/output
/// in `dir`, all holding the worked example.
fn run_cli(dir: &std::path::Path, command: &str, args: &[&str]) -> std::process::Output {
    let (network, x) = common::worked_example();
    let model = dir.join("model.safetensors");
    io::save_model(&network, &model).unwrap();
    let mut cmd = Command::new(helpers::vecprop_bin());
    cmd.arg(command)
        .args(["--model".as_ref(), model.as_os_str()]);
    if command == "infer" {
        let (input, output) = (dir.join("x.npy"), dir.join("y.npy"));
        io::write_npy(&input, &x).unwrap();
        cmd.args(["--input".as_ref(), input.as_os_str()])
            .args(["--output".as_ref(), output.as_os_str()]);
    }
    cmd.args(args).output().expect("the binary runs")
}

#[cfg(feature = "cuda")]
mod gpu_cli {
    use super::*;

    /// On a GPU, `infer` without `--batch-size` picks one from free memory and says so;
    /// `summary --device cuda` shows the plan's memory.
    #[test]
    fn infer_sizes_its_batch_from_free_memory_and_summary_shows_memory() {
        common::gpu();
        let dir = tempfile::tempdir().unwrap();
        let out = run_cli(dir.path(), "infer", &["--device", "cuda", "--verbose"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("(auto: the largest of at most"), "{stderr}");
        assert!(stderr.contains("GPU memory at batch "), "{stderr}");
        let y = io::read_npy(dir.path().join("y.npy")).unwrap();
        assert_eq!(y.mapv(f32::round), ndarray::array![[1.0, 0.0, 1.0]]);

        let out = run_cli(dir.path(), "summary", &["--device", "cuda"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("GPU memory at batch 4096: weights "),
            "{stdout}"
        );
    }
}

/// `infer` without `--batch-size`, with `--cuda-graphs` and `--verbose`, on the CPU: the
/// default batch is named, graphs are reported unused, and the output is right.
#[test]
fn infer_names_its_batch_size_and_accepts_cuda_graphs() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(dir.path(), "infer", &["--cuda-graphs", "--verbose"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("batch size 4096 (the CPU default)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("cuda graphs: not used on the cpu"),
        "{stderr}"
    );
    let y = io::read_npy(dir.path().join("y.npy")).unwrap();
    assert_eq!(y.mapv(f32::round), ndarray::array![[1.0, 0.0, 1.0]]);
}
