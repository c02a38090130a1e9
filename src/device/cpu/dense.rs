//! One dense layer on the CPU: GEMM into the output, then the epilogue over the same memory.

use ndarray::{ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use super::epilogue::bias_activation;
use super::gemm::matmul;
use crate::activation::Activation;

/// Rows per task when the batch is split across threads. Large enough that each task's
/// GEMM amortises packing `W`, small enough that its slice of `Z` is still in L2 when the
/// epilogue sweeps it.
const ROWS_PER_TASK: usize = 256;

/// `out = g(input · weight + bias)`.
///
/// Large batches are split into row blocks, one task each: the task's GEMM leaves its block
/// of `Z` in cache and the epilogue finishes it there, so `Z` makes one trip to memory.
/// Batches too small to split that way use every thread inside one GEMM instead.
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
    } else {
        matmul(input, weight, out.view_mut(), threads);
        bias_activation(out, bias, activation);
    }
}
