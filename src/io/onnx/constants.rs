//! Constants of an ONNX graph: `Constant` nodes' values, and ops folded over constants.

use super::elementwise::Binary;
use super::proto::NodeProto;
use super::tensor::{self, Constant};

/// A 2-D constant transposed (a weight stored the other way round).
pub(crate) fn transpose(c: &Constant) -> Constant {
    let (rows, cols) = (c.dims[0], c.dims[1]);
    let values = (0..cols)
        .flat_map(|j| (0..rows).map(move |i| (i, j)))
        .map(|(i, j)| c.values[i * cols + j])
        .collect();
    Constant {
        dims: vec![cols, rows],
        values,
        dtype: c.dtype,
    }
}

/// An elementwise binary op over two constants of one shape, or a constant and a scalar.
pub(crate) fn fold(op: Binary, a: &Constant, b: &Constant) -> Result<Constant, String> {
    let long = match (a.scalar(), b.scalar()) {
        (Some(_), None) => b,
        (None, Some(_)) | (Some(_), Some(_)) => a,
        (None, None) if a.dims == b.dims => a,
        _ => return Err("constants of different shapes are not folded".into()),
    };
    let integer = matches!(long.dtype, "INT32" | "INT64");
    let values = (0..long.values.len())
        .map(|i| {
            let x = a.values[if a.values.len() == 1 { 0 } else { i }];
            let y = b.values[if b.values.len() == 1 { 0 } else { i }];
            if integer {
                op.apply_integer(x, y)
            } else {
                op.apply(x, y)
            }
        })
        .collect();
    Ok(Constant {
        dims: long.dims.clone(),
        values,
        dtype: long.dtype,
    })
}

/// A `Constant` node's value, from whichever attribute it uses.
pub(crate) fn constant_attribute(node: &NodeProto) -> Result<Constant, String> {
    let attribute = node.attribute.first().ok_or("it has no value")?;
    let float = |values: Vec<f64>, dims: Vec<usize>| Constant {
        dims,
        values,
        dtype: "FLOAT",
    };
    match attribute.name.as_str() {
        "value" => {
            let t = attribute.t.as_ref().ok_or("its value holds no tensor")?;
            tensor::decode_inline(t)
        }
        "value_float" => Ok(float(vec![f64::from(attribute.f)], vec![])),
        "value_floats" => {
            let values: Vec<f64> = attribute.floats.iter().map(|v| f64::from(*v)).collect();
            let n = values.len();
            Ok(float(values, vec![n]))
        }
        "value_int" => Ok(float(vec![attribute.i as f64], vec![])),
        "value_ints" => {
            let values: Vec<f64> = attribute.ints.iter().map(|v| *v as f64).collect();
            let n = values.len();
            Ok(float(values, vec![n]))
        }
        other => Err(format!("its `{other}` value is not supported")),
    }
}
