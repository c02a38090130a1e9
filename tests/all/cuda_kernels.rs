//! GPU parity of vecprop's own kernels for narrow layers, small batches and whole networks,
//! and of the one-call cuBLASLt layer, against the float64 reference.
//!
//! Each test compiles a plan with the kernel's strategy, checks (through the plan's kernel
//! choices) that the kernel under test really ran rather than a fallback, and compares every
//! output element with the reference: f32 ≤ 1e-5, f16/bf16 ≤ 1e-2 (inputs and parameters
//! rounded to the dtype first). Every activation of `Activation::ALL`, rows 1/3/17/1000/65537
//! (65537 only for networks of at most 5,000 multiply-adds per row, which the scalar f64
//! reference computes quickly; at most 64 rows per pass for split-K, larger batches in
//! chunks), widths off every tile multiple.
//! GPU buffers are poisoned with NaN before each pass. Without a GPU these tests FAIL.
use crate::common;

use common::{finite_relative_error, gpu, random_input_in, reference_forward};
use ndarray::{array, Array1, Array2};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use vecprop::bench::{bench_dense, AUTO_VARIANT};
use vecprop::{Activation, DType, Device, Network, Plan, PlanOptions, Strategy};

const DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

fn tolerance(dtype: DType) -> f64 {
    if dtype == DType::F32 {
        1e-5
    } else {
        1e-2
    }
}

/// Random weights (scaled by 1/sqrt(inputs)) and biases, one activation per layer,
/// parameters rounded to `dtype`.
fn network(widths: &[usize], activations: &[Activation], dtype: DType, seed: u64) -> Network {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut builder = Network::builder(widths[0]);
    for (pair, &activation) in widths.windows(2).zip(activations.iter().cycle()) {
        let scale = 1.0 / (pair[0] as f32).sqrt();
        let weight = Array2::from_shape_fn((pair[0], pair[1]), |_| rng.random_range(-scale..scale));
        let bias = Array1::from_shape_fn(pair[1], |_| rng.random_range(-0.5..0.5));
        builder = builder.layer_with(weight, bias, activation);
    }
    builder.dtype(dtype).build().expect("the test widths chain")
}

fn compile(
    network: &Network,
    device: &Device,
    strategy: Strategy,
    dtype: DType,
    max_batch: usize,
) -> Plan {
    let options = PlanOptions {
        max_batch,
        dtype: Some(dtype),
        strategy,
        ..PlanOptions::default()
    };
    network
        .compile(device, options)
        .unwrap_or_else(|err| panic!("compiling for {strategy} {dtype}: {err}"))
}

/// One kernel under test: its dtypes, its strategy, the text its kernel choices must contain (proof that
/// it ran, not a fallback), the topologies and row counts, and the largest batch per pass.
struct Case {
    dtypes: &'static [DType],
    strategy: Strategy,
    ran: &'static str,
    topologies: &'static [&'static [usize]],
    rows: &'static [usize],
    max_batch: usize,
}

/// Every topology, row count and dtype of `case`, with `activations` cycled over the layers.
fn check(case: &Case, activations: &[Activation]) {
    let (device, _) = gpu();
    for &dtype in case.dtypes {
        for (t, widths) in case.topologies.iter().enumerate() {
            let network = network(widths, activations, dtype, 300 + t as u64);
            let plan = compile(&network, &device, case.strategy, dtype, case.max_batch);
            let choices = plan.kernel_choices();
            assert!(
                choices.iter().all(|c| c.contains(case.ran)),
                "{} {dtype} {widths:?}: expected `{}` everywhere, got {choices:?}",
                case.strategy,
                case.ran
            );
            let macs_per_row: usize = widths.windows(2).map(|p| p[0] * p[1]).sum();
            for &rows in case.rows {
                // The f64 reference is scalar: the largest batches only for small networks.
                if rows > 10_000 && macs_per_row > 5_000 {
                    continue;
                }
                let x = random_input_in(rows, widths[0], dtype, rows as u64 + 7);
                let what = format!(
                    "{} {dtype} {activations:?} {widths:?} rows {rows}",
                    case.strategy
                );
                let got = plan
                    .forward(x.view())
                    .unwrap_or_else(|err| panic!("{what}: {err}"));
                let error = finite_relative_error(&got, &reference_forward(&network, &x), &what);
                assert!(
                    error <= tolerance(dtype),
                    "{what}: relative error {error:e} > {:e}; kernels {choices:?}",
                    tolerance(dtype)
                );
            }
        }
    }
}

const NARROW: Case = Case {
    dtypes: &DTYPES,
    strategy: Strategy::Narrow,
    ran: "narrow_",
    // n = 1..256 over every slot size (32, 64, 128, 256); k up to 200, not multiples of 8.
    topologies: &[
        &[2, 3],
        &[33, 65, 7],
        &[130, 17, 129],
        &[200, 256, 1],
        &[7, 100, 250],
    ],
    rows: &[1, 3, 17, 1000, 65537],
    max_batch: 65537,
};

const SPLITK: Case = Case {
    dtypes: &DTYPES,
    strategy: Strategy::SplitK,
    ran: "splitk_partial",
    // Long k (many splits) and narrow or odd n (partial strips, scalar weight loads).
    topologies: &[&[1000, 300], &[33, 65, 7], &[4100, 130], &[2, 3]],
    rows: &[1, 3, 17, 64, 1000],
    max_batch: 64,
};

const NARROW_MMA: Case = Case {
    dtypes: &[DType::F16, DType::BF16],
    strategy: Strategy::NarrowMma,
    ran: "narrow_mma_",
    // n over every slot size up to 128; odd k (the element-wise A path), k = 64 and k > 64.
    topologies: &[
        &[2, 3],
        &[33, 65, 7],
        &[64, 64, 64],
        &[130, 17, 128],
        &[7, 100, 127],
    ],
    rows: &[1, 3, 17, 1000, 65537],
    max_batch: 65537,
};

