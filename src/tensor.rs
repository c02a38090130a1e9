//! Host batches: 2-D ndarray arrays in row-major order, one example per row.

use ndarray::ArrayView2;

use crate::error::{Error, Result};

/// Checks that `batch` has `width` columns. A batch of no rows is valid, and its output has
/// no rows either, as in PyTorch.
pub fn check_batch(batch: ArrayView2<'_, f32>, width: usize) -> Result<()> {
    if batch.ncols() != width {
        return Err(Error::InputWidth {
            expected: width,
            actual: batch.ncols(),
        });
    }
    Ok(())
}

/// A deterministic batch of uniform values in `[-1, 1)`, for demos, benchmarks and tests.
///
/// Never zeros: zeros hide unwritten outputs and run faster than real data.
pub fn random_batch(rows: usize, cols: usize, seed: u64) -> ndarray::Array2<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    ndarray::Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0..1.0))
}
