//! The register-blocked panel kernel: `out = g(A · W + B)` over prepacked weights
//! ([`PackedWeights`]), with the bias and the activation applied to the accumulators before
//! they are stored, so each output element is written once.
//!
//! Why by hand: the `gemm` crate (and matrixmultiply, faer) pack `W` on every call and tune
//! their blocking for large products; at a few rows, or for layers of 64 units, that packing
//! and the separate epilogue sweep cost more than the FLOPs (issue 21). None of them takes a
//! matrix packed once, ahead of time, with a fused epilogue. The SIMD dispatch is `pulp`'s:
//! this file is generic over [`pulp::Simd`] and has no `unsafe`.
//!
//! A tile is `R` rows × `P` panels of [`PANEL`] units, held in `R · P · PANEL / lanes`
//! vector accumulators. Each step over the inputs loads the tile's `P` panel rows of `W`
//! once and broadcasts one input per row, so each weight is read once per `R` rows. Few rows
//! take wide tiles (one row × four panels keeps eight independent FMA chains in flight on
//! AVX2), six rows take one panel (12 accumulators of the 16 AVX2 registers).

use std::ops::Range;

use ndarray::{ArrayView2, ArrayViewMut2};
use pulp::Simd;

use super::packed::{PackedWeights, PANEL};
use super::prefetch::Prefetcher;
use crate::activation::Activation;

/// Rows per tile in the main loop over a batch.
pub const TILE_ROWS: usize = 6;

/// How far ahead of the row block being computed the kernel prefetches its rows.
const PREFETCH_ROWS_AHEAD: usize = 2 * TILE_ROWS;

/// Panels per column chunk: every row block of a chunk runs before the next chunk starts, so
/// the chunk's slice of `W` is read from L1/L2 rather than memory by all but the first.
const CHUNK_PANELS: usize = 4;

/// `out = g(input · W + B)` for the units of `panels` (a range of `weights`' panels); `out`
/// holds exactly those units' columns, the last panel clipped to the layer's width.
///
/// `activation` must be element-wise (callers run softmax as a second pass over whole rows).
///
/// # Panics
/// If shapes disagree, or if a row of `input` or `out` is not contiguous; callers check.
pub(super) fn panel_dense(
    input: ArrayView2<'_, f32>,
    weights: &PackedWeights,
    panels: Range<usize>,
    activation: Activation,
    out: ArrayViewMut2<'_, f32>,
) {
    assert_eq!(input.ncols(), weights.inputs(), "input width");
    assert!(activation.is_elementwise(), "softmax needs whole rows");
    let first_unit = panels.start * PANEL;
    let last_unit = weights.units().min(panels.end * PANEL);
    assert_eq!(
        out.dim(),
        (input.nrows(), last_unit.saturating_sub(first_unit)),
        "output shape"
    );
    assert!(rows_contiguous(input) && rows_contiguous(out.view()));
    pulp::Arch::new().dispatch(PanelDense {
        input,
        weights,
        panels,
        activation,
        out,
        prefetch: Prefetcher::new(),
    });
}

/// Whether each row of `view` is one contiguous slice (the kernel's requirement).
pub(super) fn rows_contiguous(view: ArrayView2<'_, f32>) -> bool {
    view.ncols() <= 1 || view.strides()[1] == 1
}

struct PanelDense<'a, 'w> {
    input: ArrayView2<'a, f32>,
    weights: &'w PackedWeights,
    panels: Range<usize>,
    activation: Activation,
    out: ArrayViewMut2<'a, f32>,
    prefetch: Prefetcher,
}

impl pulp::WithSimd for PanelDense<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        // V, vectors per panel, must be a constant for the accumulator arrays.
        match S::F32_LANES {
            16 => self.run::<S, 1>(simd),
            8 => self.run::<S, 2>(simd),
            4 => self.run::<S, 4>(simd),
            lanes => {
                assert_eq!(lanes, 1, "no SIMD level divides a panel of {PANEL}");
                self.run::<S, 16>(simd)
            }
        }
    }
}

