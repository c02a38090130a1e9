//! Chains of elementwise ONNX ops between two layers, recognised as one activation.
//!
//! Exporters write the same activation in many ways: `Gelu` (opset 20), or
//! `Div`, `Erf`, `Add`, `Mul`, `Mul` (older opsets); `Sigmoid` then `Mul` for SiLU. Instead
//! of matching each spelling, the ops are kept as an expression of the layer's output and
//! evaluated on a grid of points; the activation they equal there, to 1e-6, is the answer.

use crate::activation::Activation;

/// An elementwise function of the previous layer's output `x`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    /// `x` itself.
    Input,
    /// A scalar constant.
    Const(f64),
    /// A one-argument op.
    Unary(Unary, Box<Expr>),
    /// A two-argument op.
    Binary(Binary, Box<Expr>, Box<Expr>),
}

/// The one-argument ONNX ops understood.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Unary {
    Relu,
    Sigmoid,
    Tanh,
    Erf,
    Exp,
    Log,
    Neg,
    Abs,
    Sqrt,
    Reciprocal,
    Softplus,
    LeakyRelu(f64),
    Gelu,
    GeluTanh,
}

/// The two-argument ONNX ops understood.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
    /// `Mod` with `fmod=0`: the remainder takes the divisor's sign.
    Mod,
}

impl Unary {
    /// The op for an ONNX op type, with its float attribute (`alpha`) and string one
    /// (`approximate`).
    pub(crate) fn from_op(op: &str, alpha: Option<f32>, approximate: &str) -> Option<Unary> {
        Some(match op {
            "Relu" => Unary::Relu,
            "Sigmoid" => Unary::Sigmoid,
            "Tanh" => Unary::Tanh,
            "Erf" => Unary::Erf,
            "Exp" => Unary::Exp,
            "Log" => Unary::Log,
            "Neg" => Unary::Neg,
            "Abs" => Unary::Abs,
            "Sqrt" => Unary::Sqrt,
            "Reciprocal" => Unary::Reciprocal,
            "Softplus" => Unary::Softplus,
            "LeakyRelu" => Unary::LeakyRelu(f64::from(alpha.unwrap_or(0.01))),
            "Gelu" if approximate == "tanh" => Unary::GeluTanh,
            "Gelu" => Unary::Gelu,
            _ => return None,
        })
    }

    pub(crate) fn apply(self, x: f64) -> f64 {
        match self {
            Unary::Relu => x.max(0.0),
            Unary::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Unary::Tanh => x.tanh(),
            Unary::Erf => erf(x),
            Unary::Exp => x.exp(),
            Unary::Log => x.ln(),
            Unary::Neg => -x,
            Unary::Abs => x.abs(),
            Unary::Sqrt => x.sqrt(),
            Unary::Reciprocal => 1.0 / x,
            Unary::Softplus => x.exp().ln_1p(),
            Unary::LeakyRelu(slope) => leaky_relu(x, slope),
            Unary::Gelu => gelu(x),
            Unary::GeluTanh => gelu_tanh(x),
        }
    }
}

impl Binary {
    /// The op for an ONNX op type.
    pub(crate) fn from_op(op: &str) -> Option<Binary> {
        Some(match op {
            "Add" => Binary::Add,
            "Sub" => Binary::Sub,
            "Mul" => Binary::Mul,
            "Div" => Binary::Div,
            "Pow" => Binary::Pow,
            "Max" => Binary::Max,
            "Min" => Binary::Min,
            "Mod" => Binary::Mod,
            _ => return None,
        })
    }

    pub(crate) fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            Binary::Add => a + b,
            Binary::Sub => a - b,
            Binary::Mul => a * b,
            Binary::Div => a / b,
            Binary::Pow => a.powf(b),
            Binary::Max => a.max(b),
            Binary::Min => a.min(b),
            Binary::Mod => a - b * (a / b).floor(),
        }
    }

    /// The op over integers (shapes, indices): `Div` truncates, as ONNX's integer `Div` does.
    pub(crate) fn apply_integer(self, a: f64, b: f64) -> f64 {
        match self {
            Binary::Div => (a / b).trunc(),
            op => op.apply(a, b),
        }
    }
}

