//! Top-k influence selection and sparse counts against dense brute force,
//! and the two-hop bottleneck merge on hand-built and random cases.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::type_complexity,
    clippy::manual_checked_ops,
    clippy::needless_range_loop
)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use summit_activation::{ChannelMask, Selection};
use summit_influence::{
    HopSpec, InfluenceCounts, InfluenceError, PathCounts, PathSpec, bottleneck_edge_budget,
    merge_paths, top_influences,
};

fn naive_top_k(row: &[f32], excluded: &[usize], k: usize) -> Vec<u32> {
    let mut v: Vec<(f32, usize)> = row
        .iter()
        .enumerate()
        .filter(|(i, _)| !excluded.contains(i))
        .map(|(i, &x)| (x, i))
        .collect();
    v.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then(b.1.cmp(&a.1)));
    v.into_iter().take(k).map(|(_, i)| i as u32).collect()
}

#[test]
fn top_influences_and_counts_match_dense_brute_force() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let (classes, c_out, c_in) = (4, 13, 29);
    let excluded = vec![2usize, 17];
    let mask = ChannelMask::from_channels(&excluded);
    let mut counts = InfluenceCounts::new(classes, c_out, c_in);
    let mut dense = vec![0u32; classes * c_out * c_in];
    for _ in 0..6 {
        let b = rng.random_range(1..9);
        // few levels, negative values: many ties
        let l: Vec<f32> = (0..b * c_out * c_in)
            .map(|_| rng.random_range(-3..4) as f32)
            .collect();
        let labels: Vec<usize> = (0..b).map(|_| rng.random_range(0..classes)).collect();
        let top = top_influences(&l, b, c_out, c_in, &mask, &Selection::TopK(5)).unwrap();
        for (r, row) in l.chunks(c_in).enumerate() {
            let want = naive_top_k(row, &excluded, 5);
            assert_eq!(top[r], want);
            for &i in &want {
                dense[(labels[r / c_out] * c_out + r % c_out) * c_in + i as usize] += 1;
            }
        }
        counts
            .add_batch(&l, b, &labels, &mask, &Selection::TopK(5))
            .unwrap();
    }
    let mut entries = 0;
    for k in 0..classes {
        for j in 0..c_out {
            let row = counts.row(k, j).unwrap().to_vec();
            assert!(
                row.windows(2).all(|w| w[0].0 < w[1].0),
                "rows sorted by input"
            );
            for i in 0..c_in {
                let d = dense[(k * c_out + j) * c_in + i];
                assert_eq!(counts.get(k, j, i), Some(d));
                entries += usize::from(d > 0);
            }
        }
    }
    assert_eq!(counts.num_entries(), entries);
}

#[test]
fn counts_merge_equals_single_run() {
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let (classes, c_out, c_in, b) = (3, 8, 40, 20);
    let l: Vec<f32> = (0..b * c_out * c_in).map(|_| rng.random::<f32>()).collect();
    let labels: Vec<usize> = (0..b).map(|_| rng.random_range(0..classes)).collect();
    let sel = Selection::TopMass(0.1);
    let none = ChannelMask::none();
    let mut whole = InfluenceCounts::new(classes, c_out, c_in);
    whole.add_batch(&l, b, &labels, &none, &sel).unwrap();
    let split = 7 * c_out * c_in;
    let mut a = InfluenceCounts::new(classes, c_out, c_in);
    a.add_batch(&l[..split], 7, &labels[..7], &none, &sel)
        .unwrap();
    let mut bb = InfluenceCounts::new(classes, c_out, c_in);
    bb.add_batch(&l[split..], b - 7, &labels[7..], &none, &sel)
        .unwrap();
    a.merge(&bb).unwrap();
    assert_eq!(a, whole);
    assert!(matches!(
        a.merge(&InfluenceCounts::new(classes, c_out, c_in + 1)),
        Err(InfluenceError::Mismatch { .. })
    ));
    // a bad label is refused before anything changes
    let before = a.clone();
    assert!(matches!(
        a.add_batch(&l[..c_out * c_in], 1, &[classes], &none, &sel),
        Err(InfluenceError::LabelOutOfRange { .. })
    ));
    assert_eq!(a, before);
}

