//! Output files that never lie: a private temporary file, synced and renamed into place.
//!
//! - A regular (or not yet existing) output is written to a temporary file that this run
//!   creates exclusively (`O_EXCL`, so never through a planted symlink and never shared with
//!   another run) in the output's folder, under a unique name `.<name>.<random>.partial`.
//!   On [`AtomicFile::commit`] it is flushed, synced, renamed over the output, and the folder
//!   is synced. Two runs writing one output at once each commit a complete file; the last
//!   rename wins.
//! - Until the commit, the temporary file's first byte is held back (a zero byte stands in
//!   for it), so a file left behind by SIGKILL or a power loss never starts with the `.npy`
//!   magic and never loads as a result. SIGINT, SIGTERM and SIGHUP remove it (see
//!   [`remove_temporary_files_on_signals`](crate::fs::remove_temporary_files_on_signals)).
//! - An output that exists and is not a regular file (a FIFO, a device such as `/dev/null`),
//!   any path in `/dev` or `/proc` (`/dev/stdout`, `/dev/fd/3`), and `-` (standard output)
//!   are streamed to directly and never replaced.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, ErrorKind, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::pending;
use crate::error::{Error, Result};

/// Written in place of the first byte until the commit.
const PLACEHOLDER: u8 = 0;

/// How many leading bytes a stream remembers, so that rewriting them with the same bytes
/// (a header finalised with the count it already declared) is accepted.
const STREAM_HEAD: usize = 4096;

/// A file being written under a temporary name next to its destination, or streamed to a
/// destination that is not a regular file.
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
    /// `None` only once committed.
    target: Option<Target>,
}

#[derive(Debug)]
enum Target {
    /// A private temporary file, renamed over the destination on commit.
    Temporary {
        writer: BufWriter<NamedTempFile>,
        /// Its path, as registered in the pending list.
        path: PathBuf,
        /// Bytes written so far (the end of the file).
        len: u64,
        /// The real first byte, written only at the commit.
        first_byte: Option<u8>,
    },
    /// A destination written directly: stdout, a FIFO, a device.
    Stream {
        writer: BufWriter<File>,
        /// The first bytes written (at most [`STREAM_HEAD`]).
        head: Vec<u8>,
    },
}

