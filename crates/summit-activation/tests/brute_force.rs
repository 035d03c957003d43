//! Brute-force references for channel maxima, both selection methods (ties
//! included), the A counts and the dataset-example heaps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use summit_activation::{
    ActivationAggregator, ActivationError, ChannelMask, Example, ExampleHeaps, Selection,
    channel_max, select_channels,
};

/// Values drawn from a few levels so that ties are frequent; `zero_frac` of
/// them are exactly zero.
fn tied_values(rng: &mut ChaCha8Rng, n: usize, levels: u32, zero_frac: f64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            if rng.random_bool(zero_frac) {
                0.0
            } else {
                rng.random_range(1..=levels) as f32 * 0.25
            }
        })
        .collect()
}

fn naive_channel_max(act: &[f32], dims: [usize; 4]) -> (Vec<f32>, Vec<u32>) {
    let [b, c, h, w] = dims;
    let mut m = vec![0.0; b * c];
    let mut a = vec![0; b * c];
    for n in 0..b {
        for ch in 0..c {
            let mut best = f32::NEG_INFINITY;
            let mut pos = 0;
            for y in 0..h {
                for x in 0..w {
                    let v = act[((n * c + ch) * h + y) * w + x];
                    if v > best {
                        best = v;
                        pos = y * w + x;
                    }
                }
            }
            m[n * c + ch] = best;
            a[n * c + ch] = pos as u32;
        }
    }
    (m, a)
}

/// The SPEC's order by a full sort: value descending, ties by higher index.
fn sorted_candidates(z: &[f32], excluded: &[usize]) -> Vec<(f32, usize)> {
    let mut v: Vec<(f32, usize)> = z
        .iter()
        .enumerate()
        .filter(|(c, _)| !excluded.contains(c))
        .map(|(c, &x)| (x, c))
        .collect();
    v.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then(b.1.cmp(&a.1)));
    v
}

fn naive_top_k(z: &[f32], excluded: &[usize], k: usize) -> Vec<usize> {
    sorted_candidates(z, excluded)
        .into_iter()
        .take(k)
        .map(|(_, c)| c)
        .collect()
}

fn naive_top_mass(z: &[f32], excluded: &[usize], frac: f64) -> Vec<usize> {
    let zz: Vec<f32> = z
        .iter()
        .enumerate()
        .map(|(c, &x)| {
            if excluded.contains(&c) || x < 0.0 {
                0.0
            } else {
                x
            }
        })
        .collect();
    let sum: f64 = zz.iter().map(|&x| f64::from(x)).sum();
    if sum == 0.0 {
        return vec![];
    }
    let mut out = vec![];
    let mut cum = 0.0f64;
    for (x, c) in sorted_candidates(&zz, excluded) {
        if cum >= frac || x <= 0.0 {
            break;
        }
        out.push(c);
        cum += f64::from(x) / sum;
    }
    out
}

#[test]
fn channel_max_matches_naive_loops_with_ties() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for dims in [[1, 1, 1, 1], [3, 5, 4, 7], [2, 16, 7, 7], [4, 3, 1, 9]] {
        let n = dims.iter().product();
        let mut act = tied_values(&mut rng, n, 4, 0.3);
        for v in act.iter_mut() {
            if rng.random_bool(0.2) {
                *v = -*v;
            }
        }
        assert_eq!(
            channel_max(&act, dims).unwrap(),
            naive_channel_max(&act, dims)
        );
    }
}

#[test]
fn channel_max_rejects_bad_input() {
    assert!(matches!(
        channel_max(&[1.0; 5], [1, 2, 1, 3]),
        Err(ActivationError::Shape {
            expected: 6,
            got: 5,
            ..
        })
    ));
    assert!(matches!(
        channel_max(&[], [1, 2, 0, 3]),
        Err(ActivationError::EmptyDimension { axis: 2, .. })
    ));
    assert!(matches!(
        channel_max(&[1.0, f32::NAN], [1, 1, 1, 2]),
        Err(ActivationError::NonFinite { index: 1, .. })
    ));
}

