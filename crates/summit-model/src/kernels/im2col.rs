//! Strided convolutions (GoogLeNet's 7×7 stride-2 stem over 3 channels) on burn's CPU
//! device: the input unfolded on the host straight from NCHW into `[c_in · kh · kw, oh · ow]`
//! columns per image (a strided row split into its phases once, so that every tap's columns
//! are contiguous copies), then one matrix product per image through burn's `matmul` (the
//! `gemm` crate), whose output is already NCHW.
//!
//! burn-flex runs that stem through a direct small-channel convolution, about 13 % of the
//! whole pass (`perf`, `benches/pass.rs`); as columns and a product it takes a fraction of
//! that. (For stride-1 convolutions with long chains, burn's im2col + GEMM was as fast or
//! faster than these columns, so they stay with burn.)
//!
//! The values are those of a matrix product over the taps in `(c_in, ky, kx)` order —
//! burn's GEMM, rounded as it rounds, the same for every batch size and thread count (one
//! product per image; the `gemm` crate splits rows and columns across threads, never the
//! sums).

use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

/// A convolution's geometry: kernel, stride and zero padding (`[top, bottom, left, right]`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unfold {
    pub(crate) kh: usize,
    pub(crate) kw: usize,
    pub(crate) stride: [usize; 2],
    pub(crate) pad: [usize; 4],
}

impl Unfold {
    /// Output height and width for an `h × w` input, `None` where the kernel does not fit
    /// or a size is zero.
    pub(crate) fn out_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let [pt, pb, pl, pr] = self.pad;
        let [sh, sw] = self.stride;
        let (hp, wp) = (h + pt + pb, w + pl + pr);
        if self.kh == 0 || self.kw == 0 || sh == 0 || sw == 0 || hp < self.kh || wp < self.kw {
            return None;
        }
        Some(((hp - self.kh) / sh + 1, (wp - self.kw) / sw + 1))
    }

    /// The columns of every image of `x` (`[n, c, h, w]`): `[n, c · kh · kw, oh · ow]`, row
    /// `(ci · kh + ky) · kw + kx`, column `oy · ow + ox` holding `x[ci, oy · sh + ky − pt,
    /// ox · sw + kx − pl]` (0 in the padding). Images in parallel.
    pub(crate) fn columns(&self, x: &[f32], [n, c, h, w]: [usize; 4]) -> Option<Vec<f32>> {
        let (oh, ow) = self.out_hw(h, w)?;
        if x.len() != n * c * h * w {
            return None;
        }
        let (taps, p) = (self.kh * self.kw, oh * ow);
        let per_image = c * taps * p;
        let mut out = vec![0.0f32; n * per_image];
        if per_image == 0 || h * w == 0 {
            // nothing to unfold, or only padding: all zeros
            return Some(out);
        }
        let [sh, sw] = self.stride;
        let [pt, _, pl, _] = self.pad;
        // per kx: the output columns whose input column lies inside the map, and the first
        let cols: Vec<(usize, usize, usize)> = (0..self.kw)
            .map(|kx| {
                let lo = pl.saturating_sub(kx).div_ceil(sw);
                let hi = (w + pl).saturating_sub(kx).div_ceil(sw).min(ow);
                (lo, hi.max(lo), (lo * sw + kx).saturating_sub(pl))
            })
            .collect();
        // a strided kernel reads every `sw`-th input column: each input row split once into
        // its `sw` phases (phase `r` holds columns `r, r + sw, …`), the columns of one tap
        // are a contiguous run of one phase
        let wq = w.div_ceil(sw);
        out.par_chunks_exact_mut(per_image)
            .zip(x.par_chunks_exact(c * h * w))
            .for_each_init(Vec::new, |phases: &mut Vec<f32>, (img_out, img)| {
                if sw > 1 {
                    phases.clear();
                    phases.resize(c * h * sw * wq, 0.0);
                    for (src, dst) in img.chunks_exact(w).zip(phases.chunks_exact_mut(sw * wq)) {
                        for (r, ph) in dst.chunks_exact_mut(wq).enumerate() {
                            for (d, &v) in ph.iter_mut().zip(src.iter().skip(r).step_by(sw)) {
                                *d = v;
                            }
                        }
                    }
                }
                for (ci, rows) in img_out.chunks_exact_mut(taps * p).enumerate() {
                    for (t, row) in rows.chunks_exact_mut(p).enumerate() {
                        let (ky, kx) = (t / self.kw, t % self.kw);
                        let (lo, hi, ix0) = cols[kx];
                        if lo >= hi {
                            continue;
                        }
                        for (oy, orow) in row.chunks_exact_mut(ow).enumerate() {
                            let Some(iy) = (oy * sh + ky).checked_sub(pt) else {
                                continue;
                            };
                            if iy >= h {
                                continue;
                            }
                            let src = if sw == 1 {
                                &img[(ci * h + iy) * w + ix0..][..hi - lo]
                            } else {
                                let ph = ((ci * h + iy) * sw + ix0 % sw) * wq;
                                &phases[ph + ix0 / sw..][..hi - lo]
                            };
                            crate::conv::copy_short(&mut orow[lo..hi], src);
                        }
                    }
                }
            });
        Some(out)
    }
}

