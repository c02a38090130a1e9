//! Atomic file creation: write to `<name>.partial`, sync, rename.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A file being written under a temporary name next to its destination.
///
/// [`AtomicFile::commit`] flushes, syncs and renames it into place. If it is dropped
/// uncommitted (an error, a panic), the temporary file is removed and the destination is
/// left as it was.
///
/// ```
/// use vecprop::io::AtomicFile;
///
/// let path = std::env::temp_dir().join(format!("vecprop-atomic-doc-{}.txt", std::process::id()));
/// let mut file = AtomicFile::create(&path)?;
/// file.write_all(b"hello")?;
/// file.commit()?;
/// assert_eq!(std::fs::read(&path).unwrap(), b"hello");
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), vecprop::Error>(())
/// ```
#[derive(Debug)]
pub struct AtomicFile {
    destination: PathBuf,
    temporary: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Creates `<path>.partial` (replacing a stale one) for writing.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let destination = path.as_ref().to_path_buf();
        let mut name: OsString = destination
            .file_name()
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "output path {} does not name a file",
                    destination.display()
                ))
            })?
            .to_os_string();
        name.push(".partial");
        let temporary = destination.with_file_name(name);
        let file = File::create(&temporary).map_err(|e| Error::io(&destination, e))?;
        Ok(AtomicFile {
            destination,
            temporary,
            writer: Some(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    /// The path the file will have once committed.
    pub fn path(&self) -> &Path {
        &self.destination
    }

    /// The buffered writer; `None` only after `commit`, which consumes `self`.
    fn writer(&mut self) -> std::io::Result<&mut BufWriter<File>> {
        self.writer
            .as_mut()
            .ok_or_else(|| std::io::Error::other("file already committed"))
    }

    /// Appends all of `bytes`.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        let path = self.destination.clone();
        self.writer()
            .and_then(|w| w.write_all(bytes))
            .map_err(|e| Error::io(path, e))
    }

    /// Overwrites bytes at `offset` from the start (e.g. to finalise a header), then returns to
    /// the end of the file.
    pub fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        let path = self.destination.clone();
        self.writer()
            .and_then(|writer| {
                writer.seek(SeekFrom::Start(offset))?;
                writer.write_all(bytes)?;
                writer.seek(SeekFrom::End(0)).map(|_| ())
            })
            .map_err(|e| Error::io(path, e))
    }

    /// Flushes, syncs to disk and renames the file into place.
    pub fn commit(mut self) -> Result<()> {
        let path = self.destination.clone();
        if let Some(writer) = self.writer.take() {
            let file = writer
                .into_inner()
                .map_err(|e| Error::io(&path, e.into_error()))?;
            file.sync_all().map_err(|e| Error::io(&path, e))?;
        }
        fs::rename(&self.temporary, &self.destination).map_err(|e| Error::io(&path, e))?;
        // Renamed: nothing left for `Drop` to remove.
        self.temporary = PathBuf::new();
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.temporary.as_os_str().is_empty() {
            drop(self.writer.take());
            let _ = fs::remove_file(&self.temporary);
        }
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)?;
    file.commit()
}
