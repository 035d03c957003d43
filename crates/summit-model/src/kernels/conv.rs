//! A direct stride-1 convolution on the host for burn's CPU device, with the per-channel
//! step that follows it (bias, or batch norm and ReLU) fused into its output pass.
//!
//! burn-flex 0.22 convolves image by image through NHWC conversion, tiled im2col and a GEMM
//! whose packing dominates at the sizes of our models (the embedded network's maps are 28²,
//! 14² and 7²; in a `perf` profile of the main job burn's convolution was 36 % of all samples,
//! its GEMM micro-kernel only 16 %). [`conv2d`] instead works on NCHW data directly: each
//! input channel is copied once into a zero-padded plane, output positions are taken in the
//! padded map's row-major order (so every kernel tap of a run of positions is one contiguous,
//! shifted slice of the plane), and a register tile of 8 (AVX-512) or 4 output channels × 3
//! SIMD vectors of positions is accumulated with fused multiply-adds ([`pulp`]'s run-time
//! dispatch: AVX-512, AVX2 + FMA, or scalar `f32::mul_add`). 1×1 convolutions run over
//! packed panels of positions, with the positions of a few images side by side where the
//! maps are small. Callers take this route only where [`ConvShape::suits_host`] says it is
//! the faster one (short chains: the embedded models), and burn's convolution elsewhere.
//!
//! # Arithmetic contract
//!
//! Every output value is the chain `s ← fma(x, w, s)` from `s = 0.0` over the input channels
//! in order and, within each, the kernel taps in row-major order (zero padding reads `0.0`),
//! then the epilogue ([`Epilogue`]). A fused multiply-add rounds once on every instruction
//! set, and no value depends on its neighbours, so the result has the same bits on every CPU,
//! thread count, batch size and batch split. Against exact arithmetic each value is within
//! `γ_K · Σ |x·w|` (`K = C_in · kh · kw`, `γ_K = K·u / (1 − K·u)`, `u = 2⁻²⁴`), the bound of
//! any recursive summation; the tests check it against an `f64` reference and check burn's
//! own convolution agrees within the same bound.

use burn::backend::{DispatchDevice, Flex};
use burn::tensor::{DType, Tensor, TensorData};
use pulp::{Simd, WithSimd};
use rayon::prelude::*;

/// Output channels per block of the tiled weights, and per register tile on AVX-512 (32
/// vector registers: 8 × 3 accumulators); narrower instruction sets take half a block.
const NCO: usize = 8;
/// SIMD vectors of output positions per register tile.
const NPV: usize = 3;

/// A stride-1, dilation-1, ungrouped convolution's shape: input and output channels, kernel
/// size and zero padding `[top, bottom, left, right]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvShape {
    pub c_in: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub pad: [usize; 4],
}

/// What happens to each output value `v` of channel `c` after the sum.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Epilogue<'a> {
    /// `v + bias[c]`.
    Bias(&'a [f32]),
    /// `v + bias[c]`, then ReLU (`z` where `z > 0` or `z` is NaN, else `0`): bit for bit
    /// the bias then [`crate::act::relu`].
    BiasRelu(&'a [f32]),
    /// Batch norm with running statistics, then ReLU, each operation rounded as burn's
    /// `batch_norm` then `relu` round them: `z = (v − mean) / sd · γ + β` (`sd = sqrt(var +
    /// eps)`, no fused multiply-add), then `z` where `z > 0` or `z` is NaN, else `0`.
    BnRelu {
        mean: &'a [f32],
        sd: &'a [f32],
        gamma: &'a [f32],
        beta: &'a [f32],
    },
}

impl Epilogue<'_> {
    #[inline(always)]
    fn apply(&self, c: usize, src: &[f32], dst: &mut [f32]) {
        match *self {
            Epilogue::Bias(b) => {
                let b = b[c];
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d = v + b;
                }
            }
            Epilogue::BiasRelu(b) => {
                let b = b[c];
                for (d, &v) in dst.iter_mut().zip(src) {
                    let z = v + b;
                    *d = if z.is_nan() || z > 0.0 { z } else { 0.0 };
                }
            }
            Epilogue::BnRelu {
                mean,
                sd,
                gamma,
                beta,
            } => {
                let (m, s, g, b) = (mean[c], sd[c], gamma[c], beta[c]);
                for (d, &v) in dst.iter_mut().zip(src) {
                    let z = (v - m) / s * g + b;
                    *d = if z.is_nan() || z > 0.0 { z } else { 0.0 };
                }
            }
        }
    }

    fn channels(&self) -> usize {
        match self {
            Epilogue::Bias(b) | Epilogue::BiasRelu(b) => b.len(),
            Epilogue::BnRelu { mean, .. } => mean.len(),
        }
    }
}

/// The largest `c_in · kh · kw` (the length of each output value's chain) that
/// [`ConvShape::suits_host`] takes; 1×1 convolutions take at most [`HOST_MAX_POINTWISE`]
/// input channels.
const HOST_MAX_CHAIN: usize = 512;
/// See [`HOST_MAX_CHAIN`].
const HOST_MAX_POINTWISE: usize = 128;

