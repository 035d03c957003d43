//! The full graph of one class: every (summary layer, channel) minus the
//! excluded channels, with the merged influence edges between consecutive
//! layers, stored as a symmetric CSR adjacency.

use crate::error::{GraphError, Result};
use crate::types::{ClassAggregate, LayerInfo};

/// Marks a channel without a vertex (excluded).
const NO_VERTEX: u32 = u32::MAX;

/// The full graph of one class (SPEC §3, step 1), built once per class.
///
/// Vertices are numbered layer by layer (first layer first), channels
/// ascending within a layer, excluded channels skipped. The graph is
/// undirected: each edge appears in the adjacency of both ends, rows sorted
/// by neighbour. Build cost is linear in the number of edges plus a sort of
/// each row.
#[derive(Clone, Debug)]
pub struct FullGraph {
    layers: Vec<LayerInfo>,
    offsets: Vec<usize>,
    layer_of: Vec<u32>,
    channel_of: Vec<u32>,
    vertex_of: Vec<Vec<u32>>,
    excluded: Vec<Vec<u32>>,
    counts: Vec<u32>,
    row_ptr: Vec<usize>,
    col: Vec<u32>,
    weight: Vec<f64>,
    strength: Vec<f64>,
}

fn check_layers(layers: &[LayerInfo]) -> Result<()> {
    if layers.is_empty() {
        return Err(GraphError::NoLayers);
    }
    let total: usize = layers.iter().map(|l| l.channels).sum();
    if total >= NO_VERTEX as usize {
        return Err(GraphError::InvalidParameter {
            name: "layers",
            value: total.to_string(),
            reason: "the total channel count must be below 2^32 - 1",
        });
    }
    Ok(())
}

