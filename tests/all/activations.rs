//! Every activation on every device and kernel, NaN and ±∞ included.
//!
//! - A table of (activation, input, expected) values, run through a plan on each device, so
//!   that the CPU epilogue (`src/activation.rs`) and every CUDA kernel built from
//!   `kernels/common.cuh` (the epilogue after cuBLAS and cuBLASLt, both fused tile sizes, in
//!   f32, f16 and bf16) are held to the same numbers. The scalar CPU path is checked against
//!   it too.
//! - Softmax rows holding NaN, +∞ and -∞, against the table and against PyTorch's own
//!   results (fixtures from scripts/make_torch_softmax_fixture.py).
//! - The new activations against the float64 reference on awkward shapes.
//! - NaN, +∞ and -∞ in input rows, and NaN in a weight, through whole networks.
//!
//! The special values are PyTorch's float32 results, read from the formulas its CPU and CUDA
//! kernels evaluate (torch was not run here): `relu` and `leaky_relu` keep NaN (`clamp_min`
//! propagates it; leaky ReLU is `x > 0 ? x : x * slope`); `sigmoid(±∞)` = 1, 0;
//! `tanh(±∞)` = ±1; `gelu(-∞)` is NaN (`x * 0.5 * (1 + erf(x / √2))` = `-∞ · 0`), and so
//! are `gelu_tanh(-∞)` (`0.5 x (1 + tanh(...))`) and `silu(-∞)` (`x / (1 + e^-x)` = `-∞/∞`);
//! each is `+∞` at `+∞`. A softmax row with a NaN or a `+∞` (`e^(∞ - ∞)`), or with nothing
//! but `-∞`, is all NaN; a `-∞` among finite values gives 0.

use crate::common;

use crate::helpers::fixture;
use common::{random_input, random_network, reference_forward, relative_error, tolerance};
use ndarray::{Array1, Array2};
use vecprop::{io, Activation, DType, Device, Network, Plan, PlanOptions, Strategy};

const INF: f64 = f64::INFINITY;
const NAN: f64 = f64::NAN;

/// The inputs of [`TABLE`]: both infinities, NaN, both tails and the middle. Each is exact
/// in f16 and bf16, so every dtype sees the same `z`.
const TABLE_INPUTS: [f32; 14] = [
    f32::NEG_INFINITY,
    -100.0,
    -10.0,
    -3.0,
    -1.0,
    -0.5,
    0.0,
    0.5,
    1.0,
    3.0,
    10.0,
    100.0,
    f32::INFINITY,
    f32::NAN,
];

/// `g(z)` for each of [`TABLE_INPUTS`], in float64 from the textbook definitions, with
/// PyTorch's NaN and ±∞ (see the module comment).
#[rustfmt::skip]
const TABLE: [(Activation, [f64; 14]); 9] = [
    (Activation::Sigmoid, [0.0, 3.720075976020836e-44, 4.5397868702434395e-05, 0.04742587317756679,
        0.2689414213699951, 0.37754066879814546, 0.5, 0.6224593312018546, 0.7310585786300049,
        0.9525741268224334, 0.9999546021312976, 1.0, 1.0, NAN]),
    (Activation::Relu, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 3.0, 10.0, 100.0, INF, NAN]),
    (Activation::Tanh, [-1.0, -1.0, -0.9999999958776927, -0.9950547536867305, -0.7615941559557649,
        -0.46211715726000974, 0.0, 0.46211715726000974, 0.7615941559557649, 0.9950547536867305,
        0.9999999958776927, 1.0, 1.0, NAN]),
    (Activation::Linear, [-INF, -100.0, -10.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 10.0, 100.0,
        INF, NAN]),
    (Activation::Gelu, [NAN, -0.0, -7.619853024160593e-23, -0.004049694094890287,
        -0.15865525393145707, -0.15426876936299344, 0.0, 0.34573123063700656, 0.8413447460685429,
        2.99595030590511, 10.0, 100.0, INF, NAN]),
    (Activation::GeluTanh, [NAN, -0.0, -1.2040923482098023e-37, -0.0036373920817730195,
        -0.15880800939172326, -0.15428599017485609, 0.0, 0.34571400982514394, 0.8411919906082768,
        2.9963626079182273, 10.0, 100.0, INF, NAN]),
    (Activation::Silu, [NAN, -3.7200759760208363e-42, -0.00045397868702434395, -0.14227761953270035,
        -0.2689414213699951, -0.18877033439907273, 0.0, 0.3112296656009273, 0.7310585786300049,
        2.8577223804673, 9.999546021312977, 100.0, INF, NAN]),
    (Activation::LeakyRelu { slope: 0.01 }, [-INF, -1.0, -0.1, -0.03, -0.01, -0.005, 0.0, 0.5, 1.0,
        3.0, 10.0, 100.0, INF, NAN]),
    (Activation::LeakyRelu { slope: 0.2 }, [-INF, -20.0, -2.0, -0.6000000000000001, -0.2, -0.1,
        0.0, 0.5, 1.0, 3.0, 10.0, 100.0, INF, NAN]),
];

