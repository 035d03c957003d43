//! Personalized PageRank on the InceptionV1-sized graph: the workspace copy of
//! summit-graph's criterion bench (same body). Needs in the root Cargo.toml:
//! `[[bench]] name = "pagerank" harness = false` and the dev-dependencies
//! `summit-graph`, `serde`, `flate2` (workspace versions).
//!
//! `cargo bench --bench pagerank`; the same bench without building burn:
//! `cargo bench -p summit-graph --bench pagerank`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

include!("../crates/summit-graph/benches/pagerank_impl.rs");
