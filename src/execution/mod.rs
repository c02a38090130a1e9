//! The vocabulary that devices implement and plans speak: compile options and kernel
//! strategies, the streaming pipeline, and the tuning cache that remembers `auto`'s choices.
//!
//! It sits beneath both [`crate::device`] and [`crate::plan`], so that data flows one way:
//! model ([`crate::graph`]) → plan → device executors → kernels.

pub mod options;
pub mod pipeline;
pub mod tuning;

pub use options::{PlanOptions, Strategy};
pub use pipeline::StreamBatch;
pub use tuning::TuningCache;
