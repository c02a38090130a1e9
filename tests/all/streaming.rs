//! `Plan::forward_stream` and `io::forward_npy`, written once and run on every device this
//! build has (`test_device!`): on the CPU always, and on the GPU with `--features cuda`
//! (failing there without a GPU).

use crate::common;

use std::fs::OpenOptions;

use common::{random_input, random_network, reference_forward, relative_error, tolerance};
use ndarray::{concatenate, s, Array2, Axis};
use vecprop::{io, Activation, DType, Device, Error, Plan, PlanOptions};

const WIDTHS: [usize; 4] = [33, 65, 17, 7];
const ACTIVATIONS: [Activation; 3] = [Activation::Relu, Activation::Tanh, Activation::Softmax];

fn plan(device: &Device, dtype: DType, max_batch: usize) -> (vecprop::Network, Plan) {
    let network = random_network(&WIDTHS, &ACTIVATIONS, 5).with_dtype_rounded(dtype);
    let options = PlanOptions {
        dtype: Some(dtype),
        ..PlanOptions::with_max_batch(max_batch)
    };
    let plan = network.compile(device, options).expect("compile");
    (network, plan)
}

/// Rounds a network's parameters to `dtype`, so that the f64 reference sees what the
/// device computes with.
trait RoundTo {
    fn with_dtype_rounded(self, dtype: DType) -> Self;
}

impl RoundTo for vecprop::Network {
    fn with_dtype_rounded(self, dtype: DType) -> Self {
        let mut builder = vecprop::Network::builder(self.input_width());
        for layer in self.layers() {
            builder = builder.layer_with(
                layer.weight().mapv(|x| dtype.round(x)),
                layer.bias().mapv(|x| dtype.round(x)),
                layer.activation(),
            );
        }
        builder.dtype(dtype).build().expect("same widths")
    }
}

fn streaming_matches_the_plain_path_with_a_short_last_batch(device: &Device) {
    for dtype in DType::ALL {
        let (network, plan) = plan(device, dtype, 16);
        // Batches above, at and below max_batch, the last the smallest.
        let sizes = [40, 16, 33, 16, 5];
        let batches: Vec<Array2<f32>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &rows)| {
                random_input(rows, WIDTHS[0], 100 + i as u64).mapv(|x| dtype.round(x))
            })
            .collect();
        let mut outputs = Vec::new();
        plan.forward_stream(batches.iter().map(Ok), |out| {
            outputs.push(out);
            Ok(())
        })
        .expect("forward_stream");
        assert_eq!(outputs.len(), sizes.len());
        for (batch, out) in batches.iter().zip(&outputs) {
            assert_eq!(out.dim(), (batch.nrows(), *WIDTHS.last().unwrap()));
            let plain = plan.forward(batch.view()).expect("forward");
            let want = plain.mapv(f64::from);
            let gap = relative_error(out, &want);
            assert!(gap <= 1e-6, "{dtype}: stream vs plain differ by {gap:e}");
            let reference = reference_forward(&network, batch);
            let err = relative_error(out, &reference);
            assert!(err <= tolerance(device, dtype), "{dtype}: error {err:e}");
        }
    }
}

fn a_file_larger_than_the_staging_buffers_streams_through(device: &Device) {
    let dir = tempfile::tempdir().unwrap();
    let (x_path, y_path) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    let rows = 1000;
    let x = random_input(rows, WIDTHS[0], 77);
    io::write_npy(&x_path, &x).unwrap();
    // max_batch 7 and chunks of 7 rows: 143 chunks through three staging slots.
    let (_, plan) = plan(device, DType::F32, 7);
    let mut calls = 0;
    let shape = io::forward_npy(&plan, &x_path, &y_path, 7, |done, total| {
        calls += 1;
        assert!(done <= total);
    })
    .expect("forward_npy");
    assert_eq!(shape, (rows, *WIDTHS.last().unwrap()));
    assert_eq!(calls, rows.div_ceil(7));
    let y = io::read_npy(&y_path).unwrap();
    let plain = plan.forward(x.view()).unwrap().mapv(f64::from);
    assert!(relative_error(&y, &plain) <= 1e-6);
}

