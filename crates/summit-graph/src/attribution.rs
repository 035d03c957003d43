//! The attribution graph of one class (SPEC §3.6).

use std::fmt;

use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};

use crate::error::{GraphError, Result};
use crate::full::FullGraph;
use crate::pagerank::{PageRank, personalized_pagerank};
use crate::select::{GraphParams, VertexSelection, select_vertices};
use crate::types::{ClassAggregate, LayerInfo};

/// Number of raw influences kept per vertex in [`AttributionVertex::attr`].
pub const ATTR_TOP: usize = 3;

/// A selected vertex (channel) of an attribution graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttributionVertex {
    /// Channel index in its layer.
    pub channel: u32,
    /// `A_l[class, channel]`.
    pub count: u32,
    /// Its PageRank in the full graph.
    pub pagerank: f64,
    /// Edges from selected vertices of the layer below: `(lower channel,
    /// weight)`, weight descending, ties by higher channel first. Every
    /// channel here is a vertex of the layer below in this graph (what the
    /// Summit JSON's `prev_channels` requires). Empty for the first layer.
    pub prev: Vec<(u32, f64)>,
    /// The top-3 raw influences into this channel `(lower channel, count)`,
    /// count descending, ties by higher channel first (Summit's `attr_channels`).
    pub attr: Vec<(u32, f64)>,
}

/// One layer of an attribution graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttributionLayer {
    /// Layer name.
    pub name: String,
    /// Selected vertices, channel ascending.
    pub vertices: Vec<AttributionVertex>,
}

impl AttributionLayer {
    /// The vertex of `channel`, if selected.
    pub fn vertex(&self, channel: u32) -> Option<&AttributionVertex> {
        self.vertices
            .binary_search_by_key(&channel, |v| v.channel)
            .ok()
            .map(|i| &self.vertices[i])
    }
}

/// The attribution graph of one class: the selected vertices of the full
/// graph and the edges between them, layers first to last.
///
/// The Summit frontend's `ag-{class}.json` (SPEC §5) is a direct rewrite:
/// layers reversed, each vertex as `{channel, count, layer, pagerank,
/// prev_channels: prev, attr_channels: attr}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttributionGraph {
    /// Layers from first to last.
    pub layers: Vec<AttributionLayer>,
    /// Final selection share per layer (after relaxation).
    pub shares: Vec<f64>,
    /// Relaxation rounds made.
    pub relaxation_rounds: usize,
    /// Layers left without a connection to the layer below (see
    /// [`VertexSelection::unconnected_layers`]).
    pub unconnected_layers: Vec<usize>,
    /// PageRank power iterations.
    pub pagerank_iterations: usize,
    /// Whether PageRank converged within `max_iter`.
    pub pagerank_converged: bool,
}

/// Sorts `(channel, value)` pairs by value descending, ties by higher channel first.
fn sort_desc(v: &mut [(u32, f64)]) {
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
}

/// Builds the attribution graph of one class from its inputs: full graph,
/// personalized PageRank, selection and assembly.
///
/// ```
/// use summit_graph::{attribution_graph, ClassAggregate, Edge, GraphParams, LayerInfo};
/// let layers = [LayerInfo::new("low", 3), LayerInfo::new("high", 2)];
/// let class = ClassAggregate {
///     counts: vec![vec![9, 1, 0], vec![4, 0]],
///     edges: vec![vec![], vec![Edge::new(0, 0, 5.0), Edge::new(2, 1, 1.0)]],
///     raw_influences: vec![],
/// };
/// let ag = attribution_graph(&layers, &class, &[], &GraphParams::default()).unwrap();
/// assert_eq!(ag.layers[1].vertices[0].channel, 0);
/// assert_eq!(ag.layers[1].vertices[0].prev, vec![(0, 5.0)]);
/// ```
pub fn attribution_graph(
    layers: &[LayerInfo],
    class: &ClassAggregate,
    excluded: &[Vec<u32>],
    params: &GraphParams,
) -> Result<AttributionGraph> {
    let graph = FullGraph::new(layers, class, excluded)?;
    let pr = personalized_pagerank(&graph, &graph.personalization(), &params.pagerank())?;
    let sel = select_vertices(&graph, &pr.values, params)?;
    AttributionGraph::assemble(&graph, class, &pr, &sel)
}