#[test]
fn top_k_matches_full_sort_with_ties_and_exclusions() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut out = vec![];
    for trial in 0..400 {
        let c = rng.random_range(1..120);
        let z = tied_values(&mut rng, c, 3, 0.5);
        let excluded: Vec<usize> = (0..c).filter(|_| rng.random_bool(0.05)).collect();
        let k = [0, 1, 5, 17, 32, 33, 200][trial % 7];
        let mask = ChannelMask::from_channels(&excluded);
        select_channels(&z, &mask, &Selection::TopK(k), &mut out).unwrap();
        assert_eq!(out, naive_top_k(&z, &excluded, k), "trial {trial} z={z:?}");
    }
}

#[test]
fn top_k_with_negative_values_orders_like_full_sort() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut out = vec![];
    for _ in 0..200 {
        let c = rng.random_range(1..60);
        let z: Vec<f32> = (0..c)
            .map(|_| rng.random_range(-3..=3) as f32 * 0.5)
            .collect();
        select_channels(&z, &ChannelMask::none(), &Selection::TopK(5), &mut out).unwrap();
        assert_eq!(out, naive_top_k(&z, &[], 5));
    }
}

#[test]
fn top_mass_matches_literal_rule_with_ties_and_exclusions() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut out = vec![];
    for trial in 0..600 {
        let c = rng.random_range(1..900);
        let zero_frac = [0.0, 0.5, 0.95, 1.0][trial % 4];
        let mut z = tied_values(&mut rng, c, 5, zero_frac);
        if trial % 7 == 0 {
            // continuous values: no ties
            z = (0..c).map(|_| rng.random::<f32>()).collect();
        }
        let excluded: Vec<usize> = (0..c).filter(|_| rng.random_bool(0.02)).collect();
        let frac = [0.01, 0.03, 0.2, 0.5, 1.0][trial % 5];
        let mask = ChannelMask::from_channels(&excluded);
        select_channels(&z, &mask, &Selection::TopMass(frac), &mut out).unwrap();
        assert_eq!(out, naive_top_mass(&z, &excluded, frac), "trial {trial}");
    }
}

#[test]
fn selection_edge_cases_by_hand() {
    let none = ChannelMask::none();
    let mut out = vec![];
    // all-zero row: Method 2 selects nothing
    select_channels(&[0.0; 4], &none, &Selection::TopMass(0.03), &mut out).unwrap();
    assert!(out.is_empty());
    // Method 1 follows the original and takes zeros, higher index first
    select_channels(&[0.0, 2.0, 0.0, 0.0], &none, &Selection::TopK(3), &mut out).unwrap();
    assert_eq!(out, vec![1, 3, 2]);
    // Method 2 always takes at least one channel of a non-zero row
    select_channels(&[0.1, 0.2, 0.3], &none, &Selection::TopMass(1e-9), &mut out).unwrap();
    assert_eq!(out, vec![2]);
    // -0.0 ties with +0.0, so the higher index comes first
    select_channels(&[0.0, -0.0, 1.0], &none, &Selection::TopK(3), &mut out).unwrap();
    assert_eq!(out, vec![2, 1, 0]);
    // an excluded channel is never selected, even by top-k on a sparse row
    let ex = ChannelMask::from_channels(&[3]);
    select_channels(&[0.0, 2.0, 0.0, 0.0], &ex, &Selection::TopK(3), &mut out).unwrap();
    assert_eq!(out, vec![1, 2, 0]);
    // mass: [4, 3, 2, 1]/10: 0<0.5 take 0 (0.4), 0.4<0.5 take 1 (0.7), stop
    select_channels(
        &[4.0, 3.0, 2.0, 1.0],
        &none,
        &Selection::TopMass(0.5),
        &mut out,
    )
    .unwrap();
    assert_eq!(out, vec![0, 1]);
    // running sum exactly equal to k stops (strictly less to continue)
    select_channels(&[2.0, 1.0, 1.0], &none, &Selection::TopMass(0.5), &mut out).unwrap();
    assert_eq!(out, vec![0]);
    // invalid parameters and values are errors
    assert!(select_channels(&[1.0], &none, &Selection::TopMass(0.0), &mut out).is_err());
    assert!(select_channels(&[1.0], &none, &Selection::TopMass(1.5), &mut out).is_err());
    assert!(select_channels(&[1.0, f32::NAN], &none, &Selection::TopK(1), &mut out).is_err());
}

