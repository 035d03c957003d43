//! # summit-graph
//!
//! Attribution graphs of Summit (SPEC §3) and the class overview (SPEC §4),
//! on plain Rust data: no tensors, no files.
//!
//! * [`FullGraph`]: every (summary layer, channel) of one class minus the
//!   excluded channels, with the merged influence edges between consecutive
//!   layers (symmetric CSR, built once per class).
//! * [`personalized_pagerank`]: NetworkX's `pagerank` semantics in f64
//!   (checked against NetworkX to 1e-9 per vertex).
//! * [`select_vertices`]: the cumulative-share rule per layer or global,
//!   with the relaxation rule; [`AttributionGraph`] assembles the result and
//!   [`attribution_graph`] does it all for one class.
//! * [`compare`]: shared and distinct vertices and edges of two classes'
//!   attribution graphs, with intersection, union and difference views.
//! * [`cosine_similarity`], [`embed_layers`] (UMAP with cosine metric, each
//!   layer started from the previous one's layout, or PCA): the class overview.
//! * [`non_semantic_channels`]: channels among the top channels of nearly
//!   every class, reported and turned into exclusion lists.
//!
//! ```
//! use summit_graph::{attribution_graph, ClassAggregate, Edge, GraphParams, LayerInfo};
//! let layers = vec![LayerInfo::new("mixed3a", 4), LayerInfo::new("mixed3b", 3)];
//! let class = ClassAggregate {
//!     counts: vec![vec![10, 2, 0, 1], vec![0, 6, 1]],
//!     edges: vec![vec![], vec![Edge::new(0, 1, 7.0), Edge::new(1, 1, 1.0), Edge::new(3, 2, 2.0)]],
//!     raw_influences: vec![],
//! };
//! let ag = attribution_graph(&layers, &class, &[], &GraphParams::paper()).unwrap();
//! assert_eq!(ag.layers.len(), 2);
//! ```
#![warn(missing_docs)]

mod attribution;
mod compare;
mod error;
mod full;
mod motifs;
mod nonsemantic;
mod overview;
mod pagerank;
mod select;
mod types;
mod umap;

pub use attribution::{
    ATTR_TOP, AgNode, AttributionGraph, AttributionLayer, AttributionVertex, attribution_graph,
};
pub use compare::{
    ComparedEdge, ComparedLayer, ComparedVertex, ComparisonView, GraphComparison, Membership, Side,
    VertexStats, ViewLayer, compare,
};
pub use error::{GraphError, Result};
pub use full::FullGraph;
pub use motifs::{Motif, MotifKind, MotifParams, MotifSet, graph_contains, mine_motifs};
pub use nonsemantic::{
    NonSemanticChannel, NonSemanticParams, exclusion_lists, non_semantic_channels,
};
pub use overview::{Embedding, cosine_similarity, embed_layers, pca_2d};
pub use pagerank::{PageRank, PageRankParams, personalized_pagerank};
pub use select::{GraphParams, Selection, VertexSelection, select_vertices, share_threshold};
pub use types::{ClassAggregate, Edge, LayerInfo};
pub use umap::{UmapParams, find_ab_params, umap_2d};
