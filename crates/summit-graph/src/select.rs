//! Vertex selection by cumulative PageRank share (SPEC §3.4) and the
//! relaxation rule (SPEC §3.5).

use serde::{Deserialize, Serialize};

use crate::error::{GraphError, Result};
use crate::full::FullGraph;
use crate::pagerank::PageRankParams;

/// How vertices are selected from their PageRank values.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Selection {
    /// One threshold per layer from the layer's own values (the paper).
    PerLayer {
        /// Cumulative share of the layer's PageRank total, e.g. 0.075.
        share: f64,
    },
    /// One threshold over all vertices of all layers.
    Global {
        /// Cumulative share of the total PageRank, e.g. 0.075.
        share: f64,
    },
}

impl Selection {
    fn share(&self) -> f64 {
        match *self {
            Selection::PerLayer { share } | Selection::Global { share } => share,
        }
    }
}

/// All parameters of attribution-graph extraction. `Default` is the `paper`
/// preset: damping 0.85, at most 100 iterations, tolerance 1e-6 per vertex,
/// 7.5 % per layer, no relaxation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphParams {
    /// Damping factor. Default 0.85.
    pub alpha: f64,
    /// Maximum power iterations. Default 100.
    pub max_iter: usize,
    /// Tolerance per vertex (the L1 stopping bound is `V` times this). Default 1e-6.
    pub tol_per_vertex: f64,
    /// The selection rule. Default `PerLayer { share: 0.075 }`.
    pub selection: Selection,
    /// Whether to apply the relaxation rule. Default `false` (`summit2019`: `true`).
    pub relax: bool,
    /// How much a relaxation round raises a share. Default 0.005.
    pub relax_step: f64,
}

impl Default for GraphParams {
    fn default() -> Self {
        Self::paper()
    }
}

impl GraphParams {
    /// The `paper` preset (SPEC §6): 7.5 % per layer, no relaxation.
    pub fn paper() -> Self {
        Self {
            alpha: 0.85,
            max_iter: 100,
            tol_per_vertex: 1e-6,
            selection: Selection::PerLayer { share: 0.075 },
            relax: false,
            relax_step: 0.005,
        }
    }

    /// The `summit2019` preset (SPEC §6): 7.5 % per layer with relaxation.
    pub fn summit2019() -> Self {
        Self {
            relax: true,
            ..Self::paper()
        }
    }

    /// The PageRank part of the parameters.
    pub fn pagerank(&self) -> PageRankParams {
        PageRankParams {
            alpha: self.alpha,
            max_iter: self.max_iter,
            tol_per_vertex: self.tol_per_vertex,
        }
    }

    fn check(&self) -> Result<()> {
        let share = self.selection.share();
        if !(share.is_finite() && share >= 0.0) {
            return Err(GraphError::InvalidParameter {
                name: "selection.share",
                value: share.to_string(),
                reason: "the share must be finite and >= 0",
            });
        }
        if self.relax && !(self.relax_step.is_finite() && self.relax_step > 0.0) {
            return Err(GraphError::InvalidParameter {
                name: "relax_step",
                value: self.relax_step.to_string(),
                reason: "the relaxation step must be finite and > 0",
            });
        }
        Ok(())
    }
}

/// The outcome of [`select_vertices`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VertexSelection {
    /// Kept channels per layer, ascending.
    pub kept: Vec<Vec<u32>>,
    /// The final share per layer (after relaxation; all equal for `Global`).
    pub shares: Vec<f64>,
    /// The threshold per layer: a vertex is kept iff its PageRank is strictly
    /// greater. `None` when the running share never reached the share, so
    /// every vertex of the layer is kept.
    pub thresholds: Vec<Option<f64>>,
    /// Relaxation rounds made (0 without relaxation).
    pub relaxation_rounds: usize,
    /// Layers (index >= 1) in which no kept vertex has an edge to a kept
    /// vertex of the layer below, after the last round. With relaxation this
    /// is non-empty only when relaxation gave up: every share involved had
    /// reached 1 (all vertices kept) and the layer still has no connection.
    pub unconnected_layers: Vec<usize>,
}

