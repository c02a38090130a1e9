//! The epilogue of a dense layer on the CPU: `Z ← g(Z + B)`, one sweep over `Z`.
//!
//! `pulp` picks the widest SIMD level the processor has at run time (AVX2+FMA, AVX-512) and
//! compiles the row loop for it, so the activation math in [`crate::activation`] vectorises
//! beyond the SSE2 baseline without any `unsafe` here.

use ndarray::{ArrayViewMut2, Axis};

use crate::activation::Activation;

/// Applies bias and activation to each row of `z` in place.
pub fn bias_activation(z: ArrayViewMut2<'_, f32>, bias: &[f32], activation: Activation) {
    pulp::Arch::new().dispatch(BiasActivation {
        z,
        bias: Some(bias),
        activation,
    });
}

/// Applies the activation alone to each row of `z` in place (the bias is already in `z`).
pub(super) fn activation_only(z: ArrayViewMut2<'_, f32>, activation: Activation) {
    pulp::Arch::new().dispatch(BiasActivation {
        z,
        bias: None,
        activation,
    });
}

/// The sweep as a `WithSimd`, so pulp compiles it (and the inlined activation math) with
/// the detected SIMD features.
struct BiasActivation<'a, 'b> {
    z: ArrayViewMut2<'a, f32>,
    bias: Option<&'b [f32]>,
    activation: Activation,
}

impl pulp::WithSimd for BiasActivation<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let BiasActivation {
            mut z,
            bias,
            activation,
        } = self;
        for mut row in z.axis_iter_mut(Axis(0)) {
            match row.as_slice_mut() {
                Some(row) => activation.apply_row_with_bias(row, bias),
                None => {
                    let mut owned = row.to_vec();
                    activation.apply_row_with_bias(&mut owned, bias);
                    row.iter_mut().zip(owned).for_each(|(dst, v)| *dst = v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn adds_bias_then_applies_g_per_row() {
        let mut z = array![[0.0_f32, 1.0], [2.0, -3.0]];
        bias_activation(z.view_mut(), &[1.0, -1.0], Activation::Relu);
        assert_eq!(z, array![[1.0, 0.0], [3.0, 0.0]]);
    }

    #[test]
    fn strided_rows_take_the_slow_path_with_the_same_result() {
        let mut z = array![[0.5_f32, 1.0], [2.0, -3.0]];
        let mut zt = z.t().to_owned();
        bias_activation(z.view_mut(), &[0.25, 0.5], Activation::Sigmoid);
        bias_activation(
            zt.view_mut().reversed_axes(),
            &[0.25, 0.5],
            Activation::Sigmoid,
        );
        assert_eq!(z, zt.t());
    }
}