const NETWORK: Case = Case {
    dtypes: &DTYPES,
    strategy: Strategy::Network,
    ran: "network kernel",
    topologies: &[
        &[2, 3],
        &[33, 65, 7],
        &[64, 64, 64, 64],
        &[130, 256, 17, 5],
        &[5, 9, 250, 3, 11, 2, 40, 1, 6],
    ],
    rows: &[1, 3, 17, 1000, 65537],
    max_batch: 65537,
};

/// One test per activation for a case (candle's `test_device!` style).
macro_rules! per_activation {
    ($name:ident, $case:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn every_activation() {
                for activation in Activation::ALL {
                    check(&$case, &[activation]);
                }
            }
        }
    };
}

per_activation!(narrow, NARROW);
per_activation!(narrow_mma, NARROW_MMA);
per_activation!(splitk, SPLITK);
per_activation!(network, NETWORK);

#[test]
fn network_with_a_different_activation_per_layer() {
    check(
        &NETWORK,
        &[
            Activation::Relu,
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Softmax,
        ],
    );
}

#[test]
fn cublaslt_fused_runs_relu_linear_and_gelu_tanh_in_one_call() {
    for activation in [Activation::Relu, Activation::Linear, Activation::GeluTanh] {
        let case = Case {
            dtypes: &DTYPES,
            strategy: Strategy::CublasLtFused,
            ran: "(one call)",
            topologies: &[&[2, 3], &[33, 65, 7], &[784, 512, 10]],
            rows: &[1, 3, 17, 1000],
            max_batch: 1000,
        };
        check(&case, &[activation]);
    }
}

#[test]
fn cublaslt_fused_with_tf32_stays_within_2e_3() {
    let (device, _) = gpu();
    for activation in [Activation::Relu, Activation::Linear] {
        let net = network(&[784, 512, 10], &[activation], DType::F32, 21);
        let options = PlanOptions {
            max_batch: 1000,
            strategy: Strategy::CublasLtFused,
            allow_tf32: true,
            ..PlanOptions::default()
        };
        let plan = net.compile(&device, options).expect("compile");
        assert!(plan
            .kernel_choices()
            .iter()
            .all(|c| c.contains("(one call)")));
        for rows in [1, 17, 1000] {
            let x = random_input_in(rows, 784, DType::F32, 22);
            let got = plan.forward(x.view()).expect("forward");
            let error = finite_relative_error(&got, &reference_forward(&net, &x), "tf32");
            assert!(error <= 2e-3, "{activation} rows {rows}: {error:e}");
        }
    }
}

#[test]
fn strategies_fall_back_where_their_kernel_cannot_go() {
    let (device, _) = gpu();
    // 300 units: too wide for narrow and the network kernel; sigmoid: no cuBLASLt epilogue.
    let net = network(&[20, 300], &[Activation::Sigmoid], DType::F32, 5);
    for strategy in [Strategy::Narrow, Strategy::Network, Strategy::CublasLtFused] {
        let plan = compile(&net, &device, strategy, DType::F32, 100);
        let choices = plan.kernel_choices();
        assert!(choices[0].contains("fused"), "{strategy}: {choices:?}");
        let x = random_input_in(100, 20, DType::F32, 1);
        let error = finite_relative_error(
            &plan.forward(x.view()).unwrap(),
            &reference_forward(&net, &x),
            "fallback",
        );
        assert!(error <= 1e-5, "{strategy}: {error:e}");
    }
}

#[test]
fn worked_example_with_every_strategy() {
    let (device, _) = gpu();
    let (network, x) = common::worked_example();
    for strategy in Strategy::ALL {
        let plan = compile(&network, &device, strategy, DType::F32, 4);
        let got = plan.forward(x.view()).expect("forward");
        assert_eq!(got.mapv(f32::round), array![[1.0, 0.0, 1.0]], "{strategy}");
    }
}

#[test]
fn auto_may_choose_the_whole_network_kernel_and_explains_it() {
    let (device, _) = gpu();
    let net = network(&[64, 64, 64, 64], &[Activation::Relu], DType::BF16, 8);
    let plan = compile(&net, &device, Strategy::Auto, DType::BF16, 65536);
    let choices = plan.kernel_choices();
    assert!(choices.iter().all(|c| c.contains("auto")), "{choices:?}");
    let x = random_input_in(65536, 64, DType::BF16, 9);
    let error = finite_relative_error(
        &plan.forward(x.view()).unwrap(),
        &reference_forward(&net, &x),
        "auto",
    );
    assert!(error <= 1e-2, "{error:e} with {choices:?}");
}

#[test]
fn bench_reports_our_kernels_and_an_auto_row() {
    let (_, cuda) = gpu();
    for dtype in DTYPES {
        let results =
            bench_dense(&cuda, vecprop::bench::Shape::new(1, 64, 64), dtype, 3).expect("bench");
        let variants: Vec<&str> = results.iter().map(|m| m.variant.as_str()).collect();
        for own in ["fused", "fused_small", "narrow", "splitk"] {
            assert!(variants.contains(&own), "{dtype}: {variants:?}");
            assert!(!own.starts_with("cublas"));
        }
        let auto = results.last().expect("rows");
        assert_eq!(auto.variant, AUTO_VARIANT, "{variants:?}");
        let picked = auto.picked.as_deref().expect("the auto row names its pick");
        assert!(variants.contains(&picked), "{picked} not in {variants:?}");
        for m in &results {
            assert!(m.median_ms > 0.0 && m.median_ms.is_finite(), "{m:?}");
        }
    }
}
