//! Writing a `.npy` batch in row chunks, atomically.

use std::path::Path;

use ndarray::ArrayView2;

use super::header::format_header;
use crate::error::{Error, Result};
use crate::fs::AtomicFile;

/// Header bytes, prelude included: room for any two 64-bit dimensions, and a multiple of 64
/// as numpy aligns it.
const HEADER_LEN: usize = 128;

/// A `<f4` C-order `.npy` file written a chunk of rows at a time.
///
/// The row count need not be known in advance: [`NpyWriter::finish`] writes it into the
/// header and renames the file into place. Dropped without `finish` (an error, a panic), it
/// leaves nothing behind.
///
/// ```
/// use ndarray::array;
/// use vecprop::io::{read_npy, NpyWriter};
///
/// let path = std::env::temp_dir().join(format!("vecprop-writer-doc-{}.npy", std::process::id()));
/// let mut writer = NpyWriter::create(&path, 2)?;
/// writer.write_rows(array![[1.0, 2.0]].view())?;
/// writer.write_rows(array![[3.0, 4.0], [5.0, 6.0]].view())?;
/// assert_eq!(writer.finish()?, 3);
/// assert_eq!(read_npy(&path)?, array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), vecprop::Error>(())
/// ```
#[derive(Debug)]
pub struct NpyWriter {
    file: AtomicFile,
    cols: usize,
    rows: usize,
    /// The row count written into the header up front, if known.
    declared_rows: Option<usize>,
    buffer: Vec<u8>,
}

impl NpyWriter {
    /// Starts `<path>.partial` for an array of `cols` columns.
    pub fn create(path: impl AsRef<Path>, cols: usize) -> Result<Self> {
        Self::start(path.as_ref(), cols, None)
    }

    /// Like [`NpyWriter::create`] for exactly `rows` rows, whose count goes into the header
    /// at once. This is what a stream needs (`-` for stdout, a FIFO, a device), since it
    /// cannot go back to the header; [`NpyWriter::finish`] checks the count.
    pub fn create_with_rows(path: impl AsRef<Path>, cols: usize, rows: usize) -> Result<Self> {
        Self::start(path.as_ref(), cols, Some(rows))
    }

    fn start(path: &Path, cols: usize, declared_rows: Option<usize>) -> Result<Self> {
        let mut file = AtomicFile::create(path)?;
        file.write_all(&format_header(declared_rows.unwrap_or(0), cols, HEADER_LEN))?;
        Ok(NpyWriter {
            file,
            cols,
            rows: 0,
            declared_rows,
            buffer: Vec::new(),
        })
    }

    /// Appends rows (which must have the writer's column count): one write of the rows'
    /// own bytes when they are contiguous, a conversion to little-endian bytes otherwise.
    pub fn write_rows(&mut self, rows: ArrayView2<'_, f32>) -> Result<()> {
        if rows.ncols() != self.cols {
            return Err(Error::InvalidArgument(format!(
                "cannot append rows of {} columns to {}, which has {}",
                rows.ncols(),
                self.file.path().display(),
                self.cols
            )));
        }
        match rows.as_slice() {
            // Contiguous rows of this machine's little-endian f32 are the file's bytes.
            Some(values) if cfg!(target_endian = "little") => {
                self.file.write_all(bytemuck::cast_slice(values))?;
            }
            _ => {
                self.buffer.clear();
                self.buffer.reserve(rows.len().saturating_mul(4));
                for value in rows.iter() {
                    self.buffer.extend_from_slice(&value.to_le_bytes());
                }
                self.file.write_all(&self.buffer)?;
            }
        }
        self.rows += rows.nrows();
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Writes the final row count into the header, syncs and renames the file into place.
    /// Returns the number of rows.
    pub fn finish(mut self) -> Result<usize> {
        if let Some(declared) = self.declared_rows.filter(|&n| n != self.rows) {
            return Err(Error::InvalidArgument(format!(
                "{} was declared with {declared} rows but {} were written",
                self.file.path().display(),
                self.rows
            )));
        }
        self.file
            .write_at(0, &format_header(self.rows, self.cols, HEADER_LEN))?;
        self.file.commit()?;
        Ok(self.rows)
    }
}
