//! The per-channel decomposition of a convolution: influences
//! `L[b, j, i] = max_p (X_{b,i} ⋆ K[j, i])(p)` (SPEC §2).
//!
//! Arithmetic contract, shared by [`influence_cpu`] and
//! [`influence_reference`] so that both give bit-identical results: every
//! output position's value is `0.0 + x_0*k_0 + x_1*k_1 + …` summed in `f32`
//! over the kernel taps in row-major `(ky, kx)` order, with `x = 0.0` at zero
//! padding, no fused multiply-add; the maximum over positions keeps the first
//! value unless a later one is strictly greater.

use rayon::prelude::*;

use crate::error::InfluenceError;
use crate::geometry::HopGeometry;

/// Output channels per micro-tile of the fused kernel.
const JT: usize = 8;
/// Output positions per micro-tile step.
const NP: usize = 4;
/// Output channels per parallel task of the fused kernel (a multiple of `JT`).
const JB: usize = 64;

fn check_len(what: &'static str, len: usize, dims: &[usize]) -> Result<(), InfluenceError> {
    let expected = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .unwrap_or(usize::MAX);
    if expected != len {
        return Err(InfluenceError::Shape {
            what,
            dims: dims.to_vec(),
            expected,
            got: len,
        });
    }
    Ok(())
}

fn check_finite(what: &'static str, data: &[f32]) -> Result<(), InfluenceError> {
    match data.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(InfluenceError::NonFinite {
            what,
            index,
            value: data[index],
        }),
        None => Ok(()),
    }
}

/// Validates a hop's inputs and returns its output `[H_out, W_out]`.
fn validate(
    x: &[f32],
    x_dims: [usize; 4],
    kernel: &[f32],
    k_dims: [usize; 4],
    geom: &HopGeometry,
) -> Result<[usize; 2], InfluenceError> {
    check_len("hop input", x.len(), &x_dims)?;
    check_len("kernel", kernel.len(), &k_dims)?;
    if x_dims[1] != k_dims[1] {
        return Err(InfluenceError::DimensionMismatch {
            what: "input channels of the hop input [B, C_in, H, W] vs the kernel [C_out, C_in, kh, kw]".into(),
            expected: k_dims[1],
            got: x_dims[1],
        });
    }
    let out = geom.output_hw([x_dims[2], x_dims[3]], [k_dims[2], k_dims[3]])?;
    check_finite("hop input", x)?;
    check_finite("kernel", kernel)?;
    Ok(out)
}

/// `max` as the contract defines it: keep `best` unless `v` is strictly greater.
#[inline(always)]
fn keep_max(best: f32, v: f32) -> f32 {
    if v > best { v } else { best }
}

/// Per-image influences of every input channel on every output channel of
/// one convolution hop — the fused CPU kernel.
///
/// - `x`: the hop input, contiguous `[B, C_in, H, W]` (`x_dims`).
/// - `kernel`: the (batch-norm folded, see [`fold_batch_norm`]) kernel,
///   PyTorch layout `[C_out, C_in, kh, kw]` (`k_dims`).
/// - `geom`: stride and zero padding.
///
/// Returns `L` as `[B, C_out, C_in]` row-major: `L[(b*C_out + j)*C_in + i] =
/// max over output positions p of (X_{b,i} ⋆ K[j,i])(p)`, the
/// cross-correlation of one input channel with one kernel slice (zero
/// padding, no bias). Padded positions count: a window over padding still
/// yields an output value.
///
/// 1×1 kernels use the exact closed form `max(K·max S, K·min S)` over the
/// set `S` of input values on the stride grid (plus 0 when the grid reaches
/// the padding). Other kernels run a fused, cache-blocked kernel that never
/// materialises the `[B, C_in·C_out, H_out, W_out]` tensor: per (image,
/// block of 64 output channels) task (in parallel with rayon), each input
/// channel is unfolded once into a per-thread `H_out·W_out × kh·kw` patch
/// buffer and swept 8 output channels × 4 positions at a time, keeping running
/// maxima. Results are bit-identical to [`influence_reference`] and do not
/// depend on the thread count.
///
/// ```
/// use summit_influence::{influence_cpu, HopGeometry};
/// // one image, one input channel [[1, 2], [3, 4]], two 1×1 kernels (2 and -1)
/// let l = influence_cpu(&[1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2], &[2.0, -1.0], [2, 1, 1, 1],
///                       &HopGeometry::conv([1, 1], [0, 0])).unwrap();
/// assert_eq!(l, vec![8.0, -1.0]);
/// ```
pub fn influence_cpu(
    x: &[f32],
    x_dims: [usize; 4],
    kernel: &[f32],
    k_dims: [usize; 4],
    geom: &HopGeometry,
) -> Result<Vec<f32>, InfluenceError> {
    let out_hw = validate(x, x_dims, kernel, k_dims, geom)?;
    if k_dims[2] == 1 && k_dims[3] == 1 {
        Ok(closed_form_1x1(x, x_dims, kernel, k_dims[0], geom, out_hw))
    } else {
        Ok(fused(x, x_dims, kernel, k_dims, geom, out_hw))
    }
}

