//! Loading a model file: the top of model reading. It opens the file ([`BoundedFile`]),
//! decides the format from what the file is, and dispatches to the format's reader
//! ([`safetensors`], [`onnx`]), which never import this module back.

use std::path::Path;

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::graph::network::Network;
use crate::io::bounded_file::{BoundedFile, Format};
use crate::io::outputs::{self, Model, ModelOutput, OutputKind};
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
    Ok(load_model_outputs(path, activations_override, None)?.network)
}

/// Like [`load_model`], with every output the file declares and the one to compute:
/// `output_name`, or by default the last output of float values (an ONNX classifier
/// converted by skl2onnx has `label` and `probabilities`; a safetensors file has one
/// output, `output`). An output of class labels computes the probabilities, which
/// [`OutputKind::Labels`](crate::io::OutputKind)'s head turns into labels.
pub fn load_model_outputs(
    path: impl AsRef<Path>,
    activations_override: Option<&[Activation]>,
    output_name: Option<&str>,
) -> Result<Model> {
    let mut file = BoundedFile::open(path.as_ref())?;
    match detect(&mut file)? {
        Format::Safetensors => {
            let network = safetensors::load(file, activations_override)?;
            let outputs = vec![ModelOutput {
                name: SAFETENSORS_OUTPUT.to_string(),
                kind: OutputKind::Values,
            }];
            let selected = outputs::select(&outputs, output_name)?;
            Ok(Model {
                network,
                outputs,
                selected,
            })
        }
        Format::Onnx => onnx::load(file, activations_override, output_name),
    }
}

/// The name of a safetensors model's one output.
const SAFETENSORS_OUTPUT: &str = "output";

/// The export lines that produce files vecprop reads, for messages about files it does not.
pub(crate) const EXPORT_HINT: &str = "export the weights with \
    `safetensors.torch.save_file(model.state_dict(), \"model.safetensors\", metadata={\"activations\": \"relu,linear\"})` \
    or the whole model with `torch.onnx.export(model, example_input, \"model.onnx\")`";

/// The format of `file`, judged by what it is: a safetensors file is one whose 8-byte header
/// length is plausible and whose header starts with `{` (its length may begin with the same
/// bytes as a pickle's protocol marker: 640, 896, 1152 or 1408, plus any multiple of 65,536).
/// Pickles and PyTorch checkpoints are refused with the export line to run instead; ONNX,
/// which has no magic number, is known by its extension or its first protobuf field.
fn detect(file: &mut BoundedFile) -> Result<Format> {
    let head = file.read_at(0, file.len.min(64), "the first bytes")?;
    if head.starts_with(b"PK\x03\x04") {
        let name = zip_first_name(&head, file);
        let what = if name.ends_with(".pkl") || name.contains("data.pkl") {
            format!("a PyTorch checkpoint (torch.save: a zip archive holding `{name}`, a pickle)")
        } else {
            "a zip archive, not a model".to_string()
        };
        return Err(not_a_model(file, &what));
    }
    if safetensors::has_signature(&head, file.len) {
        file.format = Format::Safetensors;
        return Ok(file.format);
    }
    if head.first() == Some(&0x80) && matches!(head.get(1), Some(2..=5)) {
        return Err(not_a_model(
            file,
            "a Python pickle (torch.save in the legacy format, or pickle.dump)",
        ));
    }
    let onnx_extension = file
        .path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    file.format = if onnx_extension || head.first() == Some(&0x08) {
        Format::Onnx
    } else {
        // Not recognisably anything: the safetensors reader says what is wrong with it.
        Format::Safetensors
    };
    Ok(file.format)
}

fn not_a_model(file: &BoundedFile, what: &str) -> Error {
    Error::UnsupportedModelFile {
        path: file.path.clone(),
        reason: format!(
            "it is {what}, which vecprop does not read (unpickling can run code); {EXPORT_HINT}"
        ),
    }
}

/// The first entry's name in a zip archive (its local file header), for messages.
fn zip_first_name(head: &[u8], file: &mut BoundedFile) -> String {
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
