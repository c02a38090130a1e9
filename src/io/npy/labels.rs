//! Writing class labels as an int64 `.npy` (`<i8`, one per row: a vector or a column),
//! atomically.

use std::path::Path;

use super::header::format_header_of;
use crate::error::{Error, Result};
use crate::fs::AtomicFile;

/// Header bytes, prelude included, as the float writer's.
const HEADER_LEN: usize = 128;

/// An int64 `.npy` of a known number of labels, written a chunk at a time. Dropped without
/// [`LabelWriter::finish`], it leaves nothing behind.
#[derive(Debug)]
pub struct LabelWriter {
    file: AtomicFile,
    rows: usize,
    declared_rows: usize,
}

impl LabelWriter {
    /// Starts the file for `rows` labels, shaped `(rows,)` or, with `column`, `(rows, 1)`.
    pub fn create(path: impl AsRef<Path>, rows: usize, column: bool) -> Result<Self> {
        let mut file = AtomicFile::create(path.as_ref())?;
        let shape = if column {
            format!("({rows}, 1)")
        } else {
            format!("({rows},)")
        };
        file.write_all(&format_header_of("<i8", &shape, HEADER_LEN))?;
        Ok(LabelWriter {
            file,
            rows: 0,
            declared_rows: rows,
        })
    }

    /// Appends labels, little-endian.
    pub fn write_labels(&mut self, labels: &[i64]) -> Result<()> {
        let bytes: Vec<u8> = labels.iter().flat_map(|l| l.to_le_bytes()).collect();
        self.file.write_all(&bytes)?;
        self.rows += labels.len();
        Ok(())
    }

    /// Checks the count, syncs and renames the file into place. Returns the number of labels.
    pub fn finish(self) -> Result<usize> {
        if self.rows != self.declared_rows {
            return Err(Error::InvalidArgument(format!(
                "{} was declared with {} labels but {} were written",
                self.file.path().display(),
                self.declared_rows,
                self.rows
            )));
        }
        let rows = self.rows;
        self.file.commit()?;
        Ok(rows)
    }
}
