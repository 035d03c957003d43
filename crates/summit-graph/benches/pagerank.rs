//! Personalized PageRank on the InceptionV1-sized fixture graph (9 layers of
//! 256..1024 channels, 5,484 vertices, ~196k edges): PageRank alone, building
//! the full graph, and the whole attribution graph of one class.
//!
//! `CARGO_TARGET_DIR=/work/targets/graph cargo bench -p summit-graph --bench pagerank`
//! Compare with `python3 crates/summit-graph/benches/pagerank_networkx.py`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

include!("pagerank_impl.rs");