impl PanelDense<'_, '_> {
    #[inline(always)]
    fn run<S: Simd, const V: usize>(mut self, simd: S) {
        let rows = self.input.nrows();
        // With 32 vector registers (AVX-512) a tile spans the whole chunk; with 16 (AVX2),
        // the fewer the rows the more panels, to keep 8 to 12 accumulators in flight.
        let wide = S::REGISTER_COUNT >= 32;
        let mut chunk_start = self.panels.start;
        while chunk_start < self.panels.end {
            let chunk = chunk_start..self.panels.end.min(chunk_start + CHUNK_PANELS);
            let mut row = 0;
            while rows - row >= TILE_ROWS {
                if wide {
                    self.row_block::<S, V, TILE_ROWS, 4>(simd, row, chunk.clone());
                } else {
                    self.row_block::<S, V, TILE_ROWS, 1>(simd, row, chunk.clone());
                }
                row += TILE_ROWS;
            }
            match (rows - row, wide) {
                (0, _) => {}
                (1, _) => self.row_block::<S, V, 1, 4>(simd, row, chunk.clone()),
                (2, true) => self.row_block::<S, V, 2, 4>(simd, row, chunk.clone()),
                (2, false) => self.row_block::<S, V, 2, 3>(simd, row, chunk.clone()),
                (3, true) => self.row_block::<S, V, 3, 4>(simd, row, chunk.clone()),
                (3, false) => self.row_block::<S, V, 3, 2>(simd, row, chunk.clone()),
                (4, true) => self.row_block::<S, V, 4, 4>(simd, row, chunk.clone()),
                (4, false) => self.row_block::<S, V, 4, 1>(simd, row, chunk.clone()),
                (_, true) => self.row_block::<S, V, 5, 4>(simd, row, chunk.clone()),
                (_, false) => self.row_block::<S, V, 5, 1>(simd, row, chunk.clone()),
            }
            chunk_start = chunk.end;
        }
    }

    /// Rows `row..row + R` against the panels of `chunk`, `P` panels at a time, then one at a
    /// time for the chunk's last few.
    #[inline(always)]
    fn row_block<S: Simd, const V: usize, const R: usize, const P: usize>(
        &mut self,
        simd: S,
        row: usize,
        chunk: Range<usize>,
    ) {
        let inputs = self.weights.inputs();
        let input = self.input;
        let a: [&[f32]; R] = std::array::from_fn(|r| {
            let slice = input.row(row + r).to_slice();
            &slice.expect("contiguous input rows")[..inputs]
        });
        self.prefetch_ahead(row + PREFETCH_ROWS_AHEAD, R, chunk.clone());
        let mut panel = chunk.start;
        while chunk.end - panel >= P {
            self.tile::<S, V, R, P>(simd, a, row, panel);
            panel += P;
        }
        while panel < chunk.end {
            self.tile::<S, V, R, 1>(simd, a, row, panel);
            panel += 1;
        }
    }

    /// Prefetch hints for rows `first..first + rows` (those that exist): their inputs, on the
    /// first chunk's pass, and their outputs in `chunk`'s columns.
    #[inline(always)]
    fn prefetch_ahead(&self, first: usize, rows: usize, chunk: Range<usize>) {
        let end = self.input.nrows().min(first + rows);
        let first_column = (chunk.start - self.panels.start) * PANEL;
        let last_column = self
            .out
            .ncols()
            .min((chunk.end - self.panels.start) * PANEL);
        for row in first..end {
            if chunk.start == self.panels.start {
                if let Some(input) = self.input.row(row).to_slice() {
                    self.prefetch.for_reading(input);
                }
            }
            if let Some(out) = self.out.row(row).to_slice() {
                self.prefetch.for_writing(&out[first_column..last_column]);
            }
        }
    }

