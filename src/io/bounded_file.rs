//! A model file opened for bounded reads: regular files only, and never a byte past the
//! length it had when opened.
//!
//! The lowest layer of model reading: [`model_file`](super::model_file) opens a file here,
//! decides its [`Format`] and hands it to the format's reader
//! ([`safetensors`](super::safetensors), [`onnx`](super::onnx)); none of them imports the
//! layer above.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The format a file is read as, which also picks the error variant of its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Safetensors,
    Onnx,
}

/// A regular file, opened for bounded reads.
pub(crate) struct BoundedFile {
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    /// Its length in bytes when opened; no read goes past it.
    pub(crate) len: u64,
    /// The format it is read as, for messages.
    pub(crate) format: Format,
}

impl BoundedFile {
    /// Opens `path`, refusing anything that is not a regular file (devices such as
    /// `/dev/zero`, FIFOs, directories), which could be read without end.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        // Checked before opening too: opening a FIFO for reading blocks until a writer comes.
        let before = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        Self::refuse_unless_regular(path, &before)?;
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let metadata = file.metadata().map_err(|e| Error::io(path, e))?;
        Self::refuse_unless_regular(path, &metadata)?;
        Ok(BoundedFile {
            path: path.to_path_buf(),
            file,
            len: metadata.len(),
            format: Format::Safetensors,
        })
    }

    fn refuse_unless_regular(path: &Path, metadata: &std::fs::Metadata) -> Result<()> {
        if !metadata.is_file() {
            let kind = if metadata.is_dir() {
                "a directory"
            } else {
                "not a regular file (a device, FIFO or socket)"
            };
            return Err(Error::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{kind}; a model must be a regular file"),
                ),
            ));
        }
        Ok(())
    }

    /// Exactly `len` bytes from `offset`, checked against the file's length first.
    pub(crate) fn read_at(&mut self, offset: u64, len: u64, what: &str) -> Result<Vec<u8>> {
        let end = offset.checked_add(len).filter(|end| *end <= self.len);
        if end.is_none() {
            return Err(self.invalid(format!(
                "{what} declares bytes {offset}..{} but the file has {} bytes (truncated?)",
                offset.saturating_add(len),
                self.len
            )));
        }
        let size =
            usize::try_from(len).map_err(|_| self.invalid(format!("{what} is too large")))?;
        let mut buffer = Vec::new();
        buffer
            .try_reserve_exact(size)
            .map_err(|_| self.invalid(format!("{what} ({len} bytes) does not fit in memory")))?;
        self.file
            .seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io(&self.path, e))?;
        (&mut self.file)
            .take(len)
            .read_to_end(&mut buffer)
            .map_err(|e| Error::io(&self.path, e))?;
        if buffer.len() != size {
            return Err(self.invalid(format!("{what}: the file shrank while it was read")));
        }
        Ok(buffer)
    }

    /// An invalid-file error for this path.
    pub(crate) fn invalid(&self, reason: String) -> Error {
        let path = self.path.clone();
        match self.format {
            Format::Safetensors => Error::InvalidModelFile { path, reason },
            Format::Onnx => Error::InvalidOnnx { path, reason },
        }
    }
}
