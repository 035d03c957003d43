//! Criterion bench of [`BasicConv2d::forward`] (conv → batch norm → ReLU) on burn's CPU
//! device (`forward`: the host convolution with batch norm and ReLU in its output pass where
//! the shape suits it, else burn's), against burn's convolution, batch norm and ReLU (`burn`),
//! at the shapes of the embedded Fashion-MNIST model (batches of 64) and of torchvision
//! GoogLeNet (batches of 8). Throughput is in multiply-adds, so criterion reports them per
//! second.
//!
//! ```sh
//! cargo bench -p summit-model --bench conv
//! ```
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use burn::tensor::{Device, Tensor, TensorData};
mod common;
use common::values;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use summit_model::blocks::{BasicConv2d, ConvSpec};

/// `(name, batch, c_in, c_out, size, kernel)`.
const SHAPES: &[(&str, usize, usize, usize, usize, usize)] = &[
    ("fashion_mixed3a_1x1_front", 64, 48, 64, 14, 1),
    ("fashion_mixed3a_3x3", 64, 32, 48, 14, 3),
    ("fashion_mixed3a_5x5", 64, 8, 16, 14, 5),
    ("fashion_mixed4a_1x1_front", 64, 112, 108, 7, 1),
    ("fashion_mixed4a_3x3", 64, 48, 64, 7, 3),
    ("googlenet_inception3b_3x3", 8, 128, 192, 28, 3),
    ("googlenet_inception4e_3x3", 8, 160, 320, 14, 3),
    ("googlenet_inception4b_1x1", 8, 512, 160, 14, 1),
    ("googlenet_inception5b_1x1", 8, 832, 384, 7, 1),
];

fn bench(c: &mut Criterion) {
    let device = Device::flex();
    let mut g = c.benchmark_group("conv");
    g.sample_size(20);
    for (i, &(name, n, c_in, c_out, hw, k)) in SHAPES.iter().enumerate() {
        let block = BasicConv2d::init(ConvSpec::same(c_in, c_out, k), 1e-3, &device);
        let x = Tensor::<4>::from_data(
            TensorData::new(values(n * c_in * hw * hw, i as u64), [n, c_in, hw, hw]),
            &device,
        );
        g.throughput(Throughput::Elements(
            (n * c_in * c_out * hw * hw * k * k) as u64,
        ));
        g.bench_with_input(BenchmarkId::new(name, "forward"), &x, |b, x| {
            b.iter(|| black_box(block.forward(x.clone())))
        });
        g.bench_with_input(BenchmarkId::new(name, "burn"), &x, |b, x| {
            b.iter(|| {
                let y = block.bn.forward(block.conv.forward(x.clone()));
                black_box(burn::tensor::activation::relu(y))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
