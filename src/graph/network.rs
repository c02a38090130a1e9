//! A network: a validated chain of dense layers, built in code or loaded from a file.

use ndarray::{Array1, Array2};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::activation::Activation;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::dense::Dense;

/// A feed-forward network of dense layers whose widths chain.
///
/// Parameters are held in f32. [`Network::dtype`] is the precision the model is stored in and
/// the one a plan computes in unless told otherwise; f16 and bf16 values are exact in f32.
///
/// ```
/// use ndarray::array;
/// use vecprop::{Activation, Device, Network, PlanOptions};
///
/// let net = Network::builder(2)
///     .layer_with(
///         array![[1.0, -3.0, 5.0], [-2.0, 4.0, -6.0]],
///         array![-1.0, 1.0, 2.0],
///         Activation::Sigmoid,
///     )
///     .build()
///     .unwrap();
/// let mut plan = net.compile(&Device::cpu(), PlanOptions::default()).unwrap();
/// let y = plan.forward(array![[200.0, 17.0]].view()).unwrap();
/// assert_eq!(y.mapv(f32::round), array![[1.0, 0.0, 1.0]]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    layers: Vec<Dense>,
    dtype: DType,
}

impl Network {
    /// A network from layers, checking that each layer's inputs are the previous layer's units.
    pub fn new(layers: Vec<Dense>) -> Result<Self> {
        let first = layers.first().ok_or_else(|| {
            Error::InvalidArgument("a network needs at least one dense layer".into())
        })?;
        let mut width = first.inputs();
        let mut previous = "the network input".to_string();
        for layer in &layers {
            if layer.inputs() != width {
                return Err(Error::WidthMismatch {
                    layer: layer.name().to_string(),
                    weight_shape: layer.weight().dim(),
                    expected_inputs: layer.inputs(),
                    actual_inputs: width,
                    previous,
                });
            }
            width = layer.units();
            previous = format!("layer `{}` (output width {})", layer.name(), layer.units());
        }
        Ok(Network {
            layers,
            dtype: DType::F32,
        })
    }

    /// Starts a Keras-like builder for a network taking `input_width` features per example.
    pub fn builder(input_width: usize) -> NetworkBuilder {
        NetworkBuilder {
            input_width,
            layers: Vec::new(),
            seed: 0x5eed,
            dtype: DType::F32,
        }
    }

    /// The layers, in execution order.
    pub fn layers(&self) -> &[Dense] {
        &self.layers
    }

    /// Mutable access to the layers (their shapes cannot change, so the chain stays valid).
    pub fn layers_mut(&mut self) -> impl Iterator<Item = &mut Dense> {
        self.layers.iter_mut()
    }

    /// Features per input example.
    pub fn input_width(&self) -> usize {
        self.layers[0].inputs()
    }

    /// Values per output example.
    pub fn output_width(&self) -> usize {
        self.layers[self.layers.len() - 1].units()
    }

    /// The widest activation any layer produces.
    pub fn max_width(&self) -> usize {
        self.layers.iter().map(Dense::units).max().unwrap_or(0)
    }

    /// The precision the model is stored in, and a plan's default compute precision.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Sets the storage precision, rounding every parameter to it.
    pub fn set_dtype(&mut self, dtype: DType) {
        self.dtype = dtype;
        for layer in &mut self.layers {
            layer.round_parameters(dtype);
        }
    }

    /// Sets each layer's activation, in order. Errors unless there is one per layer.
    pub fn set_activations(&mut self, activations: &[Activation], origin: &str) -> Result<()> {
        if activations.len() != self.layers.len() {
            return Err(Error::ActivationCount {
                layers: self.layers.len(),
                given: activations.len(),
                source_of_list: origin.to_string(),
            });
        }
        for (layer, &activation) in self.layers.iter_mut().zip(activations) {
            layer.set_activation(activation);
        }
        Ok(())
    }

    /// Weights and biases over all layers.
    pub fn parameter_count(&self) -> usize {
        self.layers.iter().map(Dense::parameter_count).sum()
    }

    /// Floating-point operations of one forward pass over `rows` examples.
    pub fn flops(&self, rows: usize) -> f64 {
        self.layers.iter().map(|l| l.flops(rows)).sum()
    }
}

