//! Reading a `.npy` batch in row chunks, without loading the whole file.

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayViewMut2};

use super::header::{Header, NpyDType};
use crate::error::{Error, Result};
use crate::io::bytes;

/// An open 2-D `.npy` file whose rows are read on demand.
///
/// ```
/// use ndarray::array;
/// use vecprop::io::{write_npy, NpyReader};
///
/// let path = std::env::temp_dir().join(format!("vecprop-reader-doc-{}.npy", std::process::id()));
/// write_npy(&path, &array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])?;
/// let mut reader = NpyReader::open(&path)?;
/// assert_eq!(reader.shape(), (3, 2));
/// assert_eq!(reader.read_rows(1, 3)?, array![[3.0, 4.0], [5.0, 6.0]]);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), vecprop::Error>(())
/// ```
#[derive(Debug)]
pub struct NpyReader {
    path: PathBuf,
    file: BufReader<File>,
    header: Header,
    data_offset: u64,
    /// Where the file stands now; a read there needs no seek.
    position: u64,
    /// False for pipes and devices, which can only be read in order.
    seekable: bool,
    buffer: Vec<u8>,
}

impl NpyReader {
    /// Opens a file and checks its header and length.
    ///
    /// Errors: [`Error::Io`] if it cannot be opened, [`Error::InvalidNpy`] if it is not a
    /// `.npy` file or is truncated, [`Error::UnsupportedDType`] for anything but `<f4`/`<f8`,
    /// and [`Error::InputRank`] unless it is 2-D.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let metadata = file.metadata().map_err(|e| Error::io(&path, e))?;
        // A pipe or a device (`-`, `<(cat x.npy)`) is read front to back, never sought.
        let seekable = metadata.is_file();
        let mut file = BufReader::new(file);
        let (header, data_offset) = Header::read_from(&path, &mut file)?;

        let data_len = header
            .rows
            .checked_mul(header.cols)
            .and_then(|n| n.checked_mul(header.dtype.size()))
            .ok_or_else(|| Error::InvalidNpy {
                path: path.clone(),
                reason: format!("shape ({}, {}) is too large", header.rows, header.cols),
            })?;
        let available = metadata.len().saturating_sub(data_offset);
        if seekable && available < data_len as u64 {
            return Err(Error::InvalidNpy {
                path,
                reason: format!(
                    "truncated: shape ({}, {}) of {} needs {data_len} bytes of data but the file holds {available}",
                    header.rows, header.cols, header.dtype
                ),
            });
        }
        Ok(NpyReader {
            path,
            file,
            header,
            data_offset,
            position: data_offset,
            seekable,
            buffer: Vec::new(),
        })
    }

    /// Rows (examples).
    pub fn rows(&self) -> usize {
        self.header.rows
    }

    /// Columns (features per example).
    pub fn cols(&self) -> usize {
        self.header.cols
    }

    /// (rows, columns).
    pub fn shape(&self) -> (usize, usize) {
        (self.header.rows, self.header.cols)
    }

    /// The element type on disk.
    pub fn dtype(&self) -> NpyDType {
        self.header.dtype
    }

    /// Whether the file is stored column-major.
    pub fn fortran_order(&self) -> bool {
        self.header.fortran_order
    }

    /// Reads rows `[start, end)` into a new array.
    pub fn read_rows(&mut self, start: usize, end: usize) -> Result<Array2<f32>> {
        let mut out = Array2::zeros((end.saturating_sub(start), self.cols()));
        self.read_rows_into(start, out.view_mut())?;
        Ok(out)
    }

    /// Reads `out.nrows()` rows starting at row `start` into `out` (which must have
    /// [`NpyReader::cols`] columns).
    pub fn read_rows_into(&mut self, start: usize, mut out: ArrayViewMut2<'_, f32>) -> Result<()> {
        let (rows, cols) = self.shape();
        let count = out.nrows();
        if out.ncols() != cols || start.checked_add(count).is_none_or(|end| end > rows) {
            return Err(Error::InvalidArgument(format!(
                "cannot read rows {start}..{} of {} ({rows} x {cols}) into a {} x {} buffer",
                start.saturating_add(count),
                self.path.display(),
                count,
                out.ncols()
            )));
        }
        let item = self.header.dtype.size();
        if self.header.fortran_order {
            // Column-major: each column's rows [start, start + count) are contiguous.
            for (c, mut column) in out.columns_mut().into_iter().enumerate() {
                let offset = (c * rows + start) * item;
                let values = self.read_values(offset, count)?;
                column.iter_mut().zip(values).for_each(|(o, v)| *o = v);
            }
        } else {
            let values = self.read_values(start * cols * item, count * cols)?;
            out.iter_mut().zip(values).for_each(|(o, v)| *o = v);
        }
        Ok(())
    }

    /// Reads `count` elements at byte `offset` into the data, converted to f32.
    fn read_values(
        &mut self,
        offset: usize,
        count: usize,
    ) -> Result<impl Iterator<Item = f32> + '_> {
        let dtype = self.header.dtype;
        self.buffer.resize(count * dtype.size(), 0);
        let at = self.data_offset + offset as u64;
        if at != self.position {
            if !self.seekable {
                return Err(Error::InvalidArgument(format!(
                    "{} is a pipe or a device, which can only be read front to back, and this read needs to seek (Fortran-order data or rows out of order); pass a regular file",
                    self.path.display()
                )));
            }
            self.file
                .seek(SeekFrom::Start(at))
                .map_err(|e| Error::io(&self.path, e))?;
        }
        // Unknown until the read succeeds.
        self.position = u64::MAX;
        self.file
            .read_exact(&mut self.buffer)
            .map_err(|e| read_error(&self.path, e, "the data"))?;
        self.position = at + self.buffer.len() as u64;
        let values: Box<dyn Iterator<Item = f32>> = match dtype {
            NpyDType::F4 => Box::new(bytes::f32s(&self.buffer)),
            NpyDType::F8 => Box::new(bytes::f64s(&self.buffer)),
        };
        Ok(values)
    }
}

/// An early end of file means truncation; anything else is an I/O error.
fn read_error(path: &Path, error: std::io::Error, part: &str) -> Error {
    if error.kind() == ErrorKind::UnexpectedEof {
        Error::InvalidNpy {
            path: path.to_path_buf(),
            reason: format!("truncated: the file ends inside {part}"),
        }
    } else {
        Error::io(path, error)
    }
}
