//! The walker's shape, cast and label-head nodes: `Shape`, `Gather`, `Slice`, `Concat`,
//! `Unsqueeze`, `Squeeze` and `Reshape` fold over constants and the batch's shape ([`Ints`]);
//! a `Reshape` of the batch is read where it keeps it 2-D; `ArgMax` and
//! `ArrayFeatureExtractor` make a classifier's labels, and a binary classifier's
//! `[1 - p, p]` becomes a two-unit softmax.

use ndarray::Array2;

use super::graph::{first, label, Value, Walker};
use super::proto::{AttributeProto, NodeProto};
use super::shape::{reshaped, Dim, Ints};
use super::tensor::Constant;
use crate::activation::Activation;
use crate::io::layers::Stage;

/// ONNX's integer element types a label or a shape may be cast to (INT8 .. UINT64).
const INTEGER_TYPES: [i64; 8] = [2, 3, 4, 5, 6, 7, 12, 13];

impl Value {
    /// The value as an integer vector, if it is a constant of rank 0 or 1 or a shape.
    pub(super) fn ints(&self) -> Option<Ints> {
        match self {
            Value::Const(c) => Ints::of_constant(c),
            Value::Ints(ints) => Some(ints.clone()),
            _ => None,
        }
    }

    /// A constant when every entry is known, else the symbolic vector.
    pub(super) fn from_ints(ints: Ints) -> Value {
        match ints.to_constant() {
            Some(c) => Value::Const(c),
            None => Value::Ints(ints),
        }
    }
}

