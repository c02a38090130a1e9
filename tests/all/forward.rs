//! The vectorised forward pass against the lesson's per-unit loop in float64, on every
//! device this build has.

use crate::common;

use std::sync::Arc;

use common::{
    random_input, random_network, reference_forward, reference_forward_stored, relative_error,
    tolerance,
};
use ndarray::{array, Array2};
use vecprop::{Activation, DType, Device, Error, PlanOptions};

fn worked_example(device: &Device) {
    let (network, input) = common::worked_example();
    let plan = network.compile(device, PlanOptions::default()).unwrap();
    let output = plan.forward(input.view()).unwrap();

    assert_eq!(output.mapv(f32::round), array![[1.0, 0.0, 1.0]]);
    // z = [200 - 34 - 1, -600 + 68 + 1, 1000 - 102 + 2] = [165, -531, 900]
    let want = reference_forward(&network, &input);
    assert!(relative_error(&output, &want) < 1e-6, "{output} vs {want}");
}

fn matches_the_per_unit_loop_for_every_activation_and_awkward_batches(device: &Device) {
    for (case, &last) in Activation::ALL.iter().enumerate() {
        let hidden = Activation::ALL[(case + 1) % Activation::ALL.len()];
        let network = random_network(
            &[13, 33, 65, 7],
            &[hidden, Activation::Tanh, last],
            case as u64,
        );
        let plan = network.compile(device, PlanOptions::default()).unwrap();
        for rows in [1, 3, 17, 1000] {
            let input = random_input(rows, 13, 100 + rows as u64);
            let output = plan.forward(input.view()).unwrap();
            let err = relative_error(&output, &reference_forward(&network, &input));
            let tol = tolerance(device, plan.dtype());
            assert!(
                err <= tol,
                "{hidden}/{last}, {rows} rows: relative error {err:e} > {tol:e}"
            );
        }
    }
}

fn wide_layers_that_are_not_tile_multiples(device: &Device) {
    let network = random_network(
        &[784, 130, 17, 10],
        &[Activation::Sigmoid, Activation::Relu, Activation::Linear],
        7,
    );
    let plan = network.compile(device, PlanOptions::default()).unwrap();
    let input = random_input(1000, 784, 8);
    let output = plan.forward(input.view()).unwrap();
    let err = relative_error(&output, &reference_forward(&network, &input));
    assert!(
        err <= tolerance(device, plan.dtype()),
        "relative error {err:e}"
    );
}

fn small_batches_of_wide_layers(device: &Device) {
    // Few rows and many units: the CPU splits such a layer by units across threads.
    for activation in Activation::ALL {
        let network = random_network(&[20, 300, 130], &[Activation::Relu, activation], 21);
        let plan = network.compile(device, PlanOptions::default()).unwrap();
        for rows in [1, 3, 17] {
            let input = random_input(rows, 20, 22);
            let output = plan.forward(input.view()).unwrap();
            let err = relative_error(&output, &reference_forward(&network, &input));
            let tol = tolerance(device, plan.dtype());
            assert!(
                err <= tol,
                "{activation}, {rows} rows: relative error {err:e} > {tol:e}"
            );
        }
    }
}

fn batches_larger_than_the_plan_run_in_chunks(device: &Device) {
    let network = random_network(&[5, 9, 3], &[Activation::Relu, Activation::Softmax], 3);
    let plan = network
        .compile(device, PlanOptions::with_max_batch(7))
        .unwrap();
    let input = random_input(1000, 5, 4);
    let mut chunks = 0;
    let mut output = Array2::from_elem((1000, 3), f32::NAN);
    plan.forward_with_progress(input.view(), output.view_mut(), |_| chunks += 1)
        .unwrap();
    assert_eq!(chunks, 1000_usize.div_ceil(7));
    let err = relative_error(&output, &reference_forward(&network, &input));
    assert!(
        err <= tolerance(device, plan.dtype()),
        "relative error {err:e}"
    );
}

fn half_precision_models(device: &Device) {
    for dtype in [DType::F16, DType::BF16] {
        let mut network =
            random_network(&[24, 40, 6], &[Activation::Sigmoid, Activation::Linear], 9);
        network.set_dtype(dtype);
        let plan = network.compile(device, PlanOptions::default()).unwrap();
        assert_eq!(plan.dtype(), dtype);
        // The reference sees the same rounded weights, inputs and stored layer outputs the
        // plan computes with; only the accumulation differs (f32 against f64).
        let input = random_input(17, 24, 10).mapv(|x| dtype.round(x));
        let output = plan.forward(input.view()).unwrap();
        let reference = reference_forward_stored(&network, &input, dtype);
        let err = relative_error(&output, &reference);
        assert!(
            err <= tolerance(device, dtype),
            "{dtype}: relative error {err:e}"
        );
        // Every device stores a 16-bit plan's values in 16 bits, the output included...
        let stored = output.iter().all(|&v| dtype.round(v) == v);
        assert!(stored, "{dtype}: outputs not representable in {dtype}");
        // ...so it does not give the f32 plan's answer.
        let f32_options = PlanOptions {
            dtype: Some(DType::F32),
            ..PlanOptions::default()
        };
        let f32_plan = network.compile(device, f32_options).unwrap();
        assert_ne!(f32_plan.forward(input.view()).unwrap(), output, "{dtype}");
    }
}

fn concurrent_callers_get_their_own_results(device: &Device) {
    let network = random_network(&[31, 64, 5], &[Activation::Relu, Activation::Sigmoid], 12);
    let plan = Arc::new(
        network
            .compile(device, PlanOptions::with_max_batch(64))
            .unwrap(),
    );
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let plan = Arc::clone(&plan);
            std::thread::spawn(move || {
                let input = random_input(50 + 37 * t, 31, 200 + t as u64);
                let outputs: Vec<_> = (0..10)
                    .map(|_| plan.forward(input.view()).unwrap())
                    .collect();
                (input, outputs)
            })
        })
        .collect();
    for handle in threads {
        let (input, outputs) = handle.join().unwrap();
        let want = reference_forward(&network, &input);
        for output in outputs {
            let err = relative_error(&output, &want);
            assert!(
                err <= tolerance(device, plan.dtype()),
                "relative error {err:e}"
            );
        }
    }
}

fn bad_batches_are_errors(device: &Device) {
    let network = random_network(&[4, 2], &[Activation::Linear], 1);
    let plan = network.compile(device, PlanOptions::default()).unwrap();
    let wrong_width = plan.forward(Array2::zeros((3, 5)).view()).unwrap_err();
    assert!(matches!(
        wrong_width,
        Error::InputWidth {
            expected: 4,
            actual: 5
        }
    ));
    assert_eq!(
        wrong_width.to_string(),
        "input has 5 columns but the network expects 4 (one example per row)"
    );
    let empty = plan
        .forward(Array2::zeros((0, 4)).view())
        .expect("an empty batch");
    assert_eq!(
        empty.dim(),
        (0, plan.output_width()),
        "no rows in, no rows out"
    );
}

test_device!(
    worked_example,
    matches_the_per_unit_loop_for_every_activation_and_awkward_batches,
    wide_layers_that_are_not_tile_multiples,
    small_batches_of_wide_layers,
    batches_larger_than_the_plan_run_in_chunks,
    half_precision_models,
    concurrent_callers_get_their_own_results,
    bad_batches_are_errors,
);
