//! Walking an ONNX graph into a chain of [`Stage`]s.
//!
//! Values are either constants (initializers, `Constant` nodes and what folds from them),
//! integer vectors computed from the batch's shape ([`Ints`]), elementwise functions of the
//! current layer's output, or class labels taken from it. Each structural node (`Gemm`,
//! `MatMul`, `BatchNormalization`, `Softmax`) consumes the current output, turning the
//! elementwise ops before it into one activation, and starts a new one.
//!
//! A node that cannot be read does not stop the walk: its outputs are marked unread, nodes
//! that use them are skipped, and every failure is reported together (see [`report`]).

use std::collections::HashMap;

use super::constants::{constant_attribute, fold, transpose};
use super::elementwise::{Binary, Expr, Unary};
use super::proto::{AttributeProto, FunctionProto, GraphProto, NodeProto};
use super::report::{self, Failure};
use super::shape::Ints;
use super::tensor::{self, Constant};
use crate::activation::Activation;
use crate::error::Error;
use crate::graph::batchnorm::{BatchNorm, DEFAULT_EPS};
use crate::io::bounded_file::BoundedFile;
use crate::io::layers::Stage;

/// A value flowing through the graph.
#[derive(Debug, Clone)]
pub(super) enum Value {
    Const(Constant),
    /// `expr` of the output of stage boundary `anchor`.
    Dynamic {
        anchor: usize,
        expr: Expr,
    },
    /// An integer vector (a shape, indices) some of whose entries depend on the row count.
    Ints(Ints),
    /// Each row's class: the index of the largest of `expr` of stage boundary `anchor`'s
    /// output, mapped through `classes` when given; a column (rows x 1) or a vector.
    Labels {
        anchor: usize,
        expr: Expr,
        classes: Option<Vec<i64>>,
        column: bool,
    },
    /// Computed by a node that could not be read (and is reported).
    Unread,
    /// A constant of strings (a classifier's class names): vecprop writes numbers only, so
    /// the node that uses it is reported with what to do instead.
    Strings {
        name: String,
    },
}

/// A graph output, as the walk found it.
#[derive(Debug, Clone)]
pub(crate) enum Output {
    /// `expr` of the last stage's output: the dense stack's values.
    Values { expr: Expr },
    /// Class labels of the last stage's output (`None`: the class indices).
    Labels {
        expr: Expr,
        classes: Option<Vec<i64>>,
        column: bool,
    },
    /// Not computed by the chain of layers, and why.
    NotComputed(String),
}

/// The graph's stages (without the activation each output applies last), its outputs in
/// graph order, and the dtypes of the weights the dense layers took.
pub(crate) struct Walked {
    pub(crate) stages: Vec<Stage>,
    pub(crate) outputs: Vec<(String, Output)>,
    pub(crate) weight_dtypes: Vec<&'static str>,
}

/// How deep model-local functions may call each other.
const MAX_CALL_DEPTH: usize = 8;

