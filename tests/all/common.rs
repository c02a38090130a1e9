//! Shared test helpers: the float64 reference, random networks, tolerances, and
//! `test_device!`, which runs one test body on every device this build has.

#![allow(dead_code)]

use ndarray::{Array1, Array2};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use vecprop::{Activation, DType, Device, Network};

/// Expands `test_device!(name)` into `cpu::name` and, with the `cuda` feature,
/// `cuda::name`. The body is `fn name(device: &Device)`, written once.
///
/// The CUDA variant fails loudly when no GPU is found: a GPU test that passes without a
/// GPU would prove nothing.
#[macro_export]
macro_rules! test_device {
    ($($name:ident),+ $(,)?) => {
        mod cpu {
            $(
                #[test]
                fn $name() {
                    super::$name(&vecprop::Device::cpu());
                }
            )+
        }

        #[cfg(feature = "cuda")]
        mod cuda {
            $(
                #[test]
                fn $name() {
                    let (device, _) = $crate::common::gpu();
                    super::$name(&device);
                }
            )+
        }
    };
}

/// GPU 0 with output poisoning on (an unwritten output element shows as NaN). Panics, failing
/// the test, when there is no usable GPU: a missing GPU must never read as a pass.
#[cfg(feature = "cuda")]
pub fn gpu() -> (Device, vecprop::device::cuda::CudaDevice) {
    match vecprop::device::cuda::CudaDevice::new(0) {
        Ok(cuda) => {
            cuda.poison_outputs(true);
            (Device::Cuda(cuda.clone()), cuda)
        }
        Err(err) => panic!(
            "the CUDA tests need an NVIDIA GPU (compute capability 8.0+), a driver >= 580 \
             (CUDA 13.0) and cuBLAS 13, and found none usable: {err}"
        ),
    }
}

/// The lesson's worked example: W = [[1, -3, 5], [-2, 4, -6]], B = [[-1, 1, 2]], sigmoid, and
/// its input X = [[200, 17]]. The output rounds to [[1, 0, 1]].
pub fn worked_example() -> (Network, Array2<f32>) {
    let network = Network::builder(2)
        .layer_with(
            ndarray::array![[1.0, -3.0, 5.0], [-2.0, 4.0, -6.0]],
            ndarray::array![-1.0, 1.0, 2.0],
            Activation::Sigmoid,
        )
        .build()
        .expect("the worked example is valid");
    (network, ndarray::array![[200.0_f32, 17.0]])
}

/// `g(z)` in f64: the textbook definitions, for the reference.
pub fn activation_f64(activation: Activation, row: &mut [f64]) {
    match activation {
        Activation::Sigmoid => row.iter_mut().for_each(|z| *z = 1.0 / (1.0 + (-*z).exp())),
        Activation::Relu => row
            .iter_mut()
            .for_each(|z| *z = if *z < 0.0 { 0.0 } else { *z }),
        Activation::Tanh => row.iter_mut().for_each(|z| *z = z.tanh()),
        Activation::Linear => {}
        Activation::Gelu => row
            .iter_mut()
            .for_each(|z| *z = 0.5 * *z * libm::erfc(-*z / std::f64::consts::SQRT_2)),
        // z/2 · (1 + tanh(u)) written as z / (1 + e^-2u), exact in both tails.
        Activation::GeluTanh => row.iter_mut().for_each(|z| {
            let u = (2.0 / std::f64::consts::PI).sqrt() * (*z + 0.044715 * z.powi(3));
            *z /= 1.0 + (-2.0 * u).exp();
        }),
        Activation::Silu => row.iter_mut().for_each(|z| *z /= 1.0 + (-*z).exp()),
        Activation::LeakyRelu { slope } => row
            .iter_mut()
            .for_each(|z| *z = if *z > 0.0 { *z } else { *z * slope as f64 }),
        Activation::Softmax => {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            row.iter_mut().for_each(|z| *z = (*z - max).exp());
            let sum: f64 = row.iter().sum();
            row.iter_mut().for_each(|z| *z /= sum);
        }
    }
}

/// The lesson's forward pass, unvectorised and in float64: for each example, for each
/// layer, for each unit, a dot product of the inputs with that unit's column of W.
pub fn reference_forward(network: &Network, input: &Array2<f32>) -> Array2<f64> {
    reference_forward_stored(network, input, DType::F32)
}

