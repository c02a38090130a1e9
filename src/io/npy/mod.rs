//! 2-D `.npy` batches: read whole or in row chunks, written atomically.
//!
//! The reader accepts format versions 1.0, 2.0 and 3.0, float16, float32 and float64
//! elements in either byte order (converted to f32), in C or Fortran order, from files or
//! from pipes. The writer produces `<f4` C-order version 1.0 files that `numpy.load` reads.
//! Both move a chunk of rows with one read or one write: float32 bytes are never parsed
//! one element at a time.

mod decode;
mod dtype;
mod header;
mod labels;
mod reader;
mod writer;

use std::path::Path;

use ndarray::{Array2, ArrayBase, Data, Ix2};

use crate::error::Result;

pub use dtype::{ByteOrder, NpyDType};
pub use header::{Header as NpyHeader, MAX_HEADER_LEN, MAX_NESTING};
pub use labels::LabelWriter;
pub use reader::NpyReader;
pub use writer::NpyWriter;

/// Reads a whole 2-D `.npy` file into an f32 array (f64 values are rounded to f32, f16
/// values widened).
///
/// ```
/// use ndarray::array;
/// let path = std::env::temp_dir().join(format!("vecprop-npy-doc-{}.npy", std::process::id()));
/// vecprop::io::write_npy(&path, &array![[1.0, 2.0], [3.0, 4.0]])?;
/// assert_eq!(vecprop::io::read_npy(&path)?, array![[1.0, 2.0], [3.0, 4.0]]);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), vecprop::Error>(())
/// ```
pub fn read_npy(path: impl AsRef<Path>) -> Result<Array2<f32>> {
    let mut reader = NpyReader::open(path)?;
    reader.read_rows(0, reader.rows())
}

/// Writes a 2-D f32 array as a `<f4` C-order `.npy` file, atomically.
pub fn write_npy<S: Data<Elem = f32>>(
    path: impl AsRef<Path>,
    array: &ArrayBase<S, Ix2>,
) -> Result<()> {
    let mut writer = NpyWriter::create_with_rows(path, array.ncols(), array.nrows())?;
    writer.write_rows(array.view())?;
    writer.finish().map(|_| ())
}