impl AttributionGraph {
    /// Assembles the attribution graph from the parts computed separately.
    /// `class` must be the aggregate `graph` was built from (for the raw
    /// influences).
    pub fn assemble(
        graph: &FullGraph,
        class: &ClassAggregate,
        pagerank: &PageRank,
        selection: &VertexSelection,
    ) -> Result<Self> {
        let n = graph.num_vertices();
        if pagerank.values.len() != n {
            return Err(GraphError::VertexCount {
                what: "pagerank",
                expected: n,
                got: pagerank.values.len(),
            });
        }
        let nl = graph.layers().len();
        if selection.kept.len() != nl {
            return Err(GraphError::LayerCount {
                what: "selection.kept",
                expected: nl,
                got: selection.kept.len(),
            });
        }
        let mut kept = vec![false; n];
        for (l, chans) in selection.kept.iter().enumerate() {
            for &c in chans {
                let v = graph
                    .vertex(l, c)
                    .ok_or_else(|| GraphError::ChannelOutOfRange {
                        what: "selection.kept (no vertex: excluded or out of range)",
                        layer: l,
                        name: graph.layers()[l].name.clone(),
                        channel: c,
                        channels: graph.layers()[l].channels,
                    })?;
                kept[v] = true;
            }
        }
        let mut layers = Vec::with_capacity(nl);
        for l in 0..nl {
            let below = if l > 0 {
                graph.layer_vertices(l - 1)
            } else {
                0..0
            };
            let raw = class.raw_influences.get(l);
            let mut vertices = Vec::new();
            for v in graph.layer_vertices(l).filter(|&v| kept[v]) {
                let channel = graph.channel_of(v);
                let mut prev: Vec<(u32, f64)> = graph
                    .neighbors(v)
                    .filter(|&(u, _)| below.contains(&u) && kept[u])
                    .map(|(u, w)| (graph.channel_of(u), w))
                    .collect();
                sort_desc(&mut prev);
                let mut attr: Vec<(u32, f64)> = raw
                    .and_then(|r| r.get(channel as usize))
                    .cloned()
                    .unwrap_or_default();
                sort_desc(&mut attr);
                attr.truncate(ATTR_TOP);
                vertices.push(AttributionVertex {
                    channel,
                    count: graph.count(v),
                    pagerank: pagerank.values[v],
                    prev,
                    attr,
                });
            }
            layers.push(AttributionLayer {
                name: graph.layers()[l].name.clone(),
                vertices,
            });
        }
        Ok(Self {
            layers,
            shares: selection.shares.clone(),
            relaxation_rounds: selection.relaxation_rounds,
            unconnected_layers: selection.unconnected_layers.clone(),
            pagerank_iterations: pagerank.iterations,
            pagerank_converged: pagerank.converged,
        })
    }

    /// The layer named `name`.
    pub fn layer(&self, name: &str) -> Option<&AttributionLayer> {
        self.layers.iter().find(|l| l.name == name)
    }

    /// Number of selected vertices over all layers.
    pub fn num_vertices(&self) -> usize {
        self.layers.iter().map(|l| l.vertices.len()).sum()
    }

    /// Number of edges (between selected vertices of consecutive layers).
    pub fn num_edges(&self) -> usize {
        self.layers
            .iter()
            .flat_map(|l| &l.vertices)
            .map(|v| v.prev.len())
            .sum()
    }

    /// The graph as a petgraph `DiGraph`, edges pointing from the lower
    /// layer to the upper one, weighted by influence. Nodes are added layer
    /// by layer, channel ascending.
    pub fn to_petgraph(&self) -> DiGraph<AgNode, f64> {
        let mut g = DiGraph::new();
        let mut prev_ids: Vec<(u32, NodeIndex)> = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            let mut ids = Vec::with_capacity(layer.vertices.len());
            for v in &layer.vertices {
                let id = g.add_node(AgNode {
                    layer: l,
                    layer_name: layer.name.clone(),
                    channel: v.channel,
                    pagerank: v.pagerank,
                });
                for &(pc, w) in &v.prev {
                    if let Ok(i) = prev_ids.binary_search_by_key(&pc, |&(c, _)| c) {
                        g.add_edge(prev_ids[i].1, id, w);
                    }
                }
                ids.push((v.channel, id));
            }
            prev_ids = ids;
        }
        g
    }

    /// The graph in Graphviz DOT (via petgraph), nodes labelled `layer:channel`,
    /// edges labelled with their weight.
    pub fn to_dot(&self) -> String {
        let g = self.to_petgraph();
        format!("{}", petgraph::dot::Dot::new(&g))
    }
}

/// A node of [`AttributionGraph::to_petgraph`].
#[derive(Clone, Debug, PartialEq)]
pub struct AgNode {
    /// Layer index.
    pub layer: usize,
    /// Layer name.
    pub layer_name: String,
    /// Channel.
    pub channel: u32,
    /// PageRank.
    pub pagerank: f64,
}

impl fmt::Display for AgNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.layer_name, self.channel)
    }
}