fn counts(
    classes: usize,
    c_out: usize,
    c_in: usize,
    rows: &[(usize, usize, &[(u32, u32)])],
) -> InfluenceCounts {
    let mut r = vec![Vec::new(); classes * c_out];
    for &(k, j, pairs) in rows {
        r[k * c_out + j] = pairs.to_vec();
    }
    InfluenceCounts::from_rows(classes, c_out, c_in, r).unwrap()
}

#[test]
fn two_hop_merge_by_hand() {
    // previous summary layer: 4 channels; this layer: 5 = 2 (direct) + 2 (two-hop) + 1 (pool)
    let direct = PathCounts::dense(
        0,
        vec![counts(
            2,
            2,
            4,
            &[(0, 0, &[(0, 3), (2, 1)]), (0, 1, &[(1, 2)])],
        )],
    );
    let two_hop = PathCounts::dense(
        2,
        vec![
            counts(
                2,
                3,
                4,
                &[
                    (0, 0, &[(0, 5), (1, 1)]),
                    (0, 1, &[(2, 2), (3, 2)]),
                    (0, 2, &[(1, 4)]),
                    (1, 0, &[(0, 1)]),
                ],
            ),
            counts(
                2,
                2,
                3,
                &[
                    (0, 0, &[(0, 2), (1, 3)]),
                    (0, 1, &[(0, 1), (2, 1)]),
                    (1, 0, &[(0, 1)]),
                ],
            ),
        ],
    );
    let pool = PathCounts::dense(
        4,
        vec![counts(2, 1, 4, &[(0, 0, &[(0, 1), (1, 1), (3, 4)])])],
    );
    let paths = vec![direct, two_hop, pool];
    // class 0: 6 direct edges over 3 direct channels -> m = 2; class 1: none -> m = 0
    assert_eq!(bottleneck_edge_budget(&paths, 0), Some(2));
    assert_eq!(bottleneck_edge_budget(&paths, 1), Some(0));
    let e = merge_paths(&paths, 2, 4, 5).unwrap();
    assert_eq!((e.num_classes(), e.c_out(), e.c_in()), (2, 5, 4));
    assert_eq!(e.row(0, 0).unwrap().to_vec(), vec![(0, 3), (2, 1)]);
    assert_eq!(e.row(0, 1).unwrap().to_vec(), vec![(1, 2)]);
    // out 2 (two-hop out0): via R0 (2): i0 min(2,5)=2, i1 min(2,1)=1; via R1 (3): i2 2, i3 2
    // -> weights {0:2, 1:1, 2:2, 3:2}; top 2, ties to the higher index: 3 and 2
    assert_eq!(e.row(0, 2).unwrap().to_vec(), vec![(2, 2), (3, 2)]);
    // out 3 (two-hop out1): via R0 (1): i0 1, i1 1; via R2 (1): i1 1 -> {0:1, 1:1}
    assert_eq!(e.row(0, 3).unwrap().to_vec(), vec![(0, 1), (1, 1)]);
    assert_eq!(e.row(0, 4).unwrap().to_vec(), vec![(0, 1), (1, 1), (3, 4)]);
    // class 1 has no direct edges, so m = 0 keeps no bottleneck edge
    assert!((0..5).all(|j| e.row(1, j).unwrap().is_empty()));
    // without single-hop convolution paths the budget comes from the first hops of the
    // multi-hop paths (SPEC §2.1): class 0 has 5 edges over 3 reduce channels -> m = 1, class 1
    // one edge over 3 -> m = 0
    let only = merge_paths(&paths[1..2], 2, 4, 5).unwrap();
    assert_eq!(bottleneck_edge_budget(&paths[1..2], 0), Some(1));
    assert_eq!(only.row(0, 2).unwrap().to_vec(), vec![(3, 2)]);
    assert!(only.row(1, 2).unwrap().is_empty());
    // an identity skip is not a convolution path: with it the budget still comes from the
    // first hops, and its own counts are edges j -> j
    let mut skip = PathCounts::new(
        2,
        &PathSpec {
            out_offset: 2,
            hops: vec![HopSpec::identity(4)],
        },
    );
    skip.hops[0] = counts(2, 4, 4, &[(0, 0, &[(0, 3)]), (0, 1, &[(1, 1)])]);
    let with_skip = vec![paths[1].clone(), skip];
    assert_eq!(bottleneck_edge_budget(&with_skip, 0), Some(1));
    let e = merge_paths(&with_skip, 2, 4, 6).unwrap();
    // channel 2: the two-hop path's top 1 (3, 2) and the skip's (0, 3)
    assert_eq!(e.row(0, 2).unwrap().to_vec(), vec![(0, 3), (3, 2)]);
    // channel 3: the two-hop top 1 of {0: 1, 1: 1} is input 1 (ties to the higher), the skip's too
    assert_eq!(e.row(0, 3).unwrap().to_vec(), vec![(1, 1)]);
}

