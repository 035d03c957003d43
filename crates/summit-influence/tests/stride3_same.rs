//! The `summit2019` influence shortcut (stride 3, TensorFlow "SAME" padding) against an
//! independent brute force: the zero-padded input written out explicitly with TensorFlow's
//! padding rule, the dense stride-1 cross-correlation computed in f64, and its maximum taken
//! over every third row and column only. Also the grid sizes of the original code: 19×19 at
//! 56, 10×10 at 28, 5×5 at 14, 3×3 at 7 (InceptionV1's hop inputs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use summit_influence::{
    DeviceInfluenceOptions, DeviceKernel, HopGeometry, InfluenceGeometry, influence_cpu,
    influence_device_host, influence_reference,
};

const STRIDE: usize = 3;

/// TensorFlow's SAME rule, written out independently of `HopGeometry::tf_same`:
/// (output size, padding before, padding after).
fn tf_same(n: usize, k: usize) -> (usize, usize, usize) {
    let out = n.div_ceil(STRIDE);
    let total = ((out - 1) * STRIDE + k).saturating_sub(n);
    (out, total / 2, total - total / 2)
}

/// `[B, C_out, C_in]` maxima over the stride-3 grid of the dense stride-1 correlation, and the
/// grid side.
fn subsampled_brute_force(
    x: &[f32],
    [b, c_in, n, _]: [usize; 4],
    kernel: &[f32],
    [c_out, _, k, _]: [usize; 4],
) -> (Vec<f64>, usize) {
    let (out, before, after) = tf_same(n, k);
    let p = n + before + after;
    let mut result = vec![0f64; b * c_out * c_in];
    for bi in 0..b {
        for i in 0..c_in {
            // The padded channel, explicitly.
            let mut padded = vec![0f64; p * p];
            for y in 0..n {
                for xx in 0..n {
                    padded[(y + before) * p + xx + before] =
                        f64::from(x[((bi * c_in + i) * n + y) * n + xx]);
                }
            }
            for j in 0..c_out {
                let kk = &kernel[(j * c_in + i) * k * k..(j * c_in + i + 1) * k * k];
                // Dense stride-1 valid correlation over the padded map ...
                let d = p - k + 1;
                let mut dense = vec![0f64; d * d];
                for y in 0..d {
                    for xx in 0..d {
                        let mut s = 0f64;
                        for ky in 0..k {
                            for kx in 0..k {
                                s += padded[(y + ky) * p + xx + kx] * f64::from(kk[ky * k + kx]);
                            }
                        }
                        dense[y * d + xx] = s;
                    }
                }
                // ... and its maximum over every third row and column.
                let rows: Vec<usize> = (0..d).step_by(STRIDE).collect();
                assert_eq!(rows.len(), out, "grid of {n} with k {k}");
                let mut best = f64::NEG_INFINITY;
                for &y in &rows {
                    for &xx in &rows {
                        best = best.max(dense[y * d + xx]);
                    }
                }
                result[(bi * c_out + j) * c_in + i] = best;
            }
        }
    }
    (result, out)
}

fn random(rng: &mut ChaCha8Rng, n: usize, relu: bool) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let v: f32 = rng.random_range(-1.0..1.0);
            if relu { v.max(0.0) } else { v }
        })
        .collect()
}

#[test]
fn grid_sizes_are_the_original_codes() {
    // InceptionV1's hop inputs in the summit2019 preset: conv2d2 (56) for mixed3a, 28 for
    // mixed3b/mixed4a, 14 for mixed4b..mixed5a, 7 for mixed5b.
    for (n, side) in [(56, 19), (28, 10), (14, 5), (7, 3)] {
        for k in [1, 3, 5] {
            let own = HopGeometry::conv([1, 1], [k / 2, k / 2]);
            let g = InfluenceGeometry::TfSame {
                stride: [STRIDE, STRIDE],
            }
            .resolve(own, [n, n], [k, k]);
            assert_eq!(g.stride, [3, 3]);
            assert_eq!(
                g.output_hw([n, n], [k, k]).unwrap(),
                [side, side],
                "n {n} k {k}"
            );
            let (out, before, after) = tf_same(n, k);
            assert_eq!(out, side);
            assert_eq!(g.padding, [before, after, before, after], "n {n} k {k}");
            // The layer's own geometry is untouched by the paper preset.
            assert_eq!(
                InfluenceGeometry::LayerOwn.resolve(own, [n, n], [k, k]),
                own
            );
        }
    }
}

#[test]
fn stride3_same_equals_brute_force_on_the_subsampled_grid() {
    let device = Device::flex();
    let mut rng = ChaCha8Rng::seed_from_u64(2019);
    let mut differs_from_dense = 0;
    let mut compared = 0;
    for (n, side) in [(28, 10), (14, 5), (56, 19), (7, 3)] {
        for k in [1, 3, 5] {
            let (b, c_in, c_out) = if n == 56 { (1, 3, 4) } else { (2, 5, 9) };
            let x_dims = [b, c_in, n, n];
            let k_dims = [c_out, c_in, k, k];
            let x = random(&mut rng, x_dims.iter().product(), true);
            let kernel = random(&mut rng, k_dims.iter().product(), false);
            let (want, grid) = subsampled_brute_force(&x, x_dims, &kernel, k_dims);
            assert_eq!(grid, side);
            let own = HopGeometry::conv([1, 1], [k / 2, k / 2]);
            let g = InfluenceGeometry::TfSame {
                stride: [STRIDE, STRIDE],
            }
            .resolve(own, [n, n], [k, k]);
            let cpu = influence_cpu(&x, x_dims, &kernel, k_dims, &g).unwrap();
            let reference = influence_reference(&x, x_dims, &kernel, k_dims, &g).unwrap();
            let xt = Tensor::<4>::from_data(TensorData::new(x.clone(), x_dims), &device);
            let dk = DeviceKernel::new(&kernel, k_dims, &device).unwrap();
            let dev =
                influence_device_host(xt, &dk, &g, &DeviceInfluenceOptions::default()).unwrap();
            // The layer's own geometry (stride 1, symmetric padding) for contrast.
            let dense = influence_reference(&x, x_dims, &kernel, k_dims, &own).unwrap();
            assert_eq!(cpu.len(), want.len());
            // f32 sums of at most 25 terms of magnitude <= 1 against f64.
            let tol = 1e-5 * (k * k) as f64;
            for (idx, &w) in want.iter().enumerate() {
                for (what, got) in [("cpu", &cpu), ("reference", &reference), ("device", &dev)] {
                    let g = f64::from(got[idx]);
                    assert!(
                        (g - w).abs() <= tol,
                        "n {n} k {k} {what} L[{idx}] = {g}, brute force {w}"
                    );
                }
                if f64::from(dense[idx]) > w + 1e-4 {
                    differs_from_dense += 1;
                }
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 3 * 2 * 9 * 5 * 3 + 3 * 4 * 3);
    // The subsampled grid really misses maxima of the dense map.
    assert!(
        differs_from_dense > compared / 4,
        "only {differs_from_dense} of {compared} influences differ from the stride-1 ones"
    );
}
