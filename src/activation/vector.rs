//! Element-wise activations on whole SIMD vectors (`pulp::Simd`), for kernels that apply
//! `g` to their accumulators in registers before the one store of each output.
//!
//! The scalar functions in [`super::math`] stay the definition every other path uses; these
//! are the same functions written once more on vectors, because the register form is what
//! makes a fused epilogue cheap: the panel kernel stores a tile, reads it back and runs the
//! auto-vectorised row loop otherwise, at about twice the cost. The tests below hold them
//! to the float64 reference and to the scalar forms.
//!
//! [`sigmoid`] is also cheaper than the scalar form ([`super::sigmoid`]): it evaluates
//! `e^-|z|`, which lies in (0, 1], so `1 + e^-|z|` lies in (1, 2] and needs no overflow
//! handling, and a degree-5 polynomial for `e^r` in place of degree 7 (1.1e-7 relative in
//! exact arithmetic; the sigmoid stays within about 3e-7 of the float64 value).

use pulp::Simd;

/// `g` on one vector: the activations a fused epilogue applies in registers.
pub trait VectorActivation: Copy {
    /// `g(z)` lane by lane.
    fn apply<S: Simd>(self, simd: S, z: S::f32s) -> S::f32s;
}

/// The identity.
#[derive(Clone, Copy, Debug)]
pub struct Linear;

/// `max(0, z)`, NaN kept.
#[derive(Clone, Copy, Debug)]
pub struct Relu;

/// `z` for `z > 0`, `slope · z` otherwise; NaN kept.
#[derive(Clone, Copy, Debug)]
pub struct LeakyRelu(pub f32);

/// `1 / (1 + e^-z)`.
#[derive(Clone, Copy, Debug)]
pub struct Sigmoid;

impl VectorActivation for Linear {
    #[inline(always)]
    fn apply<S: Simd>(self, _simd: S, z: S::f32s) -> S::f32s {
        z
    }
}

impl VectorActivation for Relu {
    #[inline(always)]
    fn apply<S: Simd>(self, simd: S, z: S::f32s) -> S::f32s {
        // A select on `z < 0` rather than `max`, whose NaN handling differs between
        // instruction sets: NaN compares false and stays.
        let negative = simd.less_than_f32s(z, simd.splat_f32s(0.0));
        simd.select_f32s(negative, simd.splat_f32s(0.0), z)
    }
}

impl VectorActivation for LeakyRelu {
    #[inline(always)]
    fn apply<S: Simd>(self, simd: S, z: S::f32s) -> S::f32s {
        let positive = simd.greater_than_f32s(z, simd.splat_f32s(0.0));
        simd.select_f32s(positive, z, simd.mul_f32s(z, simd.splat_f32s(self.0)))
    }
}

impl VectorActivation for Sigmoid {
    #[inline(always)]
    fn apply<S: Simd>(self, simd: S, z: S::f32s) -> S::f32s {
        sigmoid(simd, z)
    }
}

/// The logistic sigmoid on a vector: `1 / (1 + e^-|z|)` for `z ≥ 0` and
/// `e^-|z| / (1 + e^-|z|)` for `z < 0`, so nothing overflows. `sigmoid(+∞) = 1`,
/// `sigmoid(-∞) = 0`, NaN stays NaN, and below about -87.3 the result is 0, as for the
/// scalar form.
#[inline(always)]
pub fn sigmoid<S: Simd>(simd: S, z: S::f32s) -> S::f32s {
    let minus_abs = simd.or_f32s(z, simd.splat_f32s(-0.0));
    let e = exp_nonpositive(simd, minus_abs);
    let one = simd.splat_f32s(1.0);
    // A true division: three Newton steps from a linear start (no division) measured
    // slower in this kernel, the FMA pipes being the busier ones.
    let s = simd.div_f32s(one, simd.add_f32s(one, e));
    let negative = simd.less_than_f32s(z, simd.splat_f32s(0.0));
    simd.select_f32s(negative, simd.mul_f32s(e, s), s)
}

