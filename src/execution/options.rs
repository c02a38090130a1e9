//! What a plan asks of a device: the kernel strategy and the options a network is compiled
//! with.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::execution::tuning::TuningCache;

/// How a plan computes each dense layer on a GPU. The CPU has one way and ignores this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// Time the candidates for each layer's shape on first use and keep the fastest.
    #[default]
    Auto,
    /// cuBLAS GEMM, then vecprop's bias + activation kernel.
    Cublas,
    /// cuBLASLt GEMM with its bias epilogue, then vecprop's activation kernel.
    CublasLt,
    /// vecprop's fused GEMM + bias + activation kernel.
    Fused,
}

impl Strategy {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Auto => "auto",
            Strategy::Cublas => "cublas",
            Strategy::CublasLt => "cublaslt",
            Strategy::Fused => "fused",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        [
            Strategy::Auto,
            Strategy::Cublas,
            Strategy::CublasLt,
            Strategy::Fused,
        ]
        .into_iter()
        .find(|k| k.name() == s.to_ascii_lowercase())
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "unknown kernel strategy `{s}` (expected auto, cublas, cublaslt or fused)"
            ))
        })
    }
}

/// What [`Network::compile`](crate::Network::compile) needs to know besides the device.
///
/// Two options are equal when their fields are, the tuning caches by identity.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// The most rows one pass computes; larger batches run in chunks of this size.
    pub max_batch: usize,
    /// The precision to compute in; `None` takes the network's own.
    pub dtype: Option<DType>,
    /// How GPU layers are computed.
    pub strategy: Strategy,
    /// Allow TF32 tensor-core math for f32 GEMMs on the GPU (about 1e-3 relative error).
    pub allow_tf32: bool,
    /// On a GPU, capture each batch size's whole forward pass (copies in, every layer,
    /// copy out) as a CUDA Graph on first use and replay it afterwards, which removes most
    /// of the launch overhead of small batches. See [`Plan::graph_status`](crate::Plan::graph_status).
    pub cuda_graphs: bool,
    /// Where `Strategy::Auto` looks up and records its measurements besides the device's
    /// own in-memory cache, typically a file beside the model
    /// ([`TuningCache::with_file`]); call [`TuningCache::save`] after compiling.
    pub tuning: Option<Arc<TuningCache>>,
}

impl PartialEq for PlanOptions {
    fn eq(&self, other: &Self) -> bool {
        let same_cache = match (&self.tuning, &other.tuning) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        self.max_batch == other.max_batch
            && self.dtype == other.dtype
            && self.strategy == other.strategy
            && self.allow_tf32 == other.allow_tf32
            && self.cuda_graphs == other.cuda_graphs
            && same_cache
    }
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            max_batch: 4096,
            dtype: None,
            strategy: Strategy::Auto,
            allow_tf32: false,
            cuda_graphs: false,
            tuning: None,
        }
    }
}

impl PlanOptions {
    /// Default options with another maximum batch size.
    pub fn with_max_batch(max_batch: usize) -> Self {
        PlanOptions {
            max_batch,
            ..Default::default()
        }
    }
}
