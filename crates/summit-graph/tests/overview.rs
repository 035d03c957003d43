//! Class overview: cosine similarity and PCA against numpy, UMAP's a/b against
//! scipy's curve_fit (fixtures from `tests/fixtures/make_overview.py`), and
//! UMAP's behaviour on hand-built A matrices of known structure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use summit_graph::{
    Embedding, GraphError, UmapParams, cosine_similarity, embed_layers, find_ab_params, pca_2d,
    umap_2d,
};

#[derive(Deserialize)]
struct Case<E> {
    a: Vec<Vec<u32>>,
    expected: E,
}

#[derive(Deserialize)]
struct Ab {
    spread: f64,
    min_dist: f64,
    expected: [f64; 2],
}

#[derive(Deserialize)]
struct Overview {
    cosine: Vec<Case<Vec<Vec<f64>>>>,
    pca: Vec<Case<Vec<[f64; 2]>>>,
    umap_ab: Vec<Ab>,
}

fn fixture() -> Overview {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/overview.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn as_f64(a: &[Vec<u32>]) -> Vec<Vec<f64>> {
    a.iter()
        .map(|r| r.iter().map(|&x| f64::from(x)).collect())
        .collect()
}

#[test]
fn cosine_similarity_matches_numpy() {
    for case in fixture().cosine {
        let s = cosine_similarity(&case.a).unwrap();
        for (r, e) in s.iter().zip(&case.expected) {
            for (x, y) in r.iter().zip(e) {
                assert!((x - y).abs() < 1e-12, "{x} vs {y}");
            }
        }
    }
    assert!(matches!(
        cosine_similarity(&[vec![1, 2], vec![3]]),
        Err(GraphError::RaggedRows { row: 1, .. })
    ));
}

#[test]
fn pca_matches_numpy_svd() {
    for case in fixture().pca {
        let e = pca_2d(&as_f64(&case.a)).unwrap();
        for (p, q) in e.iter().zip(&case.expected) {
            for k in 0..2 {
                assert!((p[k] - q[k]).abs() < 1e-8, "{p:?} vs {q:?}");
            }
        }
    }
}

#[test]
fn pca_degenerate_inputs() {
    assert!(pca_2d(&[]).unwrap().is_empty());
    assert_eq!(pca_2d(&[vec![1.0, 2.0]]).unwrap(), vec![[0.0, 0.0]]);
    let same = vec![vec![3.0, 1.0, 2.0]; 4];
    assert_eq!(pca_2d(&same).unwrap(), vec![[0.0, 0.0]; 4]);
    // rank 1: second coordinate 0, first = signed distance along the line
    let line = vec![vec![0.0, 0.0], vec![1.0, 1.0], vec![2.0, 2.0]];
    let e = pca_2d(&line).unwrap();
    let s = 2f64.sqrt();
    for (p, want) in e.iter().zip([-s, 0.0, s]) {
        assert!((p[0] - want).abs() < 1e-10 && p[1].abs() < 1e-10, "{p:?}");
    }
}

#[test]
fn umap_ab_matches_scipy_curve_fit() {
    for ab in fixture().umap_ab {
        let (a, b) = find_ab_params(ab.spread, ab.min_dist);
        assert!(
            (a - ab.expected[0]).abs() < 1e-5 * ab.expected[0]
                && (b - ab.expected[1]).abs() < 1e-5 * ab.expected[1],
            "spread {} min_dist {}: ({a}, {b}) vs {:?}",
            ab.spread,
            ab.min_dist,
            ab.expected
        );
    }
}

/// Two clear clusters of classes: cluster 0 uses channels 0..8, cluster 1
/// channels 8..16, each class with random counts on its cluster's channels
/// and a little noise elsewhere.
fn two_clusters(seed: u64, per_cluster: usize) -> (Vec<Vec<u32>>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for cluster in 0..2 {
        for _ in 0..per_cluster {
            let row = (0..16)
                .map(|ch| {
                    if ch / 8 == cluster {
                        rng.random_range(5..30)
                    } else {
                        rng.random_range(0..2)
                    }
                })
                .collect();
            rows.push(row);
            labels.push(cluster);
        }
    }
    (rows, labels)
}

fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// Every point's nearest embedded neighbour is in its own cluster, and the
/// two centroids are further apart than twice the largest distance of a
/// point to its own centroid.
fn assert_separated(e: &[[f64; 2]], labels: &[usize]) {
    for (i, p) in e.iter().enumerate() {
        let nn = (0..e.len())
            .filter(|&j| j != i)
            .min_by(|&a, &b| dist(*p, e[a]).total_cmp(&dist(*p, e[b])))
            .unwrap();
        assert_eq!(labels[nn], labels[i], "point {i}");
    }
    let centroid = |c: usize| {
        let pts: Vec<_> = e.iter().zip(labels).filter(|(_, l)| **l == c).collect();
        let n = pts.len() as f64;
        [
            pts.iter().map(|(p, _)| p[0]).sum::<f64>() / n,
            pts.iter().map(|(p, _)| p[1]).sum::<f64>() / n,
        ]
    };
    let (c0, c1) = (centroid(0), centroid(1));
    let spread = e
        .iter()
        .zip(labels)
        .map(|(p, &l)| dist(*p, if l == 0 { c0 } else { c1 }))
        .fold(0.0, f64::max);
    assert!(
        dist(c0, c1) > 2.0 * spread,
        "centroids {c0:?} {c1:?} spread {spread}"
    );
}

#[test]
fn umap_keeps_two_clear_clusters_apart() {
    let (rows, labels) = two_clusters(1, 20);
    let e = umap_2d(&as_f64(&rows), &UmapParams::default(), None, 42).unwrap();
    assert_separated(&e, &labels);
    assert!(e.iter().all(|p| p[0].is_finite() && p[1].is_finite()));
}

#[test]
fn pca_keeps_two_clear_clusters_apart() {
    let (rows, labels) = two_clusters(2, 20);
    let e = embed_layers(&[rows], &Embedding::Pca, 0).unwrap();
    assert_separated(&e[0], &labels);
}

#[test]
fn umap_is_deterministic_for_a_seed() {
    let (rows, _) = two_clusters(3, 15);
    let x = as_f64(&rows);
    let a = umap_2d(&x, &UmapParams::default(), None, 7).unwrap();
    let b = umap_2d(&x, &UmapParams::default(), None, 7).unwrap();
    assert_eq!(a, b);
    let c = umap_2d(&x, &UmapParams::default(), None, 8).unwrap();
    assert_ne!(a, c);
}

#[test]
fn embed_layers_chains_layers_from_the_previous_embedding() {
    // layer 1 holds the same rows as layer 0 (counts doubled: same cosine
    // geometry); started from layer 0's layout, the two clusters keep their
    // relative placement: the centroid-to-centroid direction barely turns
    let (rows, labels) = two_clusters(4, 15);
    let doubled: Vec<Vec<u32>> = rows
        .iter()
        .map(|r| r.iter().map(|&x| 2 * x).collect())
        .collect();
    let e = embed_layers(&[rows.clone(), doubled.clone()], &Embedding::default(), 11).unwrap();
    assert_eq!(e.len(), 2);
    for layer in &e {
        assert_separated(layer, &labels);
    }
    // the wiring: layer 1 is UMAP of its rows from layer 0's layout, seed + 1
    let direct = umap_2d(&as_f64(&doubled), &UmapParams::default(), Some(&e[0]), 12).unwrap();
    assert_eq!(direct, e[1]);
    // UMAP rescales its start to [0, 10] per coordinate (as umap-learn does),
    // so compare with layer 0's layout rescaled the same way
    let direction = |pts: &[[f64; 2]]| {
        let mut scaled = pts.to_vec();
        for k in 0..2 {
            let lo = pts.iter().map(|p| p[k]).fold(f64::INFINITY, f64::min);
            let hi = pts.iter().map(|p| p[k]).fold(f64::NEG_INFINITY, f64::max);
            for p in scaled.iter_mut() {
                p[k] = 10.0 * (p[k] - lo) / (hi - lo);
            }
        }
        let mut c = [[0.0; 2]; 2];
        for (p, &l) in scaled.iter().zip(&labels) {
            c[l][0] += p[0];
            c[l][1] += p[1];
        }
        let v = [c[1][0] - c[0][0], c[1][1] - c[0][1]];
        let n = (v[0] * v[0] + v[1] * v[1]).sqrt();
        [v[0] / n, v[1] / n]
    };
    let (d0, d1) = (direction(&e[0]), direction(&e[1]));
    let cos = d0[0] * d1[0] + d0[1] * d1[1];
    eprintln!("centroid direction cosine between layers: {cos}");
    assert!(cos > 0.7, "direction turned: cos {cos}");
}

#[test]
fn umap_starts_from_the_given_layout() {
    // with a single epoch the layout is still the (scaled) initial one
    let (rows, _) = two_clusters(6, 10);
    let init: Vec<[f64; 2]> = (0..rows.len())
        .map(|i| [i as f64, (i * i % 7) as f64])
        .collect();
    let p = UmapParams {
        n_epochs: Some(1),
        learning_rate: 1e-6,
        ..UmapParams::default()
    };
    let e = umap_2d(&as_f64(&rows), &p, Some(&init), 0).unwrap();
    let (xmax, ymax) = ((rows.len() - 1) as f64, 4.0); // i² mod 7 ∈ {0, 1, 2, 4}
    for (a, b) in e.iter().zip(&init) {
        assert!((a[0] - 10.0 * b[0] / xmax).abs() < 1e-3, "{a:?} {b:?}");
        assert!((a[1] - 10.0 * b[1] / ymax).abs() < 1e-3, "{a:?} {b:?}");
    }
}

#[test]
fn embedding_input_errors() {
    let l0 = vec![vec![1, 2], vec![3, 4]];
    let l1 = vec![vec![1, 2]];
    assert!(matches!(
        embed_layers(&[l0.clone(), l1], &Embedding::Pca, 0),
        Err(GraphError::ClassCount { layer: 1, .. })
    ));
    assert!(matches!(
        embed_layers(&[l0, vec![vec![1], vec![2, 3]]], &Embedding::Pca, 0),
        Err(GraphError::RaggedRows {
            layer: 1,
            row: 1,
            ..
        })
    ));
    let bad = UmapParams {
        n_neighbors: 1,
        ..UmapParams::default()
    };
    assert!(umap_2d(&[vec![1.0], vec![2.0]], &bad, None, 0).is_err());
    // tiny inputs
    assert!(
        umap_2d(&[], &UmapParams::default(), None, 0)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        umap_2d(&[vec![1.0]], &UmapParams::default(), None, 0).unwrap(),
        vec![[0.0, 0.0]]
    );
    let two = umap_2d(
        &[vec![1.0, 0.0], vec![0.0, 1.0]],
        &UmapParams::default(),
        None,
        0,
    )
    .unwrap();
    assert!(two.iter().all(|p| p[0].is_finite() && p[1].is_finite()));
}

#[test]
fn identical_rows_share_one_point() {
    // two clusters plus 40 classes without images (all-zero rows) and a copy
    // of row 3: the zero rows and the copy count once, so the layout is UMAP
    // of the distinct rows with each duplicate on its original's point
    let (rows, labels) = two_clusters(9, 12);
    let mut with_dups = rows.clone();
    with_dups.insert(5, vec![0; 16]);
    with_dups.extend(std::iter::repeat_n(vec![0u32; 16], 39));
    with_dups.push(rows[3].clone());
    let mut distinct = rows.clone();
    distinct.insert(5, vec![0; 16]);
    let e = umap_2d(&as_f64(&with_dups), &UmapParams::default(), None, 4).unwrap();
    let d = umap_2d(&as_f64(&distinct), &UmapParams::default(), None, 4).unwrap();
    assert_eq!(e.len(), with_dups.len());
    assert_eq!(&e[..distinct.len()], &d[..]);
    for p in &e[distinct.len()..distinct.len() + 39] {
        assert_eq!(*p, d[5], "a zero row off the zero rows' point");
    }
    assert_eq!(
        e[e.len() - 1],
        d[3],
        "the copy of row 3 is not on row 3's point"
    );
    let clustered: Vec<[f64; 2]> = (0..distinct.len())
        .filter(|&i| i != 5)
        .map(|i| d[i])
        .collect();
    assert_separated(&clustered, &labels);
    // through embed_layers (two layers, the second started from the first)
    let layers = embed_layers(
        &[with_dups.clone(), with_dups.clone()],
        &Embedding::default(),
        4,
    )
    .unwrap();
    assert_eq!(layers[0], e);
    for l in &layers {
        assert!(
            l[distinct.len()..distinct.len() + 39]
                .iter()
                .all(|p| *p == l[5])
        );
    }
}
