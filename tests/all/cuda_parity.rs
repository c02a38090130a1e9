//! GPU parity tests: every strategy and dtype against a float64 reference on the host.
//!
//! They need an NVIDIA GPU (compute capability 8.0+), a driver with CUDA 13.0 (>= 580) and
//! cuBLAS 13. Without one they FAIL: a missing GPU must never read as a pass.
//!
//! Accuracy is measured norm-wise: `max |gpu - ref| / max(max |ref|, 1e-3)` over the whole
//! output, against these bounds: f32 1e-5, f32 with TF32 1e-3, f16 and bf16 1e-2. For
//! f16/bf16 the inputs and parameters are rounded to the dtype first, so the reference sees
//! the operands the GPU sees. Every GPU buffer is poisoned with NaN before each pass, and
//! every output element must be finite.
use crate::common;

use common::{finite_relative_error, gpu, random_input_in};

use std::thread;

use common::reference_forward;
use ndarray::{array, Array1, Array2};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use vecprop::bench::bench_dense;
use vecprop::device::cuda::describe_devices;
use vecprop::{Activation, DType, Device, Network, Plan, PlanOptions, Strategy};

/// Batch sizes: a single row, odd sizes, and more rows than one tile row.
const ROWS: [usize; 4] = [1, 3, 17, 1000];

/// Layer widths (input first) that are not multiples of any tile size.
const TOPOLOGIES: [&[usize]; 4] = [&[2, 3], &[33, 65, 7], &[130, 17], &[784, 512, 10]];

/// A compute precision and the error it is allowed.
#[derive(Debug, Clone, Copy)]
struct Precision {
    dtype: DType,
    allow_tf32: bool,
    tolerance: f64,
}

const F32: Precision = Precision {
    dtype: DType::F32,
    allow_tf32: false,
    tolerance: 1e-5,
};
const TF32: Precision = Precision {
    dtype: DType::F32,
    allow_tf32: true,
    tolerance: 1e-3,
};
const F16: Precision = Precision {
    dtype: DType::F16,
    allow_tf32: false,
    tolerance: 1e-2,
};
const BF16: Precision = Precision {
    dtype: DType::BF16,
    allow_tf32: false,
    tolerance: 1e-2,
};

/// A network with random weights (scaled by 1/sqrt(inputs)) and random non-zero biases,
/// every layer using `activation`, parameters rounded to `dtype`.
fn random_network(widths: &[usize], activation: Activation, dtype: DType, seed: u64) -> Network {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut builder = Network::builder(widths[0]);
    for pair in widths.windows(2) {
        let (inputs, units) = (pair[0], pair[1]);
        let scale = 1.0 / (inputs as f32).sqrt();
        let weight = Array2::from_shape_fn((inputs, units), |_| rng.random_range(-scale..scale));
        let bias = Array1::from_shape_fn(units, |_| rng.random_range(-0.5..0.5));
        builder = builder.layer_with(weight, bias, activation);
    }
    builder
        .dtype(dtype)
        .build()
        .expect("the test topologies chain")
}

fn compile(
    network: &Network,
    device: &Device,
    strategy: Strategy,
    precision: Precision,
    max_batch: usize,
) -> Plan {
    let options = PlanOptions {
        max_batch,
        dtype: Some(precision.dtype),
        strategy,
        allow_tf32: precision.allow_tf32,
        ..PlanOptions::default()
    };
    network
        .compile(device, options)
        .unwrap_or_else(|err| panic!("compiling for {strategy} {precision:?}: {err}"))
}

