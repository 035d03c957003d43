//! UMAP (McInnes, Healy & Melville 2018) to 2D with the cosine metric, after
//! umap-learn's algorithm: exact k nearest neighbours, the fuzzy simplicial
//! set (smooth kNN distances, fuzzy union), and SGD with negative sampling.
//! The SGD is single-threaded with a seeded ChaCha RNG and the neighbour
//! search exact (parallel over rows), so the result depends only on the
//! inputs and the seed, never on the thread count. (The Rust UMAP crates we looked at either run
//! Hogwild-parallel SGD, which is not deterministic, or pull in a tensor
//! framework or an ANN index.)

use std::collections::{BTreeMap, HashMap};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{GraphError, Result};
use crate::overview::{check_rows, dot, pca_2d};

/// UMAP parameters; defaults are umap-learn's and SPEC §4's (15 neighbours,
/// min_dist 0.1).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct UmapParams {
    /// Size of the local neighbourhood (itself included). Default 15.
    pub n_neighbors: usize,
    /// Minimum distance between embedded points. Default 0.1.
    pub min_dist: f64,
    /// Scale of embedded points. Default 1.0.
    pub spread: f64,
    /// SGD epochs; `None` = 500 up to 10,000 points, 200 above (umap-learn).
    pub n_epochs: Option<usize>,
    /// Initial SGD learning rate. Default 1.0.
    pub learning_rate: f64,
    /// Negative samples per positive sample. Default 5.
    pub negative_sample_rate: usize,
    /// Weight of the repulsive term. Default 1.0.
    pub repulsion_strength: f64,
}

impl Default for UmapParams {
    fn default() -> Self {
        Self {
            n_neighbors: 15,
            min_dist: 0.1,
            spread: 1.0,
            n_epochs: None,
            learning_rate: 1.0,
            negative_sample_rate: 5,
            repulsion_strength: 1.0,
        }
    }
}

impl UmapParams {
    fn check(&self) -> Result<()> {
        let bad = |name, value: f64, reason| {
            Err(GraphError::InvalidParameter {
                name,
                value: value.to_string(),
                reason,
            })
        };
        if self.n_neighbors < 2 {
            return bad("n_neighbors", self.n_neighbors as f64, "must be >= 2");
        }
        if !(self.spread.is_finite() && self.spread > 0.0) {
            return bad("spread", self.spread, "must be finite and > 0");
        }
        if !(self.min_dist.is_finite() && self.min_dist >= 0.0 && self.min_dist <= self.spread) {
            return bad("min_dist", self.min_dist, "must lie in [0, spread]");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(
                "learning_rate",
                self.learning_rate,
                "must be finite and > 0",
            );
        }
        if !(self.repulsion_strength.is_finite() && self.repulsion_strength >= 0.0) {
            return bad(
                "repulsion_strength",
                self.repulsion_strength,
                "must be finite and >= 0",
            );
        }
        if self.n_epochs == Some(0) {
            return bad("n_epochs", 0.0, "must be >= 1");
        }
        Ok(())
    }
}

