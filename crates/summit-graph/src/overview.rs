//! The class overview (SPEC §4): cosine similarity of classes per layer and
//! a 2D embedding of the classes per layer (UMAP, or PCA as the fast fallback).

use serde::{Deserialize, Serialize};

use crate::error::{GraphError, Result};
use crate::umap::{UmapParams, umap_layers};

/// Checks that `rows` is rectangular; returns the row length (0 if no rows).
pub(crate) fn check_rows<T>(rows: &[Vec<T>], layer: usize) -> Result<usize> {
    let d = rows.first().map_or(0, Vec::len);
    for (r, row) in rows.iter().enumerate() {
        if row.len() != d {
            return Err(GraphError::RaggedRows {
                layer,
                row: r,
                expected: d,
                got: row.len(),
            });
        }
    }
    Ok(d)
}

/// Cosine similarity between classes from the rows `A_l[c, :]` of one layer
/// (C rows of equal length): `S[c][d] = a_c · a_d / (|a_c| |a_d|)`. A row of
/// zeros (a class without selections) is similar to nothing: its row and
/// column are 0, diagonal included (scikit-learn's convention). The counts
/// themselves are compared, not channel indices (SPEC §4).
///
/// ```
/// let s = summit_graph::cosine_similarity(&[vec![1, 0], vec![2, 0], vec![0, 3]]).unwrap();
/// assert!((s[0][1] - 1.0).abs() < 1e-12 && s[0][2] == 0.0);
/// ```
pub fn cosine_similarity(rows: &[Vec<u32>]) -> Result<Vec<Vec<f64>>> {
    check_rows(rows, 0)?;
    let unit: Vec<Option<Vec<f64>>> = rows.iter().map(|r| unit_row(r)).collect();
    let n = rows.len();
    let mut s = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in i..n {
            if let (Some(a), Some(b)) = (&unit[i], &unit[j]) {
                let v = dot(a, b);
                s[i][j] = v;
                s[j][i] = v;
            }
        }
    }
    Ok(s)
}

/// The row scaled to unit length, `None` for a zero row.
pub(crate) fn unit_row(r: &[u32]) -> Option<Vec<f64>> {
    let norm = r
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    (norm > 0.0).then(|| r.iter().map(|&x| f64::from(x) / norm).collect())
}

/// `a · b` over the common length, in four fixed lanes (vectorisable; the
/// summation order depends only on the length).
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// How to embed classes in 2D.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Embedding {
    /// UMAP with cosine metric (SPEC §4); each layer after the first starts
    /// from the previous layer's embedding.
    Umap(UmapParams),
    /// PCA (the fast fallback): the first two principal components.
    Pca,
}

impl Default for Embedding {
    fn default() -> Self {
        Embedding::Umap(UmapParams::default())
    }
}

/// Embeds the classes of every layer in 2D. `layers[l][c]` is the row
/// `A_l[c, :]`; every layer must have the same number of classes. Returns
/// `[l][c] = [x, y]`.
///
/// With UMAP, layer 0 is initialised from its PCA and each later layer from
/// the previous layer's embedding, so that the views animate coherently;
/// layer `l` uses the RNG seeded with `seed + l`. The result depends only on
/// the inputs and `seed` (single-threaded, fixed order).
///
/// ```
/// use summit_graph::{embed_layers, Embedding};
/// let layer = vec![vec![5, 0, 1], vec![4, 1, 0], vec![0, 6, 5], vec![1, 5, 6]];
/// let e = embed_layers(&[layer.clone(), layer], &Embedding::Pca, 0).unwrap();
/// assert_eq!(e.len(), 2);
/// assert_eq!(e[0].len(), 4);
/// ```
pub fn embed_layers(
    layers: &[Vec<Vec<u32>>],
    method: &Embedding,
    seed: u64,
) -> Result<Vec<Vec<[f64; 2]>>> {
    let classes = layers.first().map_or(0, Vec::len);
    for (l, rows) in layers.iter().enumerate() {
        if rows.len() != classes {
            return Err(GraphError::ClassCount {
                layer: l,
                expected: classes,
                got: rows.len(),
            });
        }
        check_rows(rows, l)?;
    }
    let x: Vec<Vec<Vec<f64>>> = layers
        .iter()
        .map(|rows| {
            rows.iter()
                .map(|r| r.iter().map(|&v| f64::from(v)).collect())
                .collect()
        })
        .collect();
    match method {
        Embedding::Pca => x.iter().map(|rows| pca_2d(rows)).collect(),
        Embedding::Umap(p) => umap_layers(&x, p, seed),
    }
}

/// The first two principal component scores of the rows (centred, not
/// scaled). Each principal axis is signed so that its largest-magnitude
/// loading (the first on ties) is positive, which makes the result unique
/// where the axes are. A missing component (rank < 2) gives 0.
///
/// Computed by Lanczos iteration on `XᵀX` (never formed) with full
/// re-orthogonalisation, to a relative residual of 1e-11, from a fixed start.
pub fn pca_2d(rows: &[Vec<f64>]) -> Result<Vec<[f64; 2]>> {
    let d = check_rows(rows, 0)?;
    let n = rows.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut mean = vec![0.0; d];
    for r in rows {
        for (m, &x) in mean.iter_mut().zip(r) {
            *m += x;
        }
    }
    for m in &mut mean {
        *m /= n as f64;
    }
    let xc: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| r.iter().zip(&mean).map(|(x, m)| x - m).collect())
        .collect();
    let axes = top_eigvecs(&xc, d, 2);
    Ok(xc
        .iter()
        .map(|r| {
            let mut p = [0.0; 2];
            for (k, axis) in axes.iter().enumerate().take(2) {
                p[k] = dot(r, axis);
            }
            p
        })
        .collect())
}