/// [`reference_forward`] for a plan that stores values in `storage` between layers (as
/// f16/bf16 plans do, on the GPU and the CPU alike): each layer's output is rounded to it.
pub fn reference_forward_stored(
    network: &Network,
    input: &Array2<f32>,
    storage: DType,
) -> Array2<f64> {
    let mut output = Array2::zeros((input.nrows(), network.output_width()));
    for (example, mut out_row) in input.outer_iter().zip(output.outer_iter_mut()) {
        let mut a: Vec<f64> = example.iter().map(|&x| x as f64).collect();
        for layer in network.layers() {
            let w = layer.weight();
            let mut z = vec![0.0; layer.units()];
            for (unit, z_unit) in z.iter_mut().enumerate() {
                let mut sum = layer.bias()[unit] as f64;
                for (i, a_i) in a.iter().enumerate() {
                    sum += a_i * w[[i, unit]] as f64;
                }
                *z_unit = sum;
            }
            activation_f64(layer.activation(), &mut z);
            if storage != DType::F32 {
                z.iter_mut()
                    .for_each(|v| *v = f64::from(storage.round(*v as f32)));
            }
            a = z;
        }
        out_row.iter_mut().zip(a).for_each(|(o, v)| *o = v);
    }
    output
}

/// `max |got - want| / max |want|`: relative error in the max norm. NaN anywhere gives
/// infinity, so an unwritten (poisoned) element always fails.
pub fn relative_error(got: &Array2<f32>, want: &Array2<f64>) -> f64 {
    assert_eq!(got.dim(), want.dim(), "output shape");
    let scale = want.iter().fold(0.0_f64, |m, v| m.max(v.abs())).max(1e-30);
    got.iter().zip(want).fold(0.0_f64, |worst, (&g, &w)| {
        let err = (g as f64 - w).abs();
        if err.is_nan() {
            f64::INFINITY
        } else {
            worst.max(err / scale)
        }
    })
}

/// The tolerance for a plan computing in `dtype` on `device` (the brief's table).
pub fn tolerance(device: &Device, dtype: DType) -> f64 {
    let _ = device; // the same table on every device
    match dtype {
        DType::F32 => 1e-5,
        DType::F16 | DType::BF16 => 1e-2,
    }
}

/// A network with the given widths and activations and random weights and biases.
pub fn random_network(widths: &[usize], activations: &[Activation], seed: u64) -> Network {
    assert_eq!(widths.len(), activations.len() + 1);
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut builder = Network::builder(widths[0]);
    for (pair, &activation) in widths.windows(2).zip(activations) {
        let scale = 1.0 / (pair[0] as f32).sqrt();
        let weight = Array2::from_shape_fn((pair[0], pair[1]), |_| rng.random_range(-scale..scale));
        let bias = Array1::from_shape_fn(pair[1], |_| rng.random_range(-0.5..0.5));
        builder = builder.layer_with(weight, bias, activation);
    }
    builder.build().expect("widths chain")
}

/// A batch of random inputs in [-1, 1).
pub fn random_input(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    vecprop::tensor::random_batch(rows, cols, seed)
}

/// [`random_input`] rounded to `dtype`, so that a 16-bit plan sees exactly these values.
pub fn random_input_in(rows: usize, cols: usize, dtype: DType, seed: u64) -> Array2<f32> {
    random_input(rows, cols, seed).mapv(|x| dtype.round(x))
}

/// `max |got - want| / max(max |want|, 1e-3)`, after asserting that every element of `got`
/// is finite (a NaN is an unwritten, poisoned element or an overflow): the GPU suites' error.
pub fn finite_relative_error(got: &Array2<f32>, want: &Array2<f64>, what: &str) -> f64 {
    assert_eq!(got.dim(), want.dim(), "{what}: output shape");
    if let Some((index, value)) = got.indexed_iter().find(|(_, v)| !v.is_finite()) {
        panic!("{what}: output[{index:?}] = {value} is not finite (unwritten or overflowed)");
    }
    let max_error = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (f64::from(g) - w).abs())
        .fold(0.0, f64::max);
    max_error / want.iter().map(|w| w.abs()).fold(1e-3, f64::max)
}