/// Every topology and batch size, for one strategy, precision and activation.
/// `fused_tile` (128 or 64) pins the Fused strategy to `fused` or `fused_small`.
fn check_parity(
    strategy: Strategy,
    fused_tile: Option<usize>,
    precision: Precision,
    activation: Activation,
) {
    let (device, cuda) = gpu();
    cuda.force_fused_tile(fused_tile);
    for (t, widths) in TOPOLOGIES.iter().enumerate() {
        let network = random_network(widths, activation, precision.dtype, 100 + t as u64);
        let plan = compile(&network, &device, strategy, precision, 1000);
        for rows in ROWS {
            let input = random_input_in(rows, widths[0], precision.dtype, rows as u64);
            let what =
                format!("{strategy} {precision:?} {activation} widths {widths:?} rows {rows}");
            let got = plan
                .forward(input.view())
                .unwrap_or_else(|err| panic!("{what}: {err}"));
            let error = finite_relative_error(&got, &reference_forward(&network, &input), &what);
            assert!(
                error <= precision.tolerance,
                "{what}: relative error {error:e} > {:e}; kernels: {:?}",
                precision.tolerance,
                plan.kernel_choices()
            );
        }
    }
}

/// One test per activation, for a strategy and a precision (in the style of candle's
/// `test_device!`): `parity!(name, strategy, fused tile, precision)` makes module `name`.
macro_rules! parity {
    ($name:ident, $strategy:expr, $tile:expr, $precision:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn sigmoid() {
                check_parity($strategy, $tile, $precision, Activation::Sigmoid);
            }
            #[test]
            fn relu() {
                check_parity($strategy, $tile, $precision, Activation::Relu);
            }
            #[test]
            fn tanh() {
                check_parity($strategy, $tile, $precision, Activation::Tanh);
            }
            #[test]
            fn linear() {
                check_parity($strategy, $tile, $precision, Activation::Linear);
            }
            #[test]
            fn softmax() {
                check_parity($strategy, $tile, $precision, Activation::Softmax);
            }
        }
    };
}

parity!(cublas_f32, Strategy::Cublas, None, F32);
parity!(cublas_tf32, Strategy::Cublas, None, TF32);
parity!(cublas_f16, Strategy::Cublas, None, F16);
parity!(cublas_bf16, Strategy::Cublas, None, BF16);
parity!(cublaslt_f32, Strategy::CublasLt, None, F32);
parity!(cublaslt_tf32, Strategy::CublasLt, None, TF32);
parity!(cublaslt_f16, Strategy::CublasLt, None, F16);
parity!(cublaslt_bf16, Strategy::CublasLt, None, BF16);
parity!(fused_f32, Strategy::Fused, Some(128), F32);
parity!(fused_tf32, Strategy::Fused, Some(128), TF32);
parity!(fused_f16, Strategy::Fused, Some(128), F16);
parity!(fused_bf16, Strategy::Fused, Some(128), BF16);
parity!(fused_small_f32, Strategy::Fused, Some(64), F32);
parity!(fused_small_tf32, Strategy::Fused, Some(64), TF32);
parity!(fused_small_f16, Strategy::Fused, Some(64), F16);
parity!(fused_small_bf16, Strategy::Fused, Some(64), BF16);
parity!(auto_f32, Strategy::Auto, None, F32);
parity!(auto_tf32, Strategy::Auto, None, TF32);
parity!(auto_f16, Strategy::Auto, None, F16);
parity!(auto_bf16, Strategy::Auto, None, BF16);

const STRATEGIES: [Strategy; 4] = [
    Strategy::Auto,
    Strategy::Cublas,
    Strategy::CublasLt,
    Strategy::Fused,
];

#[test]
fn worked_example_on_the_gpu() {
    let (device, _) = gpu();
    let (network, input) = common::worked_example();
    let want = reference_forward(&network, &input);
    for strategy in STRATEGIES {
        let plan = compile(&network, &device, strategy, F32, 4);
        let got = plan.forward(input.view()).expect("forward");
        assert_eq!(got.mapv(f32::round), array![[1.0, 0.0, 1.0]], "{strategy}");
        for (&g, &w) in got.iter().zip(&want) {
            assert!((f64::from(g) - w).abs() <= 1e-6, "{strategy}: {g} vs {w}");
        }
    }
}

#[test]
fn batches_larger_than_max_batch_run_in_chunks() {
    let (device, _) = gpu();
    let network = random_network(&[33, 65, 7], Activation::Tanh, DType::F32, 7);
    let input = random_input_in(2500, 33, DType::F32, 8);
    let want = reference_forward(&network, &input);
    for strategy in STRATEGIES {
        let plan = compile(&network, &device, strategy, F32, 1000);
        let got = plan.forward(input.view()).expect("forward");
        let error = finite_relative_error(&got, &want, "chunked");
        assert!(
            error <= F32.tolerance,
            "{strategy}: chunked error {error:e}"
        );
    }
}