/// Walks `graph` (of ai.onnx opset `opset`) into stages, inlining calls of `functions`.
pub(crate) fn walk(
    graph: &GraphProto,
    functions: &[FunctionProto],
    opset: i64,
    model: &BoundedFile,
) -> Result<Walked, Error> {
    let invalid = |reason: String| Error::InvalidOnnx {
        path: model.path.clone(),
        reason,
    };
    if !graph.sparse_initializer.is_empty() {
        return Err(invalid("sparse initializers are not supported".into()));
    }
    let mut values = HashMap::new();
    for init in &graph.initializer {
        let value = if init.data_type == tensor::STRING {
            Value::Strings {
                name: init.name.clone(),
            }
        } else {
            Value::Const(tensor::decode(init, model).map_err(invalid)?)
        };
        values.insert(init.name.clone(), value);
    }
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !values.contains_key(&i.name))
        .collect();
    let [input] = inputs[..] else {
        return Err(invalid(format!(
            "the graph has {} inputs besides its weights; vecprop runs graphs of one input batch",
            inputs.len()
        )));
    };
    let shape = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .and_then(|t| t.shape.as_ref());
    let rank = shape.map(|s| s.dim.len());
    let width = shape
        .and_then(|s| s.dim.get(1))
        .and_then(|d| usize::try_from(d.dim_value).ok())
        .filter(|w| *w > 0);
    if let Some(rank) = rank.filter(|r| *r != 2) {
        return Err(invalid(format!(
            "the graph input `{}` has rank {rank}; vecprop takes 2-D batches (rows x features)",
            input.name
        )));
    }
    values.insert(
        input.name.clone(),
        Value::Dynamic {
            anchor: 0,
            expr: Expr::Input,
        },
    );
    let mut walker = Walker {
        values,
        stages: Vec::new(),
        weight_dtypes: Vec::new(),
        anchor: 0,
        dense: None,
        width,
        opset,
        functions: functions
            .iter()
            .map(|f| ((f.domain.as_str(), f.name.as_str()), f))
            .collect(),
    };
    let mut failures = Vec::new();
    for (position, node) in graph.node.iter().enumerate() {
        if let Err(reason) = walker.node(node, 0) {
            for name in &node.output {
                walker.values.insert(name.clone(), Value::Unread);
            }
            failures.push(Failure {
                position,
                node: label(node),
                op_type: report::op_name(node),
                known: walker.is_known(node),
                reason,
            });
        }
    }
    if !failures.is_empty() {
        return Err(report::error(&model.path, failures));
    }
    if graph.output.is_empty() {
        return Err(invalid("the graph has no outputs".into()));
    }
    let outputs = graph
        .output
        .iter()
        .map(|o| (o.name.clone(), walker.output(&o.name)))
        .collect();
    Ok(Walked {
        stages: walker.stages,
        outputs,
        weight_dtypes: walker.weight_dtypes,
    })
}

pub(super) struct Walker<'m> {
    pub(super) values: HashMap<String, Value>,
    pub(super) stages: Vec<Stage>,
    weight_dtypes: Vec<&'static str>,
    /// The current stage boundary: values of older anchors can no longer be used.
    pub(super) anchor: usize,
    /// The stage index of the dense layer whose raw output the current anchor is, if any.
    pub(super) dense: Option<usize>,
    /// The current output's width (features per row), when known.
    pub(super) width: Option<usize>,
    opset: i64,
    /// Model-local functions by (domain, name).
    functions: HashMap<(&'m str, &'m str), &'m FunctionProto>,
}

pub(super) type Step = Result<(), String>;

