//! Motifs shared across classes' attribution graphs (paper §9, "mining attribution graphs for
//! motifs"): connected substructures that appear in the graphs of many classes, counted
//! exactly.
//!
//! A motif is one of
//! - a **path** of 2 or 3 edges through consecutive layers, `c_l → c_{l+1} → … ` (channels);
//! - a **star**: one vertex with 2 or 3 neighbours all in the layer below (`InStar`: the
//!   channels it draws on) or all in the layer above (`OutStar`: the channels it feeds).
//!
//! Its *support* is the number of classes whose graph contains all its edges. [`mine_motifs`]
//! enumerates every motif of every graph and counts it, with the Apriori pruning that keeps
//! the count exact: a 3-edge path or a 3-star is counted only when all its 2-edge sub-motifs
//! reach the minimum support (support can only shrink as a motif grows). Nothing is sampled.

use std::collections::{BTreeMap, HashMap, HashSet};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::attribution::AttributionGraph;

/// The shape of a motif.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MotifKind {
    /// A chain of edges through consecutive layers.
    Path,
    /// A vertex and several of its neighbours in the layer below.
    InStar,
    /// A vertex and several of its neighbours in the layer above.
    OutStar,
}

/// A motif and the classes whose graphs contain it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Motif {
    /// Its shape.
    pub kind: MotifKind,
    /// For a path, the layer of its first (lowest) vertex; for a star, the layer of its centre.
    pub layer: usize,
    /// For a path, its channels from the lowest layer up; for a star, the centre's channel
    /// then its neighbours' channels ascending.
    pub channels: Vec<u32>,
    /// Number of edges (1 to 3).
    pub edges: usize,
    /// Classes whose graph contains the motif, ascending.
    pub classes: Vec<usize>,
}

impl Motif {
    /// The number of classes containing the motif.
    pub fn support(&self) -> usize {
        self.classes.len()
    }

    /// Its edges as `(upper layer, lower channel, upper channel)`: an edge joins channel
    /// `lower` of layer `upper − 1` to channel `upper` of layer `upper`.
    pub fn edge_list(&self) -> Vec<(usize, u32, u32)> {
        match self.kind {
            MotifKind::Path => self
                .channels
                .windows(2)
                .enumerate()
                .map(|(k, w)| (self.layer + k + 1, w[0], w[1]))
                .collect(),
            MotifKind::InStar => self.channels[1..]
                .iter()
                .map(|&n| (self.layer, n, self.channels[0]))
                .collect(),
            MotifKind::OutStar => self.channels[1..]
                .iter()
                .map(|&n| (self.layer + 1, self.channels[0], n))
                .collect(),
        }
    }
}

/// Parameters of [`mine_motifs`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MotifParams {
    /// Minimum support as a share of the graphs given (default 0.1).
    pub min_share: f64,
    /// Minimum support in classes, whatever the share (default 2).
    pub min_classes: usize,
    /// At most this many motifs are returned, the best ranked (default 200).
    pub max_motifs: usize,
}

impl Default for MotifParams {
    fn default() -> Self {
        Self {
            min_share: 0.1,
            min_classes: 2,
            max_motifs: 200,
        }
    }
}

impl MotifParams {
    /// The minimum support for `graphs` graphs: `max(min_classes, ⌈min_share · graphs⌉)`.
    pub fn min_support(&self, graphs: usize) -> usize {
        let share = (self.min_share.clamp(0.0, 1.0) * graphs as f64 - 1e-9)
            .ceil()
            .max(0.0) as usize;
        share.max(self.min_classes).max(1)
    }
}

/// A motif's identity without allocation: kind, layer, up to 4 channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    kind: MotifKind,
    layer: u32,
    len: u8,
    ch: [u32; 4],
}

impl Key {
    fn new(kind: MotifKind, layer: usize, channels: &[u32]) -> Self {
        let mut ch = [0; 4];
        ch[..channels.len()].copy_from_slice(channels);
        Self {
            kind,
            layer: layer as u32,
            len: channels.len() as u8,
            ch,
        }
    }

    fn channels(&self) -> &[u32] {
        &self.ch[..self.len as usize]
    }
}

/// A fast multiplicative hasher (FxHash's), for the motif tables: keys are small integers.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type Fx = std::hash::BuildHasherDefault<FxHasher>;
type KeySet = HashSet<Key, Fx>;

/// One class's graph as adjacency: `up[l][c]` the channels of layer `l + 1` that channel `c`
/// of layer `l` feeds, `down[l][c]` those of layer `l − 1` it draws on; sorted.
struct Adjacency {
    up: Vec<BTreeMap<u32, Vec<u32>>>,
    down: Vec<BTreeMap<u32, Vec<u32>>>,
}

