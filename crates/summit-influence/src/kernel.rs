//! The per-channel decomposition of a convolution: influences
//! `L[b, j, i] = max_p (X_{b,i} ⋆ K[j, i])(p)` (SPEC §2).
//!
//! Arithmetic contract, shared by [`influence_cpu`] and [`influence_reference`] so that both
//! give bit-identical results on every CPU: every output position's value is the chain of
//! fused multiply-adds `s ← fma(x_t, k_t, s)` from `s = 0.0` over the kernel taps in
//! row-major `(ky, kx)` order, with `x = 0.0` at zero padding (`f32::mul_add`: one rounding
//! per tap, the same on every instruction set); the maximum over positions keeps the first
//! value unless a later one is strictly greater. Against the exact value (computed in `f64`)
//! each influence is within `γ_T · max_p Σ_t |x_t k_t|` (`T` taps, `γ_T = T·u / (1 − T·u)`,
//! `u = 2⁻²⁴`; [`influence_error_bound`]), so a top-k selection whose margin exceeds twice
//! that bound selects what exact arithmetic would.

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use crate::error::InfluenceError;
use crate::geometry::HopGeometry;

/// SIMD vectors of output channels per micro-tile of the fused kernel.
const NV: usize = 2;
/// Output positions per micro-tile step.
const NP: usize = 6;
/// Parallel tasks per rayon thread the fused kernel aims at (a hop's images × blocks of input
/// channels).
const TASKS_PER_THREAD: usize = 4;

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

#[allow(clippy::eq_op)] // `v - v` is the finiteness test
fn check_finite(what: &'static str, data: &[f32]) -> Result<(), InfluenceError> {
    // `v - v` is 0 for a finite value and NaN otherwise; eight independent sums vectorise
    let mut acc = [0.0f32; 8];
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        for l in 0..8 {
            acc[l] += c[l] - c[l];
        }
    }
    let rest = chunks.remainder().iter().fold(0.0f32, |a, &v| a + (v - v));
    if acc.iter().all(|&a| a == 0.0) && rest == 0.0 {
        return Ok(());
    }
    match data.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(InfluenceError::NonFinite {
            what,
            index,
            value: data[index],
        }),
        None => Ok(()),
    }
}

/// Validates a hop's shapes and kernel and returns its output `[H_out, W_out]`; the input's
/// finiteness is checked by the callers, where they scan it ([`validate_with_input`]).
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
    check_finite("kernel", kernel)?;
    Ok(out)
}

