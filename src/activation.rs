//! Activation functions `g`, applied after `Z = A·W + B`.
//!
//! This is the one definition of each activation on the CPU (the scalar functions such as
//! [`gelu`] and [`exp`] are below). The CUDA kernels have their own in `kernels/common.cuh`; the table of
//! (activation, input, expected) cases in `tests/all/activations.rs` runs through both.
//!
//! NaN and ±∞ propagate as in PyTorch: `relu(NaN)` is NaN, `sigmoid(±∞)` is 1 or 0,
//! a softmax row that holds a NaN or a `+∞` is all NaN.

mod math;

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use crate::error::{Error, Result};

pub use math::{erfc_nonnegative, exp, gelu, gelu_tanh, leaky_relu, relu, sigmoid, silu, tanh};

/// The slope of [`Activation::LeakyRelu`] when none is given: PyTorch's default.
pub const DEFAULT_LEAKY_RELU_SLOPE: f32 = 0.01;

/// The function `g` a dense layer applies to `Z`.
///
/// Names (for model metadata and `--activations`) are the lowercase variant names;
/// `leaky_relu:0.2` gives a leaky ReLU of slope 0.2 (`leaky_relu` alone has slope 0.01).
/// [`Display`](fmt::Display) writes the name back in the same form.
///
/// ```
/// use vecprop::Activation;
/// let g: Activation = "sigmoid".parse().unwrap();
/// assert_eq!(g.apply(0.0), 0.5);
/// assert_eq!(g.apply(-1000.0), 0.0); // stable for any finite input
///
/// let leaky: Activation = "leaky_relu:0.2".parse().unwrap();
/// assert_eq!(leaky, Activation::LeakyRelu { slope: 0.2 });
/// assert_eq!(leaky.apply(-2.0), -0.4);
/// assert_eq!(leaky.to_string(), "leaky_relu:0.2");
/// assert!(Activation::Relu.apply(f32::NAN).is_nan()); // NaN in, NaN out
///
/// let mut row = [1.0, 2.0, 3.0];
/// Activation::Softmax.apply_row(&mut row);
/// assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
/// ```
///
/// Equality and hashing compare a leaky ReLU's slope by its bits, so `Activation` is `Eq`
/// and `Hash` (a kernel-choice or cache key) although it holds an `f32`.
#[derive(Debug, Clone, Copy)]
pub enum Activation {
    /// `1 / (1 + e^-z)`.
    Sigmoid,
    /// `max(0, z)`, NaN kept.
    Relu,
    /// `tanh(z)`.
    Tanh,
    /// The identity: `z`.
    Linear,
    /// Row-wise `e^z_i / Σ_j e^z_j`, computed with the row maximum subtracted.
    Softmax,
    /// GELU in its exact form, `z · Φ(z) = z/2 · (1 + erf(z/√2))` (PyTorch's `nn.GELU()`).
    Gelu,
    /// GELU's tanh approximation, `z/2 · (1 + tanh(√(2/π)(z + 0.044715 z³)))`
    /// (PyTorch's `nn.GELU(approximate="tanh")`). cuBLASLt's GELU epilogues compute this
    /// form (PyTorch falls back to `gelu(approximate="tanh")` where it cannot use them), so
    /// they can serve `gelu_tanh` but not `gelu`.
    GeluTanh,
    /// SiLU or swish, `z · sigmoid(z)` (PyTorch's `nn.SiLU()`).
    Silu,
    /// `z` for `z > 0`, `slope · z` otherwise (PyTorch's `nn.LeakyReLU(slope)`).
    LeakyRelu {
        /// The factor for non-positive inputs; [`DEFAULT_LEAKY_RELU_SLOPE`] by default.
        slope: f32,
    },
}

impl Activation {
    /// Every activation, in a fixed order (for tests that run each one); leaky ReLU with
    /// its default slope.
    pub const ALL: [Activation; 9] = [
        Activation::Sigmoid,
        Activation::Relu,
        Activation::Tanh,
        Activation::Linear,
        Activation::Softmax,
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Silu,
        Activation::LeakyRelu {
            slope: DEFAULT_LEAKY_RELU_SLOPE,
        },
    ];