impl AtomicFile {
    /// Starts writing `path`: a new private temporary file beside it, or, for `-`, a path in
    /// `/dev` or `/proc`, or an existing file that is not a regular file, the destination
    /// itself (`-` is standard output).
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let destination = path.as_ref().to_path_buf();
        let target = if destination.as_os_str() == "-" {
            let stdout = std::io::stdout();
            let fd = std::os::fd::AsFd::as_fd(&stdout)
                .try_clone_to_owned()
                .map_err(|e| Error::io("<stdout>", e))?;
            Target::stream(File::from(fd))
        } else if streams_directly(&destination) {
            let file = OpenOptions::new()
                .append(true)
                .open(&destination)
                .map_err(|e| Error::io(&destination, e))?;
            Target::stream(file)
        } else {
            Target::temporary(&destination)?
        };
        Ok(AtomicFile {
            destination,
            target: Some(target),
        })
    }

    /// The path the file will have once committed.
    pub fn path(&self) -> &Path {
        &self.destination
    }

    /// Whether the destination is written directly (stdout, a FIFO, a device) rather than
    /// through a temporary file.
    pub fn is_stream(&self) -> bool {
        matches!(self.target, Some(Target::Stream { .. }))
    }

    fn target(&mut self) -> Result<&mut Target> {
        let path = &self.destination;
        self.target
            .as_mut()
            .ok_or_else(|| Error::io(path, std::io::Error::other("file already committed")))
    }

    /// Appends all of `bytes`.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        let path = self.destination.clone();
        match self.target()? {
            Target::Temporary {
                writer,
                len,
                first_byte,
                ..
            } => {
                let result = if *len == 0 && !bytes.is_empty() {
                    *first_byte = Some(bytes[0]);
                    writer
                        .write_all(&[PLACEHOLDER])
                        .and_then(|()| writer.write_all(&bytes[1..]))
                } else {
                    writer.write_all(bytes)
                };
                *len += bytes.len() as u64;
                result
            }
            Target::Stream { writer, head } => {
                let keep = STREAM_HEAD.saturating_sub(head.len()).min(bytes.len());
                head.extend_from_slice(&bytes[..keep]);
                writer.write_all(bytes)
            }
        }
        .map_err(|e| Error::io(path, e))
    }

    /// Overwrites bytes at `offset` from the start (e.g. to finalise a header), then returns to
    /// the end of the file.
    ///
    /// A stream cannot go back: there, this only accepts bytes equal to those already written
    /// at `offset` (within the first 4096), and refuses anything else.
    pub fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        let path = self.destination.clone();
        match self.target()? {
            Target::Temporary {
                writer,
                len,
                first_byte,
                ..
            } => {
                let (offset_usize, mut bytes) = (offset as usize, bytes);
                let result = (|| {
                    writer.seek(SeekFrom::Start(offset))?;
                    if offset_usize == 0 && !bytes.is_empty() {
                        *first_byte = Some(bytes[0]);
                        writer.write_all(&[PLACEHOLDER])?;
                        bytes = &bytes[1..];
                    }
                    writer.write_all(bytes)?;
                    writer.seek(SeekFrom::End(0)).map(drop)
                })();
                *len = (*len).max(offset.saturating_add(bytes.len() as u64));
                result.map_err(|e| Error::io(path, e))
            }
            Target::Stream { head, .. } => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                let same = start
                    .checked_add(bytes.len())
                    .and_then(|end| head.get(start..end))
                    .is_some_and(|written| written == bytes);
                if same {
                    Ok(())
                } else {
                    Err(Error::InvalidArgument(format!(
                        "{} is a stream (stdout, a pipe or a device): bytes already written at offset {offset} cannot be rewritten",
                        path.display()
                    )))
                }
            }
        }
    }

    /// Flushes, syncs to disk and renames the file into place, then syncs the folder. A
    /// stream is flushed.
    pub fn commit(mut self) -> Result<()> {
        let path = self.destination.clone();
        match self.target.take() {
            None => Ok(()),
            Some(Target::Stream { writer, .. }) => {
                let file = writer
                    .into_inner()
                    .map_err(|e| Error::io(&path, e.into_error()))?;
                // Pipes and most devices cannot be synced; a regular file behind
                // /dev/stdout can, and is.
                let _ = file.sync_all();
                Ok(())
            }
            Some(Target::Temporary {
                writer,
                path: temporary,
                first_byte,
                ..
            }) => {
                let mut file = writer.into_inner().map_err(|e| {
                    let (error, writer) = e.into_parts();
                    forget_and_remove(writer.into_parts().0, &temporary);
                    Error::io(&path, error)
                })?;
                let finished = (|| {
                    if let Some(byte) = first_byte {
                        file.seek(SeekFrom::Start(0))?;
                        file.write_all(&[byte])?;
                    }
                    file.as_file().sync_all()
                })();
                if let Err(e) = finished {
                    forget_and_remove(file, &temporary);
                    return Err(Error::io(&path, e));
                }
                let mut pending = pending::lock();
                let renamed = file.persist(&path);
                pending::forget(&mut pending, &temporary);
                // A failed rename hands the file back; dropping it removes it.
                renamed.map_err(|e| Error::io(&path, e.error))?;
                drop(pending);
                sync_folder(&path)
            }
        }
    }
}

impl Target {
    fn stream(file: File) -> Self {
        Target::Stream {
            writer: BufWriter::with_capacity(1 << 20, file),
            head: Vec::new(),
        }
    }

    /// Creates `.<name>.<random>.partial` in the destination's folder and registers it.
    fn temporary(destination: &Path) -> Result<Self> {
        let name = destination.file_name().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "output path {} does not name a file",
                destination.display()
            ))
        })?;
        let mut prefix = OsString::from(".");
        prefix.push(name);
        prefix.push(".");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".partial");
        #[cfg(unix)]
        {
            // As a plain create would: 0666 less the umask, not tempfile's 0600.
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(fs::Permissions::from_mode(0o666));
        }
        let mut pending = pending::lock();
        let file = builder
            .tempfile_in(folder_of(destination))
            .map_err(|e| Error::io(destination, e))?;
        let path = file.path().to_path_buf();
        pending.push(path.clone());
        Ok(Target::Temporary {
            writer: BufWriter::with_capacity(1 << 20, file),
            path,
            len: 0,
            first_byte: None,
        })
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(Target::Temporary { writer, path, .. }) = self.target.take() {
            // The writer's unflushed bytes are of no use: discard them, then remove the file.
            forget_and_remove(writer.into_parts().0, &path);
        }
    }
}

/// Unregisters and deletes an uncommitted temporary file.
fn forget_and_remove(file: NamedTempFile, path: &Path) {
    let mut pending = pending::lock();
    drop(file);
    pending::forget(&mut pending, path);
}

/// The folder a path is in (`.` for a bare name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Whether writing to `destination` streams straight into it rather than replacing it
/// atomically: `-` (standard output), a path in `/dev` or `/proc`, or an existing file that
/// is not a regular file (a FIFO, a device).
pub fn is_stream_output(destination: &Path) -> bool {
    destination.as_os_str() == "-" || streams_directly(destination)
}

