//! Models in safetensors files, in `torch.nn.Linear` layout.
//!
//! Each dense layer is a pair of tensors `<prefix>.weight`, shape `[units, inputs]`, and
//! `<prefix>.bias`, shape `[units]`. Layers run in the order of the integer that ends each
//! prefix (`0`, `2`, `4` as `torch.nn.Sequential` names them; `layers.10` after `layers.9`).
//! The metadata entry `activations` lists one activation per layer, comma-separated.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use ndarray::{Array1, Array2};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::activation::{parse_list, Activation};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::fs::write_atomic;
use crate::graph::dense::Dense;
use crate::graph::network::Network;
use crate::io::bytes;

/// The metadata key that lists the activations.
pub const ACTIVATIONS_KEY: &str = "activations";

/// Loads a network from a safetensors file.
///
/// `activations_override`, when given, replaces the file's `activations` metadata. Tensors
/// may be f32, f64, f16 or bf16; the network's [`dtype`](Network::dtype) is f16 or bf16 when
/// every tensor is, and f32 otherwise.
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
    let path = path.as_ref();
    let buffer = fs::read(path).map_err(|e| Error::io(path, e))?;
    let invalid = |e: safetensors::SafeTensorError| Error::InvalidModelFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let (_, metadata) = SafeTensors::read_metadata(&buffer).map_err(invalid)?;
    let tensors = SafeTensors::deserialize(&buffer).map_err(invalid)?;

    let (activations, origin) = match activations_override {
        Some(list) => (list.to_vec(), "the activations override".to_string()),
        None => {
            let list = metadata
                .metadata()
                .as_ref()
                .and_then(|m| m.get(ACTIVATIONS_KEY))
                .ok_or_else(|| Error::MissingActivations {
                    path: path.to_path_buf(),
                })?;
            (
                parse_list(list)?,
                format!("the `{ACTIVATIONS_KEY}` metadata of {}", path.display()),
            )
        }
    };

    let pairs = pair_tensors(&tensors)?;
    if pairs.is_empty() {
        return Err(Error::NoLayers {
            path: path.to_path_buf(),
        });
    }
    let mut dtypes = Vec::new();
    let layers = pairs
        .into_values()
        .map(|(prefix, weight, bias)| {
            dtypes.extend([weight.dtype(), bias.dtype()]);
            dense_from(path, &prefix, &weight, &bias)
        })
        .collect::<Result<Vec<_>>>()?;

    let mut network = Network::new(layers)?;
    network.set_activations(&activations, &origin)?;
    let dtype = match dtypes[..] {
        [Dtype::F16, ..] if dtypes.iter().all(|d| *d == Dtype::F16) => DType::F16,
        [Dtype::BF16, ..] if dtypes.iter().all(|d| *d == Dtype::BF16) => DType::BF16,
        _ => DType::F32,
    };
    network.set_dtype(dtype);
    Ok(network)
}

/// Saves a network as a safetensors file, atomically: tensors `<i>.weight` (`[units, inputs]`)
/// and `<i>.bias` in the network's dtype, and the `activations` metadata.
///
/// See [`load_model`] for an example.
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

/// Groups the tensors into (prefix, weight, bias) by layer position.
fn pair_tensors<'a>(
    tensors: &SafeTensors<'a>,
) -> Result<BTreeMap<u64, (String, TensorView<'a>, TensorView<'a>)>> {
    let mut weights = BTreeMap::new();
    let mut biases = BTreeMap::new();
    for (name, view) in tensors.iter() {
        let (prefix, map) = if let Some(prefix) = name.strip_suffix(".weight") {
            (prefix, &mut weights)
        } else if let Some(prefix) = name.strip_suffix(".bias") {
            (prefix, &mut biases)
        } else {
            return Err(Error::BadTensor {
                layer: name.to_string(),
                reason: "tensor is neither a `<prefix>.weight` nor a `<prefix>.bias`; \
                         vecprop reads dense layers only"
                    .into(),
            });
        };
        map.insert(prefix.to_string(), view);
    }
    let mut layers = BTreeMap::new();
    for (prefix, weight) in weights {
        let position = position_of(&prefix)?;
        let bias = biases
            .remove(&prefix)
            .ok_or_else(|| Error::UnpairedTensor {
                layer: prefix.clone(),
                present: "weight",
                missing: "bias",
            })?;
        if let Some((other, _, _)) = layers.get(&position) {
            return Err(Error::BadTensor {
                layer: prefix,
                reason: format!(
                    "its position {position} is also the position of layer `{other}`, so the order is ambiguous"
                ),
            });
        }
        layers.insert(position, (prefix, weight, bias));
    }
    if let Some(prefix) = biases.into_keys().next() {
        return Err(Error::UnpairedTensor {
            layer: prefix,
            present: "bias",
            missing: "weight",
        });
    }
    Ok(layers)
}

/// The integer that ends a prefix: `0`, `layers.10`, `fc2`.
fn position_of(prefix: &str) -> Result<u64> {
    let digits = prefix.len() - prefix.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    prefix[prefix.len() - digits..]
        .parse()
        .map_err(|_| Error::BadTensor {
            layer: prefix.to_string(),
            reason: "the layer name must end in an integer that gives its position \
                     (e.g. `0`, `layers.1`, `fc2`)"
                .into(),
        })
}

/// A dense layer from a `[units, inputs]` weight and a `[units]` bias.
fn dense_from(
    path: &Path,
    prefix: &str,
    weight: &TensorView<'_>,
    bias: &TensorView<'_>,
) -> Result<Dense> {
    let bad = |reason: String| Error::BadTensor {
        layer: prefix.to_string(),
        reason,
    };
    let (units, inputs) = match weight.shape() {
        [units, inputs] => (*units, *inputs),
        shape => {
            return Err(bad(format!(
                "`{prefix}.weight` has shape {shape:?}; a dense weight must be 2-D [units, inputs]"
            )))
        }
    };
    if bias.shape().len() != 1 {
        return Err(bad(format!(
            "`{prefix}.bias` has shape {:?}; a bias must be 1-D [units]",
            bias.shape()
        )));
    }
    let w = decode(path, &format!("{prefix}.weight"), weight)?;
    let b = decode(path, &format!("{prefix}.bias"), bias)?;
    let w = Array2::from_shape_vec((units, inputs), w)
        .map_err(|e| bad(format!("`{prefix}.weight`: {e}")))?
        .reversed_axes();
    Dense::new(prefix, w, Array1::from(b), Activation::Linear)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_come_from_the_trailing_integer() {
        assert_eq!(position_of("0").unwrap(), 0);
        assert_eq!(position_of("layers.10").unwrap(), 10);
        assert_eq!(position_of("net.fc2").unwrap(), 2);
        let err = position_of("encoder.out").unwrap_err();
        assert!(err.to_string().contains("`encoder.out`"), "{err}");
    }
}
