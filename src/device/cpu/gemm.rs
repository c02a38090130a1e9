//! `C = A · B` for f32 row-major views, on the `gemm` crate's packed AVX2/AVX-512 kernels.
//!
//! This file is the edge between safe ndarray views and the raw-pointer GEMM entry point.

use gemm::Parallelism;
use ndarray::{ArrayView2, ArrayViewMut2};

/// Overwrites `c` with `a · b`, on up to `threads` threads.
///
/// # Panics
/// If the shapes do not agree: (m, k) · (k, n) → (m, n). Callers check shapes first.
pub(crate) fn matmul(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    mut c: ArrayViewMut2<'_, f32>,
    threads: usize,
) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(k, k2, "inner dimensions differ");
    assert_eq!(c.dim(), (m, n), "output shape differs from (m, n)");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(0.0);
        return;
    }
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    let [a_rs, a_cs] = strides(a.strides());
    let [b_rs, b_cs] = strides(b.strides());
    let [c_rs, c_cs] = strides(c.strides());
    // SAFETY: the three pointers come from live ndarray views whose shapes were just
    // checked to be (m, k), (k, n) and (m, n), and each (row, column) stride pair is the
    // view's own, so every address gemm forms for an index inside those shapes lies inside
    // its view. `c` is borrowed mutably, so it cannot alias `a` or `b`. With
    // `read_dst == false` gemm never reads `c`, so its prior contents (possibly
    // uninitialised scratch) do not matter; alpha is then ignored and beta = 1.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_cs,
            c_rs,
            false,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

fn strides(s: &[isize]) -> [isize; 2] {
    [s[0], s[1]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn matches_ndarray_dot_including_strided_views() {
        let a = crate::tensor::random_batch(37, 19, 1);
        let b = crate::tensor::random_batch(19, 23, 2);
        let mut c = Array2::from_elem((37, 23), f32::NAN);
        matmul(a.view(), b.view(), c.view_mut(), 2);
        let want = a.dot(&b);
        for (x, y) in c.iter().zip(want.iter()) {
            assert!((x - y).abs() < 1e-5);
        }
        let at = a.t().to_owned();
        let mut c2 = Array2::from_elem((37, 23), f32::NAN);
        matmul(at.t(), b.view(), c2.view_mut(), 1);
        assert_eq!(c, c2);
    }
}
