//! Non-semantic channel detection against a brute-force count of top-k
//! membership, on hand-built and random A matrices.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use summit_graph::{NonSemanticParams, exclusion_lists, non_semantic_channels};

/// Channel `c` is in row `r`'s top k iff its count is positive and fewer than
/// k channels rank ahead of it (larger count, or equal count and higher index).
fn in_top_k(row: &[u32], c: usize, k: usize) -> bool {
    row[c] > 0
        && row
            .iter()
            .enumerate()
            .filter(|&(j, &v)| v > row[c] || (v == row[c] && j > c))
            .count()
            < k
}

#[test]
fn matches_brute_force_on_random_layers() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for trial in 0..30 {
        let classes = rng.random_range(1..40);
        let channels = rng.random_range(1..30);
        // a few "always on" channels plus sparse, tie-rich counts
        let hot: Vec<usize> = (0..channels)
            .filter(|_| rng.random_range(0..6) == 0)
            .collect();
        let rows: Vec<Vec<u32>> = (0..classes)
            .map(|_| {
                (0..channels)
                    .map(|c| {
                        if hot.contains(&c) && rng.random_range(0..10) > 0 {
                            rng.random_range(8..12)
                        } else if rng.random_range(0..3) == 0 {
                            rng.random_range(0..9)
                        } else {
                            0
                        }
                    })
                    .collect()
            })
            .collect();
        let p = NonSemanticParams {
            min_classes: 1,
            top_k: rng.random_range(1..6),
            min_class_share: [0.5, 0.8, 0.9, 1.0][rng.random_range(0..4)],
        };
        let got = non_semantic_channels(std::slice::from_ref(&rows), &p).unwrap();
        let nonzero = rows.iter().filter(|r| r.iter().any(|&v| v > 0)).count();
        let mut expected: Vec<(u32, usize)> = (0..channels)
            .filter_map(|c| {
                let h = rows.iter().filter(|r| in_top_k(r, c, p.top_k)).count();
                (h > 0 && nonzero > 0 && h as f64 >= p.min_class_share * nonzero as f64)
                    .then_some((c as u32, h))
            })
            .collect();
        expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let got_pairs: Vec<(u32, usize)> = got.iter().map(|f| (f.channel, f.classes)).collect();
        assert_eq!(got_pairs, expected, "trial {trial}");
        for f in &got {
            assert_eq!(f.share, f.classes as f64 / nonzero as f64);
        }
    }
}

#[test]
fn hub_channels_are_flagged_and_become_exclusions() {
    // layer 0: channel 2 is in every class's top 2; layer 1: channels 0 and 4
    // are in the top 2 of classes 0 and 1, class 2 prefers 3 and 2, and
    // class 3 is all zero in layer 1
    let l0 = vec![
        vec![1, 0, 9, 7, 0],
        vec![0, 8, 9, 0, 0],
        vec![6, 0, 5, 0, 1],
        vec![0, 0, 3, 0, 4],
    ];
    let l1 = vec![
        vec![5, 1, 0, 0, 5],
        vec![5, 0, 2, 0, 5],
        vec![0, 0, 6, 7, 0],
        vec![0, 0, 0, 0, 0],
    ];
    let layers = [l0, l1];
    let strict = non_semantic_channels(
        &layers,
        &NonSemanticParams {
            min_classes: 1,
            top_k: 2,
            min_class_share: 0.9,
        },
    )
    .unwrap();
    assert_eq!(
        strict
            .iter()
            .map(|f| (f.layer, f.channel))
            .collect::<Vec<_>>(),
        vec![(0, 2)]
    );
    // class 3's zero row is left out: 2 of the 3 classes with counts = 66.7 %
    let loose = non_semantic_channels(
        &layers,
        &NonSemanticParams {
            min_classes: 1,
            top_k: 2,
            min_class_share: 0.6,
        },
    )
    .unwrap();
    assert_eq!(
        loose
            .iter()
            .map(|f| (f.layer, f.channel, f.classes))
            .collect::<Vec<_>>(),
        vec![(0, 2, 4), (1, 0, 2), (1, 4, 2)]
    );
    assert_eq!(exclusion_lists(&loose, 2), vec![vec![2], vec![0, 4]]);
    // min_classes: layer 1 has 3 classes with counts, layer 0 has 4
    let at_least = |min_classes| {
        non_semantic_channels(
            &layers,
            &NonSemanticParams {
                min_classes,
                top_k: 2,
                min_class_share: 0.6,
            },
        )
        .unwrap()
        .iter()
        .map(|f| (f.layer, f.channel))
        .collect::<Vec<_>>()
    };
    assert_eq!(at_least(3), vec![(0, 2), (1, 0), (1, 4)]);
    assert_eq!(at_least(4), vec![(0, 2)]);
    assert!(at_least(5).is_empty());
    assert_eq!(NonSemanticParams::default().min_classes, 10);
    assert!(
        non_semantic_channels(
            &layers,
            &NonSemanticParams {
                min_classes: 1,
                top_k: 0,
                min_class_share: 0.9
            }
        )
        .is_err()
    );
}