impl FullGraph {
    /// Builds the full graph of one class.
    ///
    /// `excluded` lists per layer the channels to remove (no vertex, no
    /// edges); an empty slice means none. Errors name the layer and channel
    /// of any inconsistent input (wrong lengths, channels out of range,
    /// negative or non-finite weights, edges into the first layer).
    pub fn new(
        layers: &[LayerInfo],
        class: &ClassAggregate,
        excluded: &[Vec<u32>],
    ) -> Result<Self> {
        check_layers(layers)?;
        let nl = layers.len();
        if class.counts.len() != nl {
            return Err(GraphError::LayerCount {
                what: "counts",
                expected: nl,
                got: class.counts.len(),
            });
        }
        if class.edges.len() != nl {
            return Err(GraphError::LayerCount {
                what: "edges",
                expected: nl,
                got: class.edges.len(),
            });
        }
        if !excluded.is_empty() && excluded.len() != nl {
            return Err(GraphError::LayerCount {
                what: "excluded",
                expected: nl,
                got: excluded.len(),
            });
        }
        if !class.raw_influences.is_empty() && class.raw_influences.len() != nl {
            return Err(GraphError::LayerCount {
                what: "raw_influences",
                expected: nl,
                got: class.raw_influences.len(),
            });
        }
        if !class.edges[0].is_empty() {
            return Err(GraphError::EdgesIntoFirstLayer {
                name: layers[0].name.clone(),
                got: class.edges[0].len(),
            });
        }

        // vertices
        let mut offsets = Vec::with_capacity(nl + 1);
        let mut layer_of = Vec::new();
        let mut channel_of = Vec::new();
        let mut vertex_of = Vec::with_capacity(nl);
        let mut counts = Vec::new();
        let mut excluded_sorted = Vec::with_capacity(nl);
        offsets.push(0);
        for (l, info) in layers.iter().enumerate() {
            let row = &class.counts[l];
            if row.len() != info.channels {
                return Err(GraphError::ChannelCount {
                    what: "counts",
                    layer: l,
                    name: info.name.clone(),
                    expected: info.channels,
                    got: row.len(),
                });
            }
            if let Some(raw) = class.raw_influences.get(l)
                && !raw.is_empty()
                && raw.len() != info.channels
            {
                return Err(GraphError::ChannelCount {
                    what: "raw_influences",
                    layer: l,
                    name: info.name.clone(),
                    expected: info.channels,
                    got: raw.len(),
                });
            }
            let mut is_excluded = vec![false; info.channels];
            let mut ex = Vec::new();
            if let Some(list) = excluded.get(l) {
                for &c in list {
                    if c as usize >= info.channels {
                        return Err(GraphError::ChannelOutOfRange {
                            what: "excluded",
                            layer: l,
                            name: info.name.clone(),
                            channel: c,
                            channels: info.channels,
                        });
                    }
                    if !is_excluded[c as usize] {
                        ex.push(c);
                    }
                    is_excluded[c as usize] = true;
                }
            }
            ex.sort_unstable();
            excluded_sorted.push(ex);
            let mut map = vec![NO_VERTEX; info.channels];
            for (c, slot) in map.iter_mut().enumerate() {
                if !is_excluded[c] {
                    *slot = channel_of.len() as u32;
                    layer_of.push(l as u32);
                    channel_of.push(c as u32);
                    counts.push(row[c]);
                }
            }
            vertex_of.push(map);
            offsets.push(channel_of.len());
        }
        let nv = channel_of.len();

        // validate edges and count degrees
        let mut degree = vec![0usize; nv];
        for l in 1..nl {
            let (lo, hi) = (&layers[l - 1], &layers[l]);
            for e in &class.edges[l] {
                if e.from as usize >= lo.channels {
                    return Err(GraphError::ChannelOutOfRange {
                        what: "edge `from` (lower layer)",
                        layer: l - 1,
                        name: lo.name.clone(),
                        channel: e.from,
                        channels: lo.channels,
                    });
                }
                if e.to as usize >= hi.channels {
                    return Err(GraphError::ChannelOutOfRange {
                        what: "edge `to` (upper layer)",
                        layer: l,
                        name: hi.name.clone(),
                        channel: e.to,
                        channels: hi.channels,
                    });
                }
                if !(e.weight.is_finite() && e.weight >= 0.0) {
                    return Err(GraphError::InvalidWeight {
                        layer: l,
                        name: hi.name.clone(),
                        from: e.from,
                        to: e.to,
                        weight: e.weight,
                    });
                }
                let u = vertex_of[l - 1][e.from as usize];
                let v = vertex_of[l][e.to as usize];
                if u != NO_VERTEX && v != NO_VERTEX {
                    degree[u as usize] += 1;
                    degree[v as usize] += 1;
                }
            }
        }
        let mut row_ptr = Vec::with_capacity(nv + 1);
        row_ptr.push(0usize);
        for d in &degree {
            let last = row_ptr[row_ptr.len() - 1];
            row_ptr.push(last + d);
        }
        let nnz = row_ptr[nv];
        let mut fill: Vec<usize> = row_ptr[..nv].to_vec();
        let mut entries: Vec<(u32, f64)> = vec![(0, 0.0); nnz];
        for l in 1..nl {
            for e in &class.edges[l] {
                let u = vertex_of[l - 1][e.from as usize];
                let v = vertex_of[l][e.to as usize];
                if u == NO_VERTEX || v == NO_VERTEX {
                    continue;
                }
                entries[fill[u as usize]] = (v, e.weight);
                fill[u as usize] += 1;
                entries[fill[v as usize]] = (u, e.weight);
                fill[v as usize] += 1;
            }
        }
        // sort rows by neighbour (stable: duplicates are summed in input order)
        // and merge duplicates
        let mut col = Vec::with_capacity(nnz);
        let mut weight = Vec::with_capacity(nnz);
        let mut new_ptr = Vec::with_capacity(nv + 1);
        new_ptr.push(0usize);
        for v in 0..nv {
            let row = &mut entries[row_ptr[v]..row_ptr[v + 1]];
            row.sort_by_key(|&(c, _)| c);
            let mut last = NO_VERTEX;
            for &(c, w) in row.iter() {
                if c == last {
                    if let Some(lw) = weight.last_mut() {
                        *lw += w;
                    }
                } else {
                    col.push(c);
                    weight.push(w);
                    last = c;
                }
            }
            new_ptr.push(col.len());
        }
        let strength = (0..nv)
            .map(|v| weight[new_ptr[v]..new_ptr[v + 1]].iter().sum())
            .collect();
        Ok(Self {
            layers: layers.to_vec(),
            offsets,
            layer_of,
            channel_of,
            vertex_of,
            excluded: excluded_sorted,
            counts,
            row_ptr: new_ptr,
            col,
            weight,
            strength,
        })
    }

