//! Motif mining against a brute force: every possible path of 1–3 edges and every star of 2–3
//! neighbours over the channels of small random graph sets, its support counted by checking
//! each graph's edges directly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use summit_graph::{
    AttributionGraph, AttributionLayer, AttributionVertex, MotifKind, MotifParams, graph_contains,
    mine_motifs,
};

const LAYERS: usize = 4;
const CHANNELS: u32 = 5;

fn random_graph(rng: &mut ChaCha8Rng, density: f64) -> AttributionGraph {
    let mut layers: Vec<AttributionLayer> = Vec::new();
    for l in 0..LAYERS {
        let chosen: Vec<u32> = (0..CHANNELS).filter(|_| rng.random_bool(0.7)).collect();
        let below: Vec<u32> = layers.last().map_or(Vec::new(), |b: &AttributionLayer| {
            b.vertices.iter().map(|v| v.channel).collect()
        });
        let vertices = chosen
            .iter()
            .map(|&c| AttributionVertex {
                channel: c,
                count: 1,
                pagerank: 0.1,
                prev: if l == 0 {
                    vec![]
                } else {
                    below
                        .iter()
                        .filter(|_| rng.random_bool(density))
                        .map(|&p| (p, 1.0))
                        .collect()
                },
                attr: vec![],
            })
            .collect();
        layers.push(AttributionLayer {
            name: format!("l{l}"),
            vertices,
        });
    }
    AttributionGraph {
        layers,
        shares: vec![],
        relaxation_rounds: 0,
        unconnected_layers: vec![],
        pagerank_iterations: 0,
        pagerank_converged: true,
    }
}

fn has_edge(g: &AttributionGraph, upper_layer: usize, lower: u32, upper: u32) -> bool {
    g.layers[upper_layer]
        .vertex(upper)
        .is_some_and(|v| v.prev.iter().any(|&(p, _)| p == lower))
}

/// A motif's identity: kind, layer, channels.
type MotifKey = (MotifKind, usize, Vec<u32>);
/// Edges as `(upper layer, lower channel, upper channel)`.
type Edges = Vec<(usize, u32, u32)>;

/// Every candidate motif with its edges.
fn candidates() -> Vec<(MotifKey, Edges)> {
    let mut out = Vec::new();
    let ch: Vec<u32> = (0..CHANNELS).collect();
    for l in 0..LAYERS {
        for &a in &ch {
            for &b in &ch {
                if l + 1 < LAYERS {
                    out.push(((MotifKind::Path, l, vec![a, b]), vec![(l + 1, a, b)]));
                }
                for &c in &ch {
                    if l + 2 < LAYERS {
                        out.push((
                            (MotifKind::Path, l, vec![a, b, c]),
                            vec![(l + 1, a, b), (l + 2, b, c)],
                        ));
                    }
                    for &d in &ch {
                        if l + 3 < LAYERS {
                            out.push((
                                (MotifKind::Path, l, vec![a, b, c, d]),
                                vec![(l + 1, a, b), (l + 2, b, c), (l + 3, c, d)],
                            ));
                        }
                    }
                }
            }
            // stars centred at (l, a)
            for size in [2usize, 3] {
                let subsets: Vec<Vec<u32>> = (0u32..(1 << CHANNELS))
                    .filter(|m| m.count_ones() as usize == size)
                    .map(|m| ch.iter().copied().filter(|&c| m & (1 << c) != 0).collect())
                    .collect();
                for s in subsets {
                    if l > 0 {
                        out.push((
                            (MotifKind::InStar, l, [vec![a], s.clone()].concat()),
                            s.iter().map(|&n| (l, n, a)).collect(),
                        ));
                    }
                    if l + 1 < LAYERS {
                        out.push((
                            (MotifKind::OutStar, l, [vec![a], s.clone()].concat()),
                            s.iter().map(|&n| (l + 1, a, n)).collect(),
                        ));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn mined_motifs_equal_the_brute_force() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (mut compared, mut non_empty) = (0, 0);
    for trial in 0..30 {
        let n = 6 + trial % 7;
        let density = [0.3, 0.5, 0.8][trial % 3];
        let graphs: Vec<AttributionGraph> =
            (0..n).map(|_| random_graph(&mut rng, density)).collect();
        let pairs: Vec<(usize, &AttributionGraph)> = graphs
            .iter()
            .enumerate()
            .map(|(c, g)| (c * 3 + 1, g))
            .collect();
        let params = MotifParams {
            min_share: [0.2, 0.4, 0.6][trial % 3],
            min_classes: 2,
            max_motifs: usize::MAX,
        };
        let min = params.min_support(n);
        let mut want: BTreeMap<MotifKey, Vec<usize>> = BTreeMap::new();
        for (key, edges) in candidates() {
            let classes: Vec<usize> = pairs
                .iter()
                .filter(|(_, g)| edges.iter().all(|&(l, p, q)| has_edge(g, l, p, q)))
                .map(|(c, _)| *c)
                .collect();
            if classes.len() >= min {
                want.insert(key, classes);
            }
        }
        let got = mine_motifs(&pairs, &params);
        let got_map: BTreeMap<MotifKey, Vec<usize>> = got
            .iter()
            .map(|m| ((m.kind, m.layer, m.channels.clone()), m.classes.clone()))
            .collect();
        assert_eq!(
            got_map.len(),
            got.len(),
            "trial {trial}: a motif listed twice"
        );
        assert_eq!(
            got_map, want,
            "trial {trial}: {n} graphs, min support {min}"
        );
        // ranked by support, then size
        for w in got.windows(2) {
            assert!(
                (w[0].support(), w[0].edges) >= (w[1].support(), w[1].edges),
                "trial {trial}: ranking"
            );
        }
        for m in &got {
            for (c, g) in &pairs {
                assert_eq!(graph_contains(g, m), m.classes.contains(c));
            }
        }
        compared += want.len();
        non_empty += usize::from(!want.is_empty());
    }
    assert!(
        non_empty >= 15 && compared > 200,
        "{non_empty} trials, {compared} motifs compared"
    );
}

#[test]
fn min_support_and_truncation() {
    let p = MotifParams {
        min_share: 0.1,
        min_classes: 2,
        max_motifs: 3,
    };
    assert_eq!(p.min_support(1000), 100);
    assert_eq!(p.min_support(5), 2);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let graphs: Vec<AttributionGraph> = (0..10).map(|_| random_graph(&mut rng, 0.8)).collect();
    let pairs: Vec<(usize, &AttributionGraph)> = graphs.iter().enumerate().collect();
    let got = mine_motifs(&pairs, &p);
    assert_eq!(got.len(), 3);
    assert!(mine_motifs(&[], &p).is_empty());
}
