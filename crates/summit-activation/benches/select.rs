//! Criterion benches of channel selection for one batch (B=64, C=832, the
//! size of InceptionV1's mixed4e/5a), and of the top-5 influences of short rows (the
//! embedded model's 3×3 hop: 64 images × 48 output channels of 32 inputs).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use summit_activation::{ActivationAggregator, ChannelMask, Selection, Selector};

const B: usize = 64;
const C: usize = 832;

/// Post-ReLU-like channel maxima: a third zero, the rest heavy-tailed.
fn maxima(seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..B * C)
        .map(|_| {
            if rng.random_bool(0.33) {
                0.0
            } else {
                let u: f32 = rng.random_range(1e-6..1.0);
                -u.ln() * 2.0
            }
        })
        .collect()
}

/// Full sort of every row, for comparison (the naive way).
fn full_sort_top_mass(z: &[f32], frac: f64, out: &mut Vec<usize>) {
    out.clear();
    let sum: f64 = z.iter().map(|&v| f64::from(v.max(0.0))).sum();
    if sum == 0.0 {
        return;
    }
    let mut v: Vec<(f32, usize)> = z.iter().copied().zip(0..).collect();
    v.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
    let mut cum = 0.0;
    for (x, c) in v {
        if cum >= frac || x <= 0.0 {
            break;
        }
        out.push(c);
        cum += f64::from(x) / sum;
    }
}

fn bench(c: &mut Criterion) {
    let z = maxima(1);
    let mut g = c.benchmark_group("select_b64_c832");
    g.throughput(Throughput::Elements(B as u64));
    let mask = ChannelMask::none();
    for sel in [
        Selection::TopMass(0.03),
        Selection::TopMass(0.01),
        Selection::TopK(5),
    ] {
        g.bench_with_input(
            BenchmarkId::new("selector", format!("{sel:?}")),
            &sel,
            |bch, sel| {
                let mut s = Selector::new();
                let mut out = Vec::new();
                bch.iter(|| {
                    let mut n = 0;
                    for row in z.chunks(C) {
                        s.select(black_box(row), &mask, sel, &mut out).unwrap();
                        n += out.len();
                    }
                    n
                })
            },
        );
    }
    g.bench_function("full_sort_reference/TopMass(0.03)", |bch| {
        let mut out = Vec::new();
        bch.iter(|| {
            let mut n = 0;
            for row in z.chunks(C) {
                full_sort_top_mass(black_box(row), 0.03, &mut out);
                n += out.len();
            }
            n
        })
    });
    g.bench_function("aggregator_add_batch/TopMass(0.03)", |bch| {
        let labels: Vec<usize> = (0..B).map(|n| n % 1000).collect();
        let mut agg = ActivationAggregator::new(1000, &[C], &[], Selection::TopMass(0.03)).unwrap();
        bch.iter(|| agg.add_batch(0, black_box(&z), B, &labels).unwrap())
    });
    g.finish();

    // influence rows: signed, continuous values, 32 inputs, top 5
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (rows, c_in) = (64 * 48, 32);
    let l: Vec<f32> = (0..rows * c_in)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let mut g = c.benchmark_group("select_influence_rows_3072x32");
    g.throughput(Throughput::Elements(rows as u64));
    g.bench_function("selector/TopK(5)", |bch| {
        let mut s = Selector::new();
        let mut out = Vec::new();
        bch.iter(|| {
            let mut n = 0;
            for row in l.chunks(c_in) {
                s.select(black_box(row), &mask, &Selection::TopK(5), &mut out)
                    .unwrap();
                n += out.len();
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
