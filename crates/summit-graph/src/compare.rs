//! Comparison of two classes' attribution graphs (the paper's future work,
//! section 9): shared and distinct vertices and edges, e.g. "black bear vs
//! brown bear".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::attribution::AttributionGraph;
use crate::error::{GraphError, Result};

/// Where a vertex or an edge occurs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Membership {
    /// In both attribution graphs.
    Both,
    /// Only in graph A.
    OnlyA,
    /// Only in graph B.
    OnlyB,
}

/// One side of a compared vertex.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct VertexStats {
    /// `A_l[class, channel]` in that class.
    pub count: u32,
    /// PageRank in that class's full graph.
    pub pagerank: f64,
}

/// A vertex of the union of two attribution graphs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComparedVertex {
    /// Channel.
    pub channel: u32,
    /// Where it occurs.
    pub membership: Membership,
    /// Its values in graph A, if selected there.
    pub a: Option<VertexStats>,
    /// Its values in graph B, if selected there.
    pub b: Option<VertexStats>,
}

/// An edge of the union, from channel `from` of the layer below into channel
/// `to` of this layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComparedEdge {
    /// Channel in the layer below.
    pub from: u32,
    /// Channel in this layer.
    pub to: u32,
    /// Where it occurs.
    pub membership: Membership,
    /// Its weight in graph A, if there.
    pub weight_a: Option<f64>,
    /// Its weight in graph B, if there.
    pub weight_b: Option<f64>,
}

/// One layer of a [`GraphComparison`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComparedLayer {
    /// Layer name.
    pub name: String,
    /// Union of the two graphs' vertices of this layer, channel ascending.
    pub vertices: Vec<ComparedVertex>,
    /// Union of the edges into this layer, sorted by `(to, from)`.
    pub edges: Vec<ComparedEdge>,
}

/// The union of two attribution graphs with every vertex and edge marked as
/// shared or distinct. Views: [`intersection`](Self::intersection),
/// [`union`](Self::union), [`difference`](Self::difference).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphComparison {
    /// Layers first to last.
    pub layers: Vec<ComparedLayer>,
}

/// A view of a comparison: per layer, vertices and edges with their marks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComparisonView {
    /// Layers first to last.
    pub layers: Vec<ViewLayer>,
}

/// One layer of a [`ComparisonView`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewLayer {
    /// Layer name.
    pub name: String,
    /// `(channel, membership)`, channel ascending.
    pub vertices: Vec<(u32, Membership)>,
    /// `(from, to, membership)` into this layer, sorted by `(to, from)`.
    pub edges: Vec<(u32, u32, Membership)>,
}

impl ViewLayer {
    /// The channels of the view's vertices.
    pub fn channels(&self) -> Vec<u32> {
        self.vertices.iter().map(|&(c, _)| c).collect()
    }
}

/// Which graph a [`GraphComparison::difference`] keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    /// A \ B.
    A,
    /// B \ A.
    B,
}

fn mark(in_a: bool, in_b: bool) -> Membership {
    match (in_a, in_b) {
        (true, true) => Membership::Both,
        (true, false) => Membership::OnlyA,
        _ => Membership::OnlyB,
    }
}

