//! PageRank and vertex selection against NetworkX and an independent Python
//! implementation of SPEC §3.4/3.5 (fixtures written by
//! `tests/fixtures/make_pagerank.py`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::PathBuf;

use serde::Deserialize;
use summit_graph::{
    ClassAggregate, Edge, FullGraph, GraphParams, LayerInfo, PageRankParams, Selection,
    personalized_pagerank, select_vertices,
};

#[derive(Deserialize)]
struct Fixture {
    name: String,
    layers: Vec<LayerInfo>,
    excluded: Vec<Vec<u32>>,
    counts: Vec<Vec<u32>>,
    edges: Vec<Vec<(u32, u32, f64)>>,
    alpha: f64,
    vertices: usize,
    undirected_edges: usize,
    pagerank: Vec<Vec<Option<f64>>>,
    iterations: usize,
    selected_per_layer: Vec<Vec<u32>>,
    selected_global: Vec<Vec<u32>>,
    selected_relaxed: Vec<Vec<u32>>,
    relaxed_shares: Vec<f64>,
    relaxation_rounds: usize,
    unconnected_layers: Vec<usize>,
    selected_global_relaxed: Vec<Vec<u32>>,
    global_relaxed_share: f64,
    global_relaxation_rounds: usize,
    global_unconnected_layers: Vec<usize>,
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn small() -> Vec<Fixture> {
    let s = std::fs::read_to_string(fixtures_dir().join("pagerank_small.json")).unwrap();
    serde_json::from_str(&s).unwrap()
}

fn inception() -> Fixture {
    let f = std::fs::File::open(fixtures_dir().join("pagerank_inception.json.gz")).unwrap();
    let mut s = String::new();
    flate2::read::GzDecoder::new(f)
        .read_to_string(&mut s)
        .unwrap();
    serde_json::from_str(&s).unwrap()
}

fn class_of(f: &Fixture) -> ClassAggregate {
    ClassAggregate {
        counts: f.counts.clone(),
        edges: f
            .edges
            .iter()
            .map(|l| l.iter().map(|&(a, b, w)| Edge::new(a, b, w)).collect())
            .collect(),
        raw_influences: vec![],
    }
}

/// NetworkX's values as a per-vertex vector in our vertex order.
fn expected_vector(f: &Fixture, g: &FullGraph) -> Vec<f64> {
    let mut out = vec![f64::NAN; g.num_vertices()];
    for (l, layer) in f.pagerank.iter().enumerate() {
        for (c, v) in layer.iter().enumerate() {
            match (v, g.vertex(l, c as u32)) {
                (Some(x), Some(id)) => out[id] = *x,
                (None, None) => {}
                _ => panic!("{}: vertex set differs at layer {l} channel {c}", f.name),
            }
        }
    }
    out
}

fn check_pagerank(f: &Fixture) {
    let g = FullGraph::new(&f.layers, &class_of(f), &f.excluded).unwrap();
    assert_eq!(g.num_vertices(), f.vertices, "{}: vertices", f.name);
    assert_eq!(g.num_edges(), f.undirected_edges, "{}: edges", f.name);
    let params = PageRankParams {
        alpha: f.alpha,
        ..PageRankParams::default()
    };
    let pr = personalized_pagerank(&g, &g.personalization(), &params).unwrap();
    assert!(pr.converged, "{}", f.name);
    assert_eq!(pr.iterations, f.iterations, "{}: iterations", f.name);
    let expected = expected_vector(f, &g);
    let mut worst = 0.0f64;
    for (v, (&a, &b)) in pr.values.iter().zip(&expected).enumerate() {
        let d = (a - b).abs();
        assert!(
            d <= 1e-9,
            "{}: vertex {v} (layer {}, channel {}): ours {a} networkx {b}",
            f.name,
            g.layer_of(v),
            g.channel_of(v)
        );
        worst = worst.max(d);
    }
    eprintln!("{}: max |ours - networkx| = {worst:e}", f.name);

    // one iteration short of NetworkX's count must not converge
    let short = PageRankParams {
        max_iter: f.iterations - 1,
        ..params
    };
    let pr_short = personalized_pagerank(&g, &g.personalization(), &short).unwrap();
    assert!(!pr_short.converged, "{}", f.name);
    assert_eq!(pr_short.iterations, f.iterations - 1);
}

fn check_selection(f: &Fixture, pagerank: &[f64], g: &FullGraph) {
    let per_layer = select_vertices(g, pagerank, &GraphParams::paper()).unwrap();
    assert_eq!(
        per_layer.kept, f.selected_per_layer,
        "{}: per layer",
        f.name
    );
    assert_eq!(per_layer.relaxation_rounds, 0);

    let global = GraphParams {
        selection: Selection::Global { share: 0.075 },
        ..GraphParams::paper()
    };
    let sel = select_vertices(g, pagerank, &global).unwrap();
    assert_eq!(sel.kept, f.selected_global, "{}: global", f.name);

    let relaxed = select_vertices(g, pagerank, &GraphParams::summit2019()).unwrap();
    assert_eq!(relaxed.kept, f.selected_relaxed, "{}: relaxed", f.name);
    assert_eq!(
        relaxed.shares, f.relaxed_shares,
        "{}: relaxed shares",
        f.name
    );
    assert_eq!(relaxed.relaxation_rounds, f.relaxation_rounds, "{}", f.name);
    assert_eq!(
        relaxed.unconnected_layers, f.unconnected_layers,
        "{}",
        f.name
    );

    let global_relaxed = GraphParams {
        relax: true,
        ..global
    };
    let sel = select_vertices(g, pagerank, &global_relaxed).unwrap();
    assert_eq!(
        sel.kept, f.selected_global_relaxed,
        "{}: global relaxed",
        f.name
    );
    assert!(sel.shares.iter().all(|&s| s == f.global_relaxed_share));
    assert_eq!(
        sel.relaxation_rounds, f.global_relaxation_rounds,
        "{}",
        f.name
    );
    assert_eq!(
        sel.unconnected_layers, f.global_unconnected_layers,
        "{}",
        f.name
    );
}

#[test]
fn pagerank_matches_networkx_small_graphs() {
    for f in small() {
        check_pagerank(&f);
    }
}

#[test]
fn pagerank_matches_networkx_inception_sized_graph() {
    let f = inception();
    assert_eq!(f.vertices, 5484);
    assert!(f.undirected_edges > 190_000);
    check_pagerank(&f);
}

/// Selection on NetworkX's own PageRank values, so the rule is compared
/// independently of PageRank rounding; and again on ours.
#[test]
fn selection_matches_reference_small_graphs() {
    let fixtures = small();
    assert!(fixtures.iter().any(|f| f.relaxation_rounds > 0));
    assert!(fixtures.iter().any(|f| !f.unconnected_layers.is_empty()));
    for f in &fixtures {
        let g = FullGraph::new(&f.layers, &class_of(f), &f.excluded).unwrap();
        check_selection(f, &expected_vector(f, &g), &g);
        let pr =
            personalized_pagerank(&g, &g.personalization(), &PageRankParams::default()).unwrap();
        check_selection(f, &pr.values, &g);
    }
}

#[test]
fn selection_matches_reference_inception_sized_graph() {
    let f = inception();
    let g = FullGraph::new(&f.layers, &class_of(&f), &f.excluded).unwrap();
    check_selection(&f, &expected_vector(&f, &g), &g);
    let pr = personalized_pagerank(&g, &g.personalization(), &PageRankParams::default()).unwrap();
    check_selection(&f, &pr.values, &g);
}
