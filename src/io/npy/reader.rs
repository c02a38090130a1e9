//! Reading a `.npy` batch in row chunks, without loading the whole file.
//!
//! Rows land straight in the caller's f32 buffer: a little-endian `<f4` C-order file is one
//! `read` per chunk into the buffer's bytes, with no per-element work; other element types
//! are read into scratch bytes once and converted on every core. The source is read front
//! to back, so a pipe or stdin works as well as a file; only reading rows out of order (or
//! a Fortran-order file in chunks) needs a seekable file.

use std::fmt;
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayViewMut2};

use super::decode::Decoder;
use super::dtype::{ByteOrder, NpyDType};
use super::header::Header;
use crate::error::{Error, Result};

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
    source: Source,
    header: Header,
    decoder: Decoder,
    /// Where the element data starts in the source, in bytes.
    data_offset: u64,
    /// How far into the element data the source has been read; `None` after a failed read.
    cursor: Option<u64>,
    /// Raw bytes of element types that need converting.
    scratch: Vec<u8>,
}

/// Where the bytes come from.
enum Source {
    /// A regular file: any row can be reached by seeking.
    File(File),
    /// A pipe, stdin, a socket: read front to back only.
    Stream(Box<dyn Read + Send>),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(file) => f.debug_tuple("File").field(file).finish(),
            Source::Stream(_) => f.write_str("Stream"),
        }
    }
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Source::File(file) => file.read(buf),
            Source::Stream(stream) => stream.read(buf),
        }
    }
}

