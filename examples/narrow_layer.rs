//! Times one dense layer through [`CpuDense::forward`] (issue 21's narrow layer), and the
//! memory-bandwidth floor for the same bytes: `cargo run --release --example narrow_layer --
//! [ROWS [K [N [REPEATS]]]]`.
//!
//! Prints, per activation (linear, sigmoid), the median time over `REPEATS` calls and its
//! GFLOP/s; then the median time to stream the input's bytes in and the output's bytes out
//! (`read` sums the input, `copy` copies the input into the output), the floor a layer
//! that reads A and writes g(A·W + b) once cannot beat on this machine.

use std::time::Instant;

use ndarray::Array2;
use rayon::prelude::*;
use vecprop::bench::{layer_parameters, Shape};
use vecprop::device::cpu::CpuDense;
use vecprop::tensor::random_batch;
use vecprop::Activation;

/// The median and the minimum over `repeats` timed calls (after three warm-up calls): on a
/// shared machine the minimum is the steadier of the two.
fn time_ms(repeats: usize, mut f: impl FnMut(usize)) -> (f64, f64) {
    for i in 0..3 {
        f(i);
    }
    let mut times: Vec<f64> = (0..repeats)
        .map(|i| {
            let start = Instant::now();
            f(i);
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[0])
}

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .map_or(default, |s| s.parse().expect("a positive integer"))
}

fn main() {
    let (m, k, n, repeats) = (arg(1, 65536), arg(2, 64), arg(3, 64), arg(4, 200));
    let threads = rayon::current_num_threads();
    let shape = Shape { m, k, n };
    // Four input sets of 16.8 MB overflow the 32 MB L3, as `vecprop bench` rotates them.
    let sets = ((64_usize << 20).div_ceil(m * k * 4)).clamp(1, 4);
    let inputs: Vec<Array2<f32>> = (0..sets)
        .map(|i| random_batch(m, k, 11 + i as u64))
        .collect();
    let (weight, bias) = layer_parameters(shape);
    let mut out = Array2::<f32>::zeros((m, n));
    let flops = 2.0 * (m * k * n) as f64;
    for activation in [Activation::Linear, Activation::Sigmoid] {
        let layer = CpuDense::new(weight.clone(), bias.clone(), activation);
        let (ms, min) = time_ms(repeats, |i| {
            layer.forward(inputs[i % sets].view(), out.view_mut(), threads)
        });
        println!(
            "{m}x{k}x{n} {activation:<8} median {ms:7.3} ms {:6.1} GFLOP/s, min {min:7.3} ms {:6.1} GFLOP/s",
            flops / ms / 1e6,
            flops / min / 1e6
        );
    }
    // Both on every thread, 16 KB chunks, as the layer splits its rows.
    let (read, _) = time_ms(repeats, |i| {
        let input = inputs[i % sets].as_slice().expect("standard layout");
        let sum: f32 = input.par_chunks(4096).map(|c| c.iter().sum::<f32>()).sum();
        std::hint::black_box(sum);
    });
    let (copy, _) = time_ms(repeats, |i| {
        if k == n {
            let input = inputs[i % sets].as_slice().expect("standard layout");
            let dst = out.as_slice_mut().expect("standard layout");
            dst.par_chunks_mut(4096)
                .zip(input.par_chunks(4096))
                .for_each(|(d, s)| d.copy_from_slice(s));
        }
    });
    let mb = (m * k * 4) as f64 / 1e6;
    println!(
        "stream: read {mb:.1} MB {read:.3} ms ({:.1} GB/s), copy {mb:.1}+{:.1} MB {copy:.3} ms ({:.1} GB/s) [{threads} threads]",
        mb / read,
        (m * n * 4) as f64 / 1e6,
        (mb + (m * n * 4) as f64 / 1e6) / copy
    );
}