/// Column values per product at most: a batch whose columns would take more goes through in
/// groups of images, so that each group's buffer (8 MiB) is reused from the allocator's heap
/// rather than mapped and faulted in afresh (GoogLeNet's stem: 59 MiB of columns for a batch
/// of 8, its page faults half the time of the unfolding).
const GROUP_VALUES: usize = 1 << 21;

/// `x` (`[n, c_in, h, w]`) convolved with `weight` (`[c_out, c_in, kh, kw]`) by `u`: the
/// columns of [`Unfold::columns`], then `weight · columns` per image (a few images per
/// product, [`GROUP_VALUES`]); `None` where `x` is not an f32 host tensor or the shapes do
/// not fit (the caller runs burn's convolution).
pub(crate) fn conv2d(x: &Tensor<4>, weight: &Tensor<4>, u: &Unfold) -> Option<Tensor<4>> {
    let [n, c_in, h, w] = x.dims();
    let [c_out, wc, kh, kw] = weight.dims();
    if wc != c_in || (kh, kw) != (u.kh, u.kw) || n == 0 {
        return None;
    }
    let (oh, ow) = u.out_hw(h, w)?;
    let (k, p) = (c_in * kh * kw, oh * ow);
    if k == 0 || p == 0 {
        return None;
    }
    let group = (GROUP_VALUES / (k * p)).clamp(1, n);
    let device = x.device();
    let wt = weight.clone().reshape([1, c_out, k]);
    let xs = crate::conv::HostValues::of(x)?;
    let image = c_in * h * w;
    let mut outs = Vec::with_capacity(n.div_ceil(group));
    for g0 in (0..n).step_by(group) {
        let g = group.min(n - g0);
        let part = xs.values().get(g0 * image..(g0 + g) * image)?;
        let cols = u.columns(part, [g, c_in, h, w])?;
        let cols = Tensor::<3>::from_data(TensorData::new(cols, [g, k, p]), &device);
        outs.push(wt.clone().matmul(cols));
    }
    let y = if outs.len() == 1 {
        outs.pop()?
    } else {
        let mut all = Vec::with_capacity(n * c_out * p);
        for o in &outs {
            all.extend_from_slice(crate::conv::HostValues::of(o)?.values());
        }
        Tensor::from_data(TensorData::new(all, [n, c_out, p]), &device)
    };
    Some(y.reshape([n, c_out, oh, ow]))
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::conv::tests::values;
    use burn::tensor::Device;
    use burn::tensor::module::conv2d as burn_conv2d;
    use burn::tensor::ops::ConvOptions;

    /// The columns equal the definition, literally (every row, column and padding zero),
    /// over kernels 1–7, strides 1–3 (the phase split), symmetric and asymmetric padding and
    /// odd, non-square and tiny maps.
    #[test]
    fn columns_equal_the_definition() {
        let mut cases = 0;
        for &(h, w) in &[(1, 1), (2, 3), (7, 7), (13, 9), (23, 17)] {
            for &k in &[1usize, 2, 3, 5, 7] {
                for &s in &[1usize, 2, 3] {
                    for &pad in &[[0, 0, 0, 0], [1, 1, 1, 1], [3, 3, 3, 3], [0, 2, 1, 0]] {
                        let u = Unfold {
                            kh: k,
                            kw: k,
                            stride: [s, s],
                            pad,
                        };
                        let Some((oh, ow)) = u.out_hw(h, w) else {
                            continue;
                        };
                        let (n, c) = (2, 3);
                        let x = values(n * c * h * w, (h * 31 + k * 7 + s) as u64);
                        let got = u.columns(&x, [n, c, h, w]).unwrap();
                        let mut want = Vec::new();
                        for b in 0..n {
                            for ci in 0..c {
                                for ky in 0..k {
                                    for kx in 0..k {
                                        for oy in 0..oh {
                                            for ox in 0..ow {
                                                let iy = (oy * s + ky).checked_sub(pad[0]);
                                                let ix = (ox * s + kx).checked_sub(pad[2]);
                                                want.push(match (iy, ix) {
                                                    (Some(iy), Some(ix)) if iy < h && ix < w => {
                                                        x[((b * c + ci) * h + iy) * w + ix]
                                                    }
                                                    _ => 0.0,
                                                });
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        assert_eq!(got, want, "{h}x{w} k{k} s{s} {pad:?}");
                        cases += 1;
                    }
                }
            }
        }
        assert!(cases > 150, "{cases} cases");
        // an empty map with padding: only zeros
        let u = Unfold {
            kh: 3,
            kw: 3,
            stride: [1, 1],
            pad: [2; 4],
        };
        let zeros = u.columns(&[], [1, 2, 0, 4]).unwrap();
        assert_eq!(zeros.len(), 2 * 9 * 2 * 6);
        assert!(zeros.iter().all(|&v| v == 0.0));
        assert!(
            Unfold {
                kh: 3,
                kw: 3,
                stride: [1, 1],
                pad: [0; 4]
            }
            .columns(&[0.0; 3], [1, 1, 2, 2])
            .is_none()
        );
    }

    /// The same bits for every image whatever the batch (one product per image or per
    /// group, [`GROUP_VALUES`]) and the thread count, at a stem-like shape whose single-image
    /// product is large enough for the `gemm` crate to split it across threads.
    #[test]
    fn conv2d_bits_do_not_depend_on_batch_or_threads() {
        let device = Device::flex();
        let (n, c_in, c_out, h, k) = (9, 3, 64, 112, 7);
        let x = values(n * c_in * h * h, 5);
        let wgt = values(c_out * c_in * k * k, 6);
        let wt = Tensor::<4>::from_data(TensorData::new(wgt, [c_out, c_in, k, k]), &device);
        let u = Unfold {
            kh: k,
            kw: k,
            stride: [2, 2],
            pad: [3; 4],
        };
        let run = |lo: usize, len: usize, threads: usize| -> Vec<f32> {
            let part = x[lo * c_in * h * h..(lo + len) * c_in * h * h].to_vec();
            let xt = Tensor::<4>::from_data(TensorData::new(part, [len, c_in, h, h]), &device);
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| conv2d(&xt, &wt, &u))
                .unwrap()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let all = run(0, n, 2);
        let per = all.len() / n;
        // the whole batch goes through in groups of (GROUP_VALUES / columns per image)
        let group = GROUP_VALUES / (c_in * k * k * 56 * 56);
        assert!((2..n).contains(&group), "groups of {group}");
        for threads in [1, 2] {
            assert_eq!(run(0, n, threads), all, "{threads} threads");
            for (lo, len) in [(0, 1), (4, 1), (2, 3), (1, 8)] {
                let got = run(lo, len, threads);
                let want = &all[lo * per..(lo + len) * per];
                let same = got
                    .iter()
                    .zip(want)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "images {lo}..{} on {threads} threads", lo + len);
            }
        }
    }

    /// The convolution agrees with burn's (GoogLeNet's strided 7×7 stem among the shapes)
    /// within the recursive-summation bound of an `f64` reference.
    #[test]
    fn conv2d_agrees_with_an_f64_reference_and_burn() {
        let device = Device::flex();
        // (n, c_in, c_out, h, w, k, stride, pad)
        let cases = [
            (2, 3, 16, 32, 30, 7, 2, 3),
            (2, 16, 24, 15, 15, 3, 2, 1),
            (1, 64, 12, 9, 9, 3, 1, 1),
            (3, 5, 4, 8, 11, 5, 3, 2),
        ];
        for (i, &(n, c_in, c_out, h, w, k, s, p)) in cases.iter().enumerate() {
            let x = values(n * c_in * h * w, 40 + i as u64);
            let wgt = values(c_out * c_in * k * k, 80 + i as u64);
            let xt = Tensor::<4>::from_data(TensorData::new(x.clone(), [n, c_in, h, w]), &device);
            let wt =
                Tensor::<4>::from_data(TensorData::new(wgt.clone(), [c_out, c_in, k, k]), &device);
            let u = Unfold {
                kh: k,
                kw: k,
                stride: [s, s],
                pad: [p; 4],
            };
            let ours = conv2d(&xt, &wt, &u).unwrap();
            let theirs = burn_conv2d(xt, wt, None, ConvOptions::new([s, s], [p, p], [1, 1], 1));
            assert_eq!(ours.dims(), theirs.dims(), "case {i}");
            let [_, _, oh, ow] = ours.dims();
            let ours = ours.into_data().try_to_vec::<f32>().unwrap();
            let theirs = theirs.into_data().try_to_vec::<f32>().unwrap();
            let kk = (c_in * k * k) as f64;
            let u32eps = f64::from(f32::EPSILON) / 2.0;
            let gamma = kk * u32eps / (1.0 - kk * u32eps);
            let mut j = 0;
            for b in 0..n {
                for co in 0..c_out {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let (mut v, mut m) = (0.0f64, 0.0f64);
                            for ci in 0..c_in {
                                for ky in 0..k {
                                    for kx in 0..k {
                                        let (Some(iy), Some(ix)) = (
                                            (oy * s + ky).checked_sub(p),
                                            (ox * s + kx).checked_sub(p),
                                        ) else {
                                            continue;
                                        };
                                        if iy >= h || ix >= w {
                                            continue;
                                        }
                                        let t = f64::from(x[((b * c_in + ci) * h + iy) * w + ix])
                                            * f64::from(wgt[((co * c_in + ci) * k + ky) * k + kx]);
                                        v += t;
                                        m += t.abs();
                                    }
                                }
                            }
                            let bound = gamma * m + 1e-30;
                            let (o, t) = (f64::from(ours[j]), f64::from(theirs[j]));
                            assert!((o - v).abs() <= bound, "case {i} elem {j}: {o} vs {v}");
                            assert!(
                                (t - v).abs() <= bound,
                                "burn, case {i} elem {j}: {t} vs {v}"
                            );
                            j += 1;
                        }
                    }
                }
            }
        }
    }
}