impl ConvShape {
    /// The shape of a convolution with weights of dims `[c_out, c_in, kh, kw]` and zero padding
    /// `pad` (`[top, bottom, left, right]`).
    pub(crate) fn of_weight([c_out, c_in, kh, kw]: [usize; 4], pad: [usize; 4]) -> Self {
        Self {
            c_in,
            c_out,
            kh,
            kw,
            pad,
        }
    }

    /// Whether the host convolution is the faster route for this shape. Its register tiles
    /// read the input planes from the level-2 cache once per block of output channels, which
    /// beats burn's im2col + GEMM for the short chains of small models (the embedded
    /// Fashion-MNIST nets: 2–3× for 3×3 and 5×5, level for 1×1) and loses to burn's blocked
    /// GEMM for long ones (ImageNet models' 1×1 convolutions over hundreds of channels, 3×3
    /// over 128+); `benches/conv.rs` measures both sides.
    pub(crate) fn suits_host(&self) -> bool {
        let chain = self.c_in * self.kh * self.kw;
        chain <= HOST_MAX_CHAIN && (self.kh * self.kw > 1 || self.c_in <= HOST_MAX_POINTWISE)
    }

    /// Output height and width for an `h × w` input, `None` where the kernel does not fit.
    pub(crate) fn out_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let [pt, pb, pl, pr] = self.pad;
        let (hp, wp) = (h + pt + pb, w + pl + pr);
        if self.kh == 0 || self.kw == 0 || hp < self.kh || wp < self.kw {
            return None;
        }
        Some((hp - self.kh + 1, wp - self.kw + 1))
    }
}

/// Whether [`conv2d_tensor`] can take `x`: f32 on burn's CPU (`flex`) device, no autodiff.
pub(crate) fn on_host(x: &Tensor<4>) -> bool {
    matches!(x.device().as_dispatch(), DispatchDevice::Flex(_))
        && !x.is_autodiff()
        && x.dtype() == DType::F32
}

/// Runs `f` on the values of `t` where it is a contiguous f32 tensor on burn's CPU (`flex`)
/// device without autodiff, reading burn's own buffer in place: no copy, however many
/// tensors share it (`into_data` copies a shared buffer — a tapped activation is shared with
/// its tap — and that copy with its page faults was an eighth of the embedded model's
/// main job). `None` where `t` is anything else.
pub(crate) fn with_values<const D: usize, R>(
    t: &Tensor<D>,
    f: impl FnOnce(&[f32]) -> R,
) -> Option<R> {
    HostValues::of(t).map(|v| f(v.values()))
}

/// `dst.copy_from_slice(src)` for the short rows of small maps (7 to 56 values) without a
/// call to `memcpy`: copies of fixed length (8 values, or 4), which compile to vector moves,
/// the last one overlapping where the length is not a multiple. A call per row of a 14 × 14
/// map cost the embedded model's convolution and pooling a few percent of the main job.
/// The callers pass slices of one length; of longer ones, the common prefix is copied.
#[inline(always)]
pub(crate) fn copy_short(dst: &mut [f32], src: &[f32]) {
    debug_assert_eq!(dst.len(), src.len(), "copy_short: lengths differ");
    let len = src.len().min(dst.len());
    let (dst, src) = (&mut dst[..len], &src[..len]);
    if len >= 8 {
        let mut i = 0;
        while i + 8 <= len {
            dst[i..i + 8].copy_from_slice(&src[i..i + 8]);
            i += 8;
        }
        if i < len {
            dst[len - 8..].copy_from_slice(&src[len - 8..]);
        }
    } else if len >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[len - 4..].copy_from_slice(&src[len - 4..]);
    } else {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = v;
        }
    }
}

/// `t`'s buffer where [`with_values`] can read it, held so that its values can be read (with
/// [`HostValues::values`]) next to other tensors'.
pub(crate) struct HostValues(burn::backend::flex::FlexTensor);

impl HostValues {
    /// `t`'s buffer, shared (no copy), or `None` where [`with_values`] would not read it.
    pub(crate) fn of<const D: usize>(t: &Tensor<D>) -> Option<Self> {
        if !matches!(t.device().as_dispatch(), DispatchDevice::Flex(_))
            || t.is_autodiff()
            || t.dtype() != DType::F32
        {
            return None;
        }
        let flex = t.clone().try_into_primitive::<Flex>().ok()?;
        flex.as_slice::<f32>()?;
        Some(Self(flex))
    }

    /// The values, in `t`'s (contiguous) order.
    pub(crate) fn values(&self) -> &[f32] {
        self.0.as_slice::<f32>().unwrap_or_default()
    }
}

