//! Gauss–Legendre quadrature on `[0, 1]`, as Captum's `gausslegendre` method (numpy's
//! `leggauss` rescaled).

/// The `n` nodes (ascending, in `(0, 1)`) and weights (summing to 1) of the Gauss–Legendre rule
/// on `[0, 1]`.
///
/// ```
/// let (alphas, weights) = summit_attribution::gauss_legendre(3);
/// assert!((alphas[1] - 0.5).abs() < 1e-12);
/// assert!((weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);
/// // exact for polynomials of degree 2n − 1: ∫₀¹ x⁵ dx = 1/6
/// let q: f64 = alphas.iter().zip(&weights).map(|(x, w)| w * x.powi(5)).sum();
/// assert!((q - 1.0 / 6.0).abs() < 1e-12);
/// ```
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut nodes = vec![0.0; n];
    let mut weights = vec![0.0; n];
    for i in 0..n {
        // Newton's method on P_n from the Chebyshev-like first guess (root i, descending in x)
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            let (p, d) = legendre(n, x);
            dp = d;
            let dx = p / d;
            x -= dx;
            if dx.abs() < 1e-15 {
                break;
            }
        }
        let (_, d) = legendre(n, x);
        if d.is_finite() {
            dp = d;
        }
        // on [-1, 1]: w = 2 / ((1 − x²) P_n'(x)²); rescaled to [0, 1]: × ½
        nodes[n - 1 - i] = 0.5 * (1.0 + x);
        weights[n - 1 - i] = 1.0 / ((1.0 - x * x) * dp * dp);
    }
    (nodes, weights)
}

/// `(P_n(x), P_n'(x))` by the three-term recurrence.
fn legendre(n: usize, x: f64) -> (f64, f64) {
    let (mut p0, mut p1) = (1.0, x);
    if n == 0 {
        return (1.0, 0.0);
    }
    for k in 2..=n {
        let k = k as f64;
        let p2 = ((2.0 * k - 1.0) * x * p1 - (k - 1.0) * p0) / k;
        p0 = p1;
        p1 = p2;
    }
    let d = n as f64 * (x * p1 - p0) / (x * x - 1.0);
    (p1, d)
}

#[cfg(test)]
mod tests {
    use super::gauss_legendre;

    #[test]
    fn integrates_polynomials_exactly() {
        for n in 1..=60 {
            let (x, w) = gauss_legendre(n);
            assert!(x.windows(2).all(|p| p[0] < p[1]), "n={n}: nodes ascending");
            for deg in 0..(2 * n).min(40) {
                let q: f64 = x.iter().zip(&w).map(|(x, w)| w * x.powi(deg as i32)).sum();
                let exact = 1.0 / (deg as f64 + 1.0);
                assert!((q - exact).abs() < 1e-10, "n={n} deg={deg}: {q} vs {exact}");
            }
        }
    }
}
