//! Motif mining at ImageNet scale: 1000 synthetic attribution graphs of 9 layers (InceptionV1's
//! channel counts), 24 vertices per layer drawn from a Zipf-like popularity (so that classes
//! share channels, as real graphs do) and each vertex joined to 3 vertices of the layer below.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use summit_graph::{
    AttributionGraph, AttributionLayer, AttributionVertex, MotifParams, mine_motifs,
};

const CHANNELS: [u32; 9] = [256, 480, 512, 512, 512, 528, 832, 832, 1024];

fn zipf(rng: &mut ChaCha8Rng, n: u32) -> u32 {
    // P(k) ∝ 1/(k+1): inverse of the continuous approximation
    let u: f64 = rng.random();
    (((n as f64 + 1.0).powf(u) - 1.0) as u32).min(n - 1)
}

fn graph(rng: &mut ChaCha8Rng) -> AttributionGraph {
    let mut layers: Vec<AttributionLayer> = Vec::new();
    for (l, &n) in CHANNELS.iter().enumerate() {
        let mut chans: Vec<u32> = (0..24).map(|_| zipf(rng, n)).collect();
        chans.sort_unstable();
        chans.dedup();
        let below: Vec<u32> = layers.last().map_or(Vec::new(), |b| {
            b.vertices.iter().map(|v| v.channel).collect()
        });
        let vertices = chans
            .into_iter()
            .map(|c| {
                let mut prev: Vec<(u32, f64)> = if below.is_empty() {
                    vec![]
                } else {
                    (0..3)
                        .map(|_| (below[zipf(rng, below.len() as u32) as usize], 1.0))
                        .collect()
                };
                prev.sort_by_key(|p| p.0);
                prev.dedup_by_key(|p| p.0);
                AttributionVertex {
                    channel: c,
                    count: 1,
                    pagerank: 0.01,
                    prev,
                    attr: vec![],
                }
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

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let graphs: Vec<AttributionGraph> = (0..1000).map(|_| graph(&mut rng)).collect();
    let pairs: Vec<(usize, &AttributionGraph)> = graphs.iter().enumerate().collect();
    let params = MotifParams::default();
    let found = mine_motifs(&pairs, &params);
    eprintln!(
        "1000 graphs: {} motifs with support >= {} (best: {:?}, {} classes)",
        found.len(),
        params.min_support(1000),
        found.first().map(|m| (m.kind, m.layer, m.channels.clone())),
        found.first().map_or(0, |m| m.support())
    );
    let mut g = c.benchmark_group("motifs");
    g.sample_size(10);
    g.bench_function("mine_1000_classes", |b| {
        b.iter(|| mine_motifs(&pairs, &params))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