/// [`validate`] and the input's finiteness.
fn validate_with_input(
    x: &[f32],
    x_dims: [usize; 4],
    kernel: &[f32],
    k_dims: [usize; 4],
    geom: &HopGeometry,
) -> Result<[usize; 2], InfluenceError> {
    let out = validate(x, x_dims, kernel, k_dims, geom)?;
    check_finite("hop input", x)?;
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
/// block of input channels) task (in parallel with rayon), each input channel is
/// copied once into a zero-padded map and swept two SIMD vectors of output channels × 6
/// positions at a time with fused multiply-adds (AVX-512 or AVX2 + FMA where the CPU has
/// it, chosen at run time), keeping running maxima. Results are bit-identical to
/// [`influence_reference`] and do not depend on the thread count or the instruction set.
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
        // checks the input's finiteness in its own scan
        closed_form_1x1(x, x_dims, kernel, k_dims[0], geom, out_hw)
    } else {
        check_finite("hop input", x)?;
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

/// Exact 1×1 influences for any stride and padding; errors on a non-finite input value (found
/// in the same scan as the extremes where the grid covers the whole map).
fn closed_form_1x1(
    x: &[f32],
    x_dims: [usize; 4],
    kernel: &[f32],
    c_out: usize,
    geom: &HopGeometry,
    out_hw: [usize; 2],
) -> Result<Vec<f32>, InfluenceError> {
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
    let whole = rows.len() == h && cols.len() == w && h * w > 0;
    if !whole {
        check_finite("hop input", x)?;
    }
    let mut l = vec![0.0f32; b * c_out * c_in];
    let finite = l
        .par_chunks_mut(c_out * c_in)
        .enumerate()
        .map(|(n, lb)| {
            // max / min of S per input channel
            let mut mx = vec![f32::NEG_INFINITY; c_in];
            let mut mn = vec![f32::INFINITY; c_in];
            let finite = if whole {
                // stride 1 over the whole maps: contiguous SIMD scans
                pulp::Arch::new().dispatch(MaxMin {
                    maps: &x[n * c_in * h * w..][..c_in * h * w],
                    hw: h * w,
                    mx: &mut mx,
                    mn: &mut mn,
                })
            } else {
                // the grid's points only (finiteness was checked up front)
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
                true
            };
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
            finite
        })
        .reduce(|| true, |a, b| a && b);
    if !finite {
        check_finite("hop input", x)?;
    }
    Ok(l)
}

/// Per channel of one image (`maps`: `mx.len()` contiguous maps of `hw` values), the maximum
/// into `mx` and the minimum into `mn`, in SIMD, and whether all values are finite (the
/// extremes are only meaningful then). Which of two equal values (`0.0` and
/// `-0.0`) a lane keeps may differ from a sequential scan; the closed form adds `0.0` to every
/// product, which maps both zeros to `+0.0`, so the influences do not depend on it.
struct MaxMin<'a> {
    maps: &'a [f32],
    hw: usize,
    mx: &'a mut [f32],
    mn: &'a mut [f32],
}

impl WithSimd for MaxMin<'_> {
    /// Whether every value was finite.
    type Output = bool;

    #[inline(always)]
    #[allow(clippy::eq_op)] // `v - v` is the finiteness test
    fn with_simd<S: Simd>(self, simd: S) -> bool {
        // `v - v` is 0 for a finite value and NaN otherwise
        let mut nan = simd.splat_f32s(0.0);
        let mut rest = 0.0f32;
        for ((map, mx), mn) in self
            .maps
            .chunks_exact(self.hw)
            .zip(self.mx.iter_mut())
            .zip(self.mn.iter_mut())
        {
            let (head, tail) = S::as_simd_f32s(map);
            let mut vmx = simd.splat_f32s(f32::NEG_INFINITY);
            let mut vmn = simd.splat_f32s(f32::INFINITY);
            for &v in head {
                vmx = simd.max_f32s(vmx, v);
                vmn = simd.min_f32s(vmn, v);
                nan = simd.add_f32s(nan, simd.sub_f32s(v, v));
            }
            let (mut a, mut b) = (simd.reduce_max_f32s(vmx), simd.reduce_min_f32s(vmn));
            for &v in tail {
                a = a.max(v);
                b = b.min(v);
                rest += v - v;
            }
            *mx = a;
            *mn = b;
        }
        rest == 0.0 && simd.reduce_sum_f32s(nan) == 0.0
    }
}

/// One hop's operands for the fused kernel.
struct Fused<'a> {
    x: &'a [f32],
    x_dims: [usize; 4],
    kernel: &'a [f32],
    k_dims: [usize; 4],
    geom: &'a HopGeometry,
    out_hw: [usize; 2],
}

/// The fused kernel for kernels larger than 1×1, on the widest SIMD instruction set the CPU
/// has (AVX-512, AVX2 + FMA, or scalar fused multiply-adds elsewhere; [`pulp`]'s run-time
/// dispatch).
fn fused(
    x: &[f32],
    x_dims: [usize; 4],
    kernel: &[f32],
    k_dims: [usize; 4],
    geom: &HopGeometry,
    out_hw: [usize; 2],
) -> Vec<f32> {
    pulp::Arch::new().dispatch(Fused {
        x,
        x_dims,
        kernel,
        k_dims,
        geom,
        out_hw,
    })
}