#[test]
fn aggregator_counts_match_brute_force() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let channels = [37usize, 64];
    let classes = 6;
    let excluded = vec![vec![3, 30], vec![]];
    for sel in [
        Selection::TopMass(0.03),
        Selection::TopMass(0.3),
        Selection::TopK(4),
    ] {
        let mut agg = ActivationAggregator::new(classes, &channels, &excluded, sel).unwrap();
        let mut brute: Vec<Vec<u32>> = channels.iter().map(|&c| vec![0; classes * c]).collect();
        for _batch in 0..5 {
            let b = rng.random_range(1..20);
            let labels: Vec<usize> = (0..b).map(|_| rng.random_range(0..classes)).collect();
            for (layer, &c) in channels.iter().enumerate() {
                let z = tied_values(&mut rng, b * c, 6, 0.4);
                agg.add_batch(layer, &z, b, &labels).unwrap();
                for (n, row) in z.chunks(c).enumerate() {
                    let chosen = match sel {
                        Selection::TopK(k) => naive_top_k(row, &excluded[layer], k),
                        Selection::TopMass(f) => naive_top_mass(row, &excluded[layer], f),
                    };
                    for j in chosen {
                        brute[layer][labels[n] * c + j] += 1;
                    }
                }
            }
        }
        for (layer, want) in brute.iter().enumerate() {
            assert_eq!(agg.counts().layer(layer).unwrap(), want.as_slice());
            for &e in &excluded[layer] {
                assert!((0..classes).all(|k| agg.counts().get(layer, k, e) == Some(0)));
            }
        }
    }
}

#[test]
fn aggregator_rejects_bad_batches_without_changing_counts() {
    let mut agg = ActivationAggregator::new(2, &[3], &[], Selection::TopK(1)).unwrap();
    agg.add_batch(0, &[1.0, 0.0, 0.0], 1, &[0]).unwrap();
    let before = agg.counts().clone();
    assert!(matches!(
        agg.add_batch(0, &[1.0, 0.0, 0.0, 1.0, 0.0, 0.0], 2, &[0, 2]),
        Err(ActivationError::LabelOutOfRange {
            image: 1,
            label: 2,
            classes: 2
        })
    ));
    assert!(matches!(
        agg.add_batch(0, &[1.0, 0.0, 0.0, 1.0, f32::INFINITY, 0.0], 2, &[0, 1]),
        Err(ActivationError::NonFinite {
            what: "maxima",
            index: 4,
            ..
        })
    ));
    assert!(matches!(
        agg.add_batch(1, &[1.0, 0.0, 0.0], 1, &[0]),
        Err(ActivationError::LayerOutOfRange {
            layer: 1,
            layers: 1
        })
    ));
    assert!(matches!(
        agg.add_batch(0, &[1.0, 0.0], 1, &[0]),
        Err(ActivationError::Shape { .. })
    ));
    assert_eq!(agg.counts(), &before);
    assert!(matches!(
        ActivationAggregator::new(2, &[3], &[vec![3]], Selection::TopK(1)),
        Err(ActivationError::ExcludedOutOfRange {
            layer: 0,
            channel: 3,
            channels: 3
        })
    ));
}

fn naive_examples(all: &[(f32, u64, u32)], cap: usize) -> Vec<Example> {
    let mut v: Vec<Example> = all
        .iter()
        .map(|&(value, image_id, argmax)| Example {
            value,
            image_id,
            argmax,
        })
        .collect();
    v.sort_by(|a, b| {
        b.value
            .partial_cmp(&a.value)
            .unwrap()
            .then(a.image_id.cmp(&b.image_id))
            .then(a.argmax.cmp(&b.argmax))
    });
    v.truncate(cap);
    v
}

