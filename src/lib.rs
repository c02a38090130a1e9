//! # vecprop
//!
//! Batched forward propagation of dense neural-network layers: `Z = A_in · W + B`, then
//! `A_out = g(Z)`, one matrix product per layer for a whole batch of examples (one per
//! row). It runs on NVIDIA GPUs through cuBLAS and vecprop's own fused CUDA kernels (feature
//! `cuda`), and on the CPU through ndarray, which is what builds and tests use without a GPU.
//!
//! ```
//! use ndarray::array;
//! use vecprop::{Activation, Device, Network, PlanOptions};
//!
//! // The worked example: one layer, two inputs, three sigmoid units.
//! let network = Network::builder(2)
//!     .layer_with(
//!         array![[1.0, -3.0, 5.0], [-2.0, 4.0, -6.0]],
//!         array![-1.0, 1.0, 2.0],
//!         Activation::Sigmoid,
//!     )
//!     .build()?;
//! let plan = network.compile(&Device::cpu(), PlanOptions::default())?;
//! let output = plan.forward(array![[200.0, 17.0]].view())?;
//! assert_eq!(output.mapv(f32::round), array![[1.0, 0.0, 1.0]]);
//! # Ok::<(), vecprop::Error>(())
//! ```

/// The `half` crate behind vecprop's f16 and bf16 types.
pub use half;
/// The ndarray version vecprop's API speaks (batches are `ndarray::Array2<f32>`).
pub use ndarray;

pub mod activation;
pub mod bench;
pub mod device;
pub mod dtype;
pub mod error;
pub mod execution;
pub mod fs;
pub mod graph;
pub mod io;
pub mod plan;
pub mod size;
pub mod stats;
pub mod tensor;

pub use activation::Activation;
pub use device::Device;
pub use dtype::{DType, Element};
pub use error::{Error, Result};
pub use execution::{PlanOptions, Strategy, StreamBatch, TuningCache};
pub use graph::dense::Dense;
pub use graph::network::{Network, NetworkBuilder};
pub use plan::Plan;