/// The layout a hop's fused kernel works in: every input channel copied into a zero-padded
/// `hp × wp` map, so that tap `t` of output position `p` reads `map[base[p] + off[t]]`.
struct Layout {
    hp: usize,
    wp: usize,
    /// Per output position, its window's top-left offset in the padded map.
    base: Vec<usize>,
    /// Per tap (row-major `(ky, kx)`), its offset from the window's top-left.
    off: Vec<usize>,
}

impl Layout {
    fn new(k_dims: [usize; 4], geom: &HopGeometry, out_hw: [usize; 2]) -> Self {
        let [_, _, kh, kw] = k_dims;
        let [ho, wo] = out_hw;
        let (sh, sw) = (geom.stride[0], geom.stride[1]);
        let (dh, dw) = (geom.dilation[0], geom.dilation[1]);
        // the last row / column any window reaches, in padded coordinates
        let hp = (ho.max(1) - 1) * sh + (kh.max(1) - 1) * dh + 1;
        let wp = (wo.max(1) - 1) * sw + (kw.max(1) - 1) * dw + 1;
        let mut base = Vec::with_capacity(ho * wo);
        for oy in 0..ho {
            for ox in 0..wo {
                base.push(oy * sh * wp + ox * sw);
            }
        }
        let mut off = Vec::with_capacity(kh * kw);
        for ky in 0..kh {
            for kx in 0..kw {
                off.push(ky * dh * wp + kx * dw);
            }
        }
        Self { hp, wp, base, off }
    }

    /// Copies input channel `map` (`h × w`) into `padded` (its border stays zero).
    fn fill(&self, map: &[f32], h: usize, w: usize, geom: &HopGeometry, padded: &mut [f32]) {
        let (pt, pl) = (geom.padding[0], geom.padding[2]);
        for y in 0..h {
            let py = y + pt;
            if py >= self.hp {
                break;
            }
            let cols = w.min(self.wp.saturating_sub(pl));
            padded[py * self.wp + pl..][..cols].copy_from_slice(&map[y * w..][..cols]);
        }
    }
}

/// `keep_max` lane by lane: `v` where it is strictly greater than `best`, else `best`.
#[inline(always)]
fn keep_max_simd<S: Simd>(simd: S, best: S::f32s, v: S::f32s) -> S::f32s {
    simd.select_f32s(simd.greater_than_f32s(v, best), v, best)
}

/// Running maxima over all output positions of `NV · lanes` output channels of one input
/// channel: `padded` is the channel's padded map, `kt` the tile's kernel (`T × NV·lanes`,
/// tap-major). `NP` positions at a time share each kernel-row load.
#[inline(always)]
fn tile_max<S: Simd>(simd: S, lay: &Layout, padded: &[f32], kt: &[f32]) -> [S::f32s; NV] {
    let lanes = S::F32_LANES;
    let jt = NV * lanes;
    let zero = simd.splat_f32s(0.0);
    let mut mx = [simd.splat_f32s(f32::NEG_INFINITY); NV];
    let mut groups = lay.base.chunks_exact(NP);
    for g in &mut groups {
        let mut acc = [[zero; NV]; NP];
        for (tap, &off) in lay.off.iter().enumerate() {
            let (kv, _) = S::as_simd_f32s(&kt[tap * jt..][..jt]);
            for q in 0..NP {
                let xv = simd.splat_f32s(padded[g[q] + off]);
                for v in 0..NV {
                    acc[q][v] = simd.mul_add_f32s(xv, kv[v], acc[q][v]);
                }
            }
        }
        for a in &acc {
            for v in 0..NV {
                mx[v] = keep_max_simd(simd, mx[v], a[v]);
            }
        }
    }
    for &b in groups.remainder() {
        let mut acc = [zero; NV];
        for (tap, &off) in lay.off.iter().enumerate() {
            let (kv, _) = S::as_simd_f32s(&kt[tap * jt..][..jt]);
            let xv = simd.splat_f32s(padded[b + off]);
            for v in 0..NV {
                acc[v] = simd.mul_add_f32s(xv, kv[v], acc[v]);
            }
        }
        for v in 0..NV {
            mx[v] = keep_max_simd(simd, mx[v], acc[v]);
        }
    }
    mx
}