/// [`conv2d`] on tensors (see [`on_host`]); `x` comes back unchanged as the error where the
/// weights are not f32 or the shapes do not fit, so the caller can fall back to burn.
#[allow(clippy::result_large_err)] // the error is the caller's input, handed back
pub(crate) fn conv2d_tensor(
    x: Tensor<4>,
    weight: &Tensor<4>,
    pad: [usize; 4],
    epi: Epilogue<'_>,
) -> Result<Tensor<4>, Tensor<4>> {
    let shape = ConvShape::of_weight(weight.dims(), pad);
    if !shape.suits_host() || weight.dtype() != DType::F32 {
        return Err(x);
    }
    let device = x.device();
    let dims = x.dims();
    let out = with_values(weight, |w| {
        with_values(&x, |xs| conv2d(xs, dims, w, &shape, epi))
    })
    .flatten()
    .flatten();
    match out {
        Some((values, out)) => Ok(Tensor::from_data(TensorData::new(values, out), &device)),
        None => Err(x),
    }
}

/// `epi` applied to the values of `y` (`[n, c, h, w]`, channel by channel) in one pass: the
/// epilogue of a convolution computed elsewhere (a strided one, [`crate::im2col`]); `None`
/// where `y` is not an f32 host tensor or its channels are not the epilogue's.
pub(crate) fn epilogue_tensor(y: &Tensor<4>, epi: Epilogue<'_>) -> Option<Tensor<4>> {
    let [n, c, h, w] = y.dims();
    if c != epi.channels() {
        return None;
    }
    let plane = h * w;
    let out = with_values(y, |src| {
        let mut out = vec![0f32; src.len()];
        out.par_chunks_mut(plane.max(1))
            .zip(src.par_chunks(plane.max(1)))
            .enumerate()
            .for_each(|(i, (d, s))| epi.apply(i % c, s, d));
        out
    })?;
    Some(Tensor::from_data(
        TensorData::new(out, [n, c, h, w]),
        &y.device(),
    ))
}

/// The weights as register tiles: per block of [`NCO`] output channels, `[c_in][kh·kw][NCO]`
/// (channels past `c_out` are zero).
fn tile_weights(weight: &[f32], s: &ConvShape) -> Vec<f32> {
    let per = s.c_in * s.kh * s.kw;
    let blocks = s.c_out.div_ceil(NCO);
    let mut out = vec![0.0f32; blocks * per * NCO];
    // written in order, read as NCO sequential streams
    out.par_chunks_exact_mut(per * NCO)
        .enumerate()
        .for_each(|(blk, dst)| {
            let rows = (s.c_out - blk * NCO).min(NCO);
            let src = &weight[blk * NCO * per..][..rows * per];
            for (k, d) in dst.chunks_exact_mut(NCO).enumerate() {
                for (j, v) in d[..rows].iter_mut().enumerate() {
                    *v = src[j * per + k];
                }
            }
        });
    out
}

/// Convolves `x` (`[n, c_in, h, w]`, NCHW) with `weight` (`[c_out, c_in, kh, kw]`) at stride
/// 1, then applies `epi` per output channel; returns the `[n, c_out, oh, ow]` values, or `None`
/// where the shapes do not fit (the caller falls back to burn). Images (and, for small
/// batches, blocks of output channels) run in parallel on the current rayon pool; see the
/// module docs for the arithmetic.
pub(crate) fn conv2d(
    x: &[f32],
    dims: [usize; 4],
    weight: &[f32],
    shape: &ConvShape,
    epi: Epilogue<'_>,
) -> Option<(Vec<f32>, [usize; 4])> {
    conv2d_on(Isa::Best, x, dims, weight, shape, epi)
}

/// The instruction set a convolution runs on.
#[derive(Debug, Clone, Copy)]
enum Isa {
    /// The widest the CPU has ([`pulp::Arch`]'s run-time dispatch).
    Best,
    /// Scalar `f32::mul_add` (what CPUs without AVX2 + FMA get).
    #[cfg(test)]
    Scalar,
    /// AVX2 + FMA, where the CPU has it.
    #[cfg(all(test, target_arch = "x86_64"))]
    V3,
}

impl Isa {
    fn run(self, image: Image<'_>) {
        match self {
            Isa::Best => pulp::Arch::new().dispatch(image),
            #[cfg(test)]
            Isa::Scalar => image.with_simd(pulp::Scalar::new()),
            #[cfg(all(test, target_arch = "x86_64"))]
            Isa::V3 => match pulp::x86::V3::try_new() {
                Some(v3) => v3.vectorize(|| image.with_simd(v3)),
                None => image.with_simd(pulp::Scalar::new()),
            },
        }
    }
}