/// Builds a [`Network`] layer by layer; see [`Network::builder`].
#[derive(Debug, Clone)]
pub struct NetworkBuilder {
    input_width: usize,
    layers: Vec<PendingLayer>,
    seed: u64,
    dtype: DType,
}

#[derive(Debug, Clone)]
enum PendingLayer {
    Initialised {
        units: usize,
        activation: Activation,
    },
    Given {
        weight: Array2<f32>,
        bias: Array1<f32>,
        activation: Activation,
    },
}

impl NetworkBuilder {
    /// Appends a layer of `units` units with Glorot-uniform weights and zero bias, drawn from
    /// the builder's seed.
    pub fn dense(mut self, units: usize, activation: Activation) -> Self {
        self.layers
            .push(PendingLayer::Initialised { units, activation });
        self
    }

    /// Appends a layer with the given weights (inputs × units) and bias.
    pub fn layer_with(
        mut self,
        weight: Array2<f32>,
        bias: Array1<f32>,
        activation: Activation,
    ) -> Self {
        self.layers.push(PendingLayer::Given {
            weight,
            bias,
            activation,
        });
        self
    }

    /// Seeds the random initialisation (default: a fixed seed, so builds are reproducible).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The precision to store the model in; parameters are rounded to it.
    pub fn dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// Validates the chain of widths and builds the network.
    pub fn build(self) -> Result<Network> {
        if self.input_width == 0 {
            return Err(Error::InvalidArgument(
                "a network's input width must be at least 1".into(),
            ));
        }
        let mut rng = SmallRng::seed_from_u64(self.seed);
        let mut width = self.input_width;
        let mut layers = Vec::with_capacity(self.layers.len());
        for (index, pending) in self.layers.into_iter().enumerate() {
            let name = format!("dense_{index}");
            let layer = match pending {
                PendingLayer::Initialised { units, activation } => {
                    let limit = (6.0 / (width + units).max(1) as f32).sqrt();
                    let weight =
                        Array2::from_shape_fn((width, units), |_| rng.random_range(-limit..=limit));
                    Dense::new(name, weight, Array1::zeros(units), activation)?
                }
                PendingLayer::Given {
                    weight,
                    bias,
                    activation,
                } => Dense::new(name, weight, bias, activation)?,
            };
            if index == 0 && layer.inputs() != width {
                return Err(Error::WidthMismatch {
                    layer: layer.name().to_string(),
                    weight_shape: layer.weight().dim(),
                    expected_inputs: layer.inputs(),
                    actual_inputs: width,
                    previous: "the network input".to_string(),
                });
            }
            width = layer.units();
            layers.push(layer);
        }
        let mut network = Network::new(layers)?;
        if self.dtype != DType::F32 {
            network.set_dtype(self.dtype);
        }
        Ok(network)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn widths_that_do_not_chain_name_the_layer_and_both_shapes() {
        let err = Network::builder(2)
            .dense(3, Activation::Relu)
            .layer_with(Array2::zeros((4, 5)), Array1::zeros(5), Activation::Linear)
            .build()
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("dense_1"), "{message}");
        assert!(message.contains("(4, 5)"), "{message}");
        assert!(message.contains("receives 3"), "{message}");
        assert!(message.contains("dense_0"), "{message}");
    }

    #[test]
    fn first_layer_must_match_the_input_width() {
        let err = Network::builder(7)
            .layer_with(array![[1.0], [2.0]], array![0.0], Activation::Linear)
            .build()
            .unwrap_err();
        assert!(err
            .to_string()
            .contains("receives 7 from the network input"));
    }

    #[test]
    fn builder_counts_parameters_like_keras() {
        let net = Network::builder(784)
            .dense(512, Activation::Sigmoid)
            .dense(256, Activation::Relu)
            .dense(10, Activation::Linear)
            .build()
            .unwrap();
        assert_eq!(
            net.parameter_count(),
            784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10
        );
        assert_eq!(
            (net.input_width(), net.output_width(), net.max_width()),
            (784, 10, 512)
        );
    }

    #[test]
    fn an_empty_network_is_an_error() {
        assert!(Network::builder(3).build().is_err());
        assert!(Network::new(Vec::new()).is_err());
    }
}
