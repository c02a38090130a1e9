//! Constant tensors of an ONNX graph (initializers and `Constant` nodes), in memory or in
//! external data files.

use std::path::{Component, Path};

use ndarray::{Array1, Array2};

use super::proto::TensorProto;
use crate::io::bounded_file::BoundedFile;
use crate::io::bytes;

/// A constant: its shape and values (f64 holds every f32, f16, bf16 and int32 exactly, and
/// the int64 shapes and axes a graph uses).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Constant {
    pub(crate) dims: Vec<usize>,
    pub(crate) values: Vec<f64>,
    /// The element type's ONNX name, e.g. `FLOAT`.
    pub(crate) dtype: &'static str,
}

impl Constant {
    /// A scalar (or one-element tensor), for elementwise ops.
    pub(crate) fn scalar(&self) -> Option<f64> {
        (self.values.len() == 1).then(|| self.values[0])
    }

    /// The tensor as a 2-D f32 matrix, if it is one.
    pub(crate) fn matrix(&self) -> Option<Array2<f32>> {
        match self.dims[..] {
            [rows, cols] => Array2::from_shape_vec(
                (rows, cols),
                self.values.iter().map(|v| *v as f32).collect(),
            )
            .ok(),
            _ => None,
        }
    }

    /// The tensor as a vector of `len` f32s, broadcasting a scalar; `[len]` and `[1, len]` fit.
    pub(crate) fn vector(&self, len: usize) -> Option<Array1<f32>> {
        let fits = match self.dims[..] {
            [] | [1] | [1, 1] => true,
            [n] | [1, n] => n == len,
            _ => false,
        };
        fits.then(|| {
            let values: Vec<f32> = self.values.iter().map(|v| *v as f32).collect();
            match values[..] {
                [v] => Array1::from_elem(len, v),
                _ => Array1::from(values),
            }
        })
    }
}

/// ONNX's `DataType` code for strings (a classifier's class names, for one), which vecprop
/// keeps apart from the numeric constants it decodes.
pub(crate) const STRING: i32 = 8;

/// The ONNX `DataType`s vecprop reads: (code, name, bytes per element).
const TYPES: [(i32, &str, usize); 6] = [
    (1, "FLOAT", 4),
    (6, "INT32", 4),
    (7, "INT64", 8),
    (10, "FLOAT16", 2),
    (11, "DOUBLE", 8),
    (16, "BFLOAT16", 2),
];

/// Decodes a tensor, reading external data from files beside the model.
pub(crate) fn decode(tensor: &TensorProto, model: &BoundedFile) -> Result<Constant, String> {
    decode_with(tensor, Some(model))
}

/// Decodes a tensor whose values are in the message itself (a `Constant` node's).
pub(crate) fn decode_inline(tensor: &TensorProto) -> Result<Constant, String> {
    decode_with(tensor, None)
}

fn decode_with(tensor: &TensorProto, model: Option<&BoundedFile>) -> Result<Constant, String> {
    let name = &tensor.name;
    let (_, dtype, size) = TYPES
        .iter()
        .find(|(code, _, _)| *code == tensor.data_type)
        .copied()
        .ok_or_else(|| {
            format!(
                "tensor `{name}` has element type {} (supported: FLOAT, DOUBLE, FLOAT16, BFLOAT16, INT32, INT64)",
                tensor.data_type
            )
        })?;
    let dims = tensor
        .dims
        .iter()
        .map(|d| usize::try_from(*d).map_err(|_| format!("tensor `{name}` has dimension {d}")))
        .collect::<Result<Vec<_>, _>>()?;
    let count = dims
        .iter()
        .try_fold(1usize, |n, d| n.checked_mul(*d))
        .ok_or_else(|| format!("tensor `{name}`: its shape {dims:?} overflows"))?;
    let external;
    let raw: &[u8] = if tensor.data_location == 1 {
        let model = model.ok_or_else(|| format!("tensor `{name}` is in an external file"))?;
        external = read_external(tensor, model, count.checked_mul(size))?;
        &external
    } else {
        &tensor.raw_data
    };
    let values: Vec<f64> = if !raw.is_empty() || count == 0 {
        if Some(raw.len()) != count.checked_mul(size) {
            return Err(format!(
                "tensor `{name}` holds {} bytes but its shape {dims:?} of {dtype} needs {}",
                raw.len(),
                count.saturating_mul(size)
            ));
        }
        match tensor.data_type {
            1 => bytes::f32s(raw).map(f64::from).collect(),
            6 => raw
                .chunks_exact(4)
                .map(|c| f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            7 => raw
                .chunks_exact(8)
                .map(|c| {
                    let mut b = [0; 8];
                    b.copy_from_slice(c);
                    i64::from_le_bytes(b) as f64
                })
                .collect(),
            10 => bytes::f16s(raw).map(f64::from).collect(),
            11 => raw
                .chunks_exact(8)
                .map(|c| {
                    let mut b = [0; 8];
                    b.copy_from_slice(c);
                    f64::from_le_bytes(b)
                })
                .collect(),
            _ => bytes::bf16s(raw).map(f64::from).collect(),
        }
    } else {
        match tensor.data_type {
            1 => tensor.float_data.iter().map(|v| f64::from(*v)).collect(),
            6 => tensor.int32_data.iter().map(|v| f64::from(*v)).collect(),
            7 => tensor.int64_data.iter().map(|v| *v as f64).collect(),
            11 => tensor.double_data.clone(),
            10 => tensor
                .int32_data
                .iter()
                .map(|v| f64::from(half::f16::from_bits(*v as u16)))
                .collect(),
            _ => tensor
                .int32_data
                .iter()
                .map(|v| f64::from(half::bf16::from_bits(*v as u16)))
                .collect(),
        }
    };
    if values.len() != count {
        return Err(format!(
            "tensor `{name}` holds {} values but its shape {dims:?} needs {count}",
            values.len()
        ));
    }
    Ok(Constant {
        dims,
        values,
        dtype,
    })
}

/// The bytes of an external-data tensor: a regular file in the model's folder (no absolute
/// paths, no `..`), read from `offset` for exactly `length` (or the bytes the shape needs).
fn read_external(
    tensor: &TensorProto,
    model: &BoundedFile,
    needed: Option<usize>,
) -> Result<Vec<u8>, String> {
    let name = &tensor.name;
    let entry = |key: &str| {
        tensor
            .external_data
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    };
    let location = entry("location")
        .ok_or_else(|| format!("tensor `{name}` is external but names no `location`"))?;
    let relative = Path::new(location);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "tensor `{name}`: external data location `{location}` must be a relative path inside the model's folder"
        ));
    }
    let number = |key: &str| -> Result<Option<u64>, String> {
        entry(key)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    format!("tensor `{name}`: external data {key} `{v}` is not a number")
                })
            })
            .transpose()
    };
    let offset = number("offset")?.unwrap_or(0);
    let needed = needed.ok_or_else(|| format!("tensor `{name}` is too large"))? as u64;
    let length = number("length")?.unwrap_or(needed);
    if length != needed {
        return Err(format!(
            "tensor `{name}`: external data length {length} but its shape needs {needed} bytes"
        ));
    }
    let folder = model.path.parent().unwrap_or(Path::new("."));
    let mut file = BoundedFile::open(&folder.join(relative)).map_err(|e| e.to_string())?;
    file.format = model.format;
    file.read_at(offset, length, &format!("external data of tensor `{name}`"))
        .map_err(|e| e.to_string())
}