fn conv2d_on(
    isa: Isa,
    x: &[f32],
    [n, c_in, h, w]: [usize; 4],
    weight: &[f32],
    shape: &ConvShape,
    epi: Epilogue<'_>,
) -> Option<(Vec<f32>, [usize; 4])> {
    let (oh, ow) = shape.out_hw(h, w)?;
    let taps = shape.kh * shape.kw;
    if c_in != shape.c_in
        || shape.c_out == 0
        || x.len() != n * c_in * h * w
        || weight.len() != shape.c_out * c_in * taps
        || epi.channels() != shape.c_out
    {
        return None;
    }
    if taps == 1 && shape.pad == [0; 4] && n > 1 && c_in > 0 && h * w < GROUP_POSITIONS {
        return pointwise_groups(isa, x, [n, c_in, h, w], weight, shape, epi);
    }
    let wt = tile_weights(weight, shape);
    let ohw = oh * ow;
    let mut out = vec![0.0f32; n * shape.c_out * ohw];
    if out.is_empty() {
        return Some((out, [n, shape.c_out, oh, ow]));
    }
    // Split each image's output channels into enough chunks (whole register tiles) to give
    // every thread work when the batch is small.
    let blocks = shape.c_out.div_ceil(NCO);
    let want = (2 * rayon::current_num_threads()).div_ceil(n.max(1));
    let per_chunk = blocks.div_ceil(want.clamp(1, blocks)) * NCO;
    let image_in = c_in * h * w;
    let geom = Geom::new(shape, h, w, oh, ow);
    out.par_chunks_mut(shape.c_out * ohw)
        .enumerate()
        .flat_map_iter(|(img, o)| {
            o.chunks_mut(per_chunk * ohw)
                .enumerate()
                .map(move |(k, oc)| (img, k * per_chunk, oc))
        })
        .for_each_init(Vec::new, |scratch, (img, co0, oc)| {
            isa.run(Image {
                g: &geom,
                x: &x[img * image_in..][..image_in],
                wt: &wt,
                epi,
                co0,
                out: oc,
                scratch,
            });
        });
    Some((out, [n, shape.c_out, oh, ow]))
}

/// Maps of fewer positions than this go through a 1×1 convolution a few images at a time
/// ([`pointwise_groups`]).
const GROUP_POSITIONS: usize = 192;

/// A 1×1 convolution without padding over small maps: each task takes a group of images and
/// lays their positions side by side as one map (`[c_in][k · hw]`), so that register tiles
/// are full and the weights are read once per run of positions rather than once per image.
/// Every output value is still the one chain over the input channels, so the bits are those
/// of one image at a time.
fn pointwise_groups(
    isa: Isa,
    x: &[f32],
    [n, c_in, h, w]: [usize; 4],
    weight: &[f32],
    shape: &ConvShape,
    epi: Epilogue<'_>,
) -> Option<(Vec<f32>, [usize; 4])> {
    let (hw, c_out) = (h * w, shape.c_out);
    let wt = tile_weights(weight, shape);
    let k = GROUP_POSITIONS
        .div_ceil(hw)
        .min(n.div_ceil(rayon::current_num_threads()))
        .max(1);
    let mut out = vec![0.0f32; n * c_out * hw];
    out.par_chunks_mut(k * c_out * hw)
        .zip(x.par_chunks(k * c_in * hw))
        .for_each_init(
            <(Vec<f32>, Vec<f32>, Vec<f32>)>::default,
            |bufs, (o, xs)| {
                let (scratch, side, flat) = bufs;
                let imgs = xs.len() / (c_in * hw);
                let m = imgs * hw;
                // exact lengths; every value of both is written below
                side.resize(c_in * m, 0.0);
                flat.resize(c_out * m, 0.0);
                for (ci, dst) in side.chunks_exact_mut(m).enumerate() {
                    for (img, d) in dst.chunks_exact_mut(hw).enumerate() {
                        d.copy_from_slice(&xs[(img * c_in + ci) * hw..][..hw]);
                    }
                }
                let g = Geom::new(shape, 1, m, 1, m);
                isa.run(Image {
                    g: &g,
                    x: side,
                    wt: &wt,
                    epi,
                    co0: 0,
                    out: flat,
                    scratch,
                });
                for (co, src) in flat.chunks_exact(m).enumerate() {
                    for (img, s) in src.chunks_exact(hw).enumerate() {
                        o[(img * c_out + co) * hw..][..hw].copy_from_slice(s);
                    }
                }
            },
        );
    Some((out, [n, c_out, h, w]))
}

/// The padded geometry shared by all images.
struct Geom {
    s: ConvShape,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    /// Padded width.
    wp: usize,
    /// Per tap, its offset from an output position in the padded plane.
    offs: Vec<usize>,
}

impl Geom {
    fn new(s: &ConvShape, h: usize, w: usize, oh: usize, ow: usize) -> Self {
        let wp = w + s.pad[2] + s.pad[3];
        let mut offs = Vec::with_capacity(s.kh * s.kw);
        for ky in 0..s.kh {
            for kx in 0..s.kw {
                offs.push(ky * wp + kx);
            }
        }
        Self {
            s: *s,
            h,
            w,
            oh,
            ow,
            wp,
            offs,
        }
    }
}

/// One task: output channels `co0 ..` (as many as `out` holds) of one image.
struct Image<'a> {
    g: &'a Geom,
    x: &'a [f32],
    wt: &'a [f32],
    epi: Epilogue<'a>,
    co0: usize,
    out: &'a mut [f32],
    scratch: &'a mut Vec<f32>,
}