impl Adjacency {
    fn of(g: &AttributionGraph) -> Self {
        let n = g.layers.len();
        let mut up = vec![BTreeMap::<u32, Vec<u32>>::new(); n];
        let mut down = vec![BTreeMap::<u32, Vec<u32>>::new(); n];
        for (l, layer) in g.layers.iter().enumerate().skip(1) {
            for v in &layer.vertices {
                for &(p, _) in &v.prev {
                    up[l - 1].entry(p).or_default().push(v.channel);
                    down[l].entry(v.channel).or_default().push(p);
                }
            }
        }
        for m in up.iter_mut().chain(down.iter_mut()) {
            for v in m.values_mut() {
                v.sort_unstable();
                v.dedup();
            }
        }
        Self { up, down }
    }

    fn has_edge(&self, upper_layer: usize, lower: u32, upper: u32) -> bool {
        self.up
            .get(upper_layer.wrapping_sub(1))
            .and_then(|m| m.get(&lower))
            .is_some_and(|v| v.binary_search(&upper).is_ok())
    }
}

/// A star's channels: centre then neighbours.
fn star(c: u32, s: &[u32]) -> [u32; 4] {
    let mut k = [0; 4];
    k[0] = c;
    k[1..=s.len()].copy_from_slice(s);
    k
}

fn subsets(items: &[u32], k: usize, out: &mut Vec<Vec<u32>>) {
    fn rec(items: &[u32], k: usize, start: usize, cur: &mut Vec<u32>, out: &mut Vec<Vec<u32>>) {
        if cur.len() == k {
            out.push(cur.clone());
            return;
        }
        for i in start..items.len() {
            if items.len() - i < k - cur.len() {
                break;
            }
            cur.push(items[i]);
            rec(items, k, i + 1, cur, out);
            cur.pop();
        }
    }
    rec(items, k, 0, &mut Vec::with_capacity(k), out);
}

/// The 1- and 2-edge motifs of one graph.
fn small_motifs(a: &Adjacency, out: &mut KeySet) {
    let mut subs = Vec::new();
    for (l, down) in a.down.iter().enumerate() {
        for (&c, lower) in down {
            for &p in lower {
                out.insert(Key::new(MotifKind::Path, l - 1, &[p, c]));
            }
            // paths through c: lower → c → upper
            if let Some(upper) = a.up[l].get(&c) {
                for &p in lower {
                    for &q in upper {
                        out.insert(Key::new(MotifKind::Path, l - 1, &[p, c, q]));
                    }
                }
            }
            subs.clear();
            subsets(lower, 2, &mut subs);
            for s in &subs {
                out.insert(Key::new(MotifKind::InStar, l, &star(c, s)[..=s.len()]));
            }
        }
    }
    for (l, up) in a.up.iter().enumerate() {
        for (&c, upper) in up {
            subs.clear();
            subsets(upper, 2, &mut subs);
            for s in &subs {
                out.insert(Key::new(MotifKind::OutStar, l, &star(c, s)[..=s.len()]));
            }
        }
    }
}

/// The 3-edge motifs of one graph whose 2-edge sub-motifs are all in `frequent`.
fn large_motifs(a: &Adjacency, frequent: &KeySet, out: &mut KeySet) {
    let mut subs = Vec::new();
    for (l, down) in a.down.iter().enumerate() {
        for (&c, lower) in down {
            // paths p → c → q → r with p→c→q and c→q→r frequent
            if let Some(upper) = a.up[l].get(&c) {
                for &q in upper {
                    let Some(top) = a.up.get(l + 1).and_then(|m| m.get(&q)) else {
                        continue;
                    };
                    for &p in lower {
                        if !frequent.contains(&Key::new(MotifKind::Path, l - 1, &[p, c, q])) {
                            continue;
                        }
                        for &r in top {
                            if frequent.contains(&Key::new(MotifKind::Path, l, &[c, q, r])) {
                                out.insert(Key::new(MotifKind::Path, l - 1, &[p, c, q, r]));
                            }
                        }
                    }
                }
            }
            subs.clear();
            subsets(lower, 3, &mut subs);
            for s in &subs {
                let ok = [[s[0], s[1]], [s[0], s[2]], [s[1], s[2]]]
                    .iter()
                    .all(|pair| {
                        frequent.contains(&Key::new(MotifKind::InStar, l, &[c, pair[0], pair[1]]))
                    });
                if ok {
                    out.insert(Key::new(MotifKind::InStar, l, &star(c, s)[..=s.len()]));
                }
            }
        }
    }
    for (l, up) in a.up.iter().enumerate() {
        for (&c, upper) in up {
            subs.clear();
            subsets(upper, 3, &mut subs);
            for s in &subs {
                let ok = [[s[0], s[1]], [s[0], s[2]], [s[1], s[2]]]
                    .iter()
                    .all(|pair| {
                        frequent.contains(&Key::new(MotifKind::OutStar, l, &[c, pair[0], pair[1]]))
                    });
                if ok {
                    out.insert(Key::new(MotifKind::OutStar, l, &star(c, s)[..=s.len()]));
                }
            }
        }
    }
}

