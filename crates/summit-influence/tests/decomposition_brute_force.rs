//! The per-channel decomposition of a convolution against a test-local brute force written
//! differently from the library's reference: the input is zero-padded into an explicit larger
//! image, every per-channel map `X_i ⋆ K[j, i]` is materialised at every output position, and
//!
//! - its maximum equals `influence_cpu` bit for bit (the same arithmetic: fused multiply-adds
//!   from `0.0` over the taps in row-major order), for strides 1–3 per axis, symmetric and asymmetric paddings, 1×1
//!   (the closed form), 3×3 and 5×5 kernels;
//! - the per-channel maps summed over input channels equal an independent full convolution
//!   (summed in another order) to rounding: the decomposition is a decomposition of the
//!   layer's real convolution at the hop's stride and padding.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use summit_influence::{HopGeometry, influence_cpu};

/// `[B, C_in, H + pt + pb, W + pl + pr]` with zeros around.
fn pad(x: &[f32], d: [usize; 4], p: [usize; 4]) -> (Vec<f32>, [usize; 2]) {
    let [b, c, h, w] = d;
    let (hp, wp) = (h + p[0] + p[1], w + p[2] + p[3]);
    let mut out = vec![0.0f32; b * c * hp * wp];
    for n in 0..b * c {
        for y in 0..h {
            for xx in 0..w {
                out[(n * hp + y + p[0]) * wp + xx + p[2]] = x[(n * h + y) * w + xx];
            }
        }
    }
    (out, [hp, wp])
}

/// Per-channel maps `[B, C_out, C_in, Ho, Wo]` on the padded image.
#[allow(clippy::too_many_arguments)]
fn per_channel_maps(
    xp: &[f32],
    b: usize,
    c_in: usize,
    hw: [usize; 2],
    k: &[f32],
    kd: [usize; 4],
    stride: [usize; 2],
) -> (Vec<f32>, [usize; 2]) {
    let [c_out, _, kh, kw] = kd;
    let ho = (hw[0] - kh) / stride[0] + 1;
    let wo = (hw[1] - kw) / stride[1] + 1;
    let mut maps = Vec::with_capacity(b * c_out * c_in * ho * wo);
    for n in 0..b {
        for j in 0..c_out {
            for i in 0..c_in {
                let img = &xp[(n * c_in + i) * hw[0] * hw[1]..][..hw[0] * hw[1]];
                let ker = &k[(j * c_in + i) * kh * kw..][..kh * kw];
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut s = 0.0f32;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                s = img[(oy * stride[0] + ky) * hw[1] + ox * stride[1] + kx]
                                    .mul_add(ker[ky * kw + kx], s);
                            }
                        }
                        maps.push(s);
                    }
                }
            }
        }
    }
    (maps, [ho, wo])
}

/// The full convolution `[B, C_out, Ho, Wo]` (no bias), summing taps first, channels last,
/// in f64.
#[allow(clippy::too_many_arguments)]
fn full_conv(
    xp: &[f32],
    b: usize,
    c_in: usize,
    hw: [usize; 2],
    k: &[f32],
    kd: [usize; 4],
    stride: [usize; 2],
    out: [usize; 2],
) -> Vec<f64> {
    let [c_out, _, kh, kw] = kd;
    let mut y = vec![0.0f64; b * c_out * out[0] * out[1]];
    for n in 0..b {
        for j in 0..c_out {
            for oy in 0..out[0] {
                for ox in 0..out[1] {
                    let mut s = 0.0f64;
                    for ky in (0..kh).rev() {
                        for kx in (0..kw).rev() {
                            for i in (0..c_in).rev() {
                                let v = xp[((n * c_in + i) * hw[0] + oy * stride[0] + ky) * hw[1]
                                    + ox * stride[1]
                                    + kx];
                                s += f64::from(v)
                                    * f64::from(k[((j * c_in + i) * kh + ky) * kw + kx]);
                            }
                        }
                    }
                    y[((n * c_out + j) * out[0] + oy) * out[1] + ox] = s;
                }
            }
        }
    }
    y
}

#[test]
fn decomposition_equals_brute_force_for_strides_paddings_and_kernels() {
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let mut cases = 0;
    for k in [1usize, 3, 5] {
        for sy in 1..=3 {
            for sx in 1..=3 {
                for p in [[0, 0, 0, 0], [k / 2; 4], [0, 1, 1, 0], [2, 1, 0, 2]] {
                    let (b, c_in, c_out) = (2, rng.random_range(1..5), rng.random_range(1..11));
                    let h = rng.random_range(k.max(3)..k + 9);
                    let w = rng.random_range(k.max(3)..k + 9);
                    let xd = [b, c_in, h, w];
                    let kd = [c_out, c_in, k, k];
                    // post-ReLU-like inputs (many zeros), signed kernels
                    let x: Vec<f32> = (0..b * c_in * h * w)
                        .map(|_| rng.random_range(-1.0f32..2.0).max(0.0))
                        .collect();
                    let ker: Vec<f32> = (0..c_out * c_in * k * k)
                        .map(|_| rng.random_range(-1.0f32..1.0))
                        .collect();
                    let g = HopGeometry::new([sy, sx], p);
                    let what = format!("{k}x{k} stride [{sy}, {sx}] pad {p:?} x {xd:?} k {kd:?}");

                    let (xp, hw) = pad(&x, xd, p);
                    let (maps, out) = per_channel_maps(&xp, b, c_in, hw, &ker, kd, [sy, sx]);
                    assert_eq!(g.output_hw([h, w], [k, k]).unwrap(), out, "{what}");
                    let np = out[0] * out[1];
                    let want: Vec<f32> = maps
                        .chunks_exact(np)
                        .map(|m| {
                            m.iter()
                                .fold(f32::NEG_INFINITY, |a, &v| if v > a { v } else { a })
                        })
                        .collect();
                    let got = influence_cpu(&x, xd, &ker, kd, &g).unwrap();
                    assert_eq!(got, want, "{what}");

                    // the maps are a decomposition of the real convolution
                    let y = full_conv(&xp, b, c_in, hw, &ker, kd, [sy, sx], out);
                    for n in 0..b {
                        for j in 0..c_out {
                            for q in 0..np {
                                let sum: f64 = (0..c_in)
                                    .map(|i| f64::from(maps[((n * c_out + j) * c_in + i) * np + q]))
                                    .sum();
                                let full = y[(n * c_out + j) * np + q];
                                assert!(
                                    (sum - full).abs() <= 1e-5 * full.abs().max(1.0),
                                    "{what}: sum of maps {sum} vs convolution {full}"
                                );
                            }
                        }
                    }
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 3 * 9 * 4);
}