/// `e^x` for `x ≤ 0`: 0 below about -87.3 (where `e^x` would leave the normal range),
/// NaN for NaN.
///
/// [`super::exp`]'s range reduction, `x = n·ln2 + r` with `|r| ≤ ln2/2`, then
/// `e^r ≈ 1 + r + r²·q(r)` with `q` cubic, its coefficients fitted for the relative error of
/// `e^r` (iteratively reweighted least squares in float64: 1.05e-7 at worst).
#[inline(always)]
fn exp_nonpositive<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // The smallest input whose `n` (about -126) still has a normal 2^n.
    const MIN_INPUT: f32 = -87.336_55;
    const ROUNDING: f32 = 12_582_912.0;
    let splat = |v: f32| simd.splat_f32s(v);

    // A select rather than `max`, whose NaN handling differs between instruction sets:
    // NaN compares false, stays, and makes the result NaN.
    let tiny = simd.less_than_f32s(x, splat(MIN_INPUT));
    let x = simd.select_f32s(tiny, splat(MIN_INPUT), x);
    let n = simd.sub_f32s(
        simd.mul_add_f32s(x, splat(LOG2_E), splat(ROUNDING)),
        splat(ROUNDING),
    );
    let r = simd.mul_add_f32s(n, splat(-LN2_HI), x);
    let r = simd.mul_add_f32s(n, splat(-LN2_LO), r);
    let mut q = splat(8.312_542e-3);
    q = simd.mul_add_f32s(q, r, splat(4.189_014_8e-2));
    q = simd.mul_add_f32s(q, r, splat(1.666_711_4e-1));
    q = simd.mul_add_f32s(q, r, splat(4.999_923e-1));
    let e_r = simd.add_f32s(simd.mul_add_f32s(simd.mul_f32s(r, r), q, r), splat(1.0));
    // 2^n from its exponent bits, as in `super::exp`: n + 127 in the low mantissa bits of
    // `n + 2^23 + 127`, shifted into the exponent field.
    let biased = simd.transmute_u32s_f32s(simd.add_f32s(n, splat(8_388_735.0)));
    let two_to_n =
        simd.transmute_f32s_u32s(simd.wrapping_dyn_shl_u32s(biased, simd.splat_u32s(23)));
    simd.select_f32s(tiny, splat(0.0), simd.mul_f32s(e_r, two_to_n))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `g` through the vector form, one lane at a time in every lane of the widest level.
    fn through_vectors(g: impl VectorActivation, zs: &[f32]) -> Vec<f32> {
        struct Run<'a, G>(G, &'a [f32]);
        impl<G: VectorActivation> pulp::WithSimd for Run<'_, G> {
            type Output = Vec<f32>;
            #[inline(always)]
            fn with_simd<S: Simd>(self, simd: S) -> Vec<f32> {
                let Run(g, zs) = self;
                let mut out = Vec::with_capacity(zs.len());
                for chunk in zs.chunks(S::F32_LANES) {
                    let mut lanes = vec![0.0_f32; S::F32_LANES];
                    lanes[..chunk.len()].copy_from_slice(chunk);
                    let v = simd.partial_load_f32s(&lanes);
                    simd.partial_store_f32s(&mut lanes, g.apply(simd, v));
                    out.extend_from_slice(&lanes[..chunk.len()]);
                }
                out
            }
        }
        pulp::Arch::new().dispatch(Run(g, zs))
    }

    fn grid(from: f32, to: f32, step: f32) -> Vec<f32> {
        let mut zs = Vec::new();
        let mut z = from;
        while z < to {
            zs.push(z);
            z += step;
        }
        zs
    }

    #[test]
    fn sigmoid_is_within_a_few_ulp_of_float64() {
        let zs = grid(-87.0, 40.0, 0.00731);
        let got = through_vectors(Sigmoid, &zs);
        let worst = zs
            .iter()
            .zip(&got)
            .map(|(&z, &g)| {
                let want = 1.0 / (1.0 + (-(z as f64)).exp());
                ((g as f64 - want).abs() / want, z)
            })
            .fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a });
        assert!(worst.0 < 5e-7, "sigmoid({}) off by {:e}", worst.1, worst.0);
    }

    #[test]
    fn sigmoid_keeps_the_special_values() {
        let zs = [
            f32::NEG_INFINITY,
            -f32::MAX,
            -200.0,
            0.0,
            -0.0,
            200.0,
            f32::MAX,
            f32::INFINITY,
            f32::NAN,
        ];
        let got = through_vectors(Sigmoid, &zs);
        assert!(
            got[0] < 1e-37 && got[1] < 1e-37 && got[2] < 1e-37,
            "{got:?}"
        );
        assert!(got[0] >= 0.0 && got[1] >= 0.0 && got[2] >= 0.0, "{got:?}");
        assert_eq!(&got[3..8], &[0.5, 0.5, 1.0, 1.0, 1.0]);
        assert!(got[8].is_nan());
    }

    #[test]
    fn the_piecewise_linear_ones_match_the_scalar_forms_bit_for_bit() {
        let mut zs = grid(-5.0, 5.0, 0.37);
        zs.extend([f32::NEG_INFINITY, -0.0, 0.0, f32::INFINITY, f32::NAN]);
        let same = |got: Vec<f32>, scalar: fn(f32) -> f32| {
            for (&z, g) in zs.iter().zip(got) {
                let want = scalar(z);
                assert!(
                    g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                    "g({z}) = {g}, want {want}"
                );
            }
        };
        same(through_vectors(Linear, &zs), |z| z);
        same(through_vectors(Relu, &zs), super::super::relu);
        same(through_vectors(LeakyRelu(0.2), &zs), |z| {
            super::super::leaky_relu(z, 0.2)
        });
    }
}