    /// The summary layers, first to last.
    pub fn layers(&self) -> &[LayerInfo] {
        &self.layers
    }

    /// Number of vertices `V` (all channels of all layers minus the excluded ones).
    pub fn num_vertices(&self) -> usize {
        self.channel_of.len()
    }

    /// Number of undirected edges (duplicates merged, zero-weight edges included).
    pub fn num_edges(&self) -> usize {
        self.col.len() / 2
    }

    /// The vertex range of layer `l` (vertex ids are contiguous per layer).
    /// Empty for a layer index out of range.
    pub fn layer_vertices(&self, l: usize) -> std::ops::Range<usize> {
        match (self.offsets.get(l), self.offsets.get(l + 1)) {
            (Some(&a), Some(&b)) => a..b,
            _ => 0..0,
        }
    }

    /// The vertex of `(layer, channel)`, or `None` if the channel is excluded
    /// or out of range.
    pub fn vertex(&self, layer: usize, channel: u32) -> Option<usize> {
        let v = *self.vertex_of.get(layer)?.get(channel as usize)?;
        (v != NO_VERTEX).then_some(v as usize)
    }

    /// The layer of vertex `v`. Panics if `v >= num_vertices()`.
    pub fn layer_of(&self, v: usize) -> usize {
        self.layer_of[v] as usize
    }

    /// The channel of vertex `v`. Panics if `v >= num_vertices()`.
    pub fn channel_of(&self, v: usize) -> u32 {
        self.channel_of[v]
    }

    /// `A_l[class, j]` of vertex `v`. Panics if `v >= num_vertices()`.
    pub fn count(&self, v: usize) -> u32 {
        self.counts[v]
    }

    /// The excluded channels per layer (sorted, deduplicated).
    pub fn excluded(&self) -> &[Vec<u32>] {
        &self.excluded
    }

    /// Neighbours of `v` with edge weights, sorted by neighbour id (vertices
    /// of the layer below come first). Panics if `v >= num_vertices()`.
    pub fn neighbors(&self, v: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        let r = self.row_ptr[v]..self.row_ptr[v + 1];
        self.col[r.clone()]
            .iter()
            .zip(&self.weight[r])
            .map(|(&c, &w)| (c as usize, w))
    }

    /// Total weight of `v`'s edges (its out-weight in the random walk).
    pub fn strength(&self, v: usize) -> f64 {
        self.strength[v]
    }

    /// The weight of the edge between `u` and `v`, if there is one.
    pub fn edge_weight(&self, u: usize, v: usize) -> Option<f64> {
        let r = *self.row_ptr.get(u)?..*self.row_ptr.get(u + 1)?;
        let cols = &self.col[r.start..r.end];
        cols.binary_search(&(v as u32))
            .ok()
            .map(|i| self.weight[r.start + i])
    }

    /// The personalization of SPEC §3, step 2, before its normalisation to sum 1:
    /// `A_l[class, j] / max_j A_l[class, j]` per layer (the max over the
    /// layer's non-excluded channels); a layer whose counts are all zero
    /// gets 0.
    pub fn personalization(&self) -> Vec<f64> {
        let mut p = vec![0.0; self.num_vertices()];
        for l in 0..self.layers.len() {
            let r = self.layer_vertices(l);
            let max = self.counts[r.clone()].iter().copied().max().unwrap_or(0);
            if max > 0 {
                let m = f64::from(max);
                for v in r {
                    p[v] = f64::from(self.counts[v]) / m;
                }
            }
        }
        p
    }

    pub(crate) fn csr(&self) -> (&[usize], &[u32], &[f64]) {
        (&self.row_ptr, &self.col, &self.weight)
    }
}