/// The threshold of SPEC §3.4 on values sorted descending: take values while
/// the running share of their total is `< share` (accumulating `value /
/// total`, as the original did); the threshold is the first value not taken.
/// `None` when every value was taken. When the total is 0 the threshold is the
/// largest value, so nothing is kept.
pub fn share_threshold(sorted_desc: &[f64], share: f64) -> Option<f64> {
    let total: f64 = sorted_desc.iter().sum();
    let first = *sorted_desc.first()?;
    if total == 0.0 {
        return Some(first);
    }
    let mut mass = 0.0;
    let mut taken = 0;
    while mass < share {
        let v = *sorted_desc.get(taken)?;
        mass += v / total;
        taken += 1;
    }
    sorted_desc.get(taken).copied()
}

fn sorted_desc(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(|a, b| b.total_cmp(a));
    v
}

/// Selects vertices from PageRank values (SPEC §3.4, and §3.5 when
/// `params.relax`). `pagerank` holds one value per vertex of `graph`, e.g.
/// [`crate::PageRank::values`]. PageRank is not re-run during relaxation.
///
/// Relaxation: while some layer `l >= 1` keeps no vertex with an edge to a
/// kept vertex of layer `l - 1`, raise the shares of `l` and `l - 1` by
/// `relax_step` for each such layer (a layer may be raised twice in a round,
/// as in the original) and select again; with `Global` selection the single
/// share is raised. It stops when every layer is connected, or when every
/// share involved has reached 1 (see [`VertexSelection::unconnected_layers`]).
pub fn select_vertices(
    graph: &FullGraph,
    pagerank: &[f64],
    params: &GraphParams,
) -> Result<VertexSelection> {
    params.check()?;
    let n = graph.num_vertices();
    if pagerank.len() != n {
        return Err(GraphError::VertexCount {
            what: "pagerank",
            expected: n,
            got: pagerank.len(),
        });
    }
    for (v, &x) in pagerank.iter().enumerate() {
        if !(x.is_finite() && x >= 0.0) {
            return Err(GraphError::InvalidValue {
                what: "pagerank",
                vertex: v,
                layer: graph.layer_of(v),
                channel: graph.channel_of(v),
                value: x,
            });
        }
    }
    let nl = graph.layers().len();
    let global = matches!(params.selection, Selection::Global { .. });
    let sorted: Vec<Vec<f64>> = if global {
        vec![sorted_desc(pagerank.iter().copied())]
    } else {
        (0..nl)
            .map(|l| sorted_desc(pagerank[graph.layer_vertices(l)].iter().copied()))
            .collect()
    };
    let mut shares = vec![params.selection.share(); nl];
    let mut kept_mask = vec![false; n];
    let mut rounds = 0;
    loop {
        let thresholds: Vec<Option<f64>> = if global {
            vec![share_threshold(&sorted[0], shares[0]); nl]
        } else {
            (0..nl)
                .map(|l| share_threshold(&sorted[l], shares[l]))
                .collect()
        };
        for (l, t) in thresholds.iter().enumerate() {
            for v in graph.layer_vertices(l) {
                kept_mask[v] = t.is_none_or(|t| pagerank[v] > t);
            }
        }
        let unconnected: Vec<usize> = (1..nl)
            .filter(|&l| !layer_connected(graph, &kept_mask, l))
            .collect();
        let done = || VertexSelection {
            kept: (0..nl)
                .map(|l| {
                    graph
                        .layer_vertices(l)
                        .filter(|&v| kept_mask[v])
                        .map(|v| graph.channel_of(v))
                        .collect()
                })
                .collect(),
            shares: shares.clone(),
            thresholds: thresholds.clone(),
            relaxation_rounds: rounds,
            unconnected_layers: unconnected.clone(),
        };
        if !params.relax || unconnected.is_empty() {
            return Ok(done());
        }
        if global {
            if shares[0] >= 1.0 {
                return Ok(done());
            }
            for s in shares.iter_mut() {
                *s += params.relax_step;
            }
        } else {
            if unconnected
                .iter()
                .all(|&l| shares[l] >= 1.0 && shares[l - 1] >= 1.0)
            {
                return Ok(done());
            }
            let mut new = shares.clone();
            for &l in &unconnected {
                new[l - 1] += params.relax_step;
                new[l] += params.relax_step;
            }
            shares = new;
        }
        rounds += 1;
    }
}

/// Whether some kept vertex of layer `l` has an edge to a kept vertex of `l - 1`.
fn layer_connected(graph: &FullGraph, kept: &[bool], l: usize) -> bool {
    let below = graph.layer_vertices(l - 1);
    graph.layer_vertices(l).any(|v| {
        kept[v]
            && graph
                .neighbors(v)
                .take_while(|&(u, _)| u < below.end)
                .any(|(u, _)| u >= below.start && kept[u])
    })
}
