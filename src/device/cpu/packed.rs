//! A dense layer's weights reordered once, at plan compile time, into the layout the panel
//! kernel (`panel`) reads: column panels of [`PANEL`] units, each panel's `K × PANEL`
//! block contiguous and row-major, the last panel padded with zeros.
//!
//! With that layout the kernel's inner loop reads each weight once per row block, from one
//! sequential stream per panel, and never needs a bounds-dependent tail: padding columns
//! compute zeros that are never stored. ONNX Runtime's MLAS (`MlasGemmPackB`) and oneDNN's
//! weight reorder do the same once per session.

use ndarray::ArrayView2;

/// Units per panel: two AVX2 vectors or one AVX-512 vector of f32.
pub const PANEL: usize = 16;

/// Bytes each panel row starts on: one AVX-512 vector, one cache line. A vector load that
/// straddles two lines costs two L1 accesses; the kernel loads every panel row once per
/// tile step, so unaligned weights halve its load bandwidth.
const ALIGN_BYTES: usize = 64;

/// Spare elements allocated so that an aligned start exists within the buffer.
const ALIGN_SLACK: usize = ALIGN_BYTES / std::mem::size_of::<f32>() - 1;

/// `W` (inputs × units) and `B` in panel order, ready for `panel`.
#[derive(Debug)]
pub struct PackedWeights {
    inputs: usize,
    units: usize,
    /// `panels() × inputs × PANEL` values from `offset` on: element (k, n) at
    /// `offset + (n / PANEL) · inputs · PANEL + k · PANEL + n % PANEL`.
    data: Vec<f32>,
    /// Where the values start in `data`: the first [`ALIGN_BYTES`]-aligned element.
    offset: usize,
    /// The bias, zero-padded to `panels() × PANEL`.
    bias: Vec<f32>,
}

impl PackedWeights {
    /// Packs `weight` (inputs × units, any strides) and `bias` (units).
    ///
    /// # Panics
    /// If `bias.len()` differs from the number of units; layers check this when built.
    pub fn new(weight: ArrayView2<'_, f32>, bias: &[f32]) -> Self {
        let (inputs, units) = weight.dim();
        assert_eq!(bias.len(), units, "bias length must equal the units");
        let panels = units.div_ceil(PANEL);
        let len = panels * inputs * PANEL;
        let mut data = vec![0.0; len + ALIGN_SLACK];
        let offset = aligned_start(&data);
        // With no inputs there is nothing to copy (and no non-empty chunk to copy into).
        let values = &mut data[offset..offset + len];
        for (panel, block) in values.chunks_exact_mut((inputs * PANEL).max(1)).enumerate() {
            let first = panel * PANEL;
            let width = PANEL.min(units - first);
            for (k, packed_row) in block.chunks_exact_mut(PANEL).enumerate() {
                for (j, value) in packed_row[..width].iter_mut().enumerate() {
                    *value = weight[[k, first + j]];
                }
            }
        }
        let mut padded_bias = bias.to_vec();
        padded_bias.resize(panels * PANEL, 0.0);
        PackedWeights {
            inputs,
            units,
            data,
            offset,
            bias: padded_bias,
        }
    }

    /// The packed values, without the alignment slack.
    fn values(&self) -> &[f32] {
        let len = self.panels() * self.inputs * PANEL;
        &self.data[self.offset..self.offset + len]
    }

    /// Inputs per example (K).
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Units (N).
    pub fn units(&self) -> usize {
        self.units
    }

    /// Column panels, the last possibly partly padding.
    pub fn panels(&self) -> usize {
        self.units.div_ceil(PANEL)
    }

    /// Panel `p`'s `inputs × PANEL` block.
    pub(super) fn panel(&self, p: usize) -> &[f32] {
        let len = self.inputs * PANEL;
        &self.values()[p * len..(p + 1) * len]
    }

    /// Panel `p`'s `PANEL` bias values (zeros past the last unit).
    pub(super) fn panel_bias(&self, p: usize) -> &[f32] {
        &self.bias[p * PANEL..(p + 1) * PANEL]
    }
}

/// The index of the first [`ALIGN_BYTES`]-aligned element of `data` (at most
/// [`ALIGN_SLACK`]; `f32`'s own alignment makes one of the first 16 aligned).
fn aligned_start(data: &[f32]) -> usize {
    data.as_ptr().align_offset(ALIGN_BYTES).min(ALIGN_SLACK)
}

/// A clone packs again: a copied `Vec` need not keep the original's alignment offset.
impl Clone for PackedWeights {
    fn clone(&self) -> Self {
        let mut data = vec![0.0; self.data.len()];
        let offset = aligned_start(&data);
        let len = self.values().len();
        data[offset..offset + len].copy_from_slice(self.values());
        PackedWeights {
            inputs: self.inputs,
            units: self.units,
            data,
            offset,
            bias: self.bias.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_k_n_lands_in_its_panel_and_padding_is_zero() {
        let weight = crate::tensor::random_batch(5, 19, 3);
        let bias: Vec<f32> = (0..19).map(|j| j as f32).collect();
        let packed = PackedWeights::new(weight.view(), &bias);
        assert_eq!(packed.panels(), 2);
        for k in 0..5 {
            for n in 0..32 {
                let got = packed.panel(n / PANEL)[k * PANEL + n % PANEL];
                let want = if n < 19 { weight[[k, n]] } else { 0.0 };
                assert_eq!(got, want, "element ({k}, {n})");
            }
        }
        assert_eq!(packed.panel_bias(1)[2], 18.0);
        assert_eq!(packed.panel_bias(1)[3], 0.0);
    }

    #[test]
    fn panels_start_on_cache_lines_in_copies_too() {
        let weight = crate::tensor::random_batch(3, 40, 5);
        let packed = PackedWeights::new(weight.view(), &[0.0; 40]);
        for copy in [packed.clone(), packed.clone().clone()] {
            for p in 0..copy.panels() {
                assert_eq!(copy.panel(p).as_ptr() as usize % ALIGN_BYTES, 0);
                assert_eq!(copy.panel(p), packed.panel(p));
            }
        }
    }

    #[test]
    fn strided_weights_pack_like_contiguous_ones() {
        let weight = crate::tensor::random_batch(7, 33, 4);
        let transposed = weight.t().to_owned();
        let a = PackedWeights::new(weight.view(), &[0.5; 33]);
        let b = PackedWeights::new(transposed.t(), &[0.5; 33]);
        assert_eq!(a.values(), b.values());
    }
}
