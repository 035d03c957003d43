//! Class-overview embeddings at ImageNet scale: 1,000 classes × 512 channels
//! (synthetic counts with 20 groups of classes), UMAP and PCA for one layer.
//!
//! `CARGO_TARGET_DIR=/work/targets/graph cargo bench -p summit-graph --bench overview`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use summit_graph::{UmapParams, cosine_similarity, pca_2d, umap_2d};

fn data() -> Vec<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    (0..1000)
        .map(|c| {
            let group = c % 20;
            (0..512)
                .map(|ch| {
                    if ch % 20 == group {
                        rng.random_range(0..40)
                    } else if rng.random_range(0..10) == 0 {
                        rng.random_range(0..5)
                    } else {
                        0
                    }
                })
                .collect()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let rows = data();
    let x: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| r.iter().map(|&v| f64::from(v)).collect())
        .collect();
    let mut g = c.benchmark_group("overview_1000x512");
    g.sample_size(10);
    g.bench_function("cosine_similarity", |b| {
        b.iter(|| cosine_similarity(&rows).unwrap())
    });
    g.bench_function("pca_2d", |b| b.iter(|| pca_2d(&x).unwrap()));
    g.bench_function("umap_2d", |b| {
        b.iter(|| umap_2d(&x, &UmapParams::default(), None, 0).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
