//! The model: dense layers, networks built from them, and their summaries. It describes a
//! network and imports nothing that executes one ([`crate::plan`] compiles it for a device).

pub mod batchnorm;
pub mod dense;
pub mod label_head;
pub mod network;
pub(crate) mod summary;
