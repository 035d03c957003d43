//! The class overview (SPEC §4): cosine similarity of classes per layer and
//! a 2D embedding of the classes per layer (UMAP, or PCA as the fast fallback).

use serde::{Deserialize, Serialize};

use crate::error::{GraphError, Result};
use crate::umap::{UmapParams, umap_2d};

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

pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
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
    let mut out: Vec<Vec<[f64; 2]>> = Vec::with_capacity(layers.len());
    for (l, rows) in layers.iter().enumerate() {
        let x: Vec<Vec<f64>> = rows
            .iter()
            .map(|r| r.iter().map(|&v| f64::from(v)).collect())
            .collect();
        let e = match method {
            Embedding::Pca => pca_2d(&x)?,
            Embedding::Umap(p) => {
                let init = out.last().map(Vec::as_slice);
                umap_2d(&x, p, init, seed.wrapping_add(l as u64))?
            }
        };
        out.push(e);
    }
    Ok(out)
}

/// The first two principal component scores of the rows (centred, not
/// scaled). Each principal axis is signed so that its largest-magnitude
/// loading (the first on ties) is positive, which makes the result unique
/// where the axes are. A missing component (rank < 2) gives 0.
///
/// Computed by block subspace iteration on `XᵀX` (never formed) with
/// Rayleigh–Ritz, to a relative residual of 1e-11, from a fixed start.
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

/// Orthonormalises the columns in place (modified Gram–Schmidt, twice);
/// drops columns that become (numerically) zero.
fn orthonormalise(q: &mut Vec<Vec<f64>>) {
    let mut out: Vec<Vec<f64>> = Vec::with_capacity(q.len());
    for mut v in q.drain(..) {
        let norm0 = dot(&v, &v).sqrt();
        for _ in 0..2 {
            for u in &out {
                let c = dot(&v, u);
                for (a, b) in v.iter_mut().zip(u) {
                    *a -= c * b;
                }
            }
        }
        let norm = dot(&v, &v).sqrt();
        if norm > 1e-10 * norm0.max(f64::MIN_POSITIVE) && norm > 0.0 {
            v.iter_mut().for_each(|a| *a /= norm);
            out.push(v);
        }
    }
    *q = out;
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
fn top_eigvecs(x: &[Vec<f64>], d: usize, k: usize) -> Vec<Vec<f64>> {
    let b = (k + 4).min(d).min(x.len());
    if b == 0 {
        return Vec::new();
    }
    // fixed, deterministic start: a Halton-like sequence, never aligned with axes
    let mut q: Vec<Vec<f64>> = (0..b)
        .map(|j| {
            (0..d)
                .map(|i| {
                    (((i + 1) as f64 * (0.618_033_988_7 + j as f64 * 0.414_213_562_3)).fract())
                        - 0.5
                })
                .collect()
        })
        .collect();
    // one application first so the block lies in the row space of X
    let mut tmp = vec![0.0; d];
    for v in q.iter_mut() {
        gram_apply(x, v, &mut tmp);
        v.copy_from_slice(&tmp);
    }
    orthonormalise(&mut q);
    let mut best: Vec<(f64, Vec<f64>)> = Vec::new();
    for _iter in 0..3000 {
        if q.is_empty() {
            return Vec::new();
        }
        let z: Vec<Vec<f64>> = q
            .iter()
            .map(|v| {
                let mut o = vec![0.0; d];
                gram_apply(x, v, &mut o);
                o
            })
            .collect();
        let m = q.len();
        let t: Vec<Vec<f64>> = (0..m)
            .map(|i| {
                (0..m)
                    .map(|j| 0.5 * (dot(&q[i], &z[j]) + dot(&q[j], &z[i])))
                    .collect()
            })
            .collect();
        let (vals, w) = jacobi_eigen(t);
        let mut order: Vec<usize> = (0..m).collect();
        order.sort_by(|&i, &j| vals[j].total_cmp(&vals[i]).then(i.cmp(&j)));
        // Ritz vectors y = Q w, and Z w = XᵀX y
        let combine = |basis: &[Vec<f64>], col: usize| -> Vec<f64> {
            let mut y = vec![0.0; d];
            for (bi, basis_v) in basis.iter().enumerate() {
                let c = w[bi][col];
                for (a, &bv) in y.iter_mut().zip(basis_v) {
                    *a += c * bv;
                }
            }
            y
        };
        let ritz: Vec<Vec<f64>> = order.iter().map(|&c| combine(&q, c)).collect();
        let top = vals[order[0]].max(0.0);
        let mut converged = true;
        for (r, &c) in order.iter().enumerate().take(k.min(m)) {
            let zy = combine(&z, c);
            let res: f64 = zy
                .iter()
                .zip(&ritz[r])
                .map(|(a, b)| (a - vals[c] * b).powi(2))
                .sum::<f64>()
                .sqrt();
            if res > 1e-11 * top {
                converged = false;
            }
        }
        best = order
            .iter()
            .zip(&ritz)
            .map(|(&c, y)| (vals[c], y.clone()))
            .collect();
        if converged || top == 0.0 {
            break;
        }
        // next block: XᵀX applied to the Ritz vectors
        q = ritz
            .iter()
            .map(|y| {
                let mut o = vec![0.0; d];
                gram_apply(x, y, &mut o);
                o
            })
            .collect();
        orthonormalise(&mut q);
    }
    let top = best.first().map_or(0.0, |b| b.0.max(0.0));
    best.into_iter()
        .take(k)
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