#[test]
fn example_heaps_match_full_sort_and_merge_exactly() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let c = 9;
    let n_img = 300usize;
    let z = tied_values(&mut rng, n_img * c, 4, 0.3);
    let arg: Vec<u32> = (0..n_img * c).map(|_| rng.random_range(0..49)).collect();
    let mut ids: Vec<u64> = (0..n_img as u64).map(|i| i * 3 + 7).collect();
    // reference: full sort of every image per channel
    let want: Vec<Vec<Example>> = (0..c)
        .map(|ch| {
            let all: Vec<(f32, u64, u32)> = (0..n_img)
                .map(|n| (z[n * c + ch], ids[n], arg[n * c + ch]))
                .collect();
            naive_examples(&all, 10)
        })
        .collect();
    let run = |order: &[usize], batch: usize| {
        let mut h = ExampleHeaps::new(10, &[5, c]);
        for chunk in order.chunks(batch) {
            let zz: Vec<f32> = chunk
                .iter()
                .flat_map(|&n| z[n * c..(n + 1) * c].to_vec())
                .collect();
            let aa: Vec<u32> = chunk
                .iter()
                .flat_map(|&n| arg[n * c..(n + 1) * c].to_vec())
                .collect();
            let ii: Vec<u64> = chunk.iter().map(|&n| ids[n]).collect();
            h.add_batch(1, &zz, &aa, &ii).unwrap();
        }
        h
    };
    let order: Vec<usize> = (0..n_img).collect();
    let single = run(&order, 32);
    for (ch, w) in want.iter().enumerate() {
        assert_eq!(single.get(1, ch).unwrap(), w.as_slice());
    }
    let mut shuffled = order.clone();
    shuffled.shuffle(&mut rng);
    assert_eq!(run(&shuffled, 7), single);
    let mut a = run(&shuffled[..111], 1);
    let b = run(&shuffled[111..], 64);
    a.merge(&b).unwrap();
    assert_eq!(a, single);
    // mismatched capacity refuses to merge
    assert!(a.merge(&ExampleHeaps::new(5, &[5, c])).is_err());
    ids.clear();
}

/// A non-finite value anywhere in a long row is an error naming its index, for the small-k
/// path (which skips whole blocks below its floor) as for the generic one, even where the
/// value lies in a block that is otherwise below the floor (−∞ among small values).
#[test]
fn non_finite_values_are_found_in_every_block() {
    let none = ChannelMask::none();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut out = vec![];
    for trial in 0..400 {
        let len = rng.random_range(1..120);
        // large values first, so the floor is high before the later blocks
        let mut z: Vec<f32> = (0..len)
            .map(|i| {
                if i < 8 {
                    100.0 + i as f32
                } else {
                    rng.random::<f32>()
                }
            })
            .collect();
        let bad = rng.random_range(0..len);
        z[bad] = match trial % 3 {
            0 => f32::NEG_INFINITY,
            1 => f32::NAN,
            _ => f32::INFINITY,
        };
        for k in [1usize, 5, 32, 33, 200] {
            let got = select_channels(&z, &none, &Selection::TopK(k), &mut out);
            match got {
                Err(ActivationError::NonFinite { index, .. }) => {
                    assert_eq!(index, bad, "trial {trial} k {k}")
                }
                other => panic!("trial {trial} k {k}: {other:?}"),
            }
        }
        // and without it, the small-k path agrees with a sort
        z[bad] = 0.5;
        for k in [1usize, 5, 32] {
            select_channels(&z, &none, &Selection::TopK(k), &mut out).unwrap();
            let mut want: Vec<usize> = (0..len).collect();
            // descending value, the higher index first on ties (Method 1's order)
            want.sort_by(|&a, &b| z[b].total_cmp(&z[a]).then(b.cmp(&a)));
            want.truncate(k);
            assert_eq!(out, want, "trial {trial} k {k}");
        }
    }
}
