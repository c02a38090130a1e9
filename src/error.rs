//! The one error type of vecprop.
//!
//! Every fallible call in the library returns [`Result`]. Each variant carries what a
//! person needs to fix the problem: the file, the layer, both shapes.

use std::path::PathBuf;

/// Everything that can go wrong in vecprop.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// A model file is not a safetensors file, or it is truncated or corrupt.
    #[error("{path} is not a valid safetensors model: {reason}")]
    InvalidModelFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A file that is not a model vecprop reads (a pickle, a PyTorch checkpoint, a zip).
    #[error("{path} cannot be used as a model: {reason}")]
    UnsupportedModelFile {
        /// The file.
        path: PathBuf,
        /// What the file is, and what to export instead.
        reason: String,
    },

    /// An ONNX file that cannot be parsed, or whose tensors are truncated or inconsistent.
    #[error("{path} is not a valid ONNX model: {reason}")]
    InvalidOnnx {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An ONNX node that vecprop cannot map onto dense layers.
    #[error(
        "{path}: ONNX node `{node}` (op {op_type}, position {position} in the graph): {reason}"
    )]
    UnsupportedOnnxNode {
        /// The file.
        path: PathBuf,
        /// The node's name (or its first output when it has none).
        node: String,
        /// Its operator, e.g. `Conv`.
        op_type: String,
        /// Its index among the graph's nodes.
        position: usize,
        /// Why it cannot be read.
        reason: String,
    },

    /// An ONNX graph with several nodes vecprop cannot map onto dense layers, or ops it does
    /// not run: each unsupported op type with its count and first node, the other nodes it
    /// cannot use, and the layer kinds it runs.
    #[error("{path}: vecprop cannot run this ONNX graph: {listing}")]
    UnsupportedOnnxGraph {
        /// The file.
        path: PathBuf,
        /// The unsupported op types and nodes, and what vecprop runs.
        listing: String,
    },

    /// A model file holds no dense layer at all.
    #[error("{path} holds no dense layers (expected tensors named `<prefix>.weight` and `<prefix>.bias`)")]
    NoLayers {
        /// The file.
        path: PathBuf,
    },

    /// A layer's weight tensor has no matching bias tensor (or the other way round).
    #[error("layer `{layer}` has `{layer}.{present}` but no `{layer}.{missing}`")]
    UnpairedTensor {
        /// The layer prefix.
        layer: String,
        /// The tensor that is there (`weight` or `bias`).
        present: &'static str,
        /// The tensor that is missing.
        missing: &'static str,
    },

    /// A tensor has a shape that a dense layer cannot use.
    #[error("layer `{layer}`: {reason}")]
    BadTensor {
        /// The layer.
        layer: String,
        /// What is wrong with the tensor.
        reason: String,
    },

    /// Two consecutive layers do not chain: the output width of one is not the input width of the next.
    #[error(
        "layer `{layer}` takes {expected_inputs} inputs (weight shape {weight_shape:?}, inputs x units), \
         but it receives {actual_inputs} from {previous}"
    )]
    WidthMismatch {
        /// The layer that cannot accept its input.
        layer: String,
        /// Its weight shape, (inputs, units).
        weight_shape: (usize, usize),
        /// The input width its weights expect.
        expected_inputs: usize,
        /// The width it actually receives.
        actual_inputs: usize,
        /// What produces that input: the network input or the previous layer.
        previous: String,
    },

    /// An activation name that vecprop does not know.
    #[error(
        "unknown activation `{0}` (expected one of: sigmoid, relu, tanh, linear, softmax, gelu, \
         gelu_tanh, silu, leaky_relu[:slope])"
    )]
    UnknownActivation(String),

    /// A known activation with a parameter it cannot take, e.g. `leaky_relu:abc` or `relu:0.2`.
    #[error("invalid activation `{spec}`: {reason}")]
    InvalidActivation {
        /// The entry as written.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The number of activations does not match the number of dense layers.
    #[error(
        "the model has {layers} dense layers but {given} activations were given ({source_of_list})"
    )]
    ActivationCount {
        /// Dense layers in the model.
        layers: usize,
        /// Activations in the list.
        given: usize,
        /// Where the list came from (file metadata or the command line).
        source_of_list: String,
    },

    /// A model file names no activations and none were given.
    #[error(
        "{path} has no `activations` metadata entry; pass them with --activations (e.g. sigmoid,relu,linear)"
    )]
    MissingActivations {
        /// The file.
        path: PathBuf,
    },

    /// An input batch of the wrong width for the network.
    #[error("input has {actual} columns but the network expects {expected} (one example per row)")]
    InputWidth {
        /// The network's input width.
        expected: usize,
        /// The batch's width.
        actual: usize,
    },

    /// An input array that is not two-dimensional.
    #[error("input must be a 2-D array (rows = examples), but it has {ndim} dimensions with shape {shape:?}")]
    InputRank {
        /// Its number of dimensions.
        ndim: usize,
        /// Its shape.
        shape: Vec<usize>,
    },

    /// An element type vecprop cannot read or compute in.
    #[error("unsupported dtype `{dtype}` in {context} (supported: {supported})")]
    UnsupportedDType {
        /// The dtype found.
        dtype: String,
        /// Where it was found.
        context: String,
        /// What would have been accepted.
        supported: &'static str,
    },

    /// A batch with no rows.
    #[error("empty batch: the input has no rows")]
    EmptyBatch,

    /// A .npy file that cannot be parsed.
    #[error("{path} is not a valid .npy file: {reason}")]
    InvalidNpy {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An argument outside what an API accepts.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A CUDA device was asked for, but this build has no CUDA support.
    #[error("vecprop was built without CUDA support; rebuild with `cargo build --release --features cuda`")]
    CudaNotBuilt,

    /// The CUDA driver library or a GPU could not be found.
    #[error("no usable CUDA device: {0}")]
    CudaUnavailable(String),

    /// A plan does not fit in the GPU's free memory; checked before allocating.
    #[error(
        "out of GPU memory: the plan needs {} at batch {batch}, {} are free; lower --batch-size",
        crate::size::human_bytes(*needed),
        crate::size::human_bytes(*free)
    )]
    OutOfGpuMemory {
        /// Device bytes the plan needs.
        needed: u64,
        /// The batch size (rows per pass) it needs them for.
        batch: usize,
        /// Device bytes the driver reports free.
        free: u64,
    },

    /// A CUDA driver, cuBLAS or kernel error.
    #[error("CUDA error during {context}: {message}")]
    Cuda {
        /// What vecprop was doing.
        context: String,
        /// The driver's or library's message.
        message: String,
    },
}

/// `Result` with vecprop's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
