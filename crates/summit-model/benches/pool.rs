//! Criterion bench of [`summit_model::pool::max_pool2d`] on burn's CPU device (`fast`: the
//! separable host path) against burn's own `max_pool2d` (`burn`), at the pooling shapes of
//! the embedded Fashion-MNIST model (batches of 64: its two stage pools and the inception
//! modules' 3×3 stride-1 pool branches) and of torchvision GoogLeNet (batches of 8).
//! Throughput is in input values.
//!
//! ```sh
//! cargo bench -p summit-model --bench pool
//! ```
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor, TensorData};
mod common;
use common::values;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// `(name, batch, channels, size, kernel, stride, padding, ceil)`.
type Shape = (&'static str, usize, usize, usize, usize, usize, usize, bool);
const SHAPES: &[Shape] = &[
    ("fashion_maxpool1", 64, 16, 28, 2, 2, 0, false),
    ("fashion_mixed3a_pool", 64, 48, 14, 3, 1, 1, true),
    ("fashion_mixed3b_pool", 64, 104, 14, 3, 1, 1, true),
    ("fashion_maxpool3", 64, 112, 14, 3, 2, 1, false),
    ("fashion_mixed4a_pool", 64, 112, 7, 3, 1, 1, true),
    ("googlenet_maxpool2", 8, 192, 56, 3, 2, 0, true),
    ("googlenet_inception3b_pool", 8, 256, 28, 3, 1, 1, true),
];

fn bench(c: &mut Criterion) {
    let device = Device::flex();
    let mut g = c.benchmark_group("pool");
    g.sample_size(20);
    for (i, &(name, n, ch, hw, k, s, p, ceil)) in SHAPES.iter().enumerate() {
        let x = Tensor::<4>::from_data(
            TensorData::new(values(n * ch * hw * hw, i as u64), [n, ch, hw, hw]),
            &device,
        );
        let o = MaxPoolOptions::new([k, k])
            .with_stride([s, s])
            .with_padding_pairs([(p, p), (p, p)])
            .with_ceil_mode(ceil);
        g.throughput(Throughput::Elements((n * ch * hw * hw) as u64));
        g.bench_with_input(BenchmarkId::new(name, "fast"), &x, |b, x| {
            b.iter(|| black_box(summit_model::pool::max_pool2d(x.clone(), o.clone())))
        });
        g.bench_with_input(BenchmarkId::new(name, "burn"), &x, |b, x| {
            b.iter(|| black_box(burn::tensor::module::max_pool2d(x.clone(), o.clone())))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
