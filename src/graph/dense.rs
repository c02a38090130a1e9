//! One dense layer: `A_out = g(A_in · W + B)`.

use ndarray::{Array1, Array2};

use crate::activation::Activation;
use crate::error::{Error, Result};

/// A fully connected layer with weights `W` (inputs × units), a bias row `B` (units) and an
/// activation `g`.
///
/// ```
/// use ndarray::array;
/// use vecprop::{Activation, Dense};
///
/// let layer = Dense::new(
///     "dense",
///     array![[1.0, -3.0, 5.0], [-2.0, 4.0, -6.0]],
///     array![-1.0, 1.0, 2.0],
///     Activation::Sigmoid,
/// )
/// .unwrap();
/// assert_eq!((layer.inputs(), layer.units()), (2, 3));
/// assert_eq!(layer.parameter_count(), 9);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    name: String,
    weight: Array2<f32>,
    bias: Array1<f32>,
    activation: Activation,
    folded: Vec<String>,
}

impl Dense {
    /// A layer from its weights (inputs × units), bias (units) and activation.
    ///
    /// Errors if the bias length is not the number of units, or the layer is empty.
    pub fn new(
        name: impl Into<String>,
        weight: Array2<f32>,
        bias: Array1<f32>,
        activation: Activation,
    ) -> Result<Self> {
        let name = name.into();
        let (inputs, units) = weight.dim();
        if inputs == 0 || units == 0 {
            return Err(Error::BadTensor {
                layer: name,
                reason: format!("weight shape ({inputs}, {units}) has an empty dimension"),
            });
        }
        if bias.len() != units {
            return Err(Error::BadTensor {
                layer: name,
                reason: format!(
                    "bias has {} elements but the weight (inputs x units = {inputs} x {units}) has {units} units",
                    bias.len()
                ),
            });
        }
        let weight = weight.as_standard_layout().into_owned();
        Ok(Dense {
            name,
            weight,
            bias,
            activation,
            folded: Vec::new(),
        })
    }

    /// The layer's name: the tensor prefix in a model file, or `dense_<i>` for layers built in code.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `W`, shape (inputs, units), row-major.
    pub fn weight(&self) -> &Array2<f32> {
        &self.weight
    }

    /// `B`, one value per unit.
    pub fn bias(&self) -> &Array1<f32> {
        &self.bias
    }

    /// `g`.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// What was folded into this layer when it was loaded, e.g. ``BatchNorm `1` ``.
    pub fn folded(&self) -> &[String] {
        &self.folded
    }

    /// `W` and `B`, for folding another layer's affine map into them; notes what was folded.
    pub(crate) fn fold_in(&mut self, what: String) -> (&mut Array2<f32>, &mut Array1<f32>) {
        self.folded.push(what);
        (&mut self.weight, &mut self.bias)
    }

    /// Replaces `g`.
    pub fn set_activation(&mut self, activation: Activation) {
        self.activation = activation;
    }

    /// Width of the layer's input.
    pub fn inputs(&self) -> usize {
        self.weight.nrows()
    }

    /// Width of the layer's output.
    pub fn units(&self) -> usize {
        self.weight.ncols()
    }

    /// Rounds every weight and bias to the nearest value `dtype` holds.
    pub(crate) fn round_parameters(&mut self, dtype: crate::dtype::DType) {
        self.weight.mapv_inplace(|w| dtype.round(w));
        self.bias.mapv_inplace(|b| dtype.round(b));
    }

    /// Weights plus biases.
    pub fn parameter_count(&self) -> usize {
        self.weight.len() + self.bias.len()
    }

    /// Floating-point operations of a forward pass over `rows` examples (the GEMM's 2·M·K·N).
    pub fn flops(&self, rows: usize) -> f64 {
        2.0 * rows as f64 * self.inputs() as f64 * self.units() as f64
    }
}
