//! Plain input types: what the pipeline hands to summit-graph for one class.

use serde::{Deserialize, Serialize};

/// One summary layer, in order from the first (closest to the input) to the last.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// Layer name, e.g. `mixed3a`.
    pub name: String,
    /// Number of channels `C_l`.
    pub channels: usize,
}

impl LayerInfo {
    /// A layer with the given name and channel count.
    pub fn new(name: impl Into<String>, channels: usize) -> Self {
        Self {
            name: name.into(),
            channels,
        }
    }
}

/// One merged influence edge between consecutive summary layers:
/// from channel `from` of layer `l - 1` to channel `to` of layer `l`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    /// Channel in the lower layer `l - 1`.
    pub from: u32,
    /// Channel in the upper layer `l`.
    pub to: u32,
    /// Merged influence count `I[class, to, from]` (finite, `>= 0`).
    pub weight: f64,
}

impl Edge {
    /// An edge `from -> to` with `weight`.
    pub fn new(from: u32, to: u32, weight: f64) -> Self {
        Self { from, to, weight }
    }
}

/// Everything summit-graph needs about one class (SPEC §3).
///
/// * `counts[l][j] = A_l[class, j]`, one row per summary layer, each of the
///   layer's channel count.
/// * `edges[l]` for `l >= 1`: the merged influence edges from layer `l - 1`
///   into layer `l`. `edges` has one entry per layer and `edges[0]` is empty.
///   An edge listed twice has its weights summed; an edge touching an excluded
///   channel is dropped; zero-weight edges are kept as edges (they carry no
///   PageRank but count as connections, as in NetworkX).
/// * `raw_influences[l][j]`: the raw influence counts `(lower channel, count)`
///   into channel `j` of layer `l` (for layer 0 from the stem), used for the
///   top-3 `attr` of each selected vertex. May be empty (no attributions at
///   all), and any layer may be empty (no attributions in that layer).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassAggregate {
    /// `A_l[class, :]` per layer.
    pub counts: Vec<Vec<u32>>,
    /// Merged influence edges into each layer (`edges[0]` empty).
    pub edges: Vec<Vec<Edge>>,
    /// Raw influences per layer, per channel: `(lower channel, count)`.
    pub raw_influences: Vec<Vec<Vec<(u32, f64)>>>,
}
