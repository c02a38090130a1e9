//! What a plan asks of a device: the kernel strategy and the options a network is compiled
//! with.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::execution::tuning::TuningCache;

/// How a plan computes each dense layer on a GPU. The CPU computes every layer one way and
/// refuses any strategy but `Auto`.
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
    /// One cuBLASLt call with the bias and activation in its epilogue (relu, linear,
    /// gelu_tanh); other layers as under `Fused`.
    CublasLtFused,
    /// vecprop's narrow-layer kernel (weights resident on chip, up to 256 units); wider
    /// layers as under `Fused`.
    Narrow,
    /// vecprop's split-K kernel for small batches (weights spread over every SM).
    SplitK,
    /// vecprop's narrow-layer kernel on the tensor cores (f16/bf16, up to 128 units); other
    /// layers as under `Fused`.
    NarrowMma,
    /// vecprop's whole-network kernel: every layer in one launch when the network fits on
    /// chip (up to 8 layers of at most 256 units); otherwise as under `Fused`.
    Network,
}

impl Strategy {
    /// Every strategy, as the command line lists them.
    pub const ALL: [Strategy; 9] = [
        Strategy::Auto,
        Strategy::Cublas,
        Strategy::CublasLt,
        Strategy::Fused,
        Strategy::CublasLtFused,
        Strategy::Narrow,
        Strategy::SplitK,
        Strategy::Network,
        Strategy::NarrowMma,
    ];
}

impl Strategy {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Auto => "auto",
            Strategy::Cublas => "cublas",
            Strategy::CublasLt => "cublaslt",
            Strategy::Fused => "fused",
            Strategy::CublasLtFused => "cublaslt_fused",
            Strategy::Narrow => "narrow",
            Strategy::SplitK => "splitk",
            Strategy::NarrowMma => "narrow_mma",
            Strategy::Network => "network",
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
        Strategy::ALL
            .into_iter()
            .find(|k| k.name() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                let names: Vec<&str> = Strategy::ALL.iter().map(|k| k.name()).collect();
                Error::InvalidArgument(format!(
                    "unknown kernel strategy `{s}` (expected one of {})",
                    names.join(", ")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_strategy_parses_from_its_name() {
        for strategy in Strategy::ALL {
            assert_eq!(strategy.name().parse::<Strategy>().unwrap(), strategy);
        }
        let err = "cublas_v2".parse::<Strategy>().unwrap_err().to_string();
        assert!(err.contains("narrow") && err.contains("network"), "{err}");
    }
}
