//! Criterion benches of the fused influence kernel (and the naive reference)
//! for torchvision InceptionV1 hop shapes:
//! inception3b 3×3 branch (128→192 at 28×28, 3×3, pad 1),
//! inception4e 3×3 branch (160→320 at 14×14, 3×3, pad 1),
//! a 1×1 hop (832→384 at 7×7, inception5b's 1×1 branch),
//! and the summit2019 geometry (stride 3, SAME) of the inception3b hop.
//! The `influence_device_flex` group runs `influence_device` (burn grouped
//! convolution + spatial max, read back to the host) on burn's flex CPU
//! backend for the inception3b 3×3 and the 1×1 hop, to compare with
//! `influence_cpu` on the same data.
//! Throughput is in images, so criterion reports time per image.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use burn::tensor::{Device, Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::time::Duration;
use summit_activation::{ChannelMask, Selection};
use summit_influence::{
    DeviceInfluenceOptions, DeviceKernel, HopGeometry, InfluenceCounts, influence_cpu,
    influence_device_host, influence_reference,
};

struct Hop {
    name: &'static str,
    c_in: usize,
    c_out: usize,
    hw: usize,
    k: usize,
    geom: HopGeometry,
}

fn data(b: usize, hop: &Hop) -> (Vec<f32>, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let x = (0..b * hop.c_in * hop.hw * hop.hw)
        .map(|_| rng.random_range(-1.0f32..2.0).max(0.0))
        .collect();
    let k = (0..hop.c_out * hop.c_in * hop.k * hop.k)
        .map(|_| rng.random_range(-0.1f32..0.1))
        .collect();
    (x, k)
}

fn hops() -> Vec<Hop> {
    vec![
        Hop {
            name: "inception3b_3x3_128to192_28x28",
            c_in: 128,
            c_out: 192,
            hw: 28,
            k: 3,
            geom: HopGeometry::conv([1, 1], [1, 1]),
        },
        Hop {
            name: "inception4e_3x3_160to320_14x14",
            c_in: 160,
            c_out: 320,
            hw: 14,
            k: 3,
            geom: HopGeometry::conv([1, 1], [1, 1]),
        },
        Hop {
            name: "inception5b_1x1_832to384_7x7",
            c_in: 832,
            c_out: 384,
            hw: 7,
            k: 1,
            geom: HopGeometry::conv([1, 1], [0, 0]),
        },
        Hop {
            name: "inception3b_3x3_128to192_28x28_summit2019_s3_same",
            c_in: 128,
            c_out: 192,
            hw: 28,
            k: 3,
            geom: HopGeometry::tf_same([28, 28], [3, 3], [3, 3]),
        },
    ]
}

fn bench_fused(c: &mut Criterion) {
    let mut g = c.benchmark_group("influence_cpu");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    for hop in hops() {
        for b in [1usize, 8] {
            let (x, k) = data(b, &hop);
            g.throughput(Throughput::Elements(b as u64));
            g.bench_function(BenchmarkId::new(hop.name, format!("B{b}")), |bch| {
                bch.iter(|| {
                    influence_cpu(
                        black_box(&x),
                        [b, hop.c_in, hop.hw, hop.hw],
                        &k,
                        [hop.c_out, hop.c_in, hop.k, hop.k],
                        &hop.geom,
                    )
                    .unwrap()
                })
            });
        }
    }
    g.finish();
}

fn bench_device(c: &mut Criterion) {
    let device = Device::flex();
    let mut g = c.benchmark_group("influence_device_flex");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    for hop in hops()
        .into_iter()
        .filter(|h| h.name.starts_with("inception3b_3x3_128to192_28x28") || h.k == 1)
    {
        if hop.name.contains("summit2019") {
            continue;
        }
        for b in [1usize, 8] {
            let (x, k) = data(b, &hop);
            let x_dims = [b, hop.c_in, hop.hw, hop.hw];
            let dk = DeviceKernel::new(&k, [hop.c_out, hop.c_in, hop.k, hop.k], &device).unwrap();
            let xt = Tensor::<4>::from_data(TensorData::new(x, x_dims), &device);
            let opts = DeviceInfluenceOptions::default();
            g.throughput(Throughput::Elements(b as u64));
            g.bench_function(BenchmarkId::new(hop.name, format!("B{b}")), |bch| {
                bch.iter(|| {
                    influence_device_host(black_box(xt.clone()), &dk, &hop.geom, &opts).unwrap()
                })
            });
        }
    }
    g.finish();
}

fn bench_reference(c: &mut Criterion) {
    let mut g = c.benchmark_group("influence_reference");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for hop in hops() {
        let (x, k) = data(1, &hop);
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new(hop.name, "B1"), |bch| {
            bch.iter(|| {
                influence_reference(
                    black_box(&x),
                    [1, hop.c_in, hop.hw, hop.hw],
                    &k,
                    [hop.c_out, hop.c_in, hop.k, hop.k],
                    &hop.geom,
                )
                .unwrap()
            })
        });
    }
    g.finish();
}

fn bench_counts(c: &mut Criterion) {
    // top-5 selection + sparse count update for one batch of L [64, 384, 832]
    let (b, c_out, c_in) = (64usize, 384usize, 832usize);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let l: Vec<f32> = (0..b * c_out * c_in)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let labels: Vec<usize> = (0..b).map(|n| n % 10).collect();
    let mut g = c.benchmark_group("influence_counts");
    g.sample_size(10);
    g.throughput(Throughput::Elements(b as u64));
    g.bench_function("add_batch_top5_b64_384x832", |bch| {
        bch.iter(|| {
            let mut counts = InfluenceCounts::new(1000, c_out, c_in);
            counts
                .add_batch(
                    black_box(&l),
                    b,
                    &labels,
                    &ChannelMask::none(),
                    &Selection::TopK(5),
                )
                .unwrap();
            counts
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_fused,
    bench_device,
    bench_reference,
    bench_counts
);
criterion_main!(benches);
