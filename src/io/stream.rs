//! Streaming a `.npy` batch through a plan, in bounded memory.

use std::path::Path;

use ndarray::Array2;

use crate::error::{Error, Result};
use crate::io::npy::{NpyReader, NpyWriter};
use crate::plan::Plan;

/// Runs `plan` over every row of the `.npy` file `input` and writes the outputs to the
/// `.npy` file `output` (f32), atomically. Returns the output shape.
///
/// Rows are read `chunk_rows` at a time and streamed through [`Plan::forward_stream`], so
/// on a GPU the reading, the copies and the compute of consecutive chunks overlap, and
/// memory stays bounded however large the input. `progress(rows_done, rows_total)` is
/// called after each chunk is written. The input is checked (rows, width) before the
/// output is created, and on any error (reading, computing, writing) no output file is
/// left behind.
///
/// ```
/// use ndarray::array;
/// use vecprop::{io, Activation, Device, Network, PlanOptions};
///
/// let dir = std::env::temp_dir();
/// let (x, y) = (dir.join(format!("vecprop-fwd-x-{}.npy", std::process::id())),
///               dir.join(format!("vecprop-fwd-y-{}.npy", std::process::id())));
/// io::write_npy(&x, &array![[200.0, 17.0]])?;
/// let net = Network::builder(2)
///     .layer_with(array![[1.0, -3.0, 5.0], [-2.0, 4.0, -6.0]], array![-1.0, 1.0, 2.0], Activation::Sigmoid)
///     .build()?;
/// let plan = net.compile(&Device::cpu(), PlanOptions::default())?;
/// assert_eq!(io::forward_npy(&plan, &x, &y, 4096, |_, _| {})?, (1, 3));
/// assert_eq!(io::read_npy(&y)?.mapv(f32::round), array![[1.0, 0.0, 1.0]]);
/// # std::fs::remove_file(&x).unwrap(); std::fs::remove_file(&y).unwrap();
/// # Ok::<(), vecprop::Error>(())
/// ```
pub fn forward_npy(
    plan: &Plan,
    input: impl AsRef<Path>,
    output: impl AsRef<Path>,
    chunk_rows: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<(usize, usize)> {
    if chunk_rows == 0 {
        return Err(Error::InvalidArgument(
            "the batch size must be at least 1".into(),
        ));
    }
    let mut reader = NpyReader::open(input)?;
    let (rows, cols) = reader.shape();
    if rows == 0 {
        return Err(Error::EmptyBatch);
    }
    if cols != plan.input_width() {
        return Err(Error::InputWidth {
            expected: plan.input_width(),
            actual: cols,
        });
    }
    let chunk = chunk_rows.min(rows);
    let mut writer = NpyWriter::create_with_rows(output, plan.output_width(), rows)?;
    let mut next = 0;
    let batches = std::iter::from_fn(|| {
        if next >= rows {
            return None;
        }
        let n = chunk.min(rows - next);
        let mut x = Array2::zeros((n, cols));
        let read = reader.read_rows_into(next, x.view_mut()).map(|()| x);
        next += n;
        Some(read)
    });
    let mut done = 0;
    plan.forward_stream(batches, |y| {
        writer.write_rows(y.view())?;
        done += y.nrows();
        progress(done, rows);
        Ok(())
    })?;
    writer.finish()?;
    Ok((rows, plan.output_width()))
}