/// One register tile: `C` output channels (from `j0` within the block whose weights are `wt`,
/// `[c_in][taps][NCO]`) at the `V · lanes` padded positions from `p0`.
#[inline(always)]
fn tile<S: Simd, const C: usize, const V: usize>(
    simd: S,
    planes: &[f32],
    ps: usize,
    offs: &[usize],
    wt: &[f32],
    j0: usize,
    p0: usize,
) -> [[S::f32s; V]; C] {
    let lanes = S::F32_LANES;
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[zero; V]; C];
    let taps = offs.len();
    for (plane, wc) in planes.chunks_exact(ps).zip(wt.chunks_exact(taps * NCO)) {
        for (&off, wk) in offs.iter().zip(wc.chunks_exact(NCO)) {
            let src = &plane[p0 + off..][..V * lanes];
            let (xs, _) = S::as_simd_f32s(src);
            let wk = &wk[j0..j0 + C];
            for (a, &w) in acc.iter_mut().zip(wk) {
                let wv = simd.splat_f32s(w);
                for v in 0..V {
                    a[v] = simd.mul_add_f32s(xs[v], wv, a[v]);
                }
            }
        }
    }
    acc
}

/// The padded planes of one image and where its sums go.
struct Work<'a> {
    g: &'a Geom,
    planes: &'a [f32],
    /// Padded plane stride.
    ps: usize,
    /// Vectors of padded positions.
    nvec: usize,
    res: &'a mut [f32],
}

/// Sums of output channels `c .. c + C` (`c` a multiple of `C`, `C` dividing [`NCO`]) at
/// every padded position into `w.res` (`C` rows of `nvec · lanes`); runs of four vectors
/// take tiles of `H = C / 2` channels.
#[inline(always)]
fn sums<S: Simd, const C: usize, const H: usize>(simd: S, w: &mut Work<'_>, wt: &[f32], c: usize) {
    let lanes = S::F32_LANES;
    let s = &w.g.s;
    let blk_len = s.c_in * s.kh * s.kw * NCO;
    let wb = &wt[(c / NCO) * blk_len..][..blk_len];
    let j0 = c % NCO;
    let row = w.nvec * lanes;
    for (pv, v) in runs(w.nvec) {
        let p0 = pv * lanes;
        let (planes, ps, offs) = (w.planes, w.ps, &w.g.offs[..]);
        match v {
            1 => {
                let acc = tile::<S, C, 1>(simd, planes, ps, offs, wb, j0, p0);
                store::<S, C, 1>(w.res, row, p0, lanes, &acc);
            }
            2 => {
                let acc = tile::<S, C, 2>(simd, planes, ps, offs, wb, j0, p0);
                store::<S, C, 2>(w.res, row, p0, lanes, &acc);
            }
            3 => {
                let acc = tile::<S, C, 3>(simd, planes, ps, offs, wb, j0, p0);
                store::<S, C, 3>(w.res, row, p0, lanes, &acc);
            }
            _ => {
                // four vectors: tiles of half as many channels, twice
                for h in 0..2 {
                    let res = &mut w.res[h * H * row..];
                    let acc = tile::<S, H, 4>(simd, planes, ps, offs, wb, j0 + h * H, p0);
                    store::<S, H, 4>(res, row, p0, lanes, &acc);
                }
            }
        }
    }
}

/// How `nvec` vectors of positions are split into runs `(first vector, vectors)` of 1 to 4
/// vectors: runs of [`NPV`], with a remainder of one folded into a run of 4, so that few
/// register tiles run narrow.
fn runs(nvec: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(nvec / NPV + 1);
    let (mut pv, mut left) = (0, nvec);
    while left > 0 {
        let v = match left {
            4 => 4,
            l => l.min(NPV),
        };
        out.push((pv, v));
        pv += v;
        left -= v;
    }
    out
}

impl WithSimd for Image<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Image {
            g,
            x,
            wt,
            epi,
            co0,
            out,
            scratch,
        } = self;
        let s = &g.s;
        let lanes = S::F32_LANES;
        if s.kh * s.kw == 1 && s.pad == [0; 4] {
            return pointwise(simd, g, x, wt, epi, co0, out, scratch);
        }
        let [pt, _, pl, _] = s.pad;
        // positions in padded-width coordinates, whole vectors
        let np = g.oh * g.wp;
        let nvec = np.div_ceil(lanes);
        let reach = (s.kh - 1) * g.wp + s.kw - 1;
        let ps = nvec * lanes + reach;
        let ohw = g.oh * g.ow;
        let n_co = out.len() / ohw;
        let row = nvec * lanes;
        // A task's scratch serves images of one shape: the padding, zeroed once, is never
        // written, and the values and sums are overwritten for every image.
        let need = s.c_in * ps + NCO * row;
        if scratch.len() != need {
            scratch.clear();
            scratch.resize(need, 0.0);
        }
        let (planes, res) = scratch.split_at_mut(s.c_in * ps);
        for (plane, map) in planes.chunks_exact_mut(ps).zip(x.chunks_exact(g.h * g.w)) {
            for (y, r) in map.chunks_exact(g.w).enumerate() {
                copy_short(&mut plane[(y + pt) * g.wp + pl..][..g.w], r);
            }
        }
        let mut work = Work {
            g,
            planes,
            ps,
            nvec,
            res,
        };
        // 8 channels per tile with 32 vector registers (AVX-512), else 4
        let step = if lanes >= 16 { NCO } else { NCO / 2 };
        let mut co = 0;
        while co < n_co {
            let c = co0 + co;
            if step == NCO {
                sums::<S, NCO, { NCO / 2 }>(simd, &mut work, wt, c);
            } else {
                sums::<S, { NCO / 2 }, { NCO / 4 }>(simd, &mut work, wt, c);
            }
            for j in 0..step.min(n_co - co) {
                let src = &work.res[j * row..];
                let dst = &mut out[(co + j) * ohw..][..ohw];
                for (oy, drow) in dst.chunks_exact_mut(g.ow).enumerate() {
                    epi.apply(c + j, &src[oy * g.wp..][..g.ow], drow);
                }
            }
            co += step;
        }
    }
}