/// [`influence_cpu`] for a grouped convolution (SPEC §2.1): `kernel` is
/// `[C_out, C_in / groups, kh, kw]` (PyTorch's layout for `groups > 1`), `x` is
/// `[B, C_in, H, W]`. Output channel `j` of group `g = j / (C_out / groups)` sees only the
/// input channels `g·(C_in/groups) ..`, so the result is `[B, C_out, C_in / groups]`:
/// `L[(b*C_out + j)*(C_in/groups) + q]` is the influence of input channel
/// `g·(C_in/groups) + q` on `j`. A depthwise convolution (`groups = C_in`) gives one value per
/// output channel. `groups = 1` is [`influence_cpu`]. Groups are computed in parallel; the
/// values are those of [`influence_cpu`] on each group's slice, bit for bit.
///
/// ```
/// use summit_influence::{influence_cpu_grouped, HopGeometry};
/// // depthwise 1×1: two channels [[1, 2]] and [[3, -4]], weights 2 and -1
/// let l = influence_cpu_grouped(&[1.0, 2.0, 3.0, -4.0], [1, 2, 1, 2], &[2.0, -1.0],
///                               [2, 1, 1, 1], 2, &HopGeometry::conv([1, 1], [0, 0])).unwrap();
/// assert_eq!(l, vec![4.0, 4.0]);
/// ```
pub fn influence_cpu_grouped(
    x: &[f32],
    x_dims: [usize; 4],
    kernel: &[f32],
    k_dims: [usize; 4],
    groups: usize,
    geom: &HopGeometry,
) -> Result<Vec<f32>, InfluenceError> {
    if groups == 1 {
        return influence_cpu(x, x_dims, kernel, k_dims, geom);
    }
    let [b, c_in, h, w] = x_dims;
    let [c_out, cin_g, kh, kw] = k_dims;
    if groups == 0 || c_out % groups != 0 || cin_g.checked_mul(groups) != Some(c_in) {
        return Err(InfluenceError::DimensionMismatch {
            what: format!(
                "grouped convolution: {groups} groups, kernel [C_out={c_out}, C_in/groups={cin_g}, \
                 {kh}, {kw}], input channels (C_in/groups · groups)"
            ),
            expected: cin_g.saturating_mul(groups),
            got: c_in,
        });
    }
    check_len("hop input", x.len(), &x_dims)?;
    check_len("kernel", kernel.len(), &k_dims)?;
    let cout_g = c_out / groups;
    let hw = h * w;
    let per_group: Vec<Result<Vec<f32>, InfluenceError>> = (0..groups)
        .into_par_iter()
        .map(|g| {
            let mut xg = Vec::with_capacity(b * cin_g * hw);
            for n in 0..b {
                xg.extend_from_slice(&x[(n * c_in + g * cin_g) * hw..][..cin_g * hw]);
            }
            let per = cin_g * kh * kw;
            let kg = &kernel[g * cout_g * per..][..cout_g * per];
            influence_cpu(&xg, [b, cin_g, h, w], kg, [cout_g, cin_g, kh, kw], geom)
        })
        .collect();
    let mut l = vec![0.0f32; b * c_out * cin_g];
    for (g, res) in per_group.into_iter().enumerate() {
        let lg = res?;
        for n in 0..b {
            l[(n * c_out + g * cout_g) * cin_g..][..cout_g * cin_g]
                .copy_from_slice(&lg[n * cout_g * cin_g..][..cout_g * cin_g]);
        }
    }
    Ok(l)
}