/// One task of the fused kernel: input channels `i0..i1` of image `n`, all output channels;
/// returns `[i1 - i0][C_out]`.
struct Task<'a> {
    hop: &'a Fused<'a>,
    lay: &'a Layout,
    kt: &'a [f32],
    n: usize,
    i0: usize,
    i1: usize,
}

impl WithSimd for Task<'_> {
    type Output = Vec<f32>;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Vec<f32> {
        let Task {
            hop,
            lay,
            kt,
            n,
            i0,
            i1,
        } = self;
        let [_, c_in, h, w] = hop.x_dims;
        let [c_out, _, kh, kw] = hop.k_dims;
        let t = kh * kw;
        let jt = NV * S::F32_LANES;
        let n_tiles = c_out.div_ceil(jt);
        let mut padded = vec![0.0f32; lay.hp * lay.wp];
        let mut out = vec![0.0f32; (i1 - i0) * c_out];
        for i in i0..i1 {
            let map = &hop.x[(n * c_in + i) * h * w..][..h * w];
            lay.fill(map, h, w, hop.geom, &mut padded);
            let row = &mut out[(i - i0) * c_out..][..c_out];
            for tile in 0..n_tiles {
                let mx = tile_max(simd, lay, &padded, &kt[(i * n_tiles + tile) * t * jt..]);
                let dst = &mut row[tile * jt..];
                for (v, m) in mx.iter().enumerate() {
                    if let Some(d) = dst.get_mut(v * S::F32_LANES..) {
                        simd.partial_store_f32s(d, *m);
                    }
                }
            }
        }
        out
    }
}

impl WithSimd for Fused<'_> {
    type Output = Vec<f32>;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Vec<f32> {
        let [b, c_in, _, _] = self.x_dims;
        let [c_out, _, kh, kw] = self.k_dims;
        let t = kh * kw;
        let jt = NV * S::F32_LANES;
        let n_tiles = c_out.div_ceil(jt);
        let mut l = vec![0.0f32; b * c_out * c_in];
        if l.is_empty() {
            return l;
        }
        // kt[i][tile][tap][jj] = K[tile·jt + jj, i, tap] (0 beyond C_out)
        let mut kt = vec![0.0f32; c_in * n_tiles * t * jt];
        for j in 0..c_out {
            for i in 0..c_in {
                for tap in 0..t {
                    kt[((i * n_tiles + j / jt) * t + tap) * jt + j % jt] =
                        self.kernel[(j * c_in + i) * t + tap];
                }
            }
        }
        let lay = Layout::new(self.k_dims, self.geom, self.out_hw);
        // enough tasks for every thread whatever the batch size; the values do not depend
        // on the split
        let per_image = (TASKS_PER_THREAD * rayon::current_num_threads())
            .div_ceil(b)
            .clamp(1, c_in);
        let block = c_in.div_ceil(per_image);
        let tasks: Vec<(usize, usize, usize)> = (0..b)
            .flat_map(|n| {
                (0..c_in)
                    .step_by(block)
                    .map(move |i0| (n, i0, (i0 + block).min(c_in)))
            })
            .collect();
        let hop = &self;
        let results: Vec<Vec<f32>> = tasks
            .par_iter()
            .map(|&(n, i0, i1)| {
                simd.vectorize(Task {
                    hop,
                    lay: &lay,
                    kt: &kt,
                    n,
                    i0,
                    i1,
                })
            })
            .collect();
        for (&(n, i0, i1), out) in tasks.iter().zip(&results) {
            for i in i0..i1 {
                let row = &out[(i - i0) * c_out..][..c_out];
                for (j, &v) in row.iter().enumerate() {
                    l[(n * c_out + j) * c_in + i] = v;
                }
            }
        }
        l
    }
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
    let [ho, wo] = validate_with_input(x, x_dims, kernel, k_dims, geom)?;
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
                                s = xv.mul_add(kernel[((j * c_in + i) * kh + ky) * kw + kx], s);
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