/// `Xᵀ (X v)`.
fn gram_apply(x: &[Vec<f64>], v: &[f64], out: &mut [f64]) {
    out.iter_mut().for_each(|o| *o = 0.0);
    for r in x {
        let t = dot(r, v);
        if t != 0.0 {
            for (o, &xi) in out.iter_mut().zip(r) {
                *o += t * xi;
            }
        }
    }
}

/// Eigen-decomposition of a small symmetric matrix by cyclic Jacobi:
/// returns (eigenvalues, eigenvectors as columns `w[i][k]`), unsorted.
#[allow(clippy::needless_range_loop)] // index-heavy matrix rotations
fn jacobi_eigen(mut a: Vec<Vec<f64>>) -> (Vec<f64>, Vec<Vec<f64>>) {
    let m = a.len();
    let mut w = vec![vec![0.0; m]; m];
    for (i, row) in w.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..m)
            .flat_map(|i| (0..m).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        let diag: f64 = (0..m).map(|i| a[i][i] * a[i][i]).sum();
        if off <= 1e-30 * diag.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..m {
            for q in p + 1..m {
                if a[p][q] == 0.0 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..m {
                    let (akp, akq) = (a[k][p], a[k][q]);
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for k in 0..m {
                    let (apk, aqk) = (a[p][k], a[q][k]);
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for row in w.iter_mut() {
                    let (wp, wq) = (row[p], row[q]);
                    row[p] = c * wp - s * wq;
                    row[q] = s * wp + c * wq;
                }
            }
        }
    }
    ((0..m).map(|i| a[i][i]).collect(), w)
}

/// The top `k` eigenvectors of `XᵀX` (length `d` each), signed so that the
/// largest-magnitude entry is positive. Fewer than `k` when the rank is lower.
///
/// Lanczos with full re-orthogonalisation from a fixed start vector; the
/// tridiagonal matrix is diagonalised by Jacobi every few steps and the
/// iteration stops when the top `k` Ritz pairs have residual below 1e-11
/// relative to the largest eigenvalue, or the Krylov space is invariant.
fn top_eigvecs(x: &[Vec<f64>], d: usize, k: usize) -> Vec<Vec<f64>> {
    let max_dim = d.min(x.len()).min(400);
    if max_dim == 0 {
        return Vec::new();
    }
    // fixed, deterministic start, applied once so it lies in X's row space
    let start: Vec<f64> = (0..d)
        .map(|i| ((i + 1) as f64 * 0.618_033_988_749_895).fract() + 0.5)
        .collect();
    let mut q0 = vec![0.0; d];
    gram_apply(x, &start, &mut q0);
    let n0 = dot(&q0, &q0).sqrt();
    if n0 <= 0.0 || !n0.is_finite() {
        return Vec::new();
    }
    q0.iter_mut().for_each(|v| *v /= n0);
    let mut basis: Vec<Vec<f64>> = vec![q0];
    let mut alphas: Vec<f64> = Vec::new();
    let mut betas: Vec<f64> = Vec::new();
    let mut w = vec![0.0; d];
    let ritz: Vec<(f64, Vec<f64>)> = loop {
        let j = basis.len() - 1;
        gram_apply(x, &basis[j], &mut w);
        let a = dot(&basis[j], &w);
        alphas.push(a);
        // full re-orthogonalisation (twice) against the whole basis
        for _ in 0..2 {
            for q in &basis {
                let c = dot(&w, q);
                for (wi, qi) in w.iter_mut().zip(q) {
                    *wi -= c * qi;
                }
            }
        }
        let beta = dot(&w, &w).sqrt();
        let m = alphas.len();
        let scale = alphas.iter().fold(0.0f64, |s, a| s.max(a.abs()));
        let invariant = beta <= 1e-13 * scale.max(f64::MIN_POSITIVE);
        let last = invariant || m >= max_dim;
        if last || m.is_multiple_of(8) {
            let mut t = vec![vec![0.0; m]; m];
            for i in 0..m {
                t[i][i] = alphas[i];
                if i + 1 < m {
                    t[i][i + 1] = betas[i];
                    t[i + 1][i] = betas[i];
                }
            }
            let (vals, s) = jacobi_eigen(t);
            let mut order: Vec<usize> = (0..m).collect();
            order.sort_by(|&i, &j| vals[j].total_cmp(&vals[i]).then(i.cmp(&j)));
            let top = vals[order[0]].max(0.0);
            let converged = order
                .iter()
                .take(k)
                .all(|&c| (beta * s[m - 1][c]).abs() <= 1e-11 * top);
            if last || converged {
                break order
                    .iter()
                    .take(k)
                    .map(|&c| {
                        let mut y = vec![0.0; d];
                        for (bi, q) in basis.iter().enumerate() {
                            let coef = s[bi][c];
                            for (yi, qi) in y.iter_mut().zip(q) {
                                *yi += coef * qi;
                            }
                        }
                        let ny = dot(&y, &y).sqrt();
                        if ny > 0.0 {
                            y.iter_mut().for_each(|v| *v /= ny);
                        }
                        (vals[c], y)
                    })
                    .collect();
            }
        }
        betas.push(beta);
        basis.push(w.iter().map(|v| v / beta).collect());
    };
    let top = ritz.first().map_or(0.0, |r| r.0.max(0.0));
    ritz.into_iter()
        .filter(|(val, _)| *val > 1e-12 * top && *val > 0.0)
        .map(|(_, mut y)| {
            let mut j = 0;
            for (i, v) in y.iter().enumerate() {
                if v.abs() > y[j].abs() {
                    j = i;
                }
            }
            if y[j] < 0.0 {
                y.iter_mut().for_each(|v| *v = -*v);
            }
            y
        })
        .collect()
}