fn an_iterator_error_mid_stream_stops_it_with_that_error(device: &Device) {
    let (_, plan) = plan(device, DType::F32, 8);
    let mut delivered = 0;
    let items = (0..10).map(|i| {
        if i == 4 {
            Err(Error::InvalidArgument("batch 4 is unreadable".into()))
        } else {
            Ok(random_input(8, WIDTHS[0], i))
        }
    });
    let err = plan
        .forward_stream(items, |_| {
            delivered += 1;
            Ok(())
        })
        .unwrap_err();
    assert!(err.to_string().contains("batch 4 is unreadable"), "{err}");
    assert!(delivered <= 4, "{delivered} batches after the error");

    // A wrong-width batch mid-stream is an error of its own.
    let items = (0..5).map(|i| Ok(random_input(3, if i == 2 { 5 } else { WIDTHS[0] }, i)));
    let err = plan.forward_stream(items, |_| Ok(())).unwrap_err();
    assert!(matches!(err, Error::InputWidth { .. }), "{err}");

    // The plan still works afterwards.
    let x = random_input(8, WIDTHS[0], 1);
    assert!(plan
        .forward(x.view())
        .unwrap()
        .iter()
        .all(|v| v.is_finite()));
}

fn a_sink_error_stops_the_stream_with_that_error(device: &Device) {
    let (_, plan) = plan(device, DType::F32, 8);
    let mut calls = 0;
    let items = (0..20).map(|i| Ok(random_input(8, WIDTHS[0], i)));
    let err = plan
        .forward_stream(items, |_| {
            calls += 1;
            if calls == 3 {
                Err(Error::InvalidArgument("disk full".into()))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
    assert_eq!(calls, 3);
}

fn forward_npy_leaves_no_output_when_reading_fails_mid_stream(device: &Device) {
    let dir = tempfile::tempdir().unwrap();
    let (x_path, y_path) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    let rows = 400;
    io::write_npy(&x_path, &random_input(rows, WIDTHS[0], 3)).unwrap();
    let (_, plan) = plan(device, DType::F32, 10);
    // After the first chunk is written, cut the input file short: a later read fails.
    let mut truncated = false;
    let result = io::forward_npy(&plan, &x_path, &y_path, 10, |_, _| {
        if !truncated {
            let file = OpenOptions::new().write(true).open(&x_path).unwrap();
            file.set_len(256).unwrap();
            truncated = true;
        }
    });
    assert!(truncated, "no chunk was written before the cut");
    assert!(result.is_err(), "reading a truncated file succeeded");
    assert!(!y_path.exists(), "a partial output was left behind");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, [std::ffi::OsString::from("x.npy")]);
}

fn a_long_stream_keeps_order(device: &Device) {
    let (_, plan) = plan(device, DType::F32, 64);
    // Each batch's first column is its index: outputs must come back in the same order.
    let batches: Vec<Array2<f32>> = (0..50)
        .map(|i| {
            let mut x = random_input(1 + (i * 7) % 64, WIDTHS[0], i as u64);
            x.slice_mut(s![.., 0]).fill(i as f32 / 50.0);
            x
        })
        .collect();
    let mut outputs = Vec::new();
    plan.forward_stream(batches.iter().map(|b| Ok(b.view())), |out| {
        outputs.push(out);
        Ok(())
    })
    .unwrap();
    let all_in = concatenate(
        Axis(0),
        &batches.iter().map(|b| b.view()).collect::<Vec<_>>(),
    )
    .unwrap();
    let all_out = concatenate(
        Axis(0),
        &outputs.iter().map(|o| o.view()).collect::<Vec<_>>(),
    )
    .unwrap();
    let plain = plan.forward(all_in.view()).unwrap().mapv(f64::from);
    assert!(relative_error(&all_out, &plain) <= 1e-6);
}

fn empty_batches_come_back_empty_in_their_place(device: &Device) {
    let (_, plan) = plan(device, DType::F32, 4);
    // Row counts straddling max_batch, with empty batches before, between and after.
    let rows = [0, 9, 0, 0, 3, 0];
    let batches: Vec<Array2<f32>> = rows
        .iter()
        .enumerate()
        .map(|(i, &r)| random_input(r, WIDTHS[0], i as u64))
        .collect();
    let mut outputs = Vec::new();
    plan.forward_stream(batches.iter().map(|b| Ok(b.view())), |out| {
        outputs.push(out);
        Ok(())
    })
    .unwrap();
    let got: Vec<usize> = outputs.iter().map(|o| o.nrows()).collect();
    assert_eq!(got, rows);
    for (batch, output) in batches.iter().zip(&outputs) {
        let plain = plan.forward(batch.view()).unwrap().mapv(f64::from);
        assert_eq!(output.dim(), (batch.nrows(), plan.output_width()));
        if batch.nrows() > 0 {
            assert!(relative_error(output, &plain) <= 1e-6);
        }
    }
}

test_device!(
    empty_batches_come_back_empty_in_their_place,
    streaming_matches_the_plain_path_with_a_short_last_batch,
    a_file_larger_than_the_staging_buffers_streams_through,
    an_iterator_error_mid_stream_stops_it_with_that_error,
    a_sink_error_stops_the_stream_with_that_error,
    forward_npy_leaves_no_output_when_reading_fails_mid_stream,
    a_long_stream_keeps_order,
);