#[test]
fn edge_budget_rounds_down() {
    // 7 edges over 3 channels -> floor(2.33) = 2
    let p = PathCounts::dense(
        0,
        vec![counts(
            1,
            3,
            9,
            &[
                (0, 0, &[(0, 1), (1, 1), (2, 1)]),
                (0, 1, &[(3, 1), (4, 1), (5, 1), (6, 1)]),
            ],
        )],
    );
    assert_eq!(bottleneck_edge_budget(&[p], 0), Some(2));
    assert_eq!(bottleneck_edge_budget(&[], 0), None);
}

#[test]
fn bad_paths_are_refused() {
    let spec = PathSpec {
        out_offset: 3,
        hops: vec![(4, 6).into(), (5, 2).into()],
    };
    let p = PathCounts::new(2, &spec);
    assert!(matches!(
        merge_paths(&[p], 2, 4, 10),
        Err(InfluenceError::BadPath { path: 0, .. })
    ));
    let spec = PathSpec {
        out_offset: 9,
        hops: vec![(4, 2).into()],
    };
    assert!(matches!(
        merge_paths(&[PathCounts::new(2, &spec)], 2, 4, 10),
        Err(InfluenceError::BadPath { .. })
    ));
    let spec = PathSpec {
        out_offset: 0,
        hops: vec![(3, 2).into()],
    };
    assert!(matches!(
        merge_paths(&[PathCounts::new(2, &spec)], 2, 4, 10),
        Err(InfluenceError::BadPath { .. })
    ));
    let spec = PathSpec {
        out_offset: 0,
        hops: vec![(4, 6).into(), (6, 2).into()],
    };
    assert_eq!(PathCounts::new(2, &spec).spec(), spec);
}

