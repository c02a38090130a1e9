//! One dense layer on the CPU: GEMM into the output, then the epilogue over the same memory.

use ndarray::{ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use super::epilogue::bias_activation;
use super::gemm::matmul;
use crate::activation::Activation;

/// Rows per task when the batch is split across threads. Large enough that each task's
/// GEMM amortises packing `W`, small enough that its slice of `Z` is still in L2 when the
/// epilogue sweeps it.
const ROWS_PER_TASK: usize = 512;

/// The narrowest column slice worth a thread of its own when a small batch is split by units.
const MIN_COLUMNS_PER_TASK: usize = 64;

/// `out = g(input · weight + bias)`.
///
/// How the work is split across `threads` (measured on 2 cores, BENCHMARKS.md):
/// - at least two row blocks of `ROWS_PER_TASK`: one task per block, each a
///   single-threaded GEMM followed by the epilogue on the block while it is in cache, so `Z`
///   makes one trip to memory;
/// - fewer rows (small batches): one task per slice of units, each a single-threaded GEMM
///   over all rows against its columns of `W`, then the epilogue on its columns;
/// - otherwise (one thread, or too few units to split), one GEMM and one epilogue.
///
/// # Panics
/// If the shapes do not chain; plans check them when they are compiled.
pub fn dense_forward(
    input: ArrayView2<'_, f32>,
    weight: ArrayView2<'_, f32>,
    bias: &[f32],
    activation: Activation,
    mut out: ArrayViewMut2<'_, f32>,
    threads: usize,
) {
    let rows = input.nrows();
    let units = weight.ncols();
    if threads > 1 && rows >= 2 * ROWS_PER_TASK {
        let tasks = rows.div_ceil(ROWS_PER_TASK).max(threads);
        let block = rows.div_ceil(tasks);
        out.axis_chunks_iter_mut(Axis(0), block)
            .into_par_iter()
            .zip(input.axis_chunks_iter(Axis(0), block))
            .for_each(|(mut z, a)| {
                matmul(a, weight, z.view_mut(), 1);
                bias_activation(z, bias, activation);
            });
    } else if threads > 1 && units >= 2 * MIN_COLUMNS_PER_TASK {
        // Softmax needs whole rows, so it waits until every slice is done.
        let elementwise = activation.is_elementwise();
        let tasks = threads.min(units / MIN_COLUMNS_PER_TASK);
        // Slices of a multiple of 16 units keep each slice's rows 64-byte aligned.
        let width = units.div_ceil(tasks).next_multiple_of(16);
        out.axis_chunks_iter_mut(Axis(1), width)
            .into_par_iter()
            .zip(weight.axis_chunks_iter(Axis(1), width))
            .enumerate()
            .for_each(|(task, (mut z, w))| {
                matmul(input, w, z.view_mut(), 1);
                if elementwise {
                    let start = task * width;
                    bias_activation(z, &bias[start..start + w.ncols()], activation);
                }
            });
        if !elementwise {
            bias_activation(out, bias, activation);
        }
    } else {
        matmul(input, weight, out.view_mut(), threads);
        bias_activation(out, bias, activation);
    }
}
