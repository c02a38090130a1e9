//! Batch normalisation in inference mode, folded into an adjacent dense layer.
//!
//! In eval mode `BatchNorm1d` is an affine map per feature, `y = s·x + t` with
//! `s = γ / √(σ² + ε)` and `t = β − μ·s`. Next to a dense layer with nothing in between it
//! folds into that layer's `W` and `B` exactly (up to rounding), so it costs nothing at run time.

use ndarray::Array1;

use crate::error::{Error, Result};
use crate::graph::dense::Dense;

/// PyTorch's default `eps` of `BatchNorm1d` (and ONNX's of `BatchNormalization`).
pub const DEFAULT_EPS: f64 = 1e-5;

/// A `BatchNorm1d` in eval mode: per-feature scale γ, shift β and running statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm {
    /// The module's name in the model file (`encoder.1`), for messages and the summary.
    pub name: String,
    /// γ, the learned scale (ones when the module is not affine).
    pub scale: Array1<f32>,
    /// β, the learned shift (zeros when the module is not affine).
    pub shift: Array1<f32>,
    /// μ, the running mean.
    pub mean: Array1<f32>,
    /// σ², the running variance.
    pub variance: Array1<f32>,
    /// ε, added to the variance.
    pub eps: f64,
}

impl BatchNorm {
    /// Features normalised.
    pub fn width(&self) -> usize {
        self.mean.len()
    }

    /// `(s, t)` per feature, in f64: `y = s·x + t`.
    fn affine(&self) -> Result<Vec<(f64, f64)>> {
        let width = self.width();
        for (what, len) in [
            ("weight", self.scale.len()),
            ("bias", self.shift.len()),
            ("running_var", self.variance.len()),
        ] {
            if len != width {
                return Err(Error::BadTensor {
                    layer: self.name.clone(),
                    reason: format!(
                        "BatchNorm {what} has {len} elements but running_mean has {width}"
                    ),
                });
            }
        }
        Ok((0..width)
            .map(|i| {
                let s = f64::from(self.scale[i]) / (f64::from(self.variance[i]) + self.eps).sqrt();
                (s, f64::from(self.shift[i]) - f64::from(self.mean[i]) * s)
            })
            .collect())
    }

    /// Folds this normalisation, applied to `layer`'s output (`layer` then BatchNorm, nothing
    /// between), into `layer`: `W'[:, j] = s_j·W[:, j]`, `B'_j = s_j·B_j + t_j`.
    pub fn fold_into_previous(&self, layer: &mut Dense) -> Result<()> {
        self.check_width(layer.units(), layer, "output")?;
        let affine = self.affine()?;
        let (weight, bias) = layer.fold_in(format!("BatchNorm `{}`", self.name));
        for (j, (s, t)) in affine.into_iter().enumerate() {
            weight
                .column_mut(j)
                .mapv_inplace(|w| (f64::from(w) * s) as f32);
            bias[j] = (f64::from(bias[j]) * s + t) as f32;
        }
        Ok(())
    }

    /// Folds this normalisation, applied to `layer`'s input (BatchNorm then `layer`, nothing
    /// between), into `layer`: `B'_j = B_j + Σ_i W[i, j]·t_i`, then `W'[i, :] = s_i·W[i, :]`.
    pub fn fold_into_next(&self, layer: &mut Dense) -> Result<()> {
        self.check_width(layer.inputs(), layer, "input")?;
        let affine = self.affine()?;
        let (weight, bias) = layer.fold_in(format!("BatchNorm `{}`", self.name));
        for (j, b) in bias.iter_mut().enumerate() {
            let shift: f64 = affine
                .iter()
                .zip(weight.column(j))
                .map(|((_, t), &w)| t * f64::from(w))
                .sum();
            *b = (f64::from(*b) + shift) as f32;
        }
        for (i, (s, _)) in affine.into_iter().enumerate() {
            weight
                .row_mut(i)
                .mapv_inplace(|w| (f64::from(w) * s) as f32);
        }
        Ok(())
    }

    fn check_width(&self, width: usize, layer: &Dense, side: &str) -> Result<()> {
        if self.width() == width {
            return Ok(());
        }
        Err(Error::BadTensor {
            layer: self.name.clone(),
            reason: format!(
                "BatchNorm over {} features cannot fold into the {side} of layer `{}`, which has width {width}",
                self.width(),
                layer.name()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;
    use ndarray::{array, Array2};

    fn norm() -> BatchNorm {
        BatchNorm {
            name: "bn".into(),
            scale: array![2.0, -0.5],
            shift: array![0.25, 1.0],
            mean: array![1.0, -3.0],
            variance: array![4.0, 0.25],
            eps: 0.0,
        }
    }

    fn apply(norm: &BatchNorm, x: &[f32]) -> Vec<f32> {
        norm.affine()
            .unwrap()
            .iter()
            .zip(x)
            .map(|((s, t), &x)| (s * f64::from(x) + t) as f32)
            .collect()
    }

    fn dense(weight: Array2<f32>, bias: Array1<f32>) -> Dense {
        Dense::new("fc", weight, bias, Activation::Linear).unwrap()
    }

    fn forward(layer: &Dense, x: &[f32]) -> Vec<f32> {
        (0..layer.units())
            .map(|j| {
                layer.bias()[j]
                    + (0..x.len())
                        .map(|i| x[i] * layer.weight()[[i, j]])
                        .sum::<f32>()
            })
            .collect()
    }

    #[test]
    fn folding_after_a_layer_equals_normalising_its_output() {
        let mut layer = dense(
            array![[1.0, 2.0], [3.0, -4.0], [0.5, 0.0]],
            array![0.5, -1.0],
        );
        let x = [1.0, -2.0, 3.0];
        let want = apply(&norm(), &forward(&layer, &x));
        norm().fold_into_previous(&mut layer).unwrap();
        assert_eq!(forward(&layer, &x), want);
        assert_eq!(layer.folded(), ["BatchNorm `bn`"]);
    }

    #[test]
    fn folding_before_a_layer_equals_normalising_its_input() {
        let mut layer = dense(
            array![[1.0, 2.0, -1.0], [3.0, -4.0, 0.5]],
            array![0.5, -1.0, 2.0],
        );
        let x = [1.5, -2.0];
        let want = forward(&layer, &apply(&norm(), &x));
        norm().fold_into_next(&mut layer).unwrap();
        let got = forward(&layer, &x);
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                "{got:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn widths_that_do_not_match_are_named() {
        let mut layer = dense(Array2::zeros((3, 5)), Array1::zeros(5));
        let err = norm()
            .fold_into_previous(&mut layer)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`bn`") && err.contains("`fc`") && err.contains("width 5"),
            "{err}"
        );
    }
}
