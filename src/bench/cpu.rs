//! Timing one dense layer on the CPU.

use ndarray::Array2;

use super::{Measurement, Shape};
use crate::activation::Activation;
use crate::device::cpu::{CpuDense, CpuDevice};
use crate::dtype::DType;
use crate::stats::median_ms;
use crate::tensor::random_batch;

/// Input sets to rotate between: enough that together they overflow a 32 MB L3 for all
/// but the smallest shapes, at most 4.
fn input_sets(shape: Shape) -> usize {
    let bytes = shape.m * shape.k * 4;
    (64_usize << 20).div_ceil(bytes.max(1)).clamp(1, 4)
}

/// Random, non-zero operands of one dense layer of `shape`: weights (K × N) and bias (N).
pub fn layer_parameters(shape: Shape) -> (Array2<f32>, Vec<f32>) {
    let weight = random_batch(shape.k, shape.n, 7);
    let bias = random_batch(1, shape.n, 8).into_iter().collect();
    (weight, bias)
}

/// Median time of `g(A·W + B)` with sigmoid, f32, over random data, through the kernel a
/// plan picks for this shape ([`CpuDense::forward`]; its weights are packed beforehand, as
/// a plan's are at compile time).
pub(crate) fn bench_dense(cpu: &CpuDevice, shape: Shape, repeats: usize) -> Measurement {
    let inputs: Vec<Array2<f32>> = (0..input_sets(shape))
        .map(|i| random_batch(shape.m, shape.k, 11 + i as u64))
        .collect();
    let (weight, bias) = layer_parameters(shape);
    let layer = CpuDense::new(weight, bias, Activation::Sigmoid);
    let mut out = Array2::<f32>::zeros((shape.m, shape.n));
    let ms = median_ms(2, repeats, |i| {
        let input = &inputs[i % inputs.len()];
        layer.forward(input.view(), out.view_mut(), cpu.threads());
    });
    Measurement::new(shape, "cpu", DType::F32, ms).with_picked(layer.kernel(shape.m).describe())
}
