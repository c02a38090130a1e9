//! The chain of modules a model file describes, and how it becomes a [`Network`].
//!
//! Both readers (safetensors state_dicts and ONNX graphs) produce [`Stage`]s in execution
//! order; [`assemble`] folds each BatchNorm into the dense layer next to it and attaches
//! the activations.

use ndarray::{Array1, Array2};

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::graph::batchnorm::BatchNorm;
use crate::graph::dense::Dense;

/// One module of a feed-forward chain, as a model file describes it.
#[derive(Debug, Clone)]
pub(crate) enum Stage {
    /// A linear layer: `weight` is (inputs × units); no bias means a zero bias.
    Dense {
        name: String,
        weight: Array2<f32>,
        bias: Option<Array1<f32>>,
    },
    /// A BatchNorm in eval mode, to be folded.
    BatchNorm(BatchNorm),
    /// An activation applied to what the previous stage produced.
    Activation { node: String, kind: Activation },
    /// A module without parameters (an activation, a Dropout) that a state_dict shows only
    /// as a gap in `Sequential` numbering, before module `before`: a BatchNorm after it
    /// cannot fold into the layer before it.
    Gap { before: String },
}

/// The dense layers of a chain, each BatchNorm folded into its neighbour, activations attached.
///
/// A BatchNorm right after a dense layer (no activation between) folds into that layer; any
/// other folds into the next dense layer, which must follow with nothing but other
/// BatchNorms between. One that can do neither is an error, never an approximation.
pub(crate) fn assemble(stages: Vec<Stage>) -> Result<Vec<Dense>> {
    let mut layers: Vec<Dense> = Vec::new();
    let mut pending: Vec<BatchNorm> = Vec::new();
    let mut activated = false;
    for stage in stages {
        match stage {
            Stage::Dense { name, weight, bias } => {
                let units = weight.ncols();
                let bias = bias.unwrap_or_else(|| Array1::zeros(units));
                let mut layer = Dense::new(name, weight, bias, Activation::Linear)?;
                for norm in pending.drain(..).rev() {
                    norm.fold_into_next(&mut layer)?;
                }
                layers.push(layer);
                activated = false;
            }
            Stage::BatchNorm(norm) => match layers.last_mut() {
                Some(last) if !activated && pending.is_empty() => norm.fold_into_previous(last)?,
                _ => pending.push(norm),
            },
            Stage::Gap { before } => {
                if let Some(norm) = pending.first() {
                    return Err(Error::BadTensor {
                        layer: norm.name.clone(),
                        reason: format!(
                            "BatchNorm followed by a module without parameters before `{before}` \
                             folds into no dense layer exactly"
                        ),
                    });
                }
                activated = !layers.is_empty();
            }
            Stage::Activation { node, kind } => {
                let Some(last) = layers.last_mut() else {
                    return Err(Error::BadTensor {
                        layer: node,
                        reason: format!(
                            "activation `{}` before the first dense layer cannot be computed",
                            kind
                        ),
                    });
                };
                if let Some(norm) = pending.first() {
                    return Err(Error::BadTensor {
                        layer: norm.name.clone(),
                        reason: format!(
                            "BatchNorm between two activations (after layer `{}`) folds into no dense layer exactly",
                            last.name()
                        ),
                    });
                }
                if activated {
                    return Err(Error::BadTensor {
                        layer: node,
                        reason: format!(
                            "a second activation (`{}`) after layer `{}`, which already has `{}`",
                            kind,
                            last.name(),
                            last.activation()
                        ),
                    });
                }
                last.set_activation(kind);
                activated = true;
            }
        }
    }
    if let Some(norm) = pending.first() {
        return Err(Error::BadTensor {
            layer: norm.name.clone(),
            reason: "BatchNorm after the last activation has no dense layer to fold into".into(),
        });
    }
    check_chain(&layers)?;
    Ok(layers)
}

/// Widths that do not chain because a weight is stored the other way round get a hint.
fn check_chain(layers: &[Dense]) -> Result<()> {
    for pair in layers.windows(2) {
        let (previous, layer) = (&pair[0], &pair[1]);
        let width = previous.units();
        if layer.inputs() != width && layer.units() == width {
            return Err(Error::BadTensor {
                layer: layer.name().to_string(),
                reason: format!(
                    "its weight is (inputs x units) = {:?} but it receives {width} values from layer `{}`: \
                     the weight looks transposed (PyTorch's Linear stores [units, inputs]; \
                     Keras-style kernels are [inputs, units] and must be saved as kernel.T)",
                    layer.weight().dim(),
                    previous.name()
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn dense(name: &str, weight: Array2<f32>) -> Stage {
        Stage::Dense {
            name: name.into(),
            weight,
            bias: None,
        }
    }

    fn norm(name: &str, width: usize) -> Stage {
        Stage::BatchNorm(BatchNorm {
            name: name.into(),
            scale: Array1::from_elem(width, 2.0),
            shift: Array1::zeros(width),
            mean: Array1::zeros(width),
            variance: Array1::ones(width),
            eps: 0.0,
        })
    }

    fn act(kind: Activation) -> Stage {
        Stage::Activation {
            node: "act".into(),
            kind,
        }
    }

    #[test]
    fn batchnorm_folds_after_a_layer_or_before_the_next() {
        let w = || array![[1.0, 0.0], [0.0, 1.0]];
        let stages = vec![dense("a", w()), norm("n1", 2), act(Activation::Relu)];
        let layers = assemble(stages).unwrap();
        assert_eq!(layers[0].folded(), ["BatchNorm `n1`"]);
        assert_eq!(layers[0].weight()[[0, 0]], 2.0);

        let stages = vec![
            dense("a", w()),
            act(Activation::Relu),
            norm("n1", 2),
            dense("b", w()),
        ];
        let layers = assemble(stages).unwrap();
        assert!(layers[0].folded().is_empty());
        assert_eq!(layers[1].folded(), ["BatchNorm `n1`"]);
        assert_eq!(layers[0].activation(), Activation::Relu);
    }

    #[test]
    fn batchnorm_that_cannot_fold_exactly_is_refused() {
        let stages = vec![
            dense("a", array![[1.0, 0.0], [0.0, 1.0]]),
            act(Activation::Relu),
            norm("n1", 2),
        ];
        let err = assemble(stages).unwrap_err().to_string();
        assert!(
            err.contains("`n1`") && err.contains("no dense layer"),
            "{err}"
        );
    }

    #[test]
    fn a_transposed_weight_gets_a_hint() {
        let stages = vec![
            dense("a", Array2::zeros((3, 4))),
            dense("b", Array2::zeros((2, 4))),
        ];
        let err = assemble(stages).unwrap_err().to_string();
        assert!(err.contains("`b`") && err.contains("transposed"), "{err}");
    }
}