    /// The lowercase name of the function, without its parameter: the name in kernel names
    /// (`fused_leaky_relu_f32` serves every slope). [`Display`](fmt::Display) adds the
    /// parameter where it is not the default, and that form parses back.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Sigmoid => "sigmoid",
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Linear => "linear",
            Activation::Softmax => "softmax",
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_tanh",
            Activation::Silu => "silu",
            Activation::LeakyRelu { .. } => "leaky_relu",
        }
    }

    /// The activation's one scalar parameter as the kernels receive it (`act_param` in
    /// kernels/ABI.md): the slope of a leaky ReLU, 0 for every other activation.
    pub fn parameter(self) -> f32 {
        match self {
            Activation::LeakyRelu { slope } => slope,
            _ => 0.0,
        }
    }

    /// Whether `g` acts on each element alone. Softmax needs the whole row.
    pub fn is_elementwise(self) -> bool {
        self != Activation::Softmax
    }

    /// `g(z)` for one element.
    ///
    /// Softmax of a single element is 1 (a row of one), NaN for `z` NaN or ±∞ as in
    /// PyTorch; use [`Activation::apply_row`] for rows.
    #[inline(always)]
    pub fn apply(self, z: f32) -> f32 {
        match self {
            Activation::Sigmoid => sigmoid(z),
            Activation::Relu => relu(z),
            Activation::Tanh => tanh(z),
            Activation::Linear => z,
            Activation::Softmax => {
                let mut row = [z];
                softmax_row(&mut row, None);
                row[0]
            }
            Activation::Gelu => gelu(z),
            Activation::GeluTanh => gelu_tanh(z),
            Activation::Silu => silu(z),
            Activation::LeakyRelu { slope } => leaky_relu(z, slope),
        }
    }

    /// Applies `g` in place to one row of `Z` (one example).
    #[inline(always)]
    pub fn apply_row(self, row: &mut [f32]) {
        self.apply_row_with_bias(row, None);
    }

    /// The epilogue of a dense layer on one row: `row[j] = g(row[j] + bias[j])`, in one pass
    /// for element-wise activations (softmax needs a second pass for its sum).
    ///
    /// # Panics
    /// If `bias` is given and its length differs from the row's.
    #[inline(always)]
    pub fn apply_row_with_bias(self, row: &mut [f32], bias: Option<&[f32]>) {
        if let Some(bias) = bias {
            assert_eq!(
                row.len(),
                bias.len(),
                "bias length must equal the row width"
            );
        }
        match self {
            Activation::Sigmoid => map_row(row, bias, sigmoid),
            Activation::Relu => map_row(row, bias, relu),
            Activation::Tanh => map_row(row, bias, tanh),
            Activation::Linear => map_row(row, bias, |z| z),
            Activation::Softmax => softmax_row(row, bias),
            Activation::Gelu => map_row(row, bias, gelu),
            Activation::GeluTanh => map_row(row, bias, gelu_tanh),
            Activation::Silu => map_row(row, bias, silu),
            Activation::LeakyRelu { slope } => map_row(row, bias, |z| leaky_relu(z, slope)),
        }
    }
}

/// `row[j] = g(row[j] + bias[j])`, monomorphised per `g` so that each loop vectorises.
#[inline(always)]
fn map_row(row: &mut [f32], bias: Option<&[f32]>, g: impl Fn(f32) -> f32) {
    match bias {
        Some(bias) => row.iter_mut().zip(bias).for_each(|(z, b)| *z = g(*z + b)),
        None => row.iter_mut().for_each(|z| *z = g(*z)),
    }
}

#[inline(always)]
fn softmax_row(row: &mut [f32], bias: Option<&[f32]>) {
    map_row(row, bias, |z| z);
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    map_row(row, None, |z| exp(z - max));
    let sum: f32 = row.iter().sum();
    let inverse = 1.0 / sum;
    map_row(row, None, |e| e * inverse);
}

impl Activation {
    /// What equality and hashing compare: the name and the parameter's bits.
    fn identity(self) -> (&'static str, u32) {
        (self.name(), self.parameter().to_bits())
    }
}

impl PartialEq for Activation {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for Activation {}

impl Hash for Activation {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.identity().hash(state);
    }
}

impl fmt::Display for Activation {
    /// The name, with `:<slope>` for a leaky ReLU whose slope is not the default; it parses
    /// back to the same activation (f32's `Display` is the shortest exact form).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Activation::LeakyRelu { slope } if slope != DEFAULT_LEAKY_RELU_SLOPE => {
                write!(f, "{}:{slope}", self.name())
            }
            _ => f.write_str(self.name()),
        }
    }
}

impl FromStr for Activation {
    type Err = Error;

