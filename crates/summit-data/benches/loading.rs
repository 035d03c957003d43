//! Decode + preprocess throughput on the committed fixture images.
//!
//! `CARGO_TARGET_DIR=/work/targets/data cargo bench -p summit-data`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use summit_data::{BatchLoader, Dataset, ImageFolder, Preprocess, decode_file};

fn folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/folder")
}

fn bench(c: &mut Criterion) {
    let large = folder().join("dog/large.jpg");
    let small = folder().join("cat/cat_01.png");
    let mut g = c.benchmark_group("preprocess");
    g.throughput(Throughput::Elements(1));
    for (name, path) in [("large_jpg_300x260", &large), ("small_png_40x30", &small)] {
        let img = decode_file(path).unwrap();
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| decode_file(path).unwrap())
        });
        for (preset, p) in [
            ("torchvision", Preprocess::Torchvision),
            ("lucid", Preprocess::lucid()),
        ] {
            let t = p.transform();
            g.bench_function(format!("{preset}/{name}"), |b| {
                b.iter(|| t.apply(&img, "x").unwrap())
            });
        }
    }
    g.finish();

    // The whole fixture folder (6 good images, 2 bad) through the loader, batches of 4.
    let d = Arc::new(ImageFolder::open(folder(), Preprocess::Torchvision).unwrap());
    let mut g = c.benchmark_group("loader");
    g.throughput(Throughput::Elements(d.len() as u64));
    g.bench_function("fixture_folder_torchvision_b4", |b| {
        b.iter(|| {
            BatchLoader::new(d.clone(), (0..d.len()).collect(), 4)
                .unwrap()
                .map(|batch| batch.len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