/// The curve `1 / (1 + a d^(2b))` fitted by least squares to UMAP's target
/// membership (1 below `min_dist`, `exp(-(d - min_dist) / spread)` above) on
/// 300 points of `[0, 3 spread]`, as umap-learn's `find_ab_params`
/// (Levenberg–Marquardt from `a = b = 1`).
pub fn find_ab_params(spread: f64, min_dist: f64) -> (f64, f64) {
    let xs: Vec<f64> = (0..300).map(|i| 3.0 * spread * i as f64 / 299.0).collect();
    let ys: Vec<f64> = xs
        .iter()
        .map(|&x| {
            if x < min_dist {
                1.0
            } else {
                (-(x - min_dist) / spread).exp()
            }
        })
        .collect();
    let cost = |a: f64, b: f64| -> f64 {
        xs.iter()
            .zip(&ys)
            .map(|(&x, &y)| (1.0 / (1.0 + a * x.powf(2.0 * b)) - y).powi(2))
            .sum()
    };
    let (mut a, mut b) = (1.0f64, 1.0f64);
    let mut lambda = 1e-3;
    let mut c = cost(a, b);
    for _ in 0..500 {
        // normal equations of the Gauss–Newton step
        let (mut jaa, mut jab, mut jbb, mut ga, mut gb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&x, &y) in xs.iter().zip(&ys) {
            let u = if x > 0.0 { x.powf(2.0 * b) } else { 0.0 };
            let den = 1.0 + a * u;
            let f = 1.0 / den;
            let r = f - y;
            let da = -u / (den * den);
            let db = if x > 0.0 {
                -a * u * 2.0 * x.ln() / (den * den)
            } else {
                0.0
            };
            jaa += da * da;
            jab += da * db;
            jbb += db * db;
            ga += da * r;
            gb += db * r;
        }
        let mut improved = false;
        for _ in 0..50 {
            let (m11, m22) = (jaa * (1.0 + lambda), jbb * (1.0 + lambda));
            let det = m11 * m22 - jab * jab;
            if det == 0.0 || !det.is_finite() {
                lambda *= 10.0;
                continue;
            }
            let sa = -(m22 * ga - jab * gb) / det;
            let sb = -(m11 * gb - jab * ga) / det;
            let (na, nb) = (a + sa, b + sb);
            let nc = cost(na, nb);
            if nc.is_finite() && nc <= c {
                let done = (sa.abs() <= 1e-14 * a.abs().max(1e-300))
                    && (sb.abs() <= 1e-14 * b.abs().max(1e-300));
                a = na;
                b = nb;
                let rel = (c - nc) / c.max(f64::MIN_POSITIVE);
                c = nc;
                lambda = (lambda / 10.0).max(1e-12);
                improved = !done && rel > 1e-16;
                break;
            }
            lambda *= 10.0;
        }
        if !improved {
            break;
        }
    }
    (a, b)
}

/// umap-learn's cosine distance with its zero-vector rules.
fn cosine_distance(a: Option<&Vec<f64>>, b: Option<&Vec<f64>>) -> f64 {
    match (a, b) {
        (None, None) => 0.0,
        (Some(x), Some(y)) => 1.0 - dot(x, y),
        _ => 1.0,
    }
}

/// Scales each coordinate to [0, 10] (umap-learn does this to its initial
/// embedding); a coordinate with no spread is filled with uniform noise.
fn normalise_init(e: &mut [[f64; 2]], rng: &mut ChaCha8Rng) {
    for k in 0..2 {
        let (lo, hi) = e
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
                (lo.min(p[k]), hi.max(p[k]))
            });
        if hi > lo && (hi - lo).is_finite() {
            for p in e.iter_mut() {
                p[k] = 10.0 * (p[k] - lo) / (hi - lo);
            }
        } else {
            for p in e.iter_mut() {
                p[k] = rng.random_range(0.0..10.0);
            }
        }
    }
}

/// UMAP of the rows to 2D with the cosine metric.
///
/// `init`, if given, is the starting layout (one point per row, e.g. the
/// previous layer's embedding); otherwise the PCA of the rows is used (with
/// umap-learn's scaling and a little noise, in place of its spectral
/// initialisation). Either is scaled to [0, 10] per coordinate before SGD,
/// as umap-learn does. Identical rows share one point (UMAP runs on the
/// distinct rows; classes without images have identical all-zero rows). The
/// neighbour search runs in parallel (rayon); the result does not depend on
/// the thread count.
pub fn umap_2d(
    rows: &[Vec<f64>],
    params: &UmapParams,
    init: Option<&[[f64; 2]]>,
    seed: u64,
) -> Result<Vec<[f64; 2]>> {
    params.check()?;
    check_rows(rows, 0)?;
    check_init(init, rows.len())?;
    let d = Distinct::new(rows);
    let init = init.map(|i| d.pick(i));
    let graph = fuzzy_set(&d.rows, params);
    let e = layout(&d.rows, graph, params, init.as_deref(), seed)?;
    Ok(d.expand(&e))
}