impl Expr {
    /// The expression's value at `x`.
    pub(crate) fn eval(&self, x: f64) -> f64 {
        match self {
            Expr::Input => x,
            Expr::Const(c) => *c,
            Expr::Unary(op, a) => op.apply(a.eval(x)),
            Expr::Binary(op, a, b) => op.apply(a.eval(x), b.eval(x)),
        }
    }

    /// The activation this expression computes, if it is one vecprop knows.
    pub(crate) fn recognise(&self) -> Option<Activation> {
        if *self == Expr::Input {
            return Some(Activation::Linear);
        }
        let slope = -self.eval(-1.0);
        let candidates = [
            (Activation::Linear, Unary::Neg, 0.0),
            (Activation::Relu, Unary::Relu, 0.0),
            (Activation::Sigmoid, Unary::Sigmoid, 0.0),
            (Activation::Tanh, Unary::Tanh, 0.0),
            (Activation::Gelu, Unary::Gelu, 0.0),
            (Activation::GeluTanh, Unary::GeluTanh, 0.0),
            (Activation::Silu, Unary::Sigmoid, 1.0),
            (
                Activation::LeakyRelu {
                    slope: slope as f32,
                },
                Unary::LeakyRelu(slope),
                0.0,
            ),
        ];
        candidates.into_iter().find_map(|(kind, op, silu)| {
            let reference = |x: f64| match kind {
                Activation::Linear => x,
                _ if silu == 1.0 => x * op.apply(x),
                _ => op.apply(x),
            };
            let matches = (-1200..=1200).all(|i| {
                let x = f64::from(i) / 100.0;
                let (got, want) = (self.eval(x), reference(x));
                (got - want).abs() <= 1e-6 * want.abs().max(1.0)
            });
            let plausible = match kind {
                Activation::LeakyRelu { .. } => slope > 0.0 && slope < 1.0,
                _ => true,
            };
            (matches && plausible).then_some(kind)
        })
    }
}

fn leaky_relu(x: f64, slope: f64) -> f64 {
    if x >= 0.0 {
        x
    } else {
        slope * x
    }
}

fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

fn gelu_tanh(x: f64) -> f64 {
    let k = (2.0 / std::f64::consts::PI).sqrt();
    0.5 * x * (1.0 + (k * (x + 0.044_715 * x * x * x)).tanh())
}

/// The error function, to about 1e-7 (Abramowitz and Stegun 7.1.26), ample for telling
/// activations apart.
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    (1.0 - poly * (-x * x).exp()).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unary(op: Unary, a: Expr) -> Expr {
        Expr::Unary(op, Box::new(a))
    }

    fn binary(op: Binary, a: Expr, b: Expr) -> Expr {
        Expr::Binary(op, Box::new(a), Box::new(b))
    }

    #[test]
    fn decomposed_activations_are_recognised() {
        // x * 0.5 * (1 + erf(x / sqrt 2)), as the legacy exporter writes GELU.
        let erf = unary(
            Unary::Erf,
            binary(
                Binary::Div,
                Expr::Input,
                Expr::Const(std::f64::consts::SQRT_2),
            ),
        );
        let gelu = binary(
            Binary::Mul,
            binary(
                Binary::Mul,
                Expr::Input,
                binary(Binary::Add, erf, Expr::Const(1.0)),
            ),
            Expr::Const(0.5),
        );
        assert_eq!(gelu.recognise(), Some(Activation::Gelu));
        let silu = binary(Binary::Mul, Expr::Input, unary(Unary::Sigmoid, Expr::Input));
        assert_eq!(silu.recognise(), Some(Activation::Silu));
        let leaky = unary(Unary::LeakyRelu(0.2), Expr::Input);
        assert_eq!(
            leaky.recognise(),
            Some(Activation::LeakyRelu { slope: 0.2 })
        );
        assert_eq!(
            unary(Unary::Relu, Expr::Input).recognise(),
            Some(Activation::Relu)
        );
    }

    #[test]
    fn anything_else_is_not_an_activation() {
        let shifted = binary(
            Binary::Add,
            unary(Unary::Relu, Expr::Input),
            Expr::Const(1.0),
        );
        assert_eq!(shifted.recognise(), None);
        let twice = unary(Unary::Sigmoid, unary(Unary::Relu, Expr::Input));
        assert_eq!(twice.recognise(), None);
        assert_eq!(unary(Unary::Exp, Expr::Input).recognise(), None);
    }
}