impl Walker<'_> {
    fn node(&mut self, node: &NodeProto, depth: usize) -> Step {
        if let Some(function) = self
            .functions
            .get(&(node.domain.as_str(), node.op_type.as_str()))
            .copied()
        {
            return self.call(node, function, depth);
        }
        if !self.is_known(node) {
            return Err(report::UNSUPPORTED_OP.into());
        }
        let inputs =
            node.input
                .iter()
                .map(|name| match name.as_str() {
                    "" => Ok(None),
                    name => self.values.get(name).cloned().map(Some).ok_or_else(|| {
                        format!("its input `{name}` is produced by no earlier node")
                    }),
                })
                .collect::<Result<Vec<_>, _>>()?;
        if inputs.iter().any(|i| matches!(i, Some(Value::Unread))) {
            // It depends on a node already reported.
            for name in &node.output {
                self.values.insert(name.clone(), Value::Unread);
            }
            return Ok(());
        }
        let attr = |name: &str| node.attribute.iter().find(|a| a.name == name);
        let output = match node.op_type.as_str() {
            "Constant" => Value::Const(constant_attribute(node)?),
            "Identity" | "Dropout" | "CastLike" => first(&inputs)?,
            "Flatten" => match (first(&inputs)?, attr("axis").map_or(1, |a| a.i)) {
                (value @ Value::Dynamic { .. }, 1) => value,
                _ => return Err("only Flatten(axis=1) of the 2-D input batch is supported".into()),
            },
            "Cast" => self.cast(first(&inputs)?, attr("to").map_or(0, |a| a.i))?,
            "Concat"
                if inputs
                    .iter()
                    .flatten()
                    .any(|v| matches!(v, Value::Dynamic { .. })) =>
            {
                self.two_classes(node, &inputs, attr("axis").map_or(0, |a| a.i))?
            }
            "Shape" | "Gather" | "Slice" | "Concat" | "Unsqueeze" | "Squeeze" | "Reshape" => {
                self.shape_op(node, &inputs, self.opset)?
            }
            "ArgMax" => self.argmax(&inputs, attr)?,
            "ArrayFeatureExtractor" => self.feature_extractor(&inputs)?,
            // A map per row of class label to probability: written as the probabilities.
            "ZipMap" => first(&inputs)?,
            "Transpose" => match first(&inputs)? {
                Value::Const(c) if c.dims.len() == 2 => Value::Const(transpose(&c)),
                _ => return Err("only transposes of 2-D weights are supported".into()),
            },
            "Gemm" => self.gemm(node, &inputs, attr)?,
            "MatMul" => {
                let weight = constant(&inputs, 1, "B")?;
                let weight = weight.matrix().ok_or("B must be a 2-D weight")?;
                self.dense(node, &inputs, weight, None, None)?
            }
            "BatchNormalization" => self.batchnorm(node, &inputs, attr)?,
            "Softmax" => {
                let default = if self.opset >= 13 { -1 } else { 1 };
                let axis = attr("axis").map_or(default, |a| a.i);
                if axis != -1 && axis != 1 {
                    return Err(format!(
                        "softmax over axis {axis}; only the last axis of 2-D rows is supported"
                    ));
                }
                self.consume(node, &inputs)?;
                self.stages.push(Stage::Activation {
                    node: label(node),
                    kind: Activation::Softmax,
                });
                self.advance(None)
            }
            op => self.elementwise(op, &inputs, attr)?,
        };
        if let Some(name) = node.output.first() {
            self.values.insert(name.clone(), output);
        }
        Ok(())
    }

    /// Inlines a call of a model-local function: its body runs on the caller's values, with
    /// names scoped to the call and attributes bound to the caller's (or their defaults).
    fn call(&mut self, node: &NodeProto, function: &FunctionProto, depth: usize) -> Step {
        if depth >= MAX_CALL_DEPTH {
            return Err(format!("functions nest deeper than {MAX_CALL_DEPTH} calls"));
        }
        let scope = format!("{}/{}::", label(node), depth);
        let scoped = |name: &str| {
            if name.is_empty() {
                String::new()
            } else {
                format!("{scope}{name}")
            }
        };
        for (formal, actual) in function.input.iter().zip(&node.input) {
            if let Some(value) = self.values.get(actual).cloned() {
                self.values.insert(scoped(formal), value);
            }
        }
        for inner in &function.node {
            let mut inner = inner.clone();
            inner.name = label(node);
            inner.input = inner.input.iter().map(|n| scoped(n)).collect();
            inner.output = inner.output.iter().map(|n| scoped(n)).collect();
            inner.attribute = inner
                .attribute
                .into_iter()
                .filter_map(|a| {
                    if a.ref_attr_name.is_empty() {
                        return Some(a);
                    }
                    let bound = node
                        .attribute
                        .iter()
                        .chain(&function.attribute_proto)
                        .find(|c| c.name == a.ref_attr_name)?;
                    Some(AttributeProto {
                        name: a.name,
                        ..bound.clone()
                    })
                })
                .collect();
            let op = inner.op_type.clone();
            self.node(&inner, depth + 1)
                .map_err(|e| format!("inside function `{}`, op {op}: {e}", function.name))?;
        }
        for (formal, actual) in function.output.iter().zip(&node.output) {
            if let Some(value) = self.values.get(&scoped(formal)).cloned() {
                self.values.insert(actual.clone(), value);
            }
        }
        Ok(())
    }

    fn gemm<'a>(
        &mut self,
        node: &NodeProto,
        inputs: &[Option<Value>],
        attr: impl Fn(&str) -> Option<&'a AttributeProto>,
    ) -> Result<Value, String> {
        if attr("transA").is_some_and(|a| a.i != 0) {
            return Err("transA=1 (a transposed input batch) is not supported".into());
        }
        let b = constant(inputs, 1, "B")?;
        let mut weight = b.matrix().ok_or("B must be a 2-D weight")?;
        if attr("transB").is_some_and(|a| a.i != 0) {
            weight = weight.reversed_axes().as_standard_layout().into_owned();
        }
        let alpha = attr("alpha").map_or(1.0, |a| a.f);
        let beta = attr("beta").map_or(1.0, |a| a.f);
        weight.mapv_inplace(|w| w * alpha);
        let units = weight.ncols();
        let bias = match inputs.get(2) {
            Some(Some(_)) => {
                let c = constant(inputs, 2, "C")?;
                let bias = c
                    .vector(units)
                    .ok_or_else(|| format!("C has shape {:?}, not a bias of {units}", c.dims))?;
                Some(bias.mapv(|v| v * beta))
            }
            _ => None,
        };
        self.dense(node, inputs, weight, bias, Some(b.dtype))
    }

    fn dense(
        &mut self,
        node: &NodeProto,
        inputs: &[Option<Value>],
        weight: ndarray::Array2<f32>,
        bias: Option<ndarray::Array1<f32>>,
        dtype: Option<&'static str>,
    ) -> Result<Value, String> {
        self.consume(node, inputs)?;
        if let Some(Some(Value::Const(c))) = inputs.get(1) {
            self.weight_dtypes.push(dtype.unwrap_or(c.dtype));
        }
        self.stages.push(Stage::Dense {
            name: module_name(node),
            weight,
            bias,
        });
        Ok(self.advance(Some(self.stages.len() - 1)))
    }

    fn batchnorm<'a>(
        &mut self,
        node: &NodeProto,
        inputs: &[Option<Value>],
        attr: impl Fn(&str) -> Option<&'a AttributeProto>,
    ) -> Result<Value, String> {
        if attr("training_mode").is_some_and(|a| a.i != 0) {
            return Err("training_mode=1; export the model in eval mode (model.eval())".into());
        }
        let vector = |index: usize, what: &str| -> Result<ndarray::Array1<f32>, String> {
            let c = constant(inputs, index, what)?;
            match c.dims[..] {
                [n] => Ok(c.vector(n).unwrap_or_default()),
                _ => Err(format!("{what} has shape {:?}, not 1-D", c.dims)),
            }
        };
        let norm = BatchNorm {
            name: module_name(node),
            scale: vector(1, "scale")?,
            shift: vector(2, "B")?,
            mean: vector(3, "input_mean")?,
            variance: vector(4, "input_var")?,
            eps: attr("epsilon").map_or(DEFAULT_EPS, |a| f64::from(a.f)),
        };
        self.consume(node, inputs)?;
        self.stages.push(Stage::BatchNorm(norm));
        Ok(self.advance(None))
    }

    /// Elementwise ops: folded when every input is constant, else part of an activation.
    fn elementwise<'a>(
        &mut self,
        op: &str,
        inputs: &[Option<Value>],
        attr: impl Fn(&str) -> Option<&'a AttributeProto>,
    ) -> Result<Value, String> {
        let approximate = attr("approximate").map_or(String::new(), |a| {
            String::from_utf8_lossy(&a.s).into_owned()
        });
        if let Some(unary) = Unary::from_op(op, attr("alpha").map(|a| a.f), &approximate) {
            return match first(inputs)? {
                Value::Dynamic { anchor, expr } if anchor == self.anchor => Ok(Value::Dynamic {
                    anchor,
                    expr: Expr::Unary(unary, Box::new(expr)),
                }),
                Value::Dynamic { .. } => Err(branch()),
                Value::Const(c) => Ok(Value::Const(Constant {
                    values: c.values.iter().map(|v| unary.apply(*v)).collect(),
                    ..c
                })),
                other => Err(not_the_batch(&other)),
            };
        }
        let Some(binary) = Binary::from_op(op) else {
            return Err(
                "unsupported op; vecprop reads MLPs: Gemm, MatMul+Add, BatchNormalization, \
                 Relu, Sigmoid, Tanh, Softmax, Gelu, LeakyRelu, Identity, Dropout, Flatten, \
                 Constant and elementwise arithmetic that forms an activation"
                    .into(),
            );
        };
        let [Some(a), Some(b)] = inputs else {
            return Err("expects two inputs".into());
        };
        match (a, b) {
            (Value::Const(a), Value::Const(b)) => fold(binary, a, b).map(Value::Const),
            (Value::Ints(_), _) | (_, Value::Ints(_)) => {
                let (Some(a), Some(b)) = (a.ints(), b.ints()) else {
                    return Err(
                        "arithmetic between the batch's shape and a non-integer value".into(),
                    );
                };
                Ints::binary(binary, &a, &b).map(Value::from_ints)
            }
            (
                Value::Dynamic {
                    expr: Expr::Input,
                    anchor,
                },
                Value::Const(c),
            )
            | (
                Value::Const(c),
                Value::Dynamic {
                    expr: Expr::Input,
                    anchor,
                },
            ) if binary == Binary::Add && *anchor == self.anchor && self.dense.is_some() => {
                self.add_bias(c)?;
                Ok(Value::Dynamic {
                    anchor: *anchor,
                    expr: Expr::Input,
                })
            }
            (a, b) => {
                let operand = |v: &Value| match v {
                    Value::Dynamic { anchor, expr } if *anchor == self.anchor => Ok(expr.clone()),
                    Value::Dynamic { .. } => Err(branch()),
                    Value::Const(c) => c.scalar().map(Expr::Const).ok_or_else(|| {
                        format!(
                            "a constant of shape {:?} in an activation; only scalars are supported",
                            c.dims
                        )
                    }),
                    other => Err(not_the_batch(other)),
                };
                Ok(Value::Dynamic {
                    anchor: self.anchor,
                    expr: Expr::Binary(binary, Box::new(operand(a)?), Box::new(operand(b)?)),
                })
            }
        }
    }

    /// `Add` of a constant to a dense layer's raw output: its bias.
    fn add_bias(&mut self, c: &Constant) -> Step {
        let Some(Stage::Dense { weight, bias, .. }) = self.dense.map(|i| &mut self.stages[i])
        else {
            return Err("no dense layer to add a bias to".into());
        };
        let units = weight.ncols();
        let add = c.vector(units).ok_or_else(|| {
            format!(
                "adds a constant of shape {:?} to a layer of {units} units",
                c.dims
            )
        })?;
        *bias = Some(match bias.take() {
            Some(b) => b + &add,
            None => add,
        });
        Ok(())
    }

    /// The current output as a structural node's input: elementwise ops before it become
    /// an activation stage.
    fn consume(&mut self, node: &NodeProto, inputs: &[Option<Value>]) -> Step {
        match first(inputs)? {
            Value::Dynamic { anchor, expr } if anchor == self.anchor => {
                self.finish_activation(&expr, &label(node))
            }
            Value::Dynamic { .. } => Err(branch()),
            other => Err(not_the_batch(&other)),
        }
    }

    fn finish_activation(&mut self, expr: &Expr, at: &str) -> Step {
        self.stages.extend(activation_stage(expr, at)?);
        Ok(())
    }

    /// What the graph output `name` is, once every node is read.
    fn output(&self, name: &str) -> Output {
        let intermediate = || {
            Output::NotComputed(
                "an intermediate value; vecprop computes the last layer's output".into(),
            )
        };
        match self.values.get(name) {
            Some(Value::Dynamic { anchor, expr }) if *anchor == self.anchor => {
                match activation_stage(expr, name) {
                    Ok(_) => Output::Values { expr: expr.clone() },
                    Err(reason) => Output::NotComputed(reason),
                }
            }
            Some(Value::Labels {
                anchor,
                expr,
                classes,
                column,
            }) if *anchor == self.anchor => Output::Labels {
                expr: expr.clone(),
                classes: classes.clone(),
                column: *column,
            },
            Some(Value::Dynamic { .. } | Value::Labels { .. }) => intermediate(),
            Some(Value::Const(_) | Value::Ints(_) | Value::Strings { .. }) => {
                Output::NotComputed("a constant, not computed from the input".into())
            }
            Some(Value::Unread) | None => {
                Output::NotComputed("not computed by a chain of layers from the input".into())
            }
        }
    }

    /// Whether `node` is an op (or a model-local function) vecprop reads at all.
    fn is_known(&self, node: &NodeProto) -> bool {
        let op = node.op_type.as_str();
        if self.functions.contains_key(&(node.domain.as_str(), op)) {
            return true;
        }
        match node.domain.as_str() {
            "" | "ai.onnx" => {
                report::STRUCTURAL_OPS.contains(&op)
                    || Unary::from_op(op, None, "").is_some()
                    || Binary::from_op(op).is_some()
            }
            "ai.onnx.ml" => report::ML_OPS.contains(&op),
            _ => false,
        }
    }

    pub(super) fn advance(&mut self, dense: Option<usize>) -> Value {
        self.anchor += 1;
        self.dense = dense;
        if let Some(Stage::Dense { weight, .. }) = dense.map(|i| &self.stages[i]) {
            self.width = Some(weight.ncols());
        }
        Value::Dynamic {
            anchor: self.anchor,
            expr: Expr::Input,
        }
    }
}

