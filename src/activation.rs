//! Activation functions `g`, applied after `Z = A·W + B`.
//!
//! This is the one definition of each activation on the CPU. The CUDA kernels have their
//! own in `kernels/common.cuh`; the CUDA parity tests check the two against each other.
//!
//! Everything here is written so that the compiler can vectorise it: no branches that
//! depend on the data except selects, and an `exp` of our own ([`exp`]) instead of libm's,
//! accurate to about 2 ulp and free of NaN for any finite input.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The function `g` a dense layer applies to `Z`.
///
/// ```
/// use vecprop::Activation;
/// let g: Activation = "sigmoid".parse().unwrap();
/// assert_eq!(g.apply(0.0), 0.5);
/// assert_eq!(g.apply(-1000.0), 0.0); // stable for any finite input
///
/// let mut row = [1.0, 2.0, 3.0];
/// Activation::Softmax.apply_row(&mut row);
/// assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `1 / (1 + e^-z)`.
    Sigmoid,
    /// `max(0, z)`.
    Relu,
    /// `tanh(z)`.
    Tanh,
    /// The identity: `z`.
    Linear,
    /// Row-wise `e^z_i / Σ_j e^z_j`, computed with the row maximum subtracted.
    Softmax,
}

impl Activation {
    /// Every activation, in a fixed order (for tests that run each one).
    pub const ALL: [Activation; 5] = [
        Activation::Sigmoid,
        Activation::Relu,
        Activation::Tanh,
        Activation::Linear,
        Activation::Softmax,
    ];

    /// The lowercase name used in model files, kernel names and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Sigmoid => "sigmoid",
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Linear => "linear",
            Activation::Softmax => "softmax",
        }
    }

    /// Whether `g` acts on each element alone. Softmax needs the whole row.
    pub fn is_elementwise(self) -> bool {
        self != Activation::Softmax
    }

    /// `g(z)` for one element.
    ///
    /// Softmax of a single element is 1 (a row of one); use [`Activation::apply_row`] for rows.
    #[inline(always)]
    pub fn apply(self, z: f32) -> f32 {
        match self {
            Activation::Sigmoid => sigmoid(z),
            Activation::Relu => z.max(0.0),
            Activation::Tanh => tanh(z),
            Activation::Linear => z,
            Activation::Softmax => 1.0,
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
            Activation::Relu => map_row(row, bias, |z| z.max(0.0)),
            Activation::Tanh => map_row(row, bias, tanh),
            Activation::Linear => map_row(row, bias, |z| z),
            Activation::Softmax => softmax_row(row, bias),
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

/// The logistic sigmoid, stable for any finite input: `e^-z` overflows to infinity for
/// very negative `z`, and `1 / (1 + ∞)` is exactly 0, never NaN.
#[inline(always)]
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + exp(-z))
}

/// `tanh(z)`, branch-free so that loops over it vectorise (libm's `tanhf` does not).
///
/// Cephes' `tanhf`: an odd polynomial for `|z| < 0.625`, where `1 - 2/(e^2|z| + 1)` would
/// lose digits to cancellation, and that formula with the sign restored elsewhere. Both
/// are computed and one is selected.
#[inline(always)]
pub fn tanh(z: f32) -> f32 {
    let magnitude = z.abs();
    let large = (1.0 - 2.0 / (exp(2.0 * magnitude) + 1.0)).copysign(z);
    let z2 = z * z;
    let mut p = -5.704_988_7e-3_f32;
    p = p * z2 + 2.063_909e-2;
    p = p * z2 - 5.373_971_6e-2;
    p = p * z2 + 1.333_144_2e-1;
    p = p * z2 - 3.333_328e-1;
    let small = p * z2 * z + z;
    if magnitude < 0.625 {
        small
    } else {
        large
    }
}