#[test]
fn four_threads_share_one_plan() {
    let (device, _) = gpu();
    let network = random_network(&[130, 65, 17], Activation::Sigmoid, DType::F32, 9);
    for strategy in STRATEGIES {
        let plan = compile(&network, &device, strategy, F32, 256);
        thread::scope(|scope| {
            for thread_index in 0..4_u64 {
                let (plan, network) = (&plan, &network);
                scope.spawn(move || {
                    for round in 0..10 {
                        let rows = 1 + (thread_index as usize * 61 + round * 17) % 256;
                        let input = random_input_in(
                            rows,
                            130,
                            DType::F32,
                            thread_index * 100 + round as u64,
                        );
                        let got = plan.forward(input.view()).expect("forward");
                        let error = finite_relative_error(
                            &got,
                            &reference_forward(network, &input),
                            "threads",
                        );
                        assert!(
                            error <= F32.tolerance,
                            "{strategy}: thread {thread_index}: {error:e}"
                        );
                    }
                });
            }
        });
    }
}

#[test]
fn a_warm_forward_pass_allocates_nothing() {
    let (device, cuda) = gpu();
    cuda.poison_outputs(false);
    let network = random_network(&[784, 512, 10], Activation::Relu, DType::F32, 10);
    let input = random_input_in(300, 784, DType::F32, 11);
    for strategy in STRATEGIES {
        let plan = compile(&network, &device, strategy, F32, 512);
        plan.forward(input.view()).expect("first forward");
        let warm = cuda.pool_stats();
        let again = plan.forward(input.view()).expect("second forward");
        let after = cuda.pool_stats();
        assert_eq!(
            after.allocations, warm.allocations,
            "{strategy}: {warm:?} -> {after:?}"
        );
        assert!(
            after.reuses > warm.reuses,
            "{strategy}: the pools were not used"
        );
        assert!(again.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn auto_explains_its_choice_with_timings() {
    let (device, _) = gpu();
    let network = random_network(&[784, 512, 10], Activation::Softmax, DType::F16, 12);
    let plan = compile(&network, &device, Strategy::Auto, F16, 1024);
    let choices = plan.kernel_choices();
    assert_eq!(choices.len(), 2);
    for choice in &choices {
        assert!(
            choice.contains("auto:") && choice.contains(" ms"),
            "{choice}"
        );
    }
}

#[test]
fn bench_reports_every_variant_with_sane_numbers() {
    let (_, cuda) = gpu();
    for dtype in DType::ALL {
        let shape = vecprop::bench::Shape::new(1000, 784, 512);
        let results = bench_dense(&cuda, shape, dtype, 5).expect("bench");
        let variants: Vec<&str> = results.iter().map(|m| m.variant.as_str()).collect();
        // 512 units: too wide for narrow; 1000 rows: too many for splitk.
        assert_eq!(
            variants[..variants.len() - 1],
            [
                "cublas-gemm-only",
                "cublas+epilogue",
                "cublaslt-bias+act",
                "fused",
                "fused_small",
                "cublaslt-fused-relu",
            ]
        );
        let auto = results.last().expect("an auto row");
        assert_eq!(auto.variant, vecprop::bench::AUTO_VARIANT);
        let picked = auto.picked.as_deref().expect("the auto row names its pick");
        assert!(variants.contains(&picked), "{picked} not in {variants:?}");
        for m in &results {
            assert!(m.median_ms > 0.0 && m.median_ms.is_finite(), "{m:?}");
            assert!(m.gflops > 0.0, "{m:?}");
        }
    }
}

#[test]
fn devices_are_described() {
    let lines = describe_devices().expect("describe_devices");
    assert!(lines[0].contains("cuda driver"), "{lines:?}");
    assert!(lines.len() >= 2, "{lines:?}");
    let (_, cuda) = gpu();
    cuda.synchronize().expect("synchronize");
}
