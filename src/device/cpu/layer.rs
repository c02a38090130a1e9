//! One dense layer as a CPU plan holds it: the weights packed for the panel kernel, and as
//! given for the `gemm` crate, which takes inputs or outputs whose rows are strided; and the
//! rule that splits a batch across the cores.
//!
//! Measured on the 2-core AVX-512 machine of BENCHMARKS.md, single-threaded, dense+sigmoid:
//! the panel kernel ran 4096x784x512 at 245 GFLOP/s against `gemm`'s 128 (`gemm` 0.19 uses
//! AVX2 on stable Rust), 65536x64x64 at 142 against 100, 64x784x512 at 257 against 116.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use super::dense::dense_forward;
use super::epilogue::activation_only;
use super::packed::{PackedWeights, PANEL};
use super::panel::{panel_dense, rows_contiguous, TILE_ROWS};
use crate::activation::Activation;

/// Batches of at most this many rows split each layer's units across the cores (issue 21:
/// serving batches); larger ones split the rows. Both run the panel kernel.
pub const SMALL_BATCH_ROWS: usize = 64;

/// Multiply-adds below which a small batch stays on the calling thread: waking a second
/// core costs a few microseconds, about what one core needs for this much work.
const MIN_SPLIT_MACS: usize = 32 * 1024;

/// Rows per task when a batch is split across threads by rows; a multiple of the kernel's
/// tile rows.
const NARROW_ROWS_PER_TASK: usize = 64 * TILE_ROWS;

/// How one call of a layer is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// The panel kernel with the cores splitting the units (small batches).
    PanelByUnits,
    /// The panel kernel with the cores splitting the rows (larger batches).
    PanelByRows,
    /// The `gemm` crate, then the bias/activation sweep ([`dense_forward`]): for inputs or
    /// outputs whose rows are not contiguous.
    Gemm,
}

impl Kernel {
    /// For `kernel_choices`, e.g. `packed panel kernel, units split`.
    pub fn describe(self) -> &'static str {
        match self {
            Kernel::PanelByUnits => "packed panel, units split",
            Kernel::PanelByRows => "packed panel, rows split",
            Kernel::Gemm => "gemm + bias/act epilogue",
        }
    }
}

/// A dense layer compiled for the CPU.
#[derive(Clone, Debug)]
pub struct CpuDense {
    weight: Array2<f32>,
    bias: Vec<f32>,
    packed: PackedWeights,
    activation: Activation,
}

impl CpuDense {
    /// Packs `weight` (inputs × units) and `bias` once.
    ///
    /// # Panics
    /// If `bias.len()` differs from the units; layers check this when built.
    pub fn new(weight: Array2<f32>, bias: Vec<f32>, activation: Activation) -> Self {
        let packed = PackedWeights::new(weight.view(), &bias);
        CpuDense {
            weight,
            bias,
            packed,
            activation,
        }
    }

    /// Inputs per example.
    pub fn inputs(&self) -> usize {
        self.weight.nrows()
    }

    /// Units (outputs per example).
    pub fn units(&self) -> usize {
        self.weight.ncols()
    }

    /// The activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// The weights in panel order.
    pub fn packed(&self) -> &PackedWeights {
        &self.packed
    }

    /// Column panels of [`PANEL`] units.
    pub fn panels(&self) -> usize {
        self.packed.panels()
    }

    /// The activation the panel kernel applies to its accumulators: this layer's, except
    /// softmax, which needs whole rows and runs as a second pass.
    pub(super) fn fused_activation(&self) -> Activation {
        if self.activation.is_elementwise() {
            self.activation
        } else {
            Activation::Linear
        }
    }

    /// Where a batch of `rows` rows is split between two threads: the caller computes panels
    /// `..split`, the helper the rest; `panels()` when the layer is too small to split.
    pub(super) fn split_point(&self, rows: usize) -> usize {
        let panels = self.panels();
        if rows * self.inputs() * self.units() < MIN_SPLIT_MACS {
            panels
        } else {
            panels.div_ceil(2)
        }
    }

    /// The kernel a batch of `rows` rows with contiguous rows takes.
    pub fn kernel(&self, rows: usize) -> Kernel {
        if rows <= SMALL_BATCH_ROWS {
            Kernel::PanelByUnits
        } else {
            Kernel::PanelByRows
        }
    }

    /// `out = g(input · W + B)` on up to `threads` threads.
    ///
    /// # Panics
    /// If the shapes do not chain; plans check them when they are compiled.
    pub fn forward(
        &self,
        input: ArrayView2<'_, f32>,
        mut out: ArrayViewMut2<'_, f32>,
        threads: usize,
    ) {
        let contiguous = rows_contiguous(input) && rows_contiguous(out.view());
        let kernel = self.kernel(input.nrows());
        if !contiguous || input.nrows() == 0 || self.units() == 0 {
            dense_forward(
                input,
                self.weight.view(),
                &self.bias,
                self.activation,
                out,
                threads,
            );
            return;
        }
        let fused = self.fused_activation();
        match kernel {
            Kernel::PanelByUnits => self.split_units(input, out.view_mut(), fused, threads),
            _ => self.split_rows(input, out.view_mut(), fused, threads),
        }
        if fused != self.activation {
            activation_only(out, self.activation);
        }
    }

    /// Each thread computes every row for its own run of panels.
    fn split_units(
        &self,
        input: ArrayView2<'_, f32>,
        mut out: ArrayViewMut2<'_, f32>,
        activation: Activation,
        threads: usize,
    ) {
        let panels = self.packed.panels();
        let macs = input.nrows() * self.inputs() * self.units();
        let tasks = if macs < MIN_SPLIT_MACS {
            1
        } else {
            threads.min(panels).max(1)
        };
        if tasks == 1 {
            panel_dense(input, &self.packed, 0..panels, activation, out);
            return;
        }
        let per_task = panels.div_ceil(tasks);
        out.axis_chunks_iter_mut(Axis(1), per_task * PANEL)
            .into_par_iter()
            .enumerate()
            .for_each(|(task, out)| {
                let first = task * per_task;
                let range = first..panels.min(first + per_task);
                panel_dense(input, &self.packed, range, activation, out);
            });
    }

    /// Each thread computes all units for its own blocks of rows.
    fn split_rows(
        &self,
        input: ArrayView2<'_, f32>,
        mut out: ArrayViewMut2<'_, f32>,
        activation: Activation,
        threads: usize,
    ) {
        let panels = self.packed.panels();
        if threads <= 1 {
            panel_dense(input, &self.packed, 0..panels, activation, out);
            return;
        }
        out.axis_chunks_iter_mut(Axis(0), NARROW_ROWS_PER_TASK)
            .into_par_iter()
            .zip(input.axis_chunks_iter(Axis(0), NARROW_ROWS_PER_TASK))
            .for_each(|(out, input)| {
                panel_dense(input, &self.packed, 0..panels, activation, out);
            });
    }
}
