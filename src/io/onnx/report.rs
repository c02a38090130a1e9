//! The error for a graph vecprop cannot run: every unsupported op type with its count and
//! first node, then the nodes of ops it reads but cannot use where they are, then what it
//! does run.

use std::path::Path;

use super::proto::NodeProto;
use crate::error::Error;

/// The ai.onnx ops read besides the elementwise ones (see `Unary` and `Binary`).
pub(crate) const STRUCTURAL_OPS: [&str; 19] = [
    "Constant",
    "Identity",
    "Dropout",
    "CastLike",
    "Cast",
    "Flatten",
    "Transpose",
    "Gemm",
    "MatMul",
    "BatchNormalization",
    "Softmax",
    "Shape",
    "Gather",
    "Slice",
    "Concat",
    "Unsqueeze",
    "Squeeze",
    "Reshape",
    "ArgMax",
];

/// The ai.onnx.ml ops read: a classifier's label head as skl2onnx writes it.
pub(crate) const ML_OPS: [&str; 2] = ["ArrayFeatureExtractor", "ZipMap"];

/// The reason recorded for an op type vecprop does not read.
pub(crate) const UNSUPPORTED_OP: &str = "unsupported op";

/// What vecprop runs, for the end of the message.
const RUNS: &str = "vecprop runs chains of dense layers (Gemm, or MatMul + Add) with \
    BatchNormalization folded in, each followed by one activation (Relu, Sigmoid, Tanh, \
    Softmax, Gelu, LeakyRelu, or elementwise ops computing relu, sigmoid, tanh, gelu, \
    gelu_tanh, silu or leaky_relu), and a classifier's label head (ArgMax, \
    ArrayFeatureExtractor, ZipMap); Identity, Dropout, Flatten, Cast and Reshape where they \
    keep the batch 2-D; and shape arithmetic (Shape, Gather, Slice, Concat, Unsqueeze, \
    Squeeze, Mod, Div, ...) that folds to constants";

/// A node that could not be read.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) position: usize,
    pub(crate) node: String,
    /// Its op type, prefixed with its domain when that is not ONNX's own.
    pub(crate) op_type: String,
    /// Whether vecprop reads this op type at all (then `reason` says why not here).
    pub(crate) known: bool,
    pub(crate) reason: String,
}

/// The node's op type as messages name it: `Conv`, or `com.microsoft.FusedGemm`.
pub(crate) fn op_name(node: &NodeProto) -> String {
    match node.domain.as_str() {
        "" | "ai.onnx" => node.op_type.clone(),
        domain => format!("{domain}.{}", node.op_type),
    }
}

/// Most misused nodes named one by one.
const NODES_NAMED: usize = 3;

/// One error for every failure of a walk (which has at least one).
pub(crate) fn error(path: &Path, failures: Vec<Failure>) -> Error {
    let unknown: Vec<&Failure> = failures.iter().filter(|f| !f.known).collect();
    if let ([], [only]) = (&unknown[..], &failures[..]) {
        return Error::UnsupportedOnnxNode {
            path: path.to_path_buf(),
            node: only.node.clone(),
            op_type: only.op_type.clone(),
            position: only.position,
            reason: only.reason.clone(),
        };
    }
    let mut parts = Vec::new();
    let mut types: Vec<(&str, usize, &str)> = Vec::new();
    for failure in &unknown {
        match types.iter_mut().find(|(op, _, _)| *op == failure.op_type) {
            Some((_, count, _)) => *count += 1,
            None => types.push((&failure.op_type, 1, &failure.node)),
        }
    }
    if !types.is_empty() {
        let listed: Vec<String> = types
            .iter()
            .map(|(op, count, first)| {
                let nodes = if *count == 1 { "node" } else { "nodes" };
                format!("{op} ({count} {nodes}, first `{first}`)")
            })
            .collect();
        parts.push(format!("unsupported ops: {}", listed.join(", ")));
    }
    let misused: Vec<&Failure> = failures.iter().filter(|f| f.known).collect();
    if !misused.is_empty() {
        let mut listed: Vec<String> = misused
            .iter()
            .take(NODES_NAMED)
            .map(|f| {
                format!(
                    "node `{}` (op {}, position {}): {}",
                    f.node, f.op_type, f.position, f.reason
                )
            })
            .collect();
        if misused.len() > NODES_NAMED {
            listed.push(format!("and {} more", misused.len() - NODES_NAMED));
        }
        parts.push(listed.join("; "));
    }
    Error::UnsupportedOnnxGraph {
        path: path.to_path_buf(),
        listing: format!("{}. {RUNS}", parts.join("; ")),
    }
}
