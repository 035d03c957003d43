// The body of the PageRank bench, included by `benches/pagerank.rs` of both
// summit-graph and the workspace root.

use std::io::Read;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use serde::Deserialize;
use summit_graph::{
    ClassAggregate, Edge, FullGraph, GraphParams, LayerInfo, PageRankParams, attribution_graph,
    personalized_pagerank,
};

#[derive(Deserialize)]
struct Fixture {
    layers: Vec<LayerInfo>,
    excluded: Vec<Vec<u32>>,
    counts: Vec<Vec<u32>>,
    edges: Vec<Vec<(u32, u32, f64)>>,
}

/// The fixture, found from the crate's or the workspace's manifest dir (this
/// file is also included by the workspace root's `benches/pagerank.rs`).
fn load() -> (Vec<LayerInfo>, ClassAggregate, Vec<Vec<u32>>) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let rel = "tests/fixtures/pagerank_inception.json.gz";
    let path = [root.join(rel), root.join("crates/summit-graph").join(rel)]
        .into_iter()
        .find(|p| p.exists())
        .expect("pagerank_inception.json.gz not found");
    let mut s = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    let f: Fixture = serde_json::from_str(&s).unwrap();
    let class = ClassAggregate {
        counts: f.counts,
        edges: f
            .edges
            .iter()
            .map(|l| l.iter().map(|&(a, b, w)| Edge::new(a, b, w)).collect())
            .collect(),
        raw_influences: vec![],
    };
    (f.layers, class, f.excluded)
}

fn bench(c: &mut Criterion) {
    let (layers, class, excluded) = load();
    let g = FullGraph::new(&layers, &class, &excluded).unwrap();
    let p = g.personalization();
    let params = PageRankParams::default();
    let pr = personalized_pagerank(&g, &p, &params).unwrap();
    eprintln!(
        "inception-sized graph: {} vertices, {} edges, {} iterations",
        g.num_vertices(),
        g.num_edges(),
        pr.iterations
    );
    c.bench_function("pagerank_inception_sized", |b| {
        b.iter(|| personalized_pagerank(&g, &p, &params).unwrap())
    });
    c.bench_function("full_graph_build_inception_sized", |b| {
        b.iter(|| FullGraph::new(&layers, &class, &excluded).unwrap())
    });
    c.bench_function("attribution_graph_inception_sized", |b| {
        b.iter(|| {
            attribution_graph(&layers, &class, &excluded, &GraphParams::summit2019()).unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
