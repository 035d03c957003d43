//! Personalized PageRank with NetworkX semantics (SPEC §3.3).

use serde::{Deserialize, Serialize};

use crate::error::{GraphError, Result};
use crate::full::FullGraph;

/// Parameters of the power iteration.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageRankParams {
    /// Damping factor (`alpha` in NetworkX), in `[0, 1]`. Default 0.85.
    pub alpha: f64,
    /// Maximum number of power iterations. Default 100.
    pub max_iter: usize,
    /// Tolerance per vertex: the iteration stops when the L1 change between
    /// two iterates is below `V * tol_per_vertex`. Default 1e-6.
    pub tol_per_vertex: f64,
}

impl Default for PageRankParams {
    fn default() -> Self {
        Self {
            alpha: 0.85,
            max_iter: 100,
            tol_per_vertex: 1e-6,
        }
    }
}

/// The result of [`personalized_pagerank`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageRank {
    /// PageRank per vertex of the [`FullGraph`] (vertex ids as the graph numbers them).
    pub values: Vec<f64>,
    /// Power iterations made.
    pub iterations: usize,
    /// Whether the L1 change fell below `V * tol_per_vertex` within
    /// `max_iter` iterations. NetworkX raises `PowerIterationFailedConvergence`
    /// instead; we return the last iterate with `converged = false` so the
    /// caller decides (the pipeline reports it).
    pub converged: bool,
}

impl PageRank {
    /// The PageRank of `(layer, channel)` in `graph`, or `None` if the
    /// channel has no vertex.
    pub fn get(&self, graph: &FullGraph, layer: usize, channel: u32) -> Option<f64> {
        graph
            .vertex(layer, channel)
            .and_then(|v| self.values.get(v).copied())
    }
}

fn check_params(p: &PageRankParams) -> Result<()> {
    if !(0.0..=1.0).contains(&p.alpha) {
        return Err(GraphError::InvalidParameter {
            name: "alpha",
            value: p.alpha.to_string(),
            reason: "the damping factor must lie in [0, 1]",
        });
    }
    if !(p.tol_per_vertex.is_finite() && p.tol_per_vertex >= 0.0) {
        return Err(GraphError::InvalidParameter {
            name: "tol_per_vertex",
            value: p.tol_per_vertex.to_string(),
            reason: "the tolerance must be finite and >= 0",
        });
    }
    Ok(())
}

/// Personalized PageRank of `graph` with NetworkX's semantics, i.e. the value
/// of `nx.pagerank(G, alpha, personalization=p, weight="weight")` on the
/// undirected graph:
///
/// * the walk goes both ways along every edge, each vertex's out-weights
///   normalised to sum 1 (`stochastic_graph` of `G.to_directed()`);
/// * `personalization` (one value per vertex, `>= 0`, e.g.
///   [`FullGraph::personalization`]) is normalised to sum 1;
/// * dangling vertices (no edge, or only zero-weight edges) jump by the
///   personalization vector;
/// * `x_{t+1} = alpha (x_t W + d_t p) + (1 - alpha) p` from `x_0 = 1/V`,
///   stopping when `|x_{t+1} - x_t|_1 < V * tol_per_vertex` or after
///   `max_iter` iterations (see [`PageRank::converged`]).
///
/// Computed in f64 on the CSR adjacency, one allocation of three vectors per
/// call and none per iteration. Summation order is fixed, so the result does
/// not depend on anything but the inputs.
///
/// ```
/// use summit_graph::{ClassAggregate, Edge, FullGraph, LayerInfo, PageRankParams, personalized_pagerank};
/// let layers = [LayerInfo::new("a", 2), LayerInfo::new("b", 2)];
/// let class = ClassAggregate {
///     counts: vec![vec![3, 1], vec![0, 2]],
///     edges: vec![vec![], vec![Edge::new(0, 1, 2.0), Edge::new(1, 0, 1.0)]],
///     raw_influences: vec![],
/// };
/// let g = FullGraph::new(&layers, &class, &[]).unwrap();
/// let pr = personalized_pagerank(&g, &g.personalization(), &PageRankParams::default()).unwrap();
/// assert!(pr.converged);
/// assert!((pr.values.iter().sum::<f64>() - 1.0).abs() < 1e-9);
/// ```
pub fn personalized_pagerank(
    graph: &FullGraph,
    personalization: &[f64],
    params: &PageRankParams,
) -> Result<PageRank> {
    check_params(params)?;
    let n = graph.num_vertices();
    if personalization.len() != n {
        return Err(GraphError::VertexCount {
            what: "personalization",
            expected: n,
            got: personalization.len(),
        });
    }
    for (v, &x) in personalization.iter().enumerate() {
        if !(x.is_finite() && x >= 0.0) {
            return Err(GraphError::InvalidValue {
                what: "personalization",
                vertex: v,
                layer: graph.layer_of(v),
                channel: graph.channel_of(v),
                value: x,
            });
        }
    }
    if n == 0 {
        return Ok(PageRank {
            values: Vec::new(),
            iterations: 0,
            converged: true,
        });
    }
    let psum: f64 = personalization.iter().sum();
    if psum <= 0.0 {
        return Err(GraphError::ZeroPersonalization);
    }
    let p: Vec<f64> = personalization.iter().map(|&x| x / psum).collect();

    let (row_ptr, col, weight) = graph.csr();
    // inverse out-weight; 0 marks a dangling vertex
    let inv_s: Vec<f64> = (0..n)
        .map(|v| {
            let s = graph.strength(v);
            if s != 0.0 { 1.0 / s } else { 0.0 }
        })
        .collect();
    let dangling: Vec<usize> = (0..n).filter(|&v| inv_s[v] == 0.0).collect();

    let alpha = params.alpha;
    let tol = n as f64 * params.tol_per_vertex;
    let mut x = vec![1.0 / n as f64; n];
    let mut next = vec![0.0; n];
    let mut y = vec![0.0; n];
    for it in 1..=params.max_iter {
        let dsum: f64 = dangling.iter().map(|&v| x[v]).sum();
        for ((yv, &xv), &is) in y.iter_mut().zip(&x).zip(&inv_s) {
            *yv = xv * is;
        }
        let mut err = 0.0;
        for v in 0..n {
            let (a, b) = (row_ptr[v], row_ptr[v + 1]);
            let acc = row_dot(&col[a..b], &weight[a..b], &y);
            let xn = alpha * (acc + dsum * p[v]) + (1.0 - alpha) * p[v];
            err += (xn - x[v]).abs();
            next[v] = xn;
        }
        std::mem::swap(&mut x, &mut next);
        if err < tol {
            return Ok(PageRank {
                values: x,
                iterations: it,
                converged: true,
            });
        }
    }
    Ok(PageRank {
        values: x,
        iterations: params.max_iter,
        converged: false,
    })
}

/// `sum_k w[k] * y[col[k]]` with four independent accumulators (fixed order).
#[inline]
fn row_dot(col: &[u32], w: &[f64], y: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let mut cc = col.chunks_exact(4);
    let mut wc = w.chunks_exact(4);
    for (c4, w4) in (&mut cc).zip(&mut wc) {
        acc[0] += w4[0] * y[c4[0] as usize];
        acc[1] += w4[1] * y[c4[1] as usize];
        acc[2] += w4[2] * y[c4[2] as usize];
        acc[3] += w4[3] * y[c4[3] as usize];
    }
    let mut tail = 0.0;
    for (&c, &wk) in cc.remainder().iter().zip(wc.remainder()) {
        tail += wk * y[c as usize];
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}
