//! Opening a model file: regular files only, bounded reads, and the format from its first bytes.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::graph::network::Network;
use crate::io::{onnx, safetensors};

/// Loads a network from a model file: a safetensors `state_dict` or an ONNX graph.
///
/// The format comes from the file's first bytes (and the `.onnx` extension); see
/// [`safetensors`](crate::io::safetensors) and [`onnx`](crate::io::onnx) for what each may
/// hold. `activations_override`, when given, replaces the activations the file names. Only
/// regular files are read, and only as many bytes as their headers declare. A PyTorch
/// checkpoint or pickle is refused with the export line to run instead.
///
/// ```
/// use ndarray::array;
/// use vecprop::{io, Activation, Network};
///
/// let net = Network::builder(2)
///     .layer_with(array![[1.0, -3.0, 5.0], [-2.0, 4.0, -6.0]], array![-1.0, 1.0, 2.0], Activation::Sigmoid)
///     .build()?;
/// let path = std::env::temp_dir().join(format!("vecprop-load-doc-{}.safetensors", std::process::id()));
/// io::save_model(&net, &path)?;
///
/// let loaded = io::load_model(&path, None)?;
/// assert_eq!(loaded.layers()[0].weight(), net.layers()[0].weight());
/// let relu = io::load_model(&path, Some(&[Activation::Relu]))?;
/// assert_eq!(relu.layers()[0].activation(), Activation::Relu);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), vecprop::Error>(())
/// ```
pub fn load_model(
    path: impl AsRef<Path>,
    activations_override: Option<&[Activation]>,
) -> Result<Network> {
    let mut file = ModelFile::open(path.as_ref())?;
    match file.format()? {
        Format::Safetensors => safetensors::load(file, activations_override),
        Format::Onnx => onnx::load(file, activations_override),
    }
}

/// The export lines that produce files vecprop reads, for messages about files it does not.
pub(crate) const EXPORT_HINT: &str = "export the weights with \
    `safetensors.torch.save_file(model.state_dict(), \"model.safetensors\", metadata={\"activations\": \"relu,linear\"})` \
    or the whole model with `torch.onnx.export(model, example_input, \"model.onnx\")`";

/// What a model file holds, judged from its first bytes (and its extension for ONNX, which
/// has no magic number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Safetensors,
    Onnx,
}

/// A regular file, opened for bounded reads.
pub(crate) struct ModelFile {
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    /// Its length in bytes when opened; no read goes past it.
    pub(crate) len: u64,
    /// The format it is read as, for messages.
    pub(crate) format: Format,
}

impl ModelFile {
    /// Opens `path`, refusing anything that is not a regular file (devices such as
    /// `/dev/zero`, FIFOs, directories), which could be read without end.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        // Checked before opening too: opening a FIFO for reading blocks until a writer comes.
        let before = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        Self::refuse_unless_regular(path, &before)?;
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let metadata = file.metadata().map_err(|e| Error::io(path, e))?;
        Self::refuse_unless_regular(path, &metadata)?;
        Ok(ModelFile {
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

    /// The format, from the first bytes; pickles and PyTorch checkpoints are refused with
    /// the export line to run instead.
    pub(crate) fn format(&mut self) -> Result<Format> {
        let head = self.read_at(0, self.len.min(64), "the first bytes")?;
        if head.starts_with(b"PK\x03\x04") {
            let name = zip_first_name(&head, self);
            let what = if name.ends_with(".pkl") || name.contains("data.pkl") {
                format!(
                    "a PyTorch checkpoint (torch.save: a zip archive holding `{name}`, a pickle)"
                )
            } else {
                "a zip archive, not a model".to_string()
            };
            return Err(self.not_a_model(&what));
        }
        if head.first() == Some(&0x80) && matches!(head.get(1), Some(2..=5)) {
            return Err(self
                .not_a_model("a Python pickle (torch.save in the legacy format, or pickle.dump)"));
        }
        let onnx_extension = self
            .path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
        self.format = match head.get(8) {
            Some(b'{') => Format::Safetensors,
            _ if onnx_extension || head.first() == Some(&0x08) => Format::Onnx,
            _ => Format::Safetensors,
        };
        Ok(self.format)
    }

    fn not_a_model(&self, what: &str) -> Error {
        Error::UnsupportedModelFile {
            path: self.path.clone(),
            reason: format!(
                "it is {what}, which vecprop does not read (unpickling can run code); {EXPORT_HINT}"
            ),
        }
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

/// The first entry's name in a zip archive (its local file header), for messages.
fn zip_first_name(head: &[u8], file: &mut ModelFile) -> String {
    let Some(len) = head
        .get(26..28)
        .map(|b| u64::from(u16::from_le_bytes([b[0], b[1]])))
    else {
        return String::new();
    };
    file.read_at(30, len, "the zip entry name")
        .map(|name| String::from_utf8_lossy(&name).into_owned())
        .unwrap_or_default()
}
