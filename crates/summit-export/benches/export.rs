//! Writing an ImageNet-sized output (1000 classes, InceptionV1's 9 summary
//! layers and channel counts), without patches: the manifest, aggregates,
//! 1000 graph files, overview, Summit format and web view.
//!
//! `cargo bench -p summit-export --bench export`; with
//! `SUMMIT_BENCH_OUT=<dir>` the output is also left in `<dir>` (to open the
//! page at this scale).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/scale.rs"]
mod scale;

use criterion::{Criterion, criterion_group, criterion_main};
use scale::{CLASSES, build, input};
use summit_export::{WriteOptions, write_output};

fn bench(c: &mut Criterion) {
    let (agg, graphs, overview) = build();
    let motifs = summit_graph::MotifSet::default();
    let input = || input(&agg, &graphs, &overview, &motifs);
    let options = WriteOptions {
        force: true,
        summit_format: true,
        patches: false,
    };
    if let Some(dir) = std::env::var_os("SUMMIT_BENCH_OUT") {
        write_output(std::path::Path::new(&dir), &input(), &options).unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let mut g = c.benchmark_group("export");
    g.sample_size(10);
    g.bench_function("write_output_imagenet_1000_classes", |b| {
        b.iter(|| write_output(&dir, &input(), &options).unwrap())
    });
    g.finish();
    let html = std::fs::metadata(dir.join("index.html")).unwrap().len();
    let vertices: usize = graphs.iter().map(|g| g.num_vertices()).sum();
    println!(
        "index.html: {:.1} MB, {vertices} graph vertices over {CLASSES} classes",
        html as f64 / 1e6
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