/// UMAP of each layer's rows, each layer's SGD starting from the previous
/// layer's layout (the first from PCA), layer `l` seeded with `seed + l`:
/// the same as calling [`umap_2d`] layer after layer, with the neighbour
/// graphs of all layers built in parallel first.
pub(crate) fn umap_layers(
    layers: &[Vec<Vec<f64>>],
    params: &UmapParams,
    seed: u64,
) -> Result<Vec<Vec<[f64; 2]>>> {
    params.check()?;
    for (l, rows) in layers.iter().enumerate() {
        check_rows(rows, l)?;
    }
    let distinct: Vec<Distinct> = layers.iter().map(|rows| Distinct::new(rows)).collect();
    let graphs: Vec<FuzzyGraph> = distinct
        .par_iter()
        .map(|d| fuzzy_set(&d.rows, params))
        .collect();
    let mut out: Vec<Vec<[f64; 2]>> = Vec::with_capacity(layers.len());
    for (l, (d, graph)) in distinct.iter().zip(graphs).enumerate() {
        if let Some(prev) = out.last() {
            check_init(Some(prev), d.of_row.len())?;
        }
        let init = out.last().map(|prev| d.pick(prev));
        let e = layout(
            &d.rows,
            graph,
            params,
            init.as_deref(),
            seed.wrapping_add(l as u64),
        )?;
        out.push(d.expand(&e));
    }
    Ok(out)
}

/// An initial layout must have one point per row.
fn check_init(init: Option<&[[f64; 2]]>, n: usize) -> Result<()> {
    match init {
        Some(i) if i.len() != n => Err(GraphError::VertexCount {
            what: "UMAP init (one point per class)",
            expected: n,
            got: i.len(),
        }),
        _ => Ok(()),
    }
}

/// Identical rows share one point: UMAP runs on the distinct rows (e.g. the
/// all-zero rows of classes without images count once), and every row gets
/// its distinct row's point.
struct Distinct {
    /// The distinct rows, in order of first occurrence.
    rows: Vec<Vec<f64>>,
    /// The row index of each distinct row's first occurrence.
    first: Vec<usize>,
    /// For each row, the index of its distinct row.
    of_row: Vec<usize>,
}

impl Distinct {
    fn new(rows: &[Vec<f64>]) -> Self {
        let mut index: HashMap<Vec<u64>, usize> = HashMap::new();
        let mut d = Self {
            rows: Vec::new(),
            first: Vec::new(),
            of_row: Vec::with_capacity(rows.len()),
        };
        for (i, r) in rows.iter().enumerate() {
            let key: Vec<u64> = r.iter().map(|x| x.to_bits()).collect();
            let next = d.rows.len();
            let u = *index.entry(key).or_insert(next);
            if u == next {
                d.rows.push(r.clone());
                d.first.push(i);
            }
            d.of_row.push(u);
        }
        d
    }

    /// The points of the distinct rows' first occurrences.
    fn pick(&self, points: &[[f64; 2]]) -> Vec<[f64; 2]> {
        self.first.iter().map(|&i| points[i]).collect()
    }

    /// Every row's point from the distinct rows' points.
    fn expand(&self, points: &[[f64; 2]]) -> Vec<[f64; 2]> {
        self.of_row.iter().map(|&u| points[u]).collect()
    }
}

/// The fuzzy simplicial set: symmetric edges `(i, j, w)` in `(i, j)` order.
type FuzzyGraph = Vec<(usize, usize, f64)>;