/// Softmax rows `z` (each cell exact in f16 and bf16) and PyTorch's softmax of each.
#[rustfmt::skip]
const SOFTMAX_ROWS: [([f32; 3], [f64; 3]); 6] = [
    ([1.0, 2.0, 3.0], [0.09003057317038046, 0.24472847105479767, 0.6652409557748219]),
    ([1.0, f32::NEG_INFINITY, 3.0], [0.11920292202211755, 0.0, 0.8807970779778823]),
    ([1.0, f32::NAN, 3.0], [NAN, NAN, NAN]),
    ([1.0, f32::INFINITY, 3.0], [NAN, NAN, NAN]),
    ([f32::INFINITY, f32::INFINITY, 3.0], [NAN, NAN, NAN]),
    ([f32::NEG_INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY], [NAN, NAN, NAN]),
];

/// The activations this file adds parity for (the older ones have theirs in forward.rs).
const NEW_ACTIVATIONS: [Activation; 5] = [
    Activation::Gelu,
    Activation::GeluTanh,
    Activation::Silu,
    Activation::LeakyRelu { slope: 0.01 },
    Activation::LeakyRelu { slope: 0.2 },
];

/// One way to run a network: a dtype and, on a GPU, a kernel strategy, fused tile size or
/// forced fused kernel, and the plan's batch size (split-K takes only small batches).
#[derive(Debug, Clone, Copy)]
struct Variant {
    dtype: DType,
    strategy: Strategy,
    fused_tile: Option<usize>,
    fused_kernel: Option<&'static str>,
    max_batch: usize,
}

/// The CPU has one way; a GPU has every strategy (both fused tiles, and the `simt_warp` and
/// `wgmma` kernels where they run) in every dtype. Layers a strategy's kernel cannot take
/// (e.g. narrow_mma in f32) run as under Fused.
fn variants(device: &Device) -> Vec<Variant> {
    let plain = |dtype, strategy, max_batch| Variant {
        dtype,
        strategy,
        fused_tile: None,
        fused_kernel: None,
        max_batch,
    };
    let Device::Cuda(cuda) = device else {
        return vec![plain(DType::F32, Strategy::Auto, 1024)];
    };
    let mut all = Vec::new();
    for dtype in DType::ALL {
        for strategy in [
            Strategy::Cublas,
            Strategy::CublasLt,
            Strategy::CublasLtFused,
            Strategy::Narrow,
            Strategy::NarrowMma,
            Strategy::Network,
            Strategy::Auto,
        ] {
            all.push(plain(dtype, strategy, 1024));
        }
        all.push(plain(dtype, Strategy::SplitK, 64));
        for tile in [128, 64] {
            all.push(Variant {
                fused_tile: Some(tile),
                ..plain(dtype, Strategy::Fused, 1024)
            });
        }
        for kernel in ["simt_warp", "wgmma"] {
            // Errors where the kernel does not exist (16-bit simt_warp, wgmma off Hopper).
            if cuda.force_fused_kernel(Some(kernel), dtype).is_ok() {
                all.push(Variant {
                    fused_kernel: Some(kernel),
                    ..plain(dtype, Strategy::Fused, 1024)
                });
            }
        }
        cuda.force_fused_kernel(None, dtype).unwrap();
    }
    all
}