    /// One `R × P` tile: rows `row..row + R`, panels `panel..panel + P`.
    #[inline(always)]
    fn tile<S: Simd, const V: usize, const R: usize, const P: usize>(
        &mut self,
        simd: S,
        a: [&[f32]; R],
        row: usize,
        panel: usize,
    ) {
        let inputs = self.weights.inputs();
        // Each panel as `inputs` steps of V vectors; slicing to `inputs` lets the compiler
        // drop the bounds checks in the loop below.
        let w: [&[[S::f32s; V]]; P] = std::array::from_fn(|p| {
            let vectors = S::as_simd_f32s(self.weights.panel(panel + p)).0;
            &pulp::as_arrays::<V, _>(vectors).0[..inputs]
        });
        let bias: [[S::f32s; V]; P] = std::array::from_fn(|p| {
            let vectors = S::as_simd_f32s(self.weights.panel_bias(panel + p)).0;
            pulp::as_arrays::<V, _>(vectors).0[0]
        });
        let mut acc = [bias; R];
        for k in 0..inputs {
            let w_k: [[S::f32s; V]; P] = std::array::from_fn(|p| w[p][k]);
            for r in 0..R {
                let a_rk = simd.splat_f32s(a[r][k]);
                for p in 0..P {
                    for v in 0..V {
                        acc[r][p][v] = simd.mul_add_f32s(a_rk, w_k[p][v], acc[r][p][v]);
                    }
                }
            }
        }
        let first_column = (panel - self.panels.start) * PANEL;
        let width = (P * PANEL).min(self.out.ncols() - first_column);
        for (r, mut tile_row) in acc.into_iter().enumerate() {
            let mut out_row = self.out.row_mut(row + r);
            let out_row = out_row.as_slice_mut().expect("contiguous output rows");
            let out = &mut out_row[first_column..first_column + width];
            if width == P * PANEL {
                // A whole tile: vector stores, then g over fixed-size panels in place.
                let vectors = S::as_mut_simd_f32s(out).0;
                for (dst, &value) in vectors.iter_mut().zip(tile_row.as_flattened()) {
                    *dst = value;
                }
                for panel in pulp::as_arrays_mut::<PANEL, _>(out).0 {
                    self.activation.apply_row(panel);
                }
            } else {
                // The layer's last, partial panel: through the stack.
                let values: &mut [f32] = bytemuck::cast_slice_mut(tile_row.as_flattened_mut());
                let values = &mut values[..width];
                self.activation.apply_row(values);
                out.copy_from_slice(values);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn naive(input: &Array2<f32>, weight: &Array2<f32>, bias: &[f32]) -> Array2<f32> {
        let mut z = input.dot(weight);
        for mut row in z.rows_mut() {
            row.iter_mut().zip(bias).for_each(|(z, b)| *z += b);
        }
        z
    }

    #[test]
    fn every_row_remainder_and_panel_tail_matches_a_plain_product() {
        for rows in [1, 2, 3, 4, 5, 6, 7, 13] {
            for units in [1, 16, 17, 70, 100] {
                let input = crate::tensor::random_batch(rows, 9, 1);
                let weight = crate::tensor::random_batch(9, units, 2);
                let bias: Vec<f32> = (0..units).map(|j| j as f32 * 0.1).collect();
                let packed = PackedWeights::new(weight.view(), &bias);
                let mut out = Array2::from_elem((rows, units), f32::NAN);
                panel_dense(
                    input.view(),
                    &packed,
                    0..packed.panels(),
                    Activation::Linear,
                    out.view_mut(),
                );
                let want = naive(&input, &weight, &bias);
                for (g, w) in out.iter().zip(&want) {
                    assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{rows}x{units}");
                }
            }
        }
    }

    #[test]
    fn a_panel_range_writes_only_its_columns() {
        let input = crate::tensor::random_batch(3, 5, 1);
        let weight = crate::tensor::random_batch(5, 40, 2);
        let packed = PackedWeights::new(weight.view(), &[0.0; 40]);
        let mut out = Array2::from_elem((3, 40), f32::NAN);
        panel_dense(
            input.view(),
            &packed,
            1..3,
            Activation::Relu,
            out.slice_mut(ndarray::s![.., 16..]),
        );
        let want = naive(&input, &weight, &[0.0; 40]).mapv(|z| z.max(0.0));
        assert!(out.slice(ndarray::s![.., ..16]).iter().all(|v| v.is_nan()));
        for (g, w) in out
            .slice(ndarray::s![.., 16..])
            .iter()
            .zip(want.slice(ndarray::s![.., 16..]))
        {
            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0));
        }
    }
}