/// Steps 1–3 of UMAP: exact kNN under the cosine distance (ties by index,
/// rows in parallel), smooth kNN distances, fuzzy union.
fn fuzzy_set(rows: &[Vec<f64>], params: &UmapParams) -> FuzzyGraph {
    let n = rows.len();
    if n <= 1 {
        return Vec::new();
    }
    // 1. exact kNN under the cosine distance, ties by index
    let unit: Vec<Option<Vec<f64>>> = rows
        .iter()
        .map(|r| {
            let norm = dot(r, r).sqrt();
            (norm > 0.0).then(|| r.iter().map(|x| x / norm).collect())
        })
        .collect();
    let k = params.n_neighbors.min(n);
    let by_distance = |a: &(f64, usize), b: &(f64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    let nearest: Vec<Vec<(f64, usize)>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut all: Vec<(f64, usize)> = (0..n)
                .map(|j| (cosine_distance(unit[i].as_ref(), unit[j].as_ref()), j))
                .collect();
            if k < n {
                all.select_nth_unstable_by(k - 1, by_distance);
                all.truncate(k);
            }
            all.sort_by(by_distance);
            all
        })
        .collect();
    let mut knn_idx = vec![0usize; n * k];
    let mut knn_dist = vec![0.0f64; n * k];
    for (i, near) in nearest.iter().enumerate() {
        for (s, &(d, j)) in near.iter().enumerate() {
            knn_idx[i * k + s] = j;
            knn_dist[i * k + s] = d;
        }
    }

    // 2. smooth kNN distances (local_connectivity 1, bandwidth 1)
    let target = (k as f64).log2();
    let mean_all = knn_dist.iter().sum::<f64>() / knn_dist.len() as f64;
    let mut rho = vec![0.0; n];
    let mut sigma = vec![0.0; n];
    for i in 0..n {
        let d = &knn_dist[i * k..(i + 1) * k];
        if let Some(&r) = d.iter().find(|&&x| x > 0.0) {
            rho[i] = r;
        }
        let (mut lo, mut hi, mut mid) = (0.0f64, f64::INFINITY, 1.0f64);
        for _ in 0..64 {
            let psum: f64 = d[1..]
                .iter()
                .map(|&x| {
                    let e = x - rho[i];
                    if e > 0.0 { (-(e / mid)).exp() } else { 1.0 }
                })
                .sum();
            if (psum - target).abs() < 1e-5 {
                break;
            }
            if psum > target {
                hi = mid;
                mid = (lo + hi) / 2.0;
            } else {
                lo = mid;
                if hi == f64::INFINITY {
                    mid *= 2.0;
                } else {
                    mid = (lo + hi) / 2.0;
                }
            }
        }
        let floor = if rho[i] > 0.0 {
            1e-3 * d.iter().sum::<f64>() / k as f64
        } else {
            1e-3 * mean_all
        };
        sigma[i] = mid.max(floor);
    }

    // 3. membership strengths and their fuzzy union P = A + Aᵀ - A∘Aᵀ
    let mut a: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for i in 0..n {
        for s in 0..k {
            let j = knn_idx[i * k + s];
            let d = knn_dist[i * k + s];
            let v = if j == i {
                0.0
            } else if d - rho[i] <= 0.0 || sigma[i] == 0.0 {
                1.0
            } else {
                (-(d - rho[i]) / sigma[i]).exp()
            };
            if v != 0.0 {
                a.insert((i, j), v);
            }
        }
    }
    let mut p: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for (&(i, j), &v) in &a {
        let t = a.get(&(j, i)).copied().unwrap_or(0.0);
        let w = v + t - v * t;
        p.insert((i, j), w);
        p.insert((j, i), w);
    }
    p.into_iter().map(|((i, j), w)| (i, j, w)).collect()
}