/// `e^x` in f32, to about 2 ulp, branch-free so that loops over it vectorise.
///
/// Range reduction `x = n·ln2 + r` with `|r| ≤ ln2/2`, a degree-7 polynomial for `e^r`
/// (Cephes' `expf` coefficients) in fused multiply-adds, and `2^n` built from its exponent
/// bits. Overflows to `+∞` from about 88.4 (where `n` reaches 128, the exponent of ∞),
/// flushes to 0 below about -87.34, and passes NaN through (`clamp` keeps NaN).
///
/// The fused multiply-adds are single instructions where the code is compiled for FMA, as
/// the CPU epilogue is (through `pulp`); elsewhere they are exact software calls.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const MAX_INPUT: f32 = 88.722_83;
    const MIN_INPUT: f32 = -87.336_55;
    // Adding then subtracting 1.5·2^23 rounds to the nearest integer without `round()`,
    // which has no SSE2 instruction and would stop vectorisation.
    const ROUNDING: f32 = 12_582_912.0;

    let clamped = x.clamp(MIN_INPUT, MAX_INPUT);
    let n = clamped.mul_add(LOG2_E, ROUNDING) - ROUNDING;
    let r = n.mul_add(-LN2_HI, clamped);
    let r = n.mul_add(-LN2_LO, r);
    let mut p = 1.987_569_1e-4_f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 0.5);
    let e_r = (p * r).mul_add(r, r) + 1.0;
    // 2^n from its exponent bits. Adding 2^23 + 127 puts the integer n + 127 (1..=255 here)
    // in the low mantissa bits; shifting left by 23 moves it into the exponent field and
    // shifts the rest out. No float-to-int conversion, which would not vectorise as well.
    let two_to_n = f32::from_bits((n + 8_388_735.0).to_bits() << 23);
    let result = e_r * two_to_n;
    if x < MIN_INPUT {
        0.0
    } else {
        result
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activation {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let name = s.trim().to_ascii_lowercase();
        Activation::ALL
            .into_iter()
            .find(|a| a.name() == name)
            .ok_or_else(|| Error::UnknownActivation(s.trim().to_string()))
    }
}

/// Parses a comma-separated list such as `"sigmoid,relu,linear"`.
pub fn parse_list(list: &str) -> Result<Vec<Activation>> {
    list.split(',').map(str::parse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relative_error(got: f32, want: f64) -> f64 {
        (got as f64 - want).abs() / want.abs().max(f64::MIN_POSITIVE)
    }

    #[test]
    fn exp_is_accurate_to_a_few_ulp_across_its_range() {
        let mut x = -87.0_f32;
        while x < 88.0 {
            let err = relative_error(exp(x), (x as f64).exp());
            assert!(err < 3e-7, "exp({x}) off by {err:e}");
            x += 0.0137;
        }
    }

    #[test]
    fn tanh_is_accurate_near_zero_and_saturates() {
        let mut z = -12.0_f32;
        while z < 12.0 {
            let want = (z as f64).tanh();
            let err = (tanh(z) as f64 - want).abs() / want.abs().max(1e-30);
            assert!(err < 5e-7, "tanh({z}) off by {err:e}");
            z += 0.00731;
        }
        assert_eq!(tanh(1e-30), 1e-30);
        assert_eq!(tanh(100.0), 1.0);
        assert_eq!(tanh(-f32::MAX), -1.0);
        assert!(tanh(f32::NAN).is_nan());
    }

    #[test]
    fn exp_saturates_and_keeps_nan() {
        assert_eq!(exp(100.0), f32::INFINITY);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn sigmoid_is_finite_and_monotone_for_extreme_inputs() {
        for z in [
            -f32::MAX,
            -1e6,
            -200.0,
            -88.0,
            0.0,
            88.0,
            200.0,
            1e6,
            f32::MAX,
        ] {
            let s = sigmoid(z);
            assert!((0.0..=1.0).contains(&s), "sigmoid({z}) = {s}");
        }
        assert_eq!(sigmoid(-200.0), 0.0);
        assert_eq!(sigmoid(200.0), 1.0);
    }

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
    }

    #[test]
    fn names_parse_and_unknown_names_are_errors() {
        for a in Activation::ALL {
            assert_eq!(a.name().parse::<Activation>().unwrap(), a);
        }
        let err = "swish".parse::<Activation>().unwrap_err();
        assert!(err.to_string().contains("unknown activation `swish`"));
        assert_eq!(
            parse_list("sigmoid, relu,linear").unwrap(),
            vec![Activation::Sigmoid, Activation::Relu, Activation::Linear]
        );
    }
}
