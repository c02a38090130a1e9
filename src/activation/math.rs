//! The scalar math behind the activations, in f32.
//!
//! Everything here is written so that the compiler can vectorise it: no branches that
//! depend on the data except selects, and an `exp` of our own ([`exp`]) instead of libm's,
//! accurate to about 2 ulp. NaN and ±∞ come out as PyTorch's float32 kernels give them
//! (the tests in `tests/all/activations.rs` list each case).

use std::f32::consts::FRAC_1_SQRT_2;

/// The logistic sigmoid, stable for any input: `e^-z` overflows to infinity for very
/// negative `z`, and `1 / (1 + ∞)` is exactly 0, never NaN. NaN stays NaN.
#[inline(always)]
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + exp(-z))
}

/// `max(0, z)` that keeps NaN (PyTorch's relu propagates it; `f32::max` would give 0).
#[inline(always)]
pub fn relu(z: f32) -> f32 {
    if z < 0.0 {
        0.0
    } else {
        z
    }
}

/// `z` for `z > 0`, `slope · z` otherwise, as PyTorch computes it: NaN stays NaN, and
/// `-∞` gives `slope · -∞`.
#[inline(always)]
pub fn leaky_relu(z: f32, slope: f32) -> f32 {
    if z > 0.0 {
        z
    } else {
        z * slope
    }
}

/// `tanh(z)`, branch-free so that loops over it vectorise (libm's `tanhf` does not).
///
/// Cephes' `tanhf`: an odd polynomial for `|z| < 0.625`, where `1 - 2/(e^2|z| + 1)` would
/// lose digits to cancellation, and that formula with the sign restored elsewhere. Both
/// are computed and one is selected. `tanh(±∞) = ±1`; NaN stays NaN.
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

/// SiLU (swish): `z · sigmoid(z)`, computed as PyTorch does, `z / (1 + e^-z)`, so that
/// `silu(-∞)` is NaN there and here.
#[inline(always)]
pub fn silu(z: f32) -> f32 {
    z / (1.0 + exp(-z))
}

/// GELU, erf form: `z · Φ(z) = z/2 · erfc(-z/√2)`.
///
/// Written with [`erfc_nonnegative`] of `|z|/√2` so that the left tail (where `1 + erf`
/// would cancel) keeps its relative accuracy: `2Φ(z)` is that tail for `z < 0` and
/// `2 - tail` otherwise. `gelu(+∞) = +∞`; `gelu(-∞)` is NaN, as PyTorch's
/// `x · 0.5 · (1 + erf(x/√2))` gives (`-∞ · 0`).
#[inline(always)]
pub fn gelu(z: f32) -> f32 {
    let tail = erfc_nonnegative(z.abs() * FRAC_1_SQRT_2);
    let two_phi = if z < 0.0 { tail } else { 2.0 - tail };
    0.5 * z * two_phi
}

/// GELU, tanh approximation (PyTorch's `approximate="tanh"`):
/// `z/2 · (1 + tanh(√(2/π) · (z + 0.044715 z³)))`.
///
/// Computed as `z · sigmoid(2u)`, which is the same function (`1 + tanh(u) = 2·sigmoid(2u)`)
/// without the cancellation of `1 + tanh(u)` for negative `u`. Like PyTorch's formula it
/// gives `+∞` at `+∞` and NaN at `-∞`.
#[inline(always)]
pub fn gelu_tanh(z: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const CUBIC: f32 = 0.044_715;
    let u = SQRT_2_OVER_PI * (z + CUBIC * z * z * z);
    z * sigmoid(2.0 * u)
}