/// Exact 1×1 influences for any stride and padding.
fn closed_form_1x1(
    x: &[f32],
    x_dims: [usize; 4],
    kernel: &[f32],
    c_out: usize,
    geom: &HopGeometry,
    out_hw: [usize; 2],
) -> Vec<f32> {
    let [b, c_in, h, w] = x_dims;
    let [ho, wo] = out_hw;
    // The input rows / columns the stride grid lands on; a grid point in the
    // padding contributes the value 0.
    let axis = |n: usize, len: usize, s: usize, pad: usize| -> (Vec<usize>, bool) {
        let mut idx = Vec::with_capacity(n);
        let mut padded = false;
        for o in 0..n {
            match (o * s).checked_sub(pad) {
                Some(v) if v < len => idx.push(v),
                _ => padded = true,
            }
        }
        (idx, padded)
    };
    let (rows, pad_r) = axis(ho, h, geom.stride[0], geom.padding[0]);
    let (cols, pad_c) = axis(wo, w, geom.stride[1], geom.padding[2]);
    let has_zero = pad_r || pad_c;
    let has_input = !rows.is_empty() && !cols.is_empty();
    let mut l = vec![0.0f32; b * c_out * c_in];
    l.par_chunks_mut(c_out * c_in)
        .enumerate()
        .for_each(|(n, lb)| {
            // max / min of S per input channel
            let mut mx = vec![f32::NEG_INFINITY; c_in];
            let mut mn = vec![f32::INFINITY; c_in];
            for i in 0..c_in {
                let map = &x[(n * c_in + i) * h * w..][..h * w];
                for &r in &rows {
                    for &c in &cols {
                        let v = map[r * w + c];
                        mx[i] = keep_max(mx[i], v);
                        if v < mn[i] {
                            mn[i] = v;
                        }
                    }
                }
            }
            for (j, row) in lb.chunks_exact_mut(c_in).enumerate() {
                for (i, out) in row.iter_mut().enumerate() {
                    let k = kernel[j * c_in + i];
                    let mut best = f32::NEG_INFINITY;
                    if has_input {
                        // rounding is monotone, so the extreme products come from
                        // the extreme inputs; `0.0 +` as in the contract
                        best = keep_max(best, 0.0 + mx[i] * k);
                        best = keep_max(best, 0.0 + mn[i] * k);
                    }
                    if has_zero {
                        best = keep_max(best, 0.0 + 0.0 * k);
                    }
                    *out = best;
                }
            }
        });
    l
}

/// Unfolds input channel `map` (`h × w`) into `patches` (`P × T`, zeros at
/// padding).
#[allow(clippy::too_many_arguments)]
fn im2col(
    map: &[f32],
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    geom: &HopGeometry,
    out_hw: [usize; 2],
    patches: &mut [f32],
) {
    let [ho, wo] = out_hw;
    let t = kh * kw;
    let (sh, sw) = (geom.stride[0], geom.stride[1]);
    let (pt, pl) = (geom.padding[0], geom.padding[2]);
    let (dh, dw) = (geom.dilation[0], geom.dilation[1]);
    for oy in 0..ho {
        for ox in 0..wo {
            let dst = &mut patches[(oy * wo + ox) * t..][..t];
            for ky in 0..kh {
                let iy = (oy * sh + ky * dh).checked_sub(pt).filter(|&v| v < h);
                for kx in 0..kw {
                    let ix = (ox * sw + kx * dw).checked_sub(pl).filter(|&v| v < w);
                    dst[ky * kw + kx] = match (iy, ix) {
                        (Some(y), Some(x)) => map[y * w + x],
                        _ => 0.0,
                    };
                }
            }
        }
    }
}

/// Running maxima over positions of `JT` output channels: `patches` is
/// `P × t`, `kt` is `t × JT` (tap-major). `NP` positions at a time share
/// each kernel-row load.
#[inline]
fn tile_max(patches: &[f32], t: usize, kt: &[f32]) -> [f32; JT] {
    let mut mx = [f32::NEG_INFINITY; JT];
    let kt = &kt[..t * JT];
    let mut groups = patches.chunks_exact(NP * t);
    for g in &mut groups {
        let mut acc = [[0.0f32; JT]; NP];
        for (tap, krow) in kt.chunks_exact(JT).enumerate() {
            for q in 0..NP {
                let xv = g[q * t + tap];
                for jj in 0..JT {
                    acc[q][jj] += xv * krow[jj];
                }
            }
        }
        for a in &acc {
            for jj in 0..JT {
                mx[jj] = keep_max(mx[jj], a[jj]);
            }
        }
    }
    for p in groups.remainder().chunks_exact(t) {
        let mut a = [0.0f32; JT];
        for (&xv, krow) in p.iter().zip(kt.chunks_exact(JT)) {
            for jj in 0..JT {
                a[jj] += xv * krow[jj];
            }
        }
        for jj in 0..JT {
            mx[jj] = keep_max(mx[jj], a[jj]);
        }
    }
    mx
}