/// One register tile of a 1×1 convolution: `C` output channels (from `j0` within the block
/// whose weights are `wt`, `[c_in][NCO]`) over a packed panel (`[c_in][V · lanes]`).
#[inline(always)]
fn tile_panel<S: Simd, const C: usize, const V: usize>(
    simd: S,
    panel: &[f32],
    wt: &[f32],
    j0: usize,
) -> [[S::f32s; V]; C] {
    let lanes = S::F32_LANES;
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[zero; V]; C];
    for (col, wk) in panel.chunks_exact(V * lanes).zip(wt.chunks_exact(NCO)) {
        let (xs, _) = S::as_simd_f32s(col);
        for (a, &w) in acc.iter_mut().zip(&wk[j0..j0 + C]) {
            let wv = simd.splat_f32s(w);
            for v in 0..V {
                a[v] = simd.mul_add_f32s(xs[v], wv, a[v]);
            }
        }
    }
    acc
}

/// Every block of `C` output channels at one run of `V` vectors of positions from `p0`: the
/// run is packed into a contiguous panel (`[c_in][V · lanes]`, zero past the map) so that
/// the sum over input channels streams through memory instead of jumping between planes.
#[inline(always)]
fn pointwise_run<S: Simd, const C: usize, const V: usize>(
    simd: S,
    (g, x, wt, co0, n_co, p0): (&Geom, &[f32], &[f32], usize, usize, usize),
    panel: &mut [f32],
    res: &mut [f32],
) {
    let lanes = S::F32_LANES;
    let (hw, tw) = (g.h * g.w, V * lanes);
    let row = hw.div_ceil(lanes) * lanes;
    let panel = &mut panel[..g.s.c_in * tw];
    let take = tw.min(hw - p0);
    for (col, map) in panel.chunks_exact_mut(tw).zip(x.chunks_exact(hw)) {
        copy_short(&mut col[..take], &map[p0..p0 + take]);
        col[take..].fill(0.0);
    }
    let blk_len = g.s.c_in * NCO;
    let mut co = 0;
    while co < n_co {
        let c = co0 + co;
        let wb = &wt[(c / NCO) * blk_len..][..blk_len];
        let acc = tile_panel::<S, C, V>(simd, panel, wb, c % NCO);
        store::<S, C, V>(&mut res[co * row..], row, p0, lanes, &acc);
        co += C;
    }
}

/// A 1×1 convolution without padding (positions are output indices): position runs outer,
/// output-channel blocks inner ([`pointwise_run`]), sums into the scratch, then the epilogue.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn pointwise<S: Simd>(
    simd: S,
    g: &Geom,
    x: &[f32],
    wt: &[f32],
    epi: Epilogue<'_>,
    co0: usize,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let lanes = S::F32_LANES;
    let hw = g.h * g.w;
    let n_co = out.len() / hw;
    let nvec = hw.div_ceil(lanes);
    let row = nvec * lanes;
    let step = if lanes >= 16 { NCO } else { NCO / 2 };
    let rows = n_co.div_ceil(step) * step;
    scratch.clear();
    scratch.resize(g.s.c_in * 4 * lanes + rows * row, 0.0);
    let (panel, res) = scratch.split_at_mut(g.s.c_in * 4 * lanes);
    for (pv, v) in runs(nvec) {
        let p0 = pv * lanes;
        let a = (g, x, wt, co0, n_co, p0);
        match (step == NCO, v) {
            (true, 1) => pointwise_run::<S, NCO, 1>(simd, a, panel, res),
            (true, 2) => pointwise_run::<S, NCO, 2>(simd, a, panel, res),
            (true, 3) => pointwise_run::<S, NCO, 3>(simd, a, panel, res),
            (true, _) => pointwise_run::<S, { NCO / 2 }, 4>(simd, a, panel, res),
            (false, 1) => pointwise_run::<S, { NCO / 2 }, 1>(simd, a, panel, res),
            (false, 2) => pointwise_run::<S, { NCO / 2 }, 2>(simd, a, panel, res),
            (false, 3) => pointwise_run::<S, { NCO / 2 }, 3>(simd, a, panel, res),
            (false, _) => pointwise_run::<S, { NCO / 4 }, 4>(simd, a, panel, res),
        }
    }
    for (j, dst) in out.chunks_exact_mut(hw).enumerate() {
        epi.apply(co0 + j, &res[j * row..][..hw], dst);
    }
}

