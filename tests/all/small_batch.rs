//! Small batches and narrow layers (issue 21) against the float64 per-unit loop, on every
//! device this build has. On the CPU these shapes take the packed panel kernel, split over
//! units (at most 64 rows) or rows (larger batches); the widths are chosen to miss its 16-unit
//! panels and 6-row tiles on both sides, and strided views take the `gemm` fallback.

use crate::common;

use common::{random_input, random_network, reference_forward, relative_error, tolerance};
use ndarray::{s, Array2};
use vecprop::{Activation, Device, Network, PlanOptions};

const ROWS: [usize; 5] = [1, 3, 17, 64, 65];
const WIDTHS: [usize; 7] = [1, 7, 10, 33, 127, 129, 784];

fn check(device: &Device, network: &Network, input: &Array2<f32>, what: &str) {
    let plan = network.compile(device, PlanOptions::default()).unwrap();
    let output = plan.forward(input.view()).unwrap();
    let err = relative_error(&output, &reference_forward(network, input));
    let tol = tolerance(device, plan.dtype());
    assert!(err <= tol, "{what}: relative error {err:e} > {tol:e}");
}

fn every_width_pair_at_every_small_batch(device: &Device) {
    let mut case = 0;
    for &inputs in &WIDTHS {
        for &units in &WIDTHS {
            let activation = Activation::ALL[case % Activation::ALL.len()];
            let network = random_network(&[inputs, units], &[activation], case as u64);
            for &rows in &ROWS {
                let input = random_input(rows, inputs, 1000 + case as u64 + rows as u64);
                check(
                    device,
                    &network,
                    &input,
                    &format!("{rows} x {inputs} -> {units} {activation}"),
                );
            }
            case += 1;
        }
    }
}

fn a_deep_network_of_awkward_widths(device: &Device) {
    let network = random_network(
        &[784, 129, 127, 33, 10, 7, 1],
        &[
            Activation::Sigmoid,
            Activation::Relu,
            Activation::Gelu,
            Activation::Softmax,
            Activation::Tanh,
            Activation::Linear,
        ],
        21,
    );
    for rows in ROWS {
        let input = random_input(rows, 784, 40 + rows as u64);
        check(device, &network, &input, &format!("{rows} rows"));
    }
}

fn narrow_layers_at_large_batches(device: &Device) {
    let network = random_network(
        &[64, 64, 127, 128, 10],
        &[
            Activation::Sigmoid,
            Activation::Silu,
            Activation::LeakyRelu { slope: 0.1 },
            Activation::Softmax,
        ],
        22,
    );
    for rows in [66, 383, 1000, 4099] {
        let input = random_input(rows, 64, 50 + rows as u64);
        check(device, &network, &input, &format!("{rows} rows"));
    }
}

fn strided_and_column_major_small_batches(device: &Device) {
    let network = random_network(&[33, 129, 10], &[Activation::Relu, Activation::Sigmoid], 23);
    let plan = network.compile(device, PlanOptions::default()).unwrap();
    let wide = random_input(17, 40, 60);
    // Rows 33 long inside rows of 40: contiguous rows, row stride 40.
    let sliced = wide.slice(s![.., 3..36]);
    // A transposed copy: rows are strided.
    let column_major = sliced.t().to_owned();
    let want = reference_forward(&network, &sliced.to_owned());
    for (what, view) in [("sliced", sliced), ("column-major", column_major.t())] {
        let output = plan.forward(view).unwrap();
        let err = relative_error(&output, &want);
        assert!(
            err <= tolerance(device, plan.dtype()),
            "{what}: relative error {err:e}"
        );
    }
}

fn nan_and_infinity_pass_through_the_small_batch_path(device: &Device) {
    let network = random_network(&[7, 33], &[Activation::Relu], 24);
    let plan = network.compile(device, PlanOptions::default()).unwrap();
    let mut input = random_input(3, 7, 70);
    input[[1, 2]] = f32::NAN;
    input[[2, 0]] = f32::INFINITY;
    let output = plan.forward(input.view()).unwrap();
    assert!(output.row(0).iter().all(|v| v.is_finite()));
    assert!(
        output.row(1).iter().all(|v| v.is_nan()),
        "{}",
        output.row(1)
    );
    // relu(±∞) is ∞ or 0, and ∞·0 from a zero weight would be NaN: none are zero here.
    assert!(output.row(2).iter().all(|v| !v.is_finite() || *v == 0.0));
}

test_device!(
    every_width_pair_at_every_small_batch,
    a_deep_network_of_awkward_widths,
    narrow_layers_at_large_batches,
    strided_and_column_major_small_batches,
    nan_and_infinity_pass_through_the_small_batch_path,
    wide_layers_at_large_batches,
);

/// On the CPU the plan says which kernel each layer takes, so the shapes above are known to
/// reach the panel kernel, split both ways.
#[test]
fn the_cpu_plan_reports_the_panel_kernel_split_by_rows_and_by_units() {
    let network = random_network(&[784, 512, 64, 10], &[Activation::Relu; 3], 25);
    let plan = network
        .compile(&Device::cpu(), PlanOptions::default())
        .unwrap();
    for choice in plan.kernel_choices() {
        assert!(choice.contains("rows split"), "{choice}");
        assert!(choice.contains("units split"), "{choice}");
    }
}

/// Wide layers at a large batch: the rows-split panel kernel, with `K` well past one
/// cache-sized chunk of panels.
fn wide_layers_at_large_batches(device: &Device) {
    let network = random_network(
        &[1100, 300, 129],
        &[Activation::Gelu, Activation::Softmax],
        26,
    );
    let input = random_input(200, 1100, 80);
    check(device, &network, &input, "200 rows");
}