/// `network` with its parameters rounded to the variant's dtype, and its plan.
fn compile(device: &Device, network: &Network, variant: Variant) -> (Network, Plan) {
    let mut network = network.clone();
    network.set_dtype(variant.dtype);
    if let Device::Cuda(cuda) = device {
        cuda.force_fused_tile(variant.fused_tile);
        cuda.force_fused_kernel(variant.fused_kernel, variant.dtype)
            .unwrap_or_else(|err| panic!("{variant:?}: {err}"));
    }
    let options = PlanOptions {
        strategy: variant.strategy,
        max_batch: variant.max_batch,
        ..PlanOptions::default()
    };
    let plan = network
        .compile(device, options)
        .unwrap_or_else(|err| panic!("{variant:?}: {err}"));
    (network, plan)
}

/// `None` when `want` is finite; otherwise whether `got` is the same special value (NaN for
/// NaN, the same infinity for an infinity).
fn special_value_matches(got: f32, want: f64) -> Option<bool> {
    if want.is_nan() {
        Some(got.is_nan())
    } else if want.is_infinite() {
        Some(got as f64 == want)
    } else {
        None
    }
}

/// Checks `got` against `want`: NaN where `want` is NaN, the same infinity where it is
/// infinite, and a finite `got` within `tol · scale` elsewhere, where `scale` is the largest
/// finite `|want|` (norm-wise, as [`relative_error`]), at least `floor`.
fn assert_matches(got: &Array2<f32>, want: &Array2<f64>, tol: f64, floor: f64, what: &str) {
    assert_eq!(got.dim(), want.dim(), "{what}: output shape");
    let scale = want
        .iter()
        .filter(|w| w.is_finite())
        .fold(floor, |m, w| m.max(w.abs()));
    for ((index, &g), &w) in got.indexed_iter().zip(want) {
        let ok = special_value_matches(g, w)
            .unwrap_or_else(|| g.is_finite() && (g as f64 - w).abs() <= tol * scale);
        assert!(
            ok,
            "{what}: element {index:?} is {g}, want {w} (tolerance {tol:e} x {scale})"
        );
    }
}

/// A network of one layer from a width-1 input to `units` copies of it: `z = x · 1 + bias`.
fn broadcast_layer(units: usize, bias: &[f32], activation: Activation) -> Network {
    Network::builder(1)
        .layer_with(
            Array2::ones((1, units)),
            Array1::from(bias.to_vec()),
            activation,
        )
        .build()
        .expect("a valid layer")
}

fn the_table_holds_on_every_kernel(device: &Device) {
    let input = Array2::from_shape_fn((TABLE_INPUTS.len(), 1), |(row, _)| TABLE_INPUTS[row]);
    // 8 units take the kernels' 16-byte vector paths (f32 and 16-bit), 3 their scalar paths.
    for units in [8, 3] {
        for (activation, expected) in TABLE {
            let network = broadcast_layer(units, &vec![0.0; units], activation);
            let want = Array2::from_shape_fn((TABLE_INPUTS.len(), units), |(row, _)| expected[row]);
            for variant in variants(device) {
                let (_, plan) = compile(device, &network, variant);
                let got = plan.forward(input.view()).unwrap();
                let what = format!("{activation} on {variant:?}, {units} units");
                // Element-wise: each value against its own magnitude, at least 1.
                for ((index, &g), &w) in got.indexed_iter().zip(&want) {
                    let tol = tolerance(device, variant.dtype) * w.abs().max(1.0);
                    let ok = special_value_matches(g, w)
                        .unwrap_or_else(|| g.is_finite() && (g as f64 - w).abs() <= tol);
                    let z = TABLE_INPUTS[index.0];
                    assert!(ok, "{what}: g({z}) = {g}, want {w}");
                }
            }
        }
    }
}

