//! # summit-core
//!
//! The one dependency a Summit user needs: the pipeline that wires models, datasets,
//! aggregation, graphs and export together, and re-exports of the crates it builds on.
#![warn(missing_docs)]

pub use summit_activation as activation;
pub use summit_data as data;
pub use summit_export as export;
pub use summit_graph as graph;
pub use summit_influence as influence;
pub use summit_model as model;