/// The fused kernel for kernels larger than 1×1.
fn fused(
    x: &[f32],
    x_dims: [usize; 4],
    kernel: &[f32],
    k_dims: [usize; 4],
    geom: &HopGeometry,
    out_hw: [usize; 2],
) -> Vec<f32> {
    let [b, c_in, h, w] = x_dims;
    let [c_out, _, kh, kw] = k_dims;
    let t = kh * kw;
    let p = out_hw[0] * out_hw[1];
    let n_tiles = c_out.div_ceil(JT);
    // kt[i][tile][tap][jj] = K[tile*16 + jj, i, tap] (0 beyond C_out)
    let mut kt = vec![0.0f32; c_in * n_tiles * t * JT];
    for j in 0..c_out {
        for i in 0..c_in {
            for tap in 0..t {
                kt[((i * n_tiles + j / JT) * t + tap) * JT + j % JT] =
                    kernel[(j * c_in + i) * t + tap];
            }
        }
    }
    let mut l = vec![0.0f32; b * c_out * c_in];
    if l.is_empty() {
        return l;
    }
    l.par_chunks_mut(c_out * c_in)
        .enumerate()
        .for_each(|(n, lb)| {
            let xb = &x[n * c_in * h * w..][..c_in * h * w];
            lb.par_chunks_mut(JB * c_in)
                .enumerate()
                .for_each(|(g, chunk)| {
                    let j0 = g * JB;
                    let tiles = j0 / JT..(j0 + JB).min(c_out).div_ceil(JT);
                    let mut patches = vec![0.0f32; p * t];
                    for i in 0..c_in {
                        im2col(
                            &xb[i * h * w..][..h * w],
                            h,
                            w,
                            kh,
                            kw,
                            geom,
                            out_hw,
                            &mut patches,
                        );
                        for tile in tiles.clone() {
                            let mx = tile_max(&patches, t, &kt[(i * n_tiles + tile) * t * JT..]);
                            for (jj, &v) in mx.iter().enumerate() {
                                let j = tile * JT + jj;
                                if j < c_out {
                                    chunk[(j - j0) * c_in + i] = v;
                                }
                            }
                        }
                    }
                });
        });
    l
}

/// Brute-force reference of [`influence_cpu`] (same arguments, same
/// `[B, C_out, C_in]` result, bit-identical): for every image, output
/// channel and input channel, literally the zero-padded cross-correlation at
/// every output position, then the maximum. No closed form, no blocking,
/// single-threaded; for tests and benches.
pub fn influence_reference(
    x: &[f32],
    x_dims: [usize; 4],
    kernel: &[f32],
    k_dims: [usize; 4],
    geom: &HopGeometry,
) -> Result<Vec<f32>, InfluenceError> {
    let [ho, wo] = validate(x, x_dims, kernel, k_dims, geom)?;
    let [b, c_in, h, w] = x_dims;
    let [c_out, _, kh, kw] = k_dims;
    let (pt, pl) = (geom.padding[0] as isize, geom.padding[2] as isize);
    let mut l = vec![0.0f32; b * c_out * c_in];
    for n in 0..b {
        for j in 0..c_out {
            for i in 0..c_in {
                let mut best = f32::NEG_INFINITY;
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut s = 0.0f32;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy =
                                    (oy * geom.stride[0] + ky * geom.dilation[0]) as isize - pt;
                                let ix =
                                    (ox * geom.stride[1] + kx * geom.dilation[1]) as isize - pl;
                                let xv =
                                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w
                                    {
                                        x[((n * c_in + i) * h + iy as usize) * w + ix as usize]
                                    } else {
                                        0.0
                                    };
                                s += xv * kernel[((j * c_in + i) * kh + ky) * kw + kx];
                            }
                        }
                        best = keep_max(best, s);
                    }
                }
                l[(n * c_out + j) * c_in + i] = best;
            }
        }
    }
    Ok(l)
}

/// Folds an inference-mode batch norm that follows a convolution into its
/// kernel (SPEC §2): `K'[j, i] = K[j, i] · gamma_j / sqrt(var_j + eps)`,
/// computed in `f32` as PyTorch does. The folded bias does not enter the
/// influences and is not returned.
///
/// `kernel` is `[C_out, C_in, kh, kw]` (`k_dims`), `gamma` and `running_var`
/// have `C_out` values.
pub fn fold_batch_norm(
    kernel: &[f32],
    k_dims: [usize; 4],
    gamma: &[f32],
    running_var: &[f32],
    eps: f32,
) -> Result<Vec<f32>, InfluenceError> {
    check_len("kernel", kernel.len(), &k_dims)?;
    check_len("batch-norm gamma", gamma.len(), &k_dims[..1])?;
    check_len("batch-norm running_var", running_var.len(), &k_dims[..1])?;
    let per_out = k_dims[1] * k_dims[2] * k_dims[3];
    let mut out = Vec::with_capacity(kernel.len());
    for (j, slab) in kernel.chunks(per_out.max(1)).enumerate().take(k_dims[0]) {
        let scale = gamma[j] / (running_var[j] + eps).sqrt();
        out.extend(slab.iter().map(|&k| k * scale));
    }
    check_finite("folded kernel", &out)?;
    Ok(out)
}