impl Walker<'_> {
    /// `Cast`: constants and shapes keep their values, the batch may become FLOAT, and
    /// labels any integer type.
    pub(super) fn cast(&self, value: Value, to: i64) -> Result<Value, String> {
        match value {
            value @ (Value::Const(_) | Value::Ints(_)) => Ok(value),
            value @ Value::Dynamic { .. } if to == 1 => Ok(value),
            value @ Value::Labels { .. } if INTEGER_TYPES.contains(&to) => Ok(value),
            Value::Labels { .. } => Err(format!(
                "a cast of class labels to element type {to}; vecprop writes them as int64"
            )),
            _ => Err(format!(
                "a cast of the batch to element type {to}; vecprop computes in FLOAT (1)"
            )),
        }
    }

    /// The shape ops, over constants, the batch's shape and (Reshape) the batch itself.
    pub(super) fn shape_op(
        &self,
        node: &NodeProto,
        inputs: &[Option<Value>],
        opset: i64,
    ) -> Result<Value, String> {
        let attr = |name: &str| node.attribute.iter().find(|a| a.name == name);
        let ints_at = |index: usize, what: &str| -> Result<Option<Ints>, String> {
            match inputs.get(index) {
                Some(Some(v)) => v
                    .ints()
                    .map(Some)
                    .ok_or_else(|| format!("its {what} is not an integer constant or shape")),
                _ => Ok(None),
            }
        };
        let data = first(inputs)?;
        match node.op_type.as_str() {
            "Shape" => {
                let shape = match &data {
                    Value::Dynamic { anchor, .. } => Ints {
                        dims: vec![
                            Dim::Rows,
                            match self.width {
                                Some(w) if *anchor == self.anchor => Dim::Known(w as i64),
                                _ => Dim::Dynamic,
                            },
                        ],
                        scalar: false,
                    },
                    Value::Const(c) => Ints {
                        dims: c.dims.iter().map(|d| Dim::Known(*d as i64)).collect(),
                        scalar: false,
                    },
                    Value::Ints(i) => Ints {
                        dims: vec![Dim::Known(if i.scalar { 0 } else { i.dims.len() as i64 })],
                        scalar: false,
                    },
                    _ => return Err("the shape of class labels is not read".into()),
                };
                let start = attr("start").map_or(0, |a| a.i);
                let end = attr("end").map_or(i64::MAX, |a| a.i);
                Ok(Value::from_ints(shape.slice(start, end, 1)?))
            }
            "Gather" => {
                if attr("axis").is_some_and(|a| a.i != 0) {
                    return Err("only Gather along axis 0 of a shape is supported".into());
                }
                let data = ints_of(&data, "data")?;
                let indices = ints_at(1, "indices")?.ok_or("its indices are missing")?;
                Ok(Value::from_ints(data.gather(&indices)?))
            }
            "Slice" => {
                let data = ints_of(&data, "data")?;
                let list = |index: usize, name: &str| -> Result<Option<Vec<i64>>, String> {
                    if opset < 10 {
                        return Ok(attr(name).map(|a| a.ints.clone()));
                    }
                    ints_at(index, name)?.map(|i| i.known(name)).transpose()
                };
                let one = |values: Option<Vec<i64>>, default: i64| match values.as_deref() {
                    None => Ok(default),
                    Some([v]) => Ok(*v),
                    Some(_) => Err("a slice over several axes of a shape".to_string()),
                };
                if one(list(3, "axes")?, 0)? != 0 {
                    return Err("only slices of 1-D shapes are supported".into());
                }
                let start = one(list(1, "starts")?, 0)?;
                let end = one(list(2, "ends")?, i64::MAX)?;
                let step = one(list(4, "steps")?, 1)?;
                Ok(Value::from_ints(data.slice(start, end, step)?))
            }
            "Concat" => {
                if !matches!(attr("axis").map_or(0, |a| a.i), 0 | -1) {
                    return Err("only Concat of 1-D shapes along axis 0 is supported".into());
                }
                let parts = inputs
                    .iter()
                    .flatten()
                    .map(|v| ints_of(v, "inputs"))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Value::from_ints(Ints::concat(&parts)))
            }
            "Unsqueeze" | "Squeeze" => {
                let axes = match attr("axes") {
                    Some(a) if opset < 13 => Some(a.ints.clone()),
                    _ => ints_at(1, "axes")?.map(|i| i.known("axes")).transpose()?,
                };
                self.squeeze(data, node.op_type == "Unsqueeze", axes)
            }
            _ => self.reshape(data, ints_at(1, "shape")?.ok_or("its shape is missing")?),
        }
    }

    /// `Unsqueeze` (insert `axes` of size 1) or `Squeeze` (remove them, or every size 1).
    fn squeeze(&self, data: Value, insert: bool, axes: Option<Vec<i64>>) -> Result<Value, String> {
        let rank = match &data {
            Value::Const(c) => c.dims.len(),
            Value::Ints(i) => usize::from(!i.scalar),
            _ => return Err("only constants and shapes are squeezed or unsqueezed".into()),
        };
        let dims: Vec<usize> = match &data {
            Value::Const(c) => c.dims.clone(),
            Value::Ints(i) if i.scalar => vec![],
            Value::Ints(i) => vec![i.dims.len()],
            _ => unreachable!("refused above"),
        };
        let out_rank = if insert {
            rank + axes.as_ref().map_or(0, Vec::len)
        } else {
            rank
        };
        let wrap = |a: i64| if a < 0 { a + out_rank as i64 } else { a } as usize;
        let new_dims: Vec<usize> = if insert {
            let axes: Vec<usize> = axes
                .ok_or("Unsqueeze without axes")?
                .into_iter()
                .map(wrap)
                .collect();
            let mut rest = dims.iter();
            (0..out_rank)
                .map(|i| {
                    if axes.contains(&i) {
                        Some(1)
                    } else {
                        rest.next().copied()
                    }
                })
                .collect::<Option<Vec<_>>>()
                .ok_or("Unsqueeze axes out of range")?
        } else {
            let axes: Option<Vec<usize>> = axes.map(|a| a.into_iter().map(wrap).collect());
            dims.iter()
                .enumerate()
                .filter(|(i, d)| match &axes {
                    Some(axes) => !axes.contains(i),
                    None => **d != 1,
                })
                .map(|(_, d)| *d)
                .collect()
        };
        match data {
            Value::Const(c) => Ok(Value::Const(Constant {
                dims: new_dims,
                ..c
            })),
            Value::Ints(mut i) => match new_dims.len() {
                0 | 1 => {
                    i.scalar = new_dims.is_empty();
                    Ok(Value::Ints(i))
                }
                _ => Err("a shape unsqueezed to 2-D".into()),
            },
            _ => unreachable!("refused above"),
        }
    }

    /// `Reshape`: of a constant (folded), of a shape, of the batch where it stays rows x
    /// width, of labels to a vector or a column.
    fn reshape(&self, data: Value, target: Ints) -> Result<Value, String> {
        match data {
            Value::Const(c) => {
                let dims = reshaped(&c.dims, &target.known("shape")?)?;
                Ok(Value::Const(Constant { dims, ..c }))
            }
            Value::Ints(i) => match target.known("shape")?[..] {
                [-1] | [_] => Ok(Value::Ints(Ints { scalar: false, ..i })),
                _ => Err("a shape reshaped to more than one axis".into()),
            },
            value @ Value::Dynamic { .. } if self.keeps_batch(&target) => Ok(value),
            Value::Dynamic { .. } => {
                let width = self
                    .width
                    .map_or("a width vecprop cannot tell".to_string(), |w| w.to_string());
                let dynamic = target.dims.iter().any(|d| !matches!(d, Dim::Known(_)));
                Err(format!(
                    "it reshapes the batch (rows x {width}) to [{}]{}; vecprop runs 2-D batches \
                     of rows x features and reads Reshape only where it keeps them so",
                    target.listing(),
                    if dynamic {
                        ", a shape computed from the batch's dynamic shape"
                    } else {
                        ""
                    }
                ))
            }
            Value::Labels {
                anchor,
                expr,
                classes,
                ..
            } => {
                let column = match target.dims[..] {
                    [Dim::Rows | Dim::Known(-1)] => false,
                    [Dim::Rows | Dim::Known(-1) | Dim::Known(0), Dim::Known(1)] => true,
                    _ => {
                        return Err(format!(
                            "class labels reshaped to [{}]; vecprop writes one per row",
                            target.listing()
                        ))
                    }
                };
                Ok(Value::Labels {
                    anchor,
                    expr,
                    classes,
                    column,
                })
            }
            Value::Unread => Ok(Value::Unread),
            Value::Strings { name } => Err(format!("`{name}` is a tensor of strings")),
        }
    }

    /// Whether a reshape of the current batch to `target` leaves it rows x width.
    fn keeps_batch(&self, target: &Ints) -> bool {
        let [rows, width] = target.dims[..] else {
            return false;
        };
        let rows_kept = matches!(rows, Dim::Rows | Dim::Known(0) | Dim::Known(-1));
        let width_kept = match width {
            Dim::Known(0) => true,
            Dim::Known(-1) => rows != Dim::Known(-1),
            Dim::Known(w) => self.width.is_some_and(|width| width as i64 == w),
            _ => false,
        };
        rows_kept && width_kept
    }

    /// `ArgMax` over each row of the last layer's output: its class index.
    pub(super) fn argmax<'a>(
        &self,
        inputs: &[Option<Value>],
        attr: impl Fn(&str) -> Option<&'a AttributeProto>,
    ) -> Result<Value, String> {
        if !matches!(attr("axis").map_or(0, |a| a.i), 1 | -1) {
            return Err("only ArgMax over each row (axis 1) is supported".into());
        }
        if attr("select_last_index").is_some_and(|a| a.i != 0) {
            return Err("ArgMax with select_last_index=1 is not supported".into());
        }
        match first(inputs)? {
            Value::Dynamic { anchor, expr } if anchor == self.anchor => Ok(Value::Labels {
                anchor,
                expr,
                classes: None,
                column: attr("keepdims").is_none_or(|a| a.i != 0),
            }),
            _ => Err("only ArgMax of the last layer's output is supported".into()),
        }
    }

    /// `ArrayFeatureExtractor(classes, class indices)`: the class labels of each row.
    pub(super) fn feature_extractor(&self, inputs: &[Option<Value>]) -> Result<Value, String> {
        match (inputs.first(), inputs.get(1)) {
            (
                Some(Some(Value::Const(table))),
                Some(Some(Value::Labels {
                    anchor,
                    expr,
                    classes: None,
                    column,
                })),
            ) if table.dims.len() == 1 && matches!(table.dtype, "INT32" | "INT64") => {
                Ok(Value::Labels {
                    anchor: *anchor,
                    expr: expr.clone(),
                    classes: Some(table.values.iter().map(|v| *v as i64).collect()),
                    column: *column,
                })
            }
            (Some(Some(Value::Strings { name })), Some(Some(Value::Labels { .. }))) => {
                Err(format!(
                    "its class labels (`{name}`) are strings, and vecprop writes labels as int64: \
                 fit the classifier on integer classes (sklearn's LabelEncoder maps names to \
                 0..n-1 and back) and export it again"
                ))
            }
            _ => Err(
                "only the class labels (a 1-D integer constant) at an ArgMax's indices are \
                 supported"
                    .into(),
            ),
        }
    }
}