/// Dense reference of the merge for one layer.
fn dense_merge(
    paths: &[PathCounts],
    classes: usize,
    c_prev: usize,
    c_layer: usize,
) -> Vec<Vec<u32>> {
    let mut out = vec![vec![0u32; c_prev]; classes * c_layer];
    for k in 0..classes {
        let (mut edges, mut chans) = (0, 0);
        for p in paths.iter().filter(|p| p.hops.len() == 1) {
            chans += p.hops[0].c_out();
            for j in 0..p.hops[0].c_out() {
                edges += (0..c_prev)
                    .filter(|&i| p.hops[0].get(k, j, i).unwrap() > 0)
                    .count();
            }
        }
        let m = if chans > 0 { Some(edges / chans) } else { None };
        for p in paths {
            let h = &p.hops;
            for j in 0..h[h.len() - 1].c_out() {
                let w: Vec<u32> = if h.len() == 1 {
                    (0..c_prev).map(|i| h[0].get(k, j, i).unwrap()).collect()
                } else {
                    let r_n = h[0].c_out();
                    let mut w = vec![0u32; c_prev];
                    for (i, wi) in w.iter_mut().enumerate() {
                        for r in 0..r_n {
                            let a = h[1].get(k, j, r).unwrap();
                            let b = h[0].get(k, r, i).unwrap();
                            *wi = (*wi).max(a.min(b));
                        }
                    }
                    if let Some(m) = m {
                        let mut order: Vec<usize> = (0..c_prev).filter(|&i| w[i] > 0).collect();
                        order.sort_by(|&a, &b| w[b].cmp(&w[a]).then(b.cmp(&a)));
                        for &i in order.iter().skip(m) {
                            w[i] = 0;
                        }
                    }
                    w
                };
                let row = &mut out[k * c_layer + p.out_offset + j];
                for i in 0..c_prev {
                    row[i] = row[i].max(w[i]);
                }
            }
        }
    }
    out
}

fn random_counts(
    rng: &mut ChaCha8Rng,
    classes: usize,
    c_out: usize,
    c_in: usize,
    density: f64,
) -> InfluenceCounts {
    let mut rows = Vec::with_capacity(classes * c_out);
    for _ in 0..classes * c_out {
        let mut row = Vec::new();
        for i in 0..c_in as u32 {
            if rng.random_bool(density) {
                row.push((i, rng.random_range(1..6)));
            }
        }
        rows.push(row);
    }
    InfluenceCounts::from_rows(classes, c_out, c_in, rows).unwrap()
}

#[test]
fn merge_matches_dense_reference_on_random_layers() {
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    for trial in 0..20 {
        let (classes, c_prev) = (3, rng.random_range(3..30));
        let (n1, r3, n3, r5, n5, np) = (
            rng.random_range(1..8),
            rng.random_range(1..10),
            rng.random_range(1..9),
            rng.random_range(1..6),
            rng.random_range(1..5),
            rng.random_range(1..4),
        );
        let d = [0.05, 0.2, 0.5][trial % 3];
        let paths = vec![
            PathCounts::dense(0, vec![random_counts(&mut rng, classes, n1, c_prev, d)]),
            PathCounts::dense(
                n1,
                vec![
                    random_counts(&mut rng, classes, r3, c_prev, d),
                    random_counts(&mut rng, classes, n3, r3, d),
                ],
            ),
            PathCounts::dense(
                n1 + n3,
                vec![
                    random_counts(&mut rng, classes, r5, c_prev, d),
                    random_counts(&mut rng, classes, n5, r5, d),
                ],
            ),
            PathCounts::dense(
                n1 + n3 + n5,
                vec![random_counts(&mut rng, classes, np, c_prev, d)],
            ),
        ];
        let c_layer = n1 + n3 + n5 + np;
        let want = dense_merge(&paths, classes, c_prev, c_layer);
        let got = merge_paths(&paths, classes, c_prev, c_layer).unwrap();
        for k in 0..classes {
            for j in 0..c_layer {
                for i in 0..c_prev {
                    assert_eq!(
                        got.get(k, j, i).unwrap(),
                        want[k * c_layer + j][i],
                        "trial {trial} class {k} j {j} i {i}"
                    );
                }
            }
        }
        // thread count does not matter
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        assert_eq!(
            one.install(|| merge_paths(&paths, classes, c_prev, c_layer).unwrap()),
            got
        );
    }
}