/// Whether `destination` must be written in place: it exists and is not a regular file, or
/// it lies in `/dev` or `/proc` (where `/dev/stdout` may well lead to a regular file that
/// belongs to the shell).
fn streams_directly(destination: &Path) -> bool {
    let Ok(metadata) = fs::metadata(destination) else {
        return false;
    };
    let special_folder = fs::canonicalize(folder_of(destination))
        .is_ok_and(|folder| folder.starts_with("/dev") || folder.starts_with("/proc"));
    !metadata.is_file() || special_folder
}

/// Makes the rename durable. Filesystems that cannot sync a folder are not an error.
fn sync_folder(path: &Path) -> Result<()> {
    let synced = File::open(folder_of(path)).and_then(|folder| folder.sync_all());
    match synced {
        Err(e) if !matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::Unsupported) => {
            Err(Error::io(folder_of(path), e))
        }
        _ => Ok(()),
    }
}

/// Refuses an `output` that is an existing regular file which is also one of `inputs`
/// (same device and inode: the same path, a hard link, a symlink to it, or `/dev/stdout`
/// redirected to it). Each input is `(role, path)`, e.g. `("input", "x.npy")`.
pub fn refuse_same_file(output: &Path, inputs: &[(&str, &Path)]) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let output_path = if output.as_os_str() == "-" {
            Path::new("/dev/stdout")
        } else {
            output
        };
        let Ok(out) = fs::metadata(output_path) else {
            return Ok(());
        };
        if !out.is_file() {
            return Ok(());
        }
        for (role, input) in inputs {
            let same =
                fs::metadata(input).is_ok_and(|m| m.dev() == out.dev() && m.ino() == out.ino());
            if same {
                return Err(Error::InvalidArgument(format!(
                    "the output {} is the same file as the {role} {}; writing it would destroy the {role}, so choose another output path",
                    output.display(),
                    input.display()
                )));
            }
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_first_byte_is_held_back_until_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("y.npy");
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"\x93NUMPY-header").unwrap();
        file.write_at(0, b"\x93NUMPY-HEADER").unwrap();
        file.write_all(b"+data").unwrap();
        let Some(Target::Temporary {
            writer,
            path: temporary,
            ..
        }) = file.target.as_mut()
        else {
            panic!("a regular output goes through a temporary file");
        };
        writer.flush().unwrap();
        let on_disk = fs::read(&*temporary).unwrap();
        assert_eq!(on_disk, b"\0NUMPY-HEADER+data");
        let name = temporary
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            name.starts_with(".y.npy.") && name.ends_with(".partial"),
            "{name}"
        );
        assert!(pending::lock().contains(temporary));
        let temporary = temporary.clone();
        file.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"\x93NUMPY-HEADER+data");
        assert!(!pending::lock().contains(&temporary));
        assert_eq!(names(dir.path()), ["y.npy"]);
    }

    #[test]
    fn an_uncommitted_file_leaves_the_old_output_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("y.npy");
        fs::write(&path, b"old").unwrap();
        let mut first = AtomicFile::create(&path).unwrap();
        let mut second = AtomicFile::create(&path).unwrap();
        first.write_all(b"first").unwrap();
        second.write_all(b"second").unwrap();
        assert_eq!(
            names(dir.path()).len(),
            3,
            "each run has its own temporary file"
        );
        drop(first);
        drop(second);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["y.npy"]);
    }

    #[test]
    fn a_stream_accepts_only_rewrites_that_change_nothing() {
        let mut file = AtomicFile::create("/dev/null").unwrap();
        assert!(file.is_stream());
        file.write_all(b"header:3 rows;data").unwrap();
        file.write_at(7, b"3 rows").unwrap();
        let err = file.write_at(7, b"4 rows").unwrap_err();
        assert!(err.to_string().contains("cannot be rewritten"), "{err}");
        file.commit().unwrap();
    }

    #[test]
    fn the_same_file_is_refused_under_any_name() {
        let dir = tempfile::tempdir().unwrap();
        let (input, other) = (dir.path().join("x.npy"), dir.path().join("other.npy"));
        fs::write(&input, b"x").unwrap();
        fs::write(&other, b"o").unwrap();
        let alias = dir.path().join("alias.npy");
        std::os::unix::fs::symlink(&input, &alias).unwrap();
        let err = refuse_same_file(&alias, &[("model", &other), ("input", &input)]).unwrap_err();
        assert!(err.to_string().contains("same file as the input"), "{err}");
        assert!(refuse_same_file(&other, &[("input", &input)]).is_ok());
        assert!(refuse_same_file(&dir.path().join("new.npy"), &[("input", &input)]).is_ok());
        assert!(
            refuse_same_file(Path::new("/dev/null"), &[("input", Path::new("/dev/null"))]).is_ok()
        );
    }
}
