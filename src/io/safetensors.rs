//! Models in safetensors files: PyTorch `state_dict`s.
//!
//! Tensors are named as `model.state_dict()` names them (`encoder.1.0.weight`): tensors are
//! grouped by module, and modules run in the order of their paths (`layers.10` after
//! `layers.9`, `fc2` after `fc1`; names that give no order are an error). Linear layers may
//! lack a bias; BatchNorm1d modules are folded into the adjacent Linear (eps 1e-5 unless the
//! metadata entry `batchnorm_eps` says otherwise). The metadata entry `activations` lists
//! one activation per dense layer, comma-separated, each applied after its layer and any
//! BatchNorm folded into it.
//!
//! Reading is bounded: the 8-byte header length is checked against a limit and the file's
//! length, then exactly the bytes the header declares are read.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::activation::{parse_list, Activation};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::fs::write_atomic;
use crate::graph::batchnorm::DEFAULT_EPS;
use crate::graph::network::Network;
use crate::io::bounded_file::BoundedFile;
use crate::io::layers::{self, Stage};
use crate::io::{bytes, state_dict};

/// The metadata key that lists the activations.
pub const ACTIVATIONS_KEY: &str = "activations";

/// The metadata key that sets BatchNorm's `eps` (default 1e-5).
pub const BATCHNORM_EPS_KEY: &str = "batchnorm_eps";

/// The largest header accepted, as the safetensors crate limits it.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Whether a file of `len` bytes starting with `head` is a safetensors file: its first 8
/// bytes, a little-endian header length, fit the file and the limit, and the header (byte 8)
/// opens a JSON object. Nothing else is asked of the length's bytes, which can equal a
/// pickle's protocol marker (0x80, 0x02-0x05).
pub(crate) fn has_signature(head: &[u8], len: u64) -> bool {
    let Some(prefix) = head.get(..8) else {
        return false;
    };
    let mut length = [0u8; 8];
    length.copy_from_slice(prefix);
    let header_len = u64::from_le_bytes(length);
    // `{}` is the shortest header.
    let plausible = (2..=MAX_HEADER_BYTES).contains(&header_len) && header_len <= len - 8;
    plausible && head.get(8) == Some(&b'{')
}

/// Loads a network from a safetensors file that `load_model` recognised.
pub(crate) fn load(
    mut file: BoundedFile,
    activations_override: Option<&[Activation]>,
) -> Result<Network> {
    let buffer = read_declared(&mut file)?;
    let path = file.path.as_path();
    let invalid = |e: safetensors::SafeTensorError| file.invalid(e.to_string());
    let (_, metadata) = SafeTensors::read_metadata(&buffer).map_err(invalid)?;
    let tensors = SafeTensors::deserialize(&buffer).map_err(invalid)?;
    let metadata = metadata.metadata().clone().unwrap_or_default();

    let (activations, origin) = match activations_override {
        Some(list) => (list.to_vec(), "the activations override".to_string()),
        None => {
            let list = metadata
                .get(ACTIVATIONS_KEY)
                .ok_or_else(|| Error::MissingActivations {
                    path: path.to_path_buf(),
                })?;
            (
                parse_list(list)?,
                format!("the `{ACTIVATIONS_KEY}` metadata of {}", path.display()),
            )
        }
    };
    let eps = match metadata.get(BATCHNORM_EPS_KEY) {
        None => DEFAULT_EPS,
        Some(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|eps| eps.is_finite() && *eps >= 0.0)
            .ok_or_else(|| {
                file.invalid(format!(
                    "metadata `{BATCHNORM_EPS_KEY}` is `{text}`, not a non-negative number"
                ))
            })?,
    };

    let shapes: BTreeMap<String, Vec<usize>> = tensors
        .iter()
        .map(|(name, view)| (name.to_string(), view.shape().to_vec()))
        .collect();
    let mut dtypes = Vec::new();
    let mut decode_named = |name: &str| -> Result<Vec<f32>> {
        let view = tensors.tensor(name).map_err(invalid)?;
        dtypes.push(view.dtype());
        decode(path, name, &view)
    };
    let stages = state_dict::stages(&shapes, eps, &mut decode_named)?;
    if !stages.iter().any(|s| matches!(s, Stage::Dense { .. })) {
        return Err(Error::NoLayers {
            path: path.to_path_buf(),
        });
    }
    let mut network = Network::new(layers::assemble(stages)?)?;
    network.set_activations(&activations, &origin)?;
    let dtype = match dtypes[..] {
        [Dtype::F16, ..] if dtypes.iter().all(|d| *d == Dtype::F16) => DType::F16,
        [Dtype::BF16, ..] if dtypes.iter().all(|d| *d == Dtype::BF16) => DType::BF16,
        _ => DType::F32,
    };
    network.set_dtype(dtype);
    Ok(network)
}

