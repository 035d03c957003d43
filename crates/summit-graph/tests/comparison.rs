//! Class comparison against brute-force set operations on the two graphs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use summit_graph::{
    AttributionGraph, ClassAggregate, Edge, GraphError, GraphParams, LayerInfo, Membership,
    Selection, Side, attribution_graph, compare,
};

fn layers() -> Vec<LayerInfo> {
    [12, 15, 10, 8]
        .iter()
        .enumerate()
        .map(|(i, &c)| LayerInfo::new(format!("mixed{i}"), c))
        .collect()
}

fn random_class(rng: &mut ChaCha8Rng, shared_edges: &[Vec<Edge>]) -> ClassAggregate {
    let layers = layers();
    let counts = layers
        .iter()
        .map(|l| (0..l.channels).map(|_| rng.random_range(0..12)).collect())
        .collect();
    // half of the edges shared between the classes, half the class's own
    let edges = shared_edges
        .iter()
        .enumerate()
        .map(|(l, shared)| {
            let mut e = shared.clone();
            if l > 0 {
                for _ in 0..20 {
                    e.push(Edge::new(
                        rng.random_range(0..layers[l - 1].channels as u32),
                        rng.random_range(0..layers[l].channels as u32),
                        rng.random_range(1..9) as f64,
                    ));
                }
            }
            e
        })
        .collect();
    ClassAggregate {
        counts,
        edges,
        raw_influences: vec![],
    }
}

fn pair(seed: u64) -> (AttributionGraph, AttributionGraph) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let layers = layers();
    let shared: Vec<Vec<Edge>> = (0..layers.len())
        .map(|l| {
            if l == 0 {
                return vec![];
            }
            (0..20)
                .map(|_| {
                    Edge::new(
                        rng.random_range(0..layers[l - 1].channels as u32),
                        rng.random_range(0..layers[l].channels as u32),
                        2.0,
                    )
                })
                .collect()
        })
        .collect();
    let a = random_class(&mut rng, &shared);
    let b = random_class(&mut rng, &shared);
    let p = GraphParams {
        selection: Selection::PerLayer { share: 0.4 },
        ..GraphParams::paper()
    };
    (
        attribution_graph(&layers, &a, &[], &p).unwrap(),
        attribution_graph(&layers, &b, &[], &p).unwrap(),
    )
}

type Sets = (BTreeSet<u32>, BTreeSet<(u32, u32)>);

fn sets(g: &AttributionGraph, l: usize) -> Sets {
    let v = g.layers[l].vertices.iter().map(|v| v.channel).collect();
    let e = g.layers[l]
        .vertices
        .iter()
        .flat_map(|v| v.prev.iter().map(move |&(f, _)| (f, v.channel)))
        .collect();
    (v, e)
}

#[test]
fn comparison_matches_set_operations() {
    for seed in 0..20 {
        let (a, b) = pair(seed);
        let cmp = compare(&a, &b).unwrap();
        let (inter, uni, diff_a, diff_b) = (
            cmp.intersection(),
            cmp.union(),
            cmp.difference(Side::A),
            cmp.difference(Side::B),
        );
        let mut shared_vertices = 0;
        for l in 0..a.layers.len() {
            let ((va, ea), (vb, eb)) = (sets(&a, l), sets(&b, l));
            let chans =
                |v: &summit_graph::ViewLayer| v.channels().into_iter().collect::<BTreeSet<_>>();
            let edges = |v: &summit_graph::ViewLayer| {
                v.edges
                    .iter()
                    .map(|&(f, t, _)| (f, t))
                    .collect::<BTreeSet<_>>()
            };
            assert_eq!(chans(&inter.layers[l]), &va & &vb);
            assert_eq!(edges(&inter.layers[l]), &ea & &eb);
            assert_eq!(chans(&uni.layers[l]), &va | &vb);
            assert_eq!(edges(&uni.layers[l]), &ea | &eb);
            shared_vertices += (&va & &vb).len();

            for (view, x, y) in [(&diff_a, &a, &b), (&diff_b, &b, &a)] {
                let ((vx, ex), (vy, ey)) = (sets(x, l), sets(y, l));
                let only_e: BTreeSet<_> = &ex - &ey;
                assert_eq!(edges(&view.layers[l]), only_e);
                // vertices: the distinct ones plus the ends of distinct edges,
                // those into this layer and those from it into the layer above
                let mut expect: BTreeSet<u32> = &vx - &vy;
                expect.extend(only_e.iter().map(|&(_, t)| t));
                if l + 1 < a.layers.len() {
                    let (ex_up, ey_up) = (sets(x, l + 1).1, sets(y, l + 1).1);
                    expect.extend((&ex_up - &ey_up).iter().map(|&(f, _)| f));
                }
                assert_eq!(chans(&view.layers[l]), expect, "seed {seed} layer {l}");
            }

            // marks and weights
            for v in &cmp.layers[l].vertices {
                let m = match (va.contains(&v.channel), vb.contains(&v.channel)) {
                    (true, true) => Membership::Both,
                    (true, false) => Membership::OnlyA,
                    (false, true) => Membership::OnlyB,
                    _ => panic!("vertex in neither graph"),
                };
                assert_eq!(v.membership, m);
                assert_eq!(
                    v.a.map(|s| s.pagerank),
                    a.layers[l].vertex(v.channel).map(|x| x.pagerank)
                );
            }
            for e in &cmp.layers[l].edges {
                let w = |g: &AttributionGraph| {
                    g.layers[l]
                        .vertex(e.to)
                        .and_then(|v| v.prev.iter().find(|&&(f, _)| f == e.from).map(|&(_, w)| w))
                };
                assert_eq!(e.weight_a, w(&a));
                assert_eq!(e.weight_b, w(&b));
            }
            let j = cmp.vertex_jaccard()[l];
            let u = (&va | &vb).len();
            let expect_j = if u == 0 {
                1.0
            } else {
                (&va & &vb).len() as f64 / u as f64
            };
            assert_eq!(j, expect_j);
        }
        assert!(
            shared_vertices > 0,
            "seed {seed}: the test wants overlapping graphs"
        );
    }
}

#[test]
fn comparing_a_graph_with_itself_shares_everything() {
    let (a, _) = pair(7);
    let cmp = compare(&a, &a).unwrap();
    assert!(cmp.layers.iter().all(|l| {
        l.vertices.iter().all(|v| v.membership == Membership::Both)
            && l.edges.iter().all(|e| e.membership == Membership::Both)
    }));
    assert_eq!(cmp.intersection(), cmp.union());
    assert!(
        cmp.difference(Side::A)
            .layers
            .iter()
            .all(|l| l.vertices.is_empty())
    );
}

#[test]
fn mismatched_layers_are_an_error() {
    let (a, mut b) = pair(3);
    b.layers[2].name = "other".into();
    assert!(matches!(
        compare(&a, &b),
        Err(GraphError::LayerMismatch { layer: 2, .. })
    ));
    b.layers.pop();
    assert!(matches!(
        compare(&a, &b),
        Err(GraphError::LayerMismatch { layer: 3, .. })
    ));
}