/// Steps 4–6 of UMAP: the initial layout and SGD with negative sampling.
fn layout(
    rows: &[Vec<f64>],
    p: FuzzyGraph,
    params: &UmapParams,
    init: Option<&[[f64; 2]]>,
    seed: u64,
) -> Result<Vec<[f64; 2]>> {
    let n = rows.len();
    if let Some(i) = init
        && i.len() != n
    {
        return Err(GraphError::VertexCount {
            what: "UMAP init (one point per class)",
            expected: n,
            got: i.len(),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    if n <= 1 {
        return Ok(vec![[0.0, 0.0]; n]);
    }

    // 4. epochs per sample
    let n_epochs = params
        .n_epochs
        .unwrap_or(if n <= 10_000 { 500 } else { 200 });
    let max_w = p.iter().map(|e| e.2).fold(0.0, f64::max);
    let edges: Vec<(usize, usize, f64)> = p
        .into_iter()
        .filter(|&(_, _, w)| w > 0.0 && w >= max_w / n_epochs as f64)
        .collect();
    let eps: Vec<f64> = edges.iter().map(|&(_, _, w)| max_w / w).collect();

    // 5. initial layout
    let mut emb: Vec<[f64; 2]> = match init {
        Some(i) => i.to_vec(),
        None => {
            let mut e = pca_2d(rows)?;
            let m = e
                .iter()
                .flat_map(|p| p.iter())
                .fold(0.0f64, |m, v| m.max(v.abs()));
            let expansion = if m > 0.0 { 10.0 / m } else { 1.0 };
            for p in e.iter_mut() {
                for v in p.iter_mut() {
                    *v = *v * expansion + 1e-4 * standard_normal(&mut rng);
                }
            }
            e
        }
    };
    normalise_init(&mut emb, &mut rng);

    // 6. SGD with negative sampling (optimize_layout_euclidean, move_other)
    let (ca, cb) = find_ab_params(params.spread, params.min_dist);
    let gamma = params.repulsion_strength;
    let neg_rate = params.negative_sample_rate as f64;
    let eps_neg: Vec<f64> = eps.iter().map(|e| e / neg_rate).collect();
    let mut next_sample = eps.clone();
    let mut next_neg = eps_neg.clone();
    let clip = |v: f64| v.clamp(-4.0, 4.0);
    for epoch in 0..n_epochs {
        let ep = epoch as f64;
        let alpha = params.learning_rate * (1.0 - ep / n_epochs as f64);
        for (e, &(j, kk, _)) in edges.iter().enumerate() {
            if next_sample[e] > ep {
                continue;
            }
            let (cur, oth) = (emb[j], emb[kk]);
            let d2 = (cur[0] - oth[0]).powi(2) + (cur[1] - oth[1]).powi(2);
            let coeff = if d2 > 0.0 {
                let pb = d2.powf(cb);
                -2.0 * ca * cb * (pb / d2) / (ca * pb + 1.0)
            } else {
                0.0
            };
            for dim in 0..2 {
                let g = clip(coeff * (cur[dim] - oth[dim]));
                emb[j][dim] += g * alpha;
                emb[kk][dim] -= g * alpha;
            }
            next_sample[e] += eps[e];
            let n_neg = if neg_rate > 0.0 {
                ((ep - next_neg[e]) / eps_neg[e]).floor().max(0.0) as usize
            } else {
                0
            };
            for _ in 0..n_neg {
                let t = rng.random_range(0..n);
                let (cur, oth) = (emb[j], emb[t]);
                let d2 = (cur[0] - oth[0]).powi(2) + (cur[1] - oth[1]).powi(2);
                let coeff = if d2 > 0.0 {
                    2.0 * gamma * cb / ((0.001 + d2) * (ca * d2.powf(cb) + 1.0))
                } else if j == t {
                    continue;
                } else {
                    0.0
                };
                for dim in 0..2 {
                    let g = if coeff > 0.0 {
                        clip(coeff * (cur[dim] - oth[dim]))
                    } else {
                        0.0
                    };
                    emb[j][dim] += g * alpha;
                }
            }
            next_neg[e] += n_neg as f64 * eps_neg[e];
        }
    }
    Ok(emb)
}

/// A standard normal draw (Box–Muller) from the seeded RNG.
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}