    /// A name as [`Activation::name`] gives it, in any case, and for a leaky ReLU an
    /// optional `:<slope>` (a finite number), e.g. `leaky_relu:0.2`.
    fn from_str(s: &str) -> Result<Self> {
        let spec = s.trim();
        let lowercase = spec.to_ascii_lowercase();
        let (name, parameter) = match lowercase.split_once(':') {
            Some((name, parameter)) => (name.trim(), Some(parameter.trim())),
            None => (lowercase.as_str(), None),
        };
        let activation = Activation::ALL
            .into_iter()
            .find(|a| a.name() == name)
            .ok_or_else(|| Error::UnknownActivation(spec.to_string()))?;
        let invalid = |reason: String| Error::InvalidActivation {
            spec: spec.to_string(),
            reason,
        };
        match (activation, parameter) {
            (_, None) => Ok(activation),
            (Activation::LeakyRelu { .. }, Some(slope)) => match slope.parse::<f32>() {
                Ok(slope) if slope.is_finite() => Ok(Activation::LeakyRelu { slope }),
                _ => Err(invalid(format!(
                    "the slope `{slope}` is not a finite number"
                ))),
            },
            (_, Some(_)) => Err(invalid(format!("{name} takes no parameter"))),
        }
    }
}

/// Parses a comma-separated list such as `"sigmoid,leaky_relu:0.2,linear"`.
pub fn parse_list(list: &str) -> Result<Vec<Activation>> {
    list.split(',').map(str::parse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_is_stable_for_large_inputs() {
        let mut row = [1000.0, 1000.0, -1e30];
        Activation::Softmax.apply_row(&mut row);
        assert_eq!(row, [0.5, 0.5, 0.0]);
    }

    #[test]
    fn bias_is_added_before_g() {
        let mut row = [1.0, -1.0];
        Activation::Relu.apply_row_with_bias(&mut row, Some(&[-2.0, 3.0]));
        assert_eq!(row, [0.0, 2.0]);
        let mut row = [1.0, -1.0];
        Activation::LeakyRelu { slope: 0.5 }.apply_row_with_bias(&mut row, Some(&[-2.0, 3.0]));
        assert_eq!(row, [-0.5, 2.0]);
    }

    #[test]
    fn the_row_path_and_the_scalar_path_agree() {
        let zs: Vec<f32> = (-40..=40).map(|i| i as f32 * 0.37).collect();
        for activation in Activation::ALL.into_iter().filter(|a| a.is_elementwise()) {
            let mut row = zs.clone();
            activation.apply_row(&mut row);
            for (&z, &got) in zs.iter().zip(&row) {
                assert_eq!(
                    got.to_bits(),
                    activation.apply(z).to_bits(),
                    "{activation}({z})"
                );
            }
        }
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        let leaky = |slope| Activation::LeakyRelu { slope };
        for a in
            Activation::ALL
                .into_iter()
                .chain([leaky(0.2), leaky(-1.5), leaky(0.0), leaky(1e-7)])
        {
            assert_eq!(a.to_string().parse::<Activation>().unwrap(), a, "{a}");
        }
        assert_eq!(leaky(DEFAULT_LEAKY_RELU_SLOPE).to_string(), "leaky_relu");
        assert_eq!(leaky(0.2).to_string(), "leaky_relu:0.2");
        assert_eq!(leaky(0.2).name(), "leaky_relu");
        assert_eq!(
            " GELU_Tanh ".parse::<Activation>().unwrap(),
            Activation::GeluTanh
        );
        let err = "swish".parse::<Activation>().unwrap_err();
        assert!(err.to_string().contains("unknown activation `swish`"));
        assert!(err.to_string().contains("leaky_relu[:slope]"), "{err}");
        assert_eq!(
            parse_list("sigmoid, leaky_relu:0.25,gelu,silu,linear").unwrap(),
            vec![
                Activation::Sigmoid,
                leaky(0.25),
                Activation::Gelu,
                Activation::Silu,
                Activation::Linear
            ]
        );
    }

    #[test]
    fn equality_and_hashing_see_the_slope() {
        use std::collections::HashSet;
        let set: HashSet<Activation> = [
            Activation::Relu,
            Activation::LeakyRelu { slope: 0.01 },
            Activation::LeakyRelu { slope: 0.2 },
            Activation::LeakyRelu { slope: 0.2 },
        ]
        .into_iter()
        .collect();
        assert_eq!(set.len(), 3);
        assert_ne!(Activation::Gelu, Activation::GeluTanh);
    }

    #[test]
    fn bad_parameters_are_errors_that_name_the_entry() {
        for (spec, reason) in [
            ("leaky_relu:abc", "the slope `abc` is not a finite number"),
            ("leaky_relu:nan", "the slope `nan` is not a finite number"),
            ("leaky_relu:inf", "the slope `inf` is not a finite number"),
            ("leaky_relu:", "the slope `` is not a finite number"),
            ("relu:0.2", "relu takes no parameter"),
        ] {
            let err = spec.parse::<Activation>().unwrap_err().to_string();
            assert!(
                err.contains(&format!("`{spec}`")) && err.contains(reason),
                "{err}"
            );
        }
        assert!(matches!(
            "elu:1".parse::<Activation>(),
            Err(Error::UnknownActivation(_))
        ));
    }
}