/// The activation stage `expr` computes before `at` (none for the identity), or why it is none.
pub(crate) fn activation_stage(expr: &Expr, at: &str) -> Result<Option<Stage>, String> {
    match expr.recognise() {
        Some(Activation::Linear) => Ok(None),
        Some(kind) => Ok(Some(Stage::Activation {
            node: at.to_string(),
            kind,
        })),
        None => Err(format!(
            "the elementwise ops before `{at}` compute no activation vecprop knows \
             (relu, sigmoid, tanh, gelu, gelu_tanh, silu, leaky_relu)"
        )),
    }
}

/// Why a value that is not the batch cannot be used where the batch is needed.
fn not_the_batch(value: &Value) -> String {
    match value {
        Value::Const(_) => "its first input is a constant, not the batch".into(),
        Value::Ints(ints) => format!(
            "it computes with [{}], a shape computed from the batch's dynamic shape",
            ints.listing()
        ),
        Value::Labels { .. } => "it computes with class labels, which end the graph".into(),
        Value::Strings { name } => format!("its input `{name}` is a tensor of strings"),
        _ => "its input is not the batch".into(),
    }
}

pub(super) fn branch() -> String {
    "it uses a value from before the previous layer; vecprop reads chains of layers, \
     without branches or skip connections"
        .into()
}

pub(super) fn label(node: &NodeProto) -> String {
    if node.name.is_empty() {
        node.output.first().cloned().unwrap_or_default()
    } else {
        node.name.clone()
    }
}

/// A layer's name: its module's (`model.1` from the weight `model.1.weight`) where the
/// weight has one, else the node's.
fn module_name(node: &NodeProto) -> String {
    match node.input.get(1).and_then(|w| w.strip_suffix(".weight")) {
        Some(module) if !module.contains("::") && !module.is_empty() => module.to_string(),
        _ => label(node),
    }
}

pub(super) fn first(inputs: &[Option<Value>]) -> Result<Value, String> {
    inputs
        .first()
        .cloned()
        .flatten()
        .ok_or_else(|| "it has no input".to_string())
}

pub(super) fn constant(
    inputs: &[Option<Value>],
    index: usize,
    what: &str,
) -> Result<Constant, String> {
    match inputs.get(index) {
        Some(Some(Value::Const(c))) => Ok(c.clone()),
        Some(Some(Value::Dynamic { .. })) => Err(format!(
            "its input {what} is computed from the batch; vecprop needs it to be a constant weight"
        )),
        _ => Err(format!("its input {what} is missing")),
    }
}
