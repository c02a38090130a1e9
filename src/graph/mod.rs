//! The layer graph: dense layers, networks built from them, and plans compiled from networks.

pub mod batchnorm;
pub mod dense;
pub mod network;
pub mod plan;
pub mod streaming;
mod summary;
pub mod tuning;