/// The bounded storage: rows go from sparse pairs to dense `u16` (a quarter of the inputs
/// counted) to dense `u32` (a count above 65,535); counts, merges, the `ndarray` view and the
/// saved bytes agree with a dense brute force whatever the order the counts came in.
#[test]
fn dense_and_sparse_rows_agree_with_brute_force() {
    let (classes, c_out, c_in) = (3, 4, 40);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut dense = vec![0u64; classes * c_out * c_in];
    let mut a = InfluenceCounts::new(classes, c_out, c_in);
    let mut b = InfluenceCounts::new(classes, c_out, c_in);
    let mut whole = InfluenceCounts::new(classes, c_out, c_in);
    // class 0: few inputs per row (sparse); class 1: many (dense); class 2: none
    for image in 0..60 {
        let class = image % 2;
        let spread = if class == 0 { 4 } else { c_in };
        let selected: Vec<Vec<u32>> = (0..c_out)
            .map(|_| {
                let mut s: Vec<u32> = (0..3).map(|_| rng.random_range(0..spread) as u32).collect();
                s.sort_unstable();
                s.dedup();
                s
            })
            .collect();
        for (j, s) in selected.iter().enumerate() {
            for &i in s {
                dense[(class * c_out + j) * c_in + i as usize] += 1;
            }
        }
        whole.add_image(class, &selected).unwrap();
        if image < 25 { &mut a } else { &mut b }
            .add_image(class, &selected)
            .unwrap();
    }
    let mut merged = b.clone();
    merged.merge(&a).unwrap();
    for counts in [&whole, &merged] {
        assert!(counts == &whole);
        for k in 0..classes {
            let m = counts.class_matrix(k).unwrap();
            for j in 0..c_out {
                let row = counts.row(k, j).unwrap();
                let pairs = row.to_vec();
                assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0));
                assert_eq!(row.len(), pairs.len());
                for i in 0..c_in {
                    let d = dense[(k * c_out + j) * c_in + i] as u32;
                    assert_eq!(counts.get(k, j, i), Some(d));
                    assert_eq!(m[[j, i]], d);
                }
            }
        }
    }
    assert!(whole.row(2, 0).unwrap().is_empty());
    // class 1's rows are dense: 2 bytes an input, less than sparse pairs would need
    let per_row_dense = 2 * c_in;
    assert!(whole.heap_bytes() < classes * c_out * c_in * 8);
    assert!(whole.heap_bytes() >= c_out * per_row_dense);
    // the same counts in another order save to the same bytes
    let enc = |c: &InfluenceCounts| {
        bincode::serde::encode_to_vec(c, bincode::config::standard()).unwrap()
    };
    assert_eq!(enc(&whole), enc(&merged));

    // above u16: one count of 70,000 among many inputs widens the row, and merges keep it
    let rows: Vec<Vec<(u32, u32)>> = (0..c_out)
        .map(|j| {
            if j == 0 {
                (0..c_in as u32)
                    .map(|i| (i, if i == 3 { 70_000 } else { 1 }))
                    .collect()
            } else {
                vec![]
            }
        })
        .collect();
    let mut big = InfluenceCounts::from_rows(1, c_out, c_in, rows).unwrap();
    assert_eq!(big.get(0, 0, 3), Some(70_000));
    let once = big.clone();
    big.merge(&once).unwrap();
    assert_eq!(big.get(0, 0, 3), Some(140_000));
    assert_eq!(big.get(0, 0, 5), Some(2));
    assert_eq!(big.row(0, 0).unwrap().len(), c_in);
    // u16 counts grow past 65,535 by merging
    let rows = |n: u32| -> Vec<Vec<(u32, u32)>> {
        (0..c_out)
            .map(|_| (0..c_in as u32).map(|i| (i, n)).collect())
            .collect()
    };
    let mut x = InfluenceCounts::from_rows(1, c_out, c_in, rows(40_000)).unwrap();
    x.merge(&InfluenceCounts::from_rows(1, c_out, c_in, rows(30_000)).unwrap())
        .unwrap();
    assert_eq!(
        x,
        InfluenceCounts::from_rows(1, c_out, c_in, rows(70_000)).unwrap()
    );
    assert_eq!(
        enc(&x),
        enc(&InfluenceCounts::from_rows(1, c_out, c_in, rows(70_000)).unwrap())
    );
}
