//! Criterion bench of a convolution's forward and input-gradient step under autodiff on burn's
//! CPU device: [`summit_model::convgrad::conv2d`] (`ours`: the input gradient as a forward
//! convolution) against burn's `conv2d` (`burn`: `conv_transpose2d` through col2im), at
//! shapes of torchvision GoogLeNet's `inception4a` and its stem (batches of 8 at 128² and
//! 224²) and of EfficientNet-Lite0 (a depthwise and a strided convolution).
//!
//! ```sh
//! cargo bench -p summit-model --bench convgrad
//! ```
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
mod common;
use common::values;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

/// `(name, batch, c_in, c_out, size, kernel, stride, padding, groups)`.
type Shape = (
    &'static str,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
);
const SHAPES: &[Shape] = &[
    ("googlenet_conv1_224", 8, 3, 64, 224, 7, 2, 3, 1),
    ("googlenet_conv3_224", 8, 64, 192, 56, 3, 1, 1, 1),
    ("inception4a_1x1_224", 8, 480, 192, 14, 1, 1, 0, 1),
    ("googlenet_conv2_224", 8, 64, 64, 56, 1, 1, 0, 1),
    ("inception3b_1x1_224", 8, 256, 128, 28, 1, 1, 0, 1),
    ("inception4a_3x3_224", 8, 96, 208, 14, 3, 1, 1, 1),
    ("inception4a_3x3_128", 8, 96, 208, 8, 3, 1, 1, 1),
    ("fashion_conv1_31", 8, 1, 16, 31, 3, 1, 1, 1),
    ("fashion_conv2_15", 8, 16, 48, 15, 3, 1, 1, 1),
    ("fashion_3x3_15", 8, 32, 48, 15, 3, 1, 1, 1),
    ("fashion_5x5_15", 8, 8, 16, 15, 5, 1, 2, 1),
    ("fashion_3x3_8", 8, 48, 64, 8, 3, 1, 1, 1),
    ("lite0_dw3x3_s2", 8, 144, 144, 56, 3, 2, 1, 144),
    ("lite0_dw5x5", 8, 480, 480, 14, 5, 1, 2, 480),
];

fn step(f: impl Fn(Tensor<4>) -> Tensor<4>, x: &Tensor<4>) -> Tensor<4> {
    let x = x.clone().require_grad();
    let grads = f(x.clone()).sum().backward();
    x.grad(&grads).expect("a gradient")
}

fn bench(c: &mut Criterion) {
    let host = Device::flex();
    let device = host.clone().autodiff();
    let mut g = c.benchmark_group("convgrad");
    g.sample_size(10);
    for (i, &(name, n, ci, co, hw, k, s, p, groups)) in SHAPES.iter().enumerate() {
        let x = Tensor::<4>::from_data(
            TensorData::new(values(n * ci * hw * hw, i as u64), [n, ci, hw, hw]),
            &device,
        );
        let w = Tensor::<4>::from_data(
            TensorData::new(
                values(co * ci / groups * k * k, 100 + i as u64),
                [co, ci / groups, k, k],
            ),
            &host,
        );
        let o = ConvOptions::new([s, s], [p, p], [1, 1], groups);
        g.bench_with_input(BenchmarkId::new(name, "ours"), &x, |b, x| {
            b.iter(|| {
                black_box(step(
                    |x| summit_model::convgrad::conv2d(x, w.clone(), None, o.clone()),
                    x,
                ))
            })
        });
        if k == 1 && groups == 1 {
            let wm = w.clone().reshape([1, co, ci]);
            g.bench_with_input(BenchmarkId::new(name, "matmul"), &x, |b, x| {
                b.iter(|| {
                    black_box(step(
                        |x| {
                            let [n, _, h, ww] = x.dims();
                            wm.clone()
                                .matmul(x.reshape([n, ci, h * ww]))
                                .reshape([n, co, h, ww])
                        },
                        x,
                    ))
                })
            });
        }
        g.bench_with_input(BenchmarkId::new(name, "burn"), &x, |b, x| {
            b.iter(|| {
                black_box(step(
                    |x| burn::tensor::module::conv2d(x, w.clone(), None, o.clone()),
                    x,
                ))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