/// `erfc(x)` for `x ≥ 0` (or ∞), to a relative error below about 5e-7 everywhere,
/// branch-free.
///
/// The Chebyshev-fitted form of Numerical Recipes' `erfcc`: with `t = 1/(1 + x/2)`,
/// `erfc(x) = t · e^(-x² + P(t))` for a degree-9 polynomial `P`, whose fit has a relative
/// error below 1.2e-7 for every `x ≥ 0`; the rest is f32 rounding and [`exp`]. At `x = ∞`
/// it is 0; NaN stays NaN.
#[inline(always)]
pub fn erfc_nonnegative(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * x);
    let mut p = 0.170_872_77_f32;
    p = p.mul_add(t, -0.822_152_23);
    p = p.mul_add(t, 1.488_515_9);
    p = p.mul_add(t, -1.135_204);
    p = p.mul_add(t, 0.278_868_07);
    p = p.mul_add(t, -0.186_288_06);
    p = p.mul_add(t, 0.096_784_18);
    p = p.mul_add(t, 0.374_091_96);
    p = p.mul_add(t, 1.000_023_7);
    p = p.mul_add(t, -1.265_512_2);
    t * exp(p - x * x)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn relative_error(got: f32, want: f64) -> f64 {
        (got as f64 - want).abs() / want.abs().max(f64::MIN_POSITIVE)
    }

    /// `f` against `reference` in f64 on a grid over `[from, to)`.
    fn worst_error(
        f: impl Fn(f32) -> f32,
        reference: impl Fn(f64) -> f64,
        from: f32,
        to: f32,
    ) -> (f64, f32) {
        let mut worst = (0.0, from);
        let mut z = from;
        while z < to {
            let err = relative_error(f(z), reference(z as f64));
            if err > worst.0 {
                worst = (err, z);
            }
            z += 0.00731;
        }
        worst
    }

    fn gelu_f64(z: f64) -> f64 {
        0.5 * z * libm::erfc(-z / std::f64::consts::SQRT_2)
    }

    fn gelu_tanh_f64(z: f64) -> f64 {
        // 1 + tanh(u) = 2 / (1 + e^-2u), without the cancellation for u < 0.
        let u = (2.0 / std::f64::consts::PI).sqrt() * (z + 0.044715 * z * z * z);
        z / (1.0 + (-2.0 * u).exp())
    }

    #[test]
    fn exp_is_accurate_to_a_few_ulp_across_its_range() {
        let (err, z) = worst_error(exp, f64::exp, -87.0, 88.0);
        assert!(err < 3e-7, "exp({z}) off by {err:e}");
    }

    #[test]
    fn tanh_is_accurate_near_zero_and_saturates() {
        let (err, z) = worst_error(tanh, f64::tanh, -12.0, 12.0);
        assert!(err < 5e-7, "tanh({z}) off by {err:e}");
        assert_eq!(tanh(1e-30), 1e-30);
        assert_eq!(tanh(100.0), 1.0);
        assert_eq!(tanh(-f32::MAX), -1.0);
    }

    #[test]
    fn erfc_has_a_small_relative_error_into_the_far_tail() {
        let (err, x) = worst_error(erfc_nonnegative, libm::erfc, 0.0, 9.0);
        // Beyond x ≈ 4 the rounding of x² in f32 dominates: about 2x²·6e-8.
        assert!(err < 1e-5, "erfc({x}) off by {err:e}");
        let (err, x) = worst_error(erfc_nonnegative, libm::erfc, 0.0, 3.0);
        assert!(err < 1e-6, "erfc({x}) off by {err:e}");
        assert_eq!(erfc_nonnegative(f32::INFINITY), 0.0);
    }

    #[test]
    fn gelu_is_accurate_in_both_tails() {
        let (err, z) = worst_error(gelu, gelu_f64, -8.0, 8.0);
        assert!(err < 1e-5, "gelu({z}) off by {err:e}");
        let (err, z) = worst_error(gelu, gelu_f64, -3.0, 8.0);
        assert!(err < 1e-6, "gelu({z}) off by {err:e}");
    }

    #[test]
    fn gelu_tanh_is_accurate_in_both_tails() {
        // In the far left tail, e^-2u's argument (≈ 46 at z = -8) carries f32 rounding.
        let (err, z) = worst_error(gelu_tanh, gelu_tanh_f64, -8.0, 8.0);
        assert!(err < 1e-5, "gelu_tanh({z}) off by {err:e}");
        let (err, z) = worst_error(gelu_tanh, gelu_tanh_f64, -4.0, 8.0);
        assert!(err < 2e-6, "gelu_tanh({z}) off by {err:e}");
    }

    #[test]
    fn silu_is_accurate() {
        let (err, z) = worst_error(silu, |z| z / (1.0 + (-z).exp()), -80.0, 80.0);
        assert!(err < 1e-6, "silu({z}) off by {err:e}");
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
}