/// Writes a tile's accumulators into `res` (`C` rows of `row` values) at position `p0`.
#[inline(always)]
fn store<S: Simd, const C: usize, const V: usize>(
    res: &mut [f32],
    row: usize,
    p0: usize,
    lanes: usize,
    acc: &[[S::f32s; V]; C],
) {
    for (j, a) in acc.iter().enumerate() {
        let dst = &mut res[j * row + p0..][..V * lanes];
        let (ds, _) = S::as_mut_simd_f32s(dst);
        ds.copy_from_slice(a);
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use burn::tensor::module::conv2d as burn_conv2d;
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::{Device, Tensor, TensorData};

    /// Deterministic values in −1..1 (the convolution tests' inputs and weights).
    pub(crate) fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// `f64` reference: the value and `Σ |x·w|` per output element (before the epilogue).
    fn reference(
        x: &[f32],
        [n, c_in, h, w]: [usize; 4],
        wgt: &[f32],
        s: &ConvShape,
    ) -> (Vec<f64>, Vec<f64>) {
        let (oh, ow) = s.out_hw(h, w).unwrap();
        let [pt, _, pl, _] = s.pad;
        let mut val = Vec::new();
        let mut mag = Vec::new();
        for b in 0..n {
            for co in 0..s.c_out {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let (mut v, mut m) = (0.0f64, 0.0f64);
                        for ci in 0..c_in {
                            for ky in 0..s.kh {
                                for kx in 0..s.kw {
                                    let (iy, ix) = (oy + ky, ox + kx);
                                    if iy < pt || ix < pl || iy - pt >= h || ix - pl >= w {
                                        continue;
                                    }
                                    let xv = x[((b * c_in + ci) * h + iy - pt) * w + ix - pl];
                                    let wv = wgt[((co * c_in + ci) * s.kh + ky) * s.kw + kx];
                                    v += f64::from(xv) * f64::from(wv);
                                    m += (f64::from(xv) * f64::from(wv)).abs();
                                }
                            }
                        }
                        val.push(v);
                        mag.push(m);
                    }
                }
            }
        }
        (val, mag)
    }

    fn bound(k: usize, mag: f64) -> f64 {
        let u = f64::from(f32::EPSILON) / 2.0;
        let g = k as f64 * u / (1.0 - k as f64 * u);
        // plus the final rounding to f32 of an exactly computed value
        g * mag + 1e-30
    }

    /// `(n, c_in, c_out, h, k, pad)`.
    type Case = (usize, usize, usize, usize, usize, [usize; 4]);

    const CASES: &[Case] = &[
        // (n, c_in, c_out, h, k, pad)
        (3, 1, 16, 28, 3, [1, 1, 1, 1]),
        (2, 16, 48, 14, 3, [1, 1, 1, 1]),
        (2, 48, 24, 14, 1, [0, 0, 0, 0]),
        (1, 8, 16, 14, 5, [2, 2, 2, 2]),
        (2, 112, 12, 7, 1, [0, 0, 0, 0]),
        (2, 12, 24, 7, 5, [2, 2, 2, 2]),
        (1, 5, 7, 9, 3, [0, 0, 0, 0]),
        (2, 3, 6, 11, 3, [0, 1, 2, 0]),
        (1, 2, 3, 1, 1, [0, 0, 0, 0]),
        (4, 4, 5, 2, 3, [1, 1, 1, 1]),
        // long chains (K = 9,900 and 17,500)
        (2, 1100, 12, 9, 3, [1, 1, 1, 1]),
        (1, 700, 9, 12, 5, [2, 2, 2, 2]),
        // 1×1 over small maps, images in groups (of 3 and 2 on two threads)
        (5, 20, 9, 5, 1, [0, 0, 0, 0]),
        (7, 33, 17, 4, 1, [0, 0, 0, 0]),
    ];

    /// Within the recursive-summation bound of an `f64` reference, and burn's convolution
    /// within the same bound of the reference, over the embedded model's shapes, odd sizes,
    /// partial register tiles and asymmetric padding.
    #[test]
    fn agrees_with_f64_reference_and_burn_within_the_bound() {
        let device = Device::flex();
        for (i, &(n, c_in, c_out, h, k, pad)) in CASES.iter().enumerate() {
            let w = h + i % 2; // non-square where i is odd
            let s = ConvShape {
                c_in,
                c_out,
                kh: k,
                kw: k,
                pad,
            };
            let x = values(n * c_in * h * w, i as u64);
            let wgt = values(c_out * c_in * k * k, 100 + i as u64);
            let bias = vec![0.0f32; c_out];
            let (ours, dims) =
                conv2d(&x, [n, c_in, h, w], &wgt, &s, Epilogue::Bias(&bias)).unwrap();
            let (val, mag) = reference(&x, [n, c_in, h, w], &wgt, &s);
            let kk = c_in * k * k;
            let xt = Tensor::<4>::from_data(TensorData::new(x.clone(), [n, c_in, h, w]), &device);
            let wtt =
                Tensor::<4>::from_data(TensorData::new(wgt.clone(), [c_out, c_in, k, k]), &device);
            // burn pads symmetrically: compare burn only there
            let theirs = (pad[0] == pad[1] && pad[2] == pad[3]).then(|| {
                let t = burn_conv2d(
                    xt,
                    wtt,
                    None,
                    ConvOptions::new([1, 1], [pad[0], pad[2]], [1, 1], 1),
                );
                assert_eq!(t.dims(), dims, "case {i}");
                t.into_data().try_to_vec::<f32>().unwrap()
            });
            assert_eq!(ours.len(), val.len(), "case {i}");
            for j in 0..ours.len() {
                let b = bound(kk, mag[j]);
                let e = (f64::from(ours[j]) - val[j]).abs();
                assert!(
                    e <= b,
                    "case {i} elem {j}: {} vs {} (bound {b})",
                    ours[j],
                    val[j]
                );
                if let Some(t) = &theirs {
                    let e = (f64::from(t[j]) - val[j]).abs();
                    assert!(e <= b, "burn, case {i} elem {j}: {} vs {}", t[j], val[j]);
                }
            }
        }
    }

    /// The contract exactly: each value is the FMA chain over input channels then taps, so
    /// a scalar `f32::mul_add` reimplementation gives the same bits, as do the scalar and
    /// AVX2 paths (4-channel tiles) and the widest one (8-channel tiles on AVX-512); and the
    /// bits do not depend on the batch (each image alone gives its slice of the batch's
    /// output).
    #[test]
    fn bits_are_the_fma_chain_and_do_not_depend_on_the_batch() {
        for (i, &(n, c_in, c_out, h, k, pad)) in CASES.iter().enumerate() {
            let w = h;
            let s = ConvShape {
                c_in,
                c_out,
                kh: k,
                kw: k,
                pad,
            };
            let x = values(n * c_in * h * w, 7 + i as u64);
            let wgt = values(c_out * c_in * k * k, 200 + i as u64);
            let bias = values(c_out, 300 + i as u64);
            let (ours, [_, _, oh, ow]) =
                conv2d(&x, [n, c_in, h, w], &wgt, &s, Epilogue::Bias(&bias)).unwrap();
            let [pt, _, pl, _] = pad;
            let mut idx = 0;
            for b in 0..n {
                for co in 0..c_out {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut acc = 0.0f32;
                            for ci in 0..c_in {
                                for ky in 0..k {
                                    for kx in 0..k {
                                        let (iy, ix) = (oy + ky, ox + kx);
                                        let xv =
                                            if iy < pt || ix < pl || iy - pt >= h || ix - pl >= w {
                                                0.0
                                            } else {
                                                x[((b * c_in + ci) * h + iy - pt) * w + ix - pl]
                                            };
                                        acc = xv.mul_add(
                                            wgt[((co * c_in + ci) * k + ky) * k + kx],
                                            acc,
                                        );
                                    }
                                }
                            }
                            let want = acc + bias[co];
                            assert_eq!(ours[idx].to_bits(), want.to_bits(), "case {i} at {idx}");
                            idx += 1;
                        }
                    }
                }
            }
            let mut isas = vec![Isa::Scalar];
            #[cfg(target_arch = "x86_64")]
            isas.push(Isa::V3);
            for isa in isas {
                let (other, _) =
                    conv2d_on(isa, &x, [n, c_in, h, w], &wgt, &s, Epilogue::Bias(&bias)).unwrap();
                let same = other
                    .iter()
                    .zip(&ours)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "case {i}: {isa:?} differs from the widest instruction set"
                );
            }
            let per = c_in * h * w;
            let per_out = c_out * oh * ow;
            for b in 0..n {
                let (one, _) = conv2d(
                    &x[b * per..][..per],
                    [1, c_in, h, w],
                    &wgt,
                    &s,
                    Epilogue::Bias(&bias),
                )
                .unwrap();
                assert_eq!(
                    one,
                    ours[b * per_out..][..per_out].to_vec(),
                    "case {i} image {b}"
                );
            }
        }
    }

    /// Shapes that do not fit are refused, not guessed.
    #[test]
    fn refuses_what_does_not_fit() {
        let s = ConvShape {
            c_in: 2,
            c_out: 3,
            kh: 3,
            kw: 3,
            pad: [0; 4],
        };
        let b = [0.0f32; 3];
        let w = vec![0.0f32; 3 * 2 * 9];
        assert!(conv2d(&[0.0; 8], [1, 2, 2, 2], &w, &s, Epilogue::Bias(&b)).is_none());
        assert!(conv2d(&[0.0; 18], [1, 2, 3, 3], &w[1..], &s, Epilogue::Bias(&b)).is_none());
        assert!(conv2d(&[0.0; 27], [1, 3, 3, 3], &w, &s, Epilogue::Bias(&b)).is_none());
        assert!(conv2d(&[0.0; 18], [1, 2, 3, 3], &w, &s, Epilogue::Bias(&b[..2])).is_none());
    }
}