/// Compares two attribution graphs over the same summary layers (names and
/// order must match).
///
/// ```
/// use summit_graph::{attribution_graph, compare, ClassAggregate, Edge, GraphParams, LayerInfo, Membership, Selection};
/// let layers = [LayerInfo::new("a", 3), LayerInfo::new("b", 2)];
/// let mk = |counts: Vec<Vec<u32>>| ClassAggregate {
///     counts,
///     edges: vec![vec![], vec![Edge::new(0, 0, 2.0), Edge::new(2, 1, 1.0)]],
///     raw_influences: vec![],
/// };
/// let p = GraphParams { selection: Selection::PerLayer { share: 0.5 }, ..GraphParams::paper() };
/// let black = attribution_graph(&layers, &mk(vec![vec![9, 0, 1], vec![5, 0]]), &[], &p).unwrap();
/// let brown = attribution_graph(&layers, &mk(vec![vec![0, 1, 9], vec![0, 5]]), &[], &p).unwrap();
/// let cmp = compare(&black, &brown).unwrap();
/// assert!(cmp.layers[0].vertices.iter().any(|v| v.membership == Membership::OnlyA));
/// ```
pub fn compare(a: &AttributionGraph, b: &AttributionGraph) -> Result<GraphComparison> {
    if a.layers.len() != b.layers.len() {
        let n = a.layers.len().min(b.layers.len());
        let name = |g: &AttributionGraph| {
            g.layers
                .get(n)
                .map_or_else(|| "<none>".to_string(), |l| l.name.clone())
        };
        return Err(GraphError::LayerMismatch {
            layer: n,
            a: name(a),
            b: name(b),
        });
    }
    let mut layers = Vec::with_capacity(a.layers.len());
    for (l, (la, lb)) in a.layers.iter().zip(&b.layers).enumerate() {
        if la.name != lb.name {
            return Err(GraphError::LayerMismatch {
                layer: l,
                a: la.name.clone(),
                b: lb.name.clone(),
            });
        }
        let mut vmap: BTreeMap<u32, (Option<VertexStats>, Option<VertexStats>)> = BTreeMap::new();
        let mut emap: BTreeMap<(u32, u32), (Option<f64>, Option<f64>)> = BTreeMap::new();
        for v in &la.vertices {
            vmap.entry(v.channel).or_default().0 = Some(VertexStats {
                count: v.count,
                pagerank: v.pagerank,
            });
            for &(from, w) in &v.prev {
                emap.entry((v.channel, from)).or_default().0 = Some(w);
            }
        }
        for v in &lb.vertices {
            vmap.entry(v.channel).or_default().1 = Some(VertexStats {
                count: v.count,
                pagerank: v.pagerank,
            });
            for &(from, w) in &v.prev {
                emap.entry((v.channel, from)).or_default().1 = Some(w);
            }
        }
        layers.push(ComparedLayer {
            name: la.name.clone(),
            vertices: vmap
                .into_iter()
                .map(|(channel, (sa, sb))| ComparedVertex {
                    channel,
                    membership: mark(sa.is_some(), sb.is_some()),
                    a: sa,
                    b: sb,
                })
                .collect(),
            edges: emap
                .into_iter()
                .map(|((to, from), (wa, wb))| ComparedEdge {
                    from,
                    to,
                    membership: mark(wa.is_some(), wb.is_some()),
                    weight_a: wa,
                    weight_b: wb,
                })
                .collect(),
        });
    }
    Ok(GraphComparison { layers })
}

impl GraphComparison {
    fn view(&self, keep: impl Fn(Membership) -> bool, with_endpoints: bool) -> ComparisonView {
        let nl = self.layers.len();
        let mut vertex_sets: Vec<BTreeMap<u32, Membership>> = self
            .layers
            .iter()
            .map(|layer| {
                layer
                    .vertices
                    .iter()
                    .filter(|v| keep(v.membership))
                    .map(|v| (v.channel, v.membership))
                    .collect()
            })
            .collect();
        let mut edges: Vec<Vec<(u32, u32, Membership)>> = vec![Vec::new(); nl];
        for (l, layer) in self.layers.iter().enumerate() {
            for e in layer.edges.iter().filter(|e| keep(e.membership)) {
                edges[l].push((e.from, e.to, e.membership));
            }
        }
        if with_endpoints {
            // add the (shared) endpoints of kept edges with their own marks
            for (l, layer_edges) in edges.iter().enumerate() {
                for &(from, to, _) in layer_edges {
                    for (ll, ch) in [(l, to), (l.wrapping_sub(1), from)] {
                        let Some(layer) = self.layers.get(ll) else {
                            continue;
                        };
                        if let Ok(i) = layer.vertices.binary_search_by_key(&ch, |v| v.channel) {
                            vertex_sets[ll].insert(ch, layer.vertices[i].membership);
                        }
                    }
                }
            }
        }
        ComparisonView {
            layers: self
                .layers
                .iter()
                .zip(vertex_sets)
                .zip(edges)
                .map(|((layer, vs), es)| ViewLayer {
                    name: layer.name.clone(),
                    vertices: vs.into_iter().collect(),
                    edges: es,
                })
                .collect(),
        }
    }

    /// Vertices and edges present in both graphs.
    pub fn intersection(&self) -> ComparisonView {
        self.view(|m| m == Membership::Both, false)
    }

    /// Every vertex and edge of either graph, marked.
    pub fn union(&self) -> ComparisonView {
        self.view(|_| true, false)
    }

    /// The vertices and edges only in one graph (A \ B for [`Side::A`]),
    /// plus the shared vertices that are endpoints of its distinct edges
    /// (marked [`Membership::Both`]) so that every edge has its two ends.
    pub fn difference(&self, side: Side) -> ComparisonView {
        let only = match side {
            Side::A => Membership::OnlyA,
            Side::B => Membership::OnlyB,
        };
        self.view(|m| m == only, true)
    }

    /// Per layer, the Jaccard index of the two graphs' vertex sets
    /// (`|A ∩ B| / |A ∪ B|`, 1 when both are empty).
    pub fn vertex_jaccard(&self) -> Vec<f64> {
        self.layers
            .iter()
            .map(|l| {
                let both = l
                    .vertices
                    .iter()
                    .filter(|v| v.membership == Membership::Both)
                    .count();
                if l.vertices.is_empty() {
                    1.0
                } else {
                    both as f64 / l.vertices.len() as f64
                }
            })
            .collect()
    }
}