/// The header and exactly the tensor data it declares; nothing past it is read.
fn read_declared(file: &mut BoundedFile) -> Result<Vec<u8>> {
    let prefix = file.read_at(0, 8, "the 8-byte header length")?;
    let mut length = [0u8; 8];
    length.copy_from_slice(&prefix);
    let header_len = u64::from_le_bytes(length);
    if header_len > MAX_HEADER_BYTES {
        return Err(file.invalid(format!(
            "the header declares {header_len} bytes, over the limit of {MAX_HEADER_BYTES}"
        )));
    }
    let header = file.read_at(8, header_len, "the header")?;
    let entries: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| file.invalid(format!("the header is not a JSON object: {e}")))?;
    let data_len = entries
        .iter()
        .filter(|(name, _)| *name != "__metadata__")
        .filter_map(|(_, entry)| entry.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    let total = 8u64
        .checked_add(header_len)
        .and_then(|n| n.checked_add(data_len))
        .ok_or_else(|| file.invalid("the declared sizes overflow".into()))?;
    file.read_at(0, total, "the tensor data")
}

/// Saves a network as a safetensors file, atomically: tensors `<i>.weight` (`[units, inputs]`)
/// and `<i>.bias` in the network's dtype, and the `activations` metadata.
///
/// See [`load_model`](crate::io::load_model) for an example.
pub fn save_model(network: &Network, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let dtype = network.dtype();
    let mut encoded = Vec::with_capacity(2 * network.layers().len());
    for (i, layer) in network.layers().iter().enumerate() {
        let weight = layer.weight().t();
        let (units, inputs) = weight.dim();
        encoded.push((
            format!("{i}.weight"),
            vec![units, inputs],
            encode(weight.iter().copied(), dtype),
        ));
        encoded.push((
            format!("{i}.bias"),
            vec![units],
            encode(layer.bias().iter().copied(), dtype),
        ));
    }
    let invalid = |e: safetensors::SafeTensorError| Error::InvalidModelFile {
        path: path.to_path_buf(),
        reason: format!("cannot serialise: {e}"),
    };
    let views = encoded
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(storage_dtype(dtype), shape.clone(), data).map(|view| (name, view))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(invalid)?;
    let activations: Vec<String> = network
        .layers()
        .iter()
        .map(|l| l.activation().to_string())
        .collect();
    let metadata = HashMap::from([
        (ACTIVATIONS_KEY.to_string(), activations.join(",")),
        ("format".to_string(), "pt".to_string()),
    ]);
    let buffer = safetensors::serialize(views, Some(metadata)).map_err(invalid)?;
    write_atomic(path, &buffer)
}

/// A tensor's values as f32.
fn decode(path: &Path, name: &str, view: &TensorView<'_>) -> Result<Vec<f32>> {
    let data = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => bytes::f32s(data).collect(),
        Dtype::F64 => bytes::f64s(data).collect(),
        Dtype::F16 => bytes::f16s(data).collect(),
        Dtype::BF16 => bytes::bf16s(data).collect(),
        other => {
            return Err(Error::UnsupportedDType {
                dtype: format!("{other:?}"),
                context: format!("tensor `{name}` of {}", path.display()),
                supported: "F32, F64, F16, BF16",
            })
        }
    })
}

/// The safetensors dtype a network of `dtype` is saved in.
fn storage_dtype(dtype: DType) -> Dtype {
    match dtype {
        DType::F32 => Dtype::F32,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
    }
}

/// Values in `dtype`, little-endian.
fn encode(values: impl Iterator<Item = f32>, dtype: DType) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        match dtype {
            DType::F32 => out.extend_from_slice(&v.to_le_bytes()),
            DType::F16 => out.extend_from_slice(&half::f16::from_f32(v).to_le_bytes()),
            DType::BF16 => out.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes()),
        }
    }
    out
}