impl NpyReader {
    /// Opens a file and checks its header and, for a regular file, its length. A path that
    /// names a pipe or a device (`/dev/stdin`, `<(cat x.npy)`) is read as a stream.
    ///
    /// Errors: [`Error::Io`] if it cannot be opened, [`Error::InvalidNpy`] if it is not a
    /// `.npy` file or is truncated, [`Error::UnsupportedDType`] for anything but float16,
    /// float32 and float64, and [`Error::InputRank`] unless it is 2-D.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let metadata = file.metadata().map_err(|e| Error::io(&path, e))?;
        if metadata.is_file() {
            Self::start(path, Source::File(file), Some(metadata.len()))
        } else {
            Self::start(path, Source::Stream(Box::new(file)), None)
        }
    }

    /// Reads a `.npy` batch from any byte source, front to back (stdin, a pipe, a socket).
    /// `name` stands for the source in messages. Truncation is found when the missing rows
    /// are read.
    ///
    /// ```
    /// use ndarray::array;
    /// use vecprop::io::{write_npy, NpyReader};
    ///
    /// let path = std::env::temp_dir().join(format!("vecprop-stream-doc-{}.npy", std::process::id()));
    /// write_npy(&path, &array![[1.0, 2.0], [3.0, 4.0]])?;
    /// let bytes = std::fs::read(&path).unwrap();
    /// let mut reader = NpyReader::from_reader("<stdin>", std::io::Cursor::new(bytes))?;
    /// assert_eq!(reader.read_rows(0, 2)?, array![[1.0, 2.0], [3.0, 4.0]]);
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), vecprop::Error>(())
    /// ```
    pub fn from_reader(
        name: impl Into<PathBuf>,
        source: impl Read + Send + 'static,
    ) -> Result<Self> {
        Self::start(name.into(), Source::Stream(Box::new(source)), None)
    }

    /// Reads the header from the start of `source`; `file_len`, when known, is checked
    /// against the data the header declares.
    fn start(path: PathBuf, mut source: Source, file_len: Option<u64>) -> Result<Self> {
        // Bounded as numpy bounds it, read front to back (header.rs).
        let (header, data_offset) = Header::read_from(&path, &mut source)?;
        let data_len = header
            .rows
            .checked_mul(header.cols)
            .and_then(|n| n.checked_mul(header.dtype.size()))
            .ok_or_else(|| Error::InvalidNpy {
                path: path.clone(),
                reason: format!("shape ({}, {}) is too large", header.rows, header.cols),
            })?;
        if let Some(file_len) = file_len {
            let available = file_len.saturating_sub(data_offset);
            if available < data_len as u64 {
                return Err(Error::InvalidNpy {
                    path,
                    reason: format!(
                        "truncated: shape ({}, {}) of {} needs {data_len} bytes of data but the file holds {available}",
                        header.rows,
                        header.cols,
                        header.dtype.descr(header.byte_order)
                    ),
                });
            }
        }
        Ok(NpyReader {
            path,
            source,
            decoder: Decoder::new(header.dtype, header.byte_order),
            header,
            data_offset,
            cursor: Some(0),
            scratch: Vec::new(),
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

    /// The byte order of the elements on disk.
    pub fn byte_order(&self) -> ByteOrder {
        self.header.byte_order
    }

    /// Whether the file is stored column-major.
    pub fn fortran_order(&self) -> bool {
        self.header.fortran_order
    }

    /// The path (or the name given to [`NpyReader::from_reader`]) used in messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads rows `[start, end)` into a new array.
    pub fn read_rows(&mut self, start: usize, end: usize) -> Result<Array2<f32>> {
        let mut out = Array2::zeros((end.saturating_sub(start), self.cols()));
        self.read_rows_into(start, out.view_mut())?;
        Ok(out)
    }

    /// Reads `out.nrows()` rows starting at row `start` into `out` (which must have
    /// [`NpyReader::cols`] columns).
    ///
    /// A C-order file read into a contiguous row-major `out` takes one read straight into
    /// `out`. Reading the rows in order never seeks.
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
        if self.header.fortran_order {
            // Column-major: each column's rows [start, start + count) are contiguous.
            let mut column = vec![0.0; count];
            for (c, mut into) in out.columns_mut().into_iter().enumerate() {
                self.read_values(c * rows + start, &mut column)?;
                into.assign(&ndarray::aview1(&column));
            }
        } else if let Some(flat) = out.as_slice_mut() {
            self.read_values(start * cols, flat)?;
        } else {
            let mut flat = vec![0.0; count * cols];
            self.read_values(start * cols, &mut flat)?;
            out.iter_mut().zip(flat).for_each(|(o, v)| *o = v);
        }
        Ok(())
    }

    /// Reads `out.len()` elements starting at element `first` of the data into `out`.
    fn read_values(&mut self, first: usize, out: &mut [f32]) -> Result<()> {
        let item = self.decoder.size();
        let offset = (first * item) as u64;
        let len = (out.len() * item) as u64;
        self.move_to(offset)?;
        self.cursor = None;
        if self.decoder.is_native_f32() {
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(out);
            self.source
                .read_exact(bytes)
                .map_err(|e| read_error(&self.path, e, "the data"))?;
        } else {
            self.scratch.resize(out.len() * item, 0);
            self.source
                .read_exact(&mut self.scratch)
                .map_err(|e| read_error(&self.path, e, "the data"))?;
            self.decoder.decode(&self.scratch, out);
        }
        self.cursor = Some(offset + len);
        Ok(())
    }

    /// Positions the source at byte `offset` of the data: nothing to do when reading in
    /// order, a seek in a file, skipping ahead in a stream.
    fn move_to(&mut self, offset: u64) -> Result<()> {
        if self.cursor == Some(offset) {
            return Ok(());
        }
        match (&mut self.source, self.cursor) {
            (Source::File(file), _) => file
                .seek(SeekFrom::Start(self.data_offset + offset))
                .map(|_| ())
                .map_err(|e| Error::io(&self.path, e)),
            (Source::Stream(stream), Some(cursor)) if cursor < offset => {
                let skip = offset - cursor;
                let skipped = std::io::copy(&mut stream.take(skip), &mut std::io::sink())
                    .map_err(|e| Error::io(&self.path, e))?;
                if skipped < skip {
                    return Err(read_error(
                        &self.path,
                        ErrorKind::UnexpectedEof.into(),
                        "the data",
                    ));
                }
                Ok(())
            }
            (Source::Stream(_), _) => Err(Error::InvalidArgument(format!(
                "{} is a stream (a pipe or stdin), read front to back: its rows must be read in order{}",
                self.path.display(),
                if self.header.fortran_order {
                    ", and a Fortran-order array only whole"
                } else {
                    ""
                }
            ))),
        }
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