/// Mines the motifs of `graphs` (`(class, graph)` pairs): every path of 1–3 edges and every
/// star of a vertex with 2–3 neighbours in one adjacent layer contained in at least
/// [`MotifParams::min_support`] of the graphs, ranked by support (descending), then by size
/// (larger first), kind, layer and channels; at most `max_motifs`. Exact (see the module
/// docs); graphs are enumerated in parallel, the result does not depend on the thread count.
///
/// ```
/// use summit_graph::{AttributionGraph, AttributionLayer, AttributionVertex, MotifKind, MotifParams, mine_motifs};
/// fn v(channel: u32, prev: &[u32]) -> AttributionVertex {
///     AttributionVertex { channel, count: 1, pagerank: 0.1, prev: prev.iter().map(|&p| (p, 1.0)).collect(), attr: vec![] }
/// }
/// fn graph(layers: Vec<Vec<AttributionVertex>>) -> AttributionGraph {
///     AttributionGraph {
///         layers: layers.into_iter().enumerate().map(|(l, vertices)| AttributionLayer { name: format!("l{l}"), vertices }).collect(),
///         shares: vec![], relaxation_rounds: 0, unconnected_layers: vec![], pagerank_iterations: 0, pagerank_converged: true,
///     }
/// }
/// // two classes share the path 1 → 2 → 3; only one has 0 → 2
/// let a = graph(vec![vec![v(0, &[]), v(1, &[])], vec![v(2, &[0, 1])], vec![v(3, &[2])]]);
/// let b = graph(vec![vec![v(1, &[])], vec![v(2, &[1])], vec![v(3, &[2])]]);
/// let motifs = mine_motifs(&[(0, &a), (1, &b)], &MotifParams { min_share: 1.0, ..Default::default() });
/// // the path and its two edges; the longer first
/// assert_eq!(motifs.len(), 3);
/// assert_eq!((motifs[0].kind, motifs[0].layer, motifs[0].channels.clone()), (MotifKind::Path, 0, vec![1, 2, 3]));
/// assert_eq!(motifs[1].channels, vec![1, 2]);
/// assert_eq!(motifs[0].classes, vec![0, 1]);
/// ```
pub fn mine_motifs(graphs: &[(usize, &AttributionGraph)], params: &MotifParams) -> Vec<Motif> {
    let min = params.min_support(graphs.len());
    let adj: Vec<(usize, Adjacency)> = graphs.iter().map(|(c, g)| (*c, Adjacency::of(g))).collect();
    let mut small: HashMap<Key, Vec<usize>, Fx> = HashMap::default();
    let per_class: Vec<(usize, KeySet)> = adj
        .par_iter()
        .map(|(c, a)| {
            let mut seen = KeySet::default();
            small_motifs(a, &mut seen);
            (*c, seen)
        })
        .collect();
    for (c, seen) in per_class {
        for k in seen {
            small.entry(k).or_default().push(c);
        }
    }
    small.retain(|_, cs| cs.len() >= min);
    let frequent: KeySet = small.keys().copied().collect();
    let mut large: HashMap<Key, Vec<usize>, Fx> = HashMap::default();
    let per_class: Vec<(usize, KeySet)> = adj
        .par_iter()
        .map(|(c, a)| {
            let mut seen = KeySet::default();
            large_motifs(a, &frequent, &mut seen);
            (*c, seen)
        })
        .collect();
    for (c, seen) in per_class {
        for k in seen {
            large.entry(k).or_default().push(c);
        }
    }
    large.retain(|_, cs| cs.len() >= min);
    let mut out: Vec<Motif> = small
        .into_iter()
        .chain(large)
        .map(|(k, mut classes)| {
            classes.sort_unstable();
            Motif {
                kind: k.kind,
                layer: k.layer as usize,
                edges: k.channels().len() - 1,
                channels: k.channels().to_vec(),
                classes,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.support()
            .cmp(&a.support())
            .then(b.edges.cmp(&a.edges))
            .then(a.kind.cmp(&b.kind))
            .then(a.layer.cmp(&b.layer))
            .then(a.channels.cmp(&b.channels))
    });
    out.truncate(params.max_motifs);
    out
}

/// The motifs of a run: the parameters, how many graphs were mined and the support that
/// counted, and the motifs, ranked.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MotifSet {
    /// The parameters.
    pub params: MotifParams,
    /// Graphs mined (the classes with a graph).
    pub graphs: usize,
    /// [`MotifParams::min_support`] for that many graphs.
    pub min_support: usize,
    /// The motifs, ranked as [`mine_motifs`] ranks them.
    pub motifs: Vec<Motif>,
}

impl MotifSet {
    /// Mines `graphs` with `params` ([`mine_motifs`]).
    pub fn mine(graphs: &[(usize, &AttributionGraph)], params: &MotifParams) -> Self {
        Self {
            params: *params,
            graphs: graphs.len(),
            min_support: params.min_support(graphs.len()),
            motifs: mine_motifs(graphs, params),
        }
    }
}

/// Whether `graph` contains every edge of `motif` (for checks and the view).
pub fn graph_contains(graph: &AttributionGraph, motif: &Motif) -> bool {
    let a = Adjacency::of(graph);
    motif
        .edge_list()
        .iter()
        .all(|&(l, p, q)| a.has_edge(l, p, q))
}