fn softmax_rows_with_nan_and_infinities(device: &Device) {
    for (row, expected) in SOFTMAX_ROWS {
        // z = 0 · 1 + bias = the row. Padded to 8 with -∞ (which must add nothing) so that
        // the vector path runs too; the 3-wide row takes the scalar path.
        let mut padded = [f32::NEG_INFINITY; 8];
        padded[..3].copy_from_slice(&row);
        let padded_want: Vec<f64> = if expected.iter().any(|w| w.is_nan()) {
            vec![NAN; 8]
        } else {
            expected.into_iter().chain([0.0; 5]).collect()
        };
        for (bias, want) in [(&row[..], &expected[..]), (&padded[..], &padded_want[..])] {
            let network = broadcast_layer(bias.len(), bias, Activation::Softmax);
            let want = Array2::from_shape_fn((3, bias.len()), |(_, col)| want[col]);
            let input = Array2::zeros((3, 1));
            for variant in variants(device) {
                let (_, plan) = compile(device, &network, variant);
                let got = plan.forward(input.view()).unwrap();
                let tol = tolerance(device, variant.dtype);
                let what = format!("softmax of {bias:?} on {variant:?}");
                assert_matches(&got, &want, tol, 1.0, &what);
            }
        }
    }
}

/// Softmax rows holding NaN, +∞ and -∞ in the first, a middle and the last column, at the
/// widths of each kernel's scalar path, vector path, several lanes and several column slots,
/// against what real PyTorch computed (scripts/make_torch_softmax_fixture.py): a NaN anywhere
/// in a row makes the whole row NaN on every kernel family.
fn softmax_rows_match_pytorch(device: &Device) {
    for width in [3, 8, 40, 130] {
        let rows = io::read_npy(fixture(&format!("torch_softmax_rows_w{width}.npy"))).unwrap();
        let torch = io::read_npy(fixture(&format!("torch_softmax_w{width}.npy"))).unwrap();
        assert!(torch
            .rows()
            .into_iter()
            .any(|r| r.iter().all(|v| v.is_nan())));
        let input = Array2::zeros((2, 1));
        for (row, want) in rows.rows().into_iter().zip(torch.rows()) {
            let network = broadcast_layer(width, row.as_slice().unwrap(), Activation::Softmax);
            let want = Array2::from_shape_fn((2, width), |(_, col)| f64::from(want[col]));
            for variant in variants(device) {
                let (_, plan) = compile(device, &network, variant);
                let got = plan.forward(input.view()).unwrap();
                let tol = tolerance(device, variant.dtype);
                let what = format!("softmax of a {width}-wide row {row} on {variant:?}");
                assert_matches(&got, &want, tol, 1.0, &what);
            }
        }
    }
}

fn new_activations_match_float64_on_awkward_shapes(device: &Device) {
    for variant in variants(device) {
        for (case, activation) in NEW_ACTIVATIONS.into_iter().enumerate() {
            for (widths, activations) in [
                (
                    &[13, 33, 65, 7][..],
                    &[activation, activation, activation][..],
                ),
                (&[130, 17, 10][..], &[activation, Activation::Softmax][..]),
            ] {
                let random = random_network(widths, activations, 40 + case as u64);
                let (network, plan) = compile(device, &random, variant);
                for rows in [1, 3, 17, 1000] {
                    // Inputs in [-3, 3): z reaches both tails of gelu and silu.
                    let input = random_input(rows, widths[0], 50 + rows as u64)
                        .mapv(|x| variant.dtype.round(3.0 * x));
                    let output = plan.forward(input.view()).unwrap();
                    let err = relative_error(&output, &reference_forward(&network, &input));
                    let tol = tolerance(device, variant.dtype);
                    assert!(
                        err <= tol,
                        "{activation} {widths:?} on {variant:?}, {rows} rows: {err:e} > {tol:e}"
                    );
                }
            }
        }
    }
}