/// Influences in exact arithmetic and the bound of the arithmetic contract (module docs):
/// the result of [`influence_exact`].
#[derive(Debug, Clone, PartialEq)]
pub struct ExactInfluences {
    /// `L[b, j, i]` computed in `f64` (exact for `f32` operands up to `f64` rounding, which
    /// is 2²⁹ times finer than `f32`'s), `[B, C_out, C_in]` row-major.
    pub value: Vec<f64>,
    /// Per influence, `γ_T · max_p Σ_t |x_t k_t|`: [`influence_cpu`]'s value is within this
    /// of `value` ([`influence_error_bound`]).
    pub bound: Vec<f64>,
}

/// `γ_T = T·u / (1 − T·u)` with `u = 2⁻²⁴`: the relative error bound of a chain of `taps`
/// `f32` fused multiply-adds (Higham, *Accuracy and Stability of Numerical Algorithms*,
/// §3.1); the error of one position's value is at most `γ_T · Σ_t |x_t k_t|`.
///
/// ```
/// let g = summit_influence::influence_error_bound(9);
/// assert!(g > 9.0 * 2f64.powi(-24) && g < 9.1 * 2f64.powi(-24));
/// ```
pub fn influence_error_bound(taps: usize) -> f64 {
    let tu = taps.max(1) as f64 * 2f64.powi(-24);
    tu / (1.0 - tu)
}

/// The influences of one hop in `f64` with the contract's error bound per value (same
/// arguments and layout as [`influence_cpu`]): brute force, single-threaded, for tests that
/// check selections against exact arithmetic.
pub fn influence_exact(
    x: &[f32],
    x_dims: [usize; 4],
    kernel: &[f32],
    k_dims: [usize; 4],
    geom: &HopGeometry,
) -> Result<ExactInfluences, InfluenceError> {
    let [ho, wo] = validate_with_input(x, x_dims, kernel, k_dims, geom)?;
    let [b, c_in, h, w] = x_dims;
    let [c_out, _, kh, kw] = k_dims;
    let gamma = influence_error_bound(kh * kw);
    let (pt, pl) = (geom.padding[0] as isize, geom.padding[2] as isize);
    let mut value = vec![0.0f64; b * c_out * c_in];
    let mut bound = vec![0.0f64; b * c_out * c_in];
    for n in 0..b {
        for j in 0..c_out {
            for i in 0..c_in {
                let mut best = f64::NEG_INFINITY;
                let mut mag = 0.0f64;
                for oy in 0..ho {
                    for ox in 0..wo {
                        let (mut s, mut a) = (0.0f64, 0.0f64);
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy =
                                    (oy * geom.stride[0] + ky * geom.dilation[0]) as isize - pt;
                                let ix =
                                    (ox * geom.stride[1] + kx * geom.dilation[1]) as isize - pl;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    let xv = x[((n * c_in + i) * h + iy as usize) * w + ix as usize]
                                        as f64;
                                    let kv = kernel[((j * c_in + i) * kh + ky) * kw + kx] as f64;
                                    s += xv * kv;
                                    a += (xv * kv).abs();
                                }
                            }
                        }
                        best = best.max(s);
                        mag = mag.max(a);
                    }
                }
                value[(n * c_out + j) * c_in + i] = best;
                bound[(n * c_out + j) * c_in + i] = gamma * mag;
            }
        }
    }
    Ok(ExactInfluences { value, bound })
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