fn ints_of(value: &Value, what: &str) -> Result<Ints, String> {
    value.ints().ok_or_else(|| match value {
        Value::Dynamic { .. } => format!(
            "its {what} is the batch itself; vecprop reads this op only over shapes and constants"
        ),
        _ => format!("its {what} is not a 1-D integer constant or shape"),
    })
}

impl Walker<'_> {
    /// `Concat([1 - sigmoid(z), sigmoid(z)], axis=1)` of a one-unit layer's output `z`: a
    /// binary classifier's probabilities, as skl2onnx writes them. They equal
    /// `softmax([0, z])`, so the layer gains a zero unit in front and a softmax.
    pub(super) fn two_classes(
        &mut self,
        node: &NodeProto,
        inputs: &[Option<Value>],
        axis: i64,
    ) -> Result<Value, String> {
        let refuse = || {
            "only Concat([1 - sigmoid(z), sigmoid(z)], axis=1) of a one-unit layer's output (a \
             binary classifier's probabilities) is supported over the batch"
                .to_string()
        };
        let exprs = match inputs {
            [Some(Value::Dynamic {
                anchor: a,
                expr: negative,
            }), Some(Value::Dynamic {
                anchor: b,
                expr: positive,
            })] if *a == self.anchor && *b == self.anchor && matches!(axis, 1 | -1) => {
                (negative.clone(), positive.clone())
            }
            _ => return Err(refuse()),
        };
        let (negative, positive) = exprs;
        let complementary = (-1000..=1000).all(|i| {
            let x = f64::from(i) / 50.0;
            (negative.eval(x) - (1.0 - positive.eval(x))).abs() <= 1e-9
        });
        if positive.recognise() != Some(Activation::Sigmoid) || !complementary {
            return Err(refuse());
        }
        let Some(Stage::Dense { weight, bias, .. }) = self.dense.map(|i| &mut self.stages[i])
        else {
            return Err(refuse());
        };
        if weight.ncols() != 1 {
            return Err(refuse());
        }
        let inputs_width = weight.nrows();
        let mut widened = Array2::zeros((inputs_width, 2));
        widened.column_mut(1).assign(&weight.column(0));
        *weight = widened;
        let b = bias.as_ref().map_or(0.0, |b| b[0]);
        *bias = Some(ndarray::array![0.0, b]);
        self.stages.push(Stage::Activation {
            node: label(node),
            kind: Activation::Softmax,
        });
        let value = self.advance(None);
        self.width = Some(2);
        Ok(value)
    }
}