/// 17 random rows of width `cols`, with NaN, +∞, -∞ and both infinities in rows 1 to 4.
fn rows_with_special_values(cols: usize) -> Array2<f32> {
    let mut input = random_input(17, cols, 60);
    input[[1, 2]] = f32::NAN;
    input[[2, 0]] = f32::INFINITY;
    input[[3, 1]] = f32::NEG_INFINITY;
    input[[4, 0]] = f32::INFINITY;
    input[[4, 3]] = f32::NEG_INFINITY;
    input
}

fn nan_and_infinities_propagate_through_networks(device: &Device) {
    let activations = Activation::ALL
        .into_iter()
        .chain([Activation::LeakyRelu { slope: 0.2 }]);
    for activation in activations {
        let random = random_network(&[9, 20, 7], &[activation, activation], 61);
        // The same network with one NaN weight in its last layer: output column 3 must be NaN
        // in every row (every column, for softmax) and the other columns untouched.
        let layers = random.layers();
        let mut poisoned_weight = layers[1].weight().clone();
        poisoned_weight[[4, 3]] = f32::NAN;
        let poisoned = Network::builder(9)
            .layer_with(
                layers[0].weight().clone(),
                layers[0].bias().clone(),
                activation,
            )
            .layer_with(poisoned_weight, layers[1].bias().clone(), activation)
            .build()
            .unwrap();
        for variant in variants(device) {
            let tol = tolerance(device, variant.dtype);
            let special_rows = rows_with_special_values(9).mapv(|x| variant.dtype.round(x));
            let finite_rows = random_input(17, 9, 62).mapv(|x| variant.dtype.round(x));
            for (network, input, what) in [
                (&random, &special_rows, "NaN/±inf rows"),
                (&poisoned, &finite_rows, "a NaN weight"),
            ] {
                let (network, plan) = compile(device, network, variant);
                let got = plan.forward(input.view()).unwrap();
                let want = reference_forward(&network, input);
                // The reference must itself show the special values, or the test proves little.
                assert!(want.iter().any(|w| !w.is_finite()), "{activation}: {what}");
                let what = format!("{activation}, {what}, on {variant:?}");
                assert_matches(&got, &want, tol, 1e-3, &what);
            }
        }
    }
}

test_device!(
    the_table_holds_on_every_kernel,
    softmax_rows_with_nan_and_infinities,
    softmax_rows_match_pytorch,
    new_activations_match_float64_on_awkward_shapes,
    nan_and_infinities_propagate_through_networks,
);

#[test]
fn the_scalar_cpu_path_holds_to_the_table() {
    for (activation, expected) in TABLE {
        for (&z, &want) in TABLE_INPUTS.iter().zip(&expected) {
            let got = activation.apply(z);
            let ok = special_value_matches(got, want)
                .unwrap_or_else(|| (got as f64 - want).abs() <= 1e-6 * want.abs().max(1.0));
            assert!(ok, "{activation}({z}) = {got}, want {want}");
        }
    }
}

#[test]
fn the_table_covers_every_activation() {
    for activation in Activation::ALL.into_iter().filter(|a| a.is_elementwise()) {
        assert!(
            TABLE.iter().any(|(a, _)| *a == activation),
            "{activation} has no row in the table"
        );
    }
}

#[test]
fn slopes_and_names_survive_the_model_file() {
    let activations = [
        Activation::Gelu,
        Activation::LeakyRelu { slope: 0.2 },
        Activation::GeluTanh,
        Activation::Silu,
        Activation::LeakyRelu { slope: 0.01 },
    ];
    let network = random_network(&[3, 4, 5, 6, 7, 2], &activations, 70);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    vecprop::io::save_model(&network, &path).unwrap();
    let loaded = vecprop::io::load_model(&path, None).unwrap();
    let read: Vec<Activation> = loaded.layers().iter().map(|l| l.activation()).collect();
    assert_eq!(read, activations);
}
