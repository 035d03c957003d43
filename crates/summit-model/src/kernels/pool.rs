//! Max pooling with PyTorch's semantics and a fast exact path on burn's CPU device.
//!
//! burn-flex 0.22 runs every 2-D max pool through its generic 3-D pooling with indices: per
//! output element it divides to find the window's valid range, tracks an index and writes it
//! out, which made max pooling the largest single cost of the embedded model's pass (about
//! 37 % of the main job in a `perf` profile). On the CPU (`flex`) device without autodiff,
//! [`max_pool2d`] computes the same values separably instead: a row pass (the maximum over
//! each window's columns) and a column pass (the maximum of those over its rows), planes in
//! parallel. A maximum is exact, so the values are bit-identical to burn's (ties, signed zeros
//! and NaN propagation included, see the tests); everywhere else — autodiff (feature
//! visualization needs burn's max-pool gradient), GPU devices, dilation ≠ 1, non-`f32` data —
//! it calls burn's `max_pool2d`.

use burn::backend::DispatchDevice;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Tensor, TensorData};
use pulp::{Simd, WithSimd};
use rayon::prelude::*;

/// Max pooling as burn's `max_pool2d` (PyTorch's `nn.MaxPool2d` with `(begin, end)` padding
/// pairs, padding counted as −∞, and its `ceil_mode` rule that drops a last window starting in
/// the trailing padding), through the fast exact path where it applies (module docs).
///
/// ```
/// use summit_model::burn::tensor::{Device, Tensor, ops::MaxPoolOptions};
/// let x = Tensor::<4>::from_floats([[[[1.0, 5.0, 2.0], [0.0, 3.0, 4.0]]]], &Device::flex());
/// let y = summit_model::pool::max_pool2d(x, MaxPoolOptions::new([2, 2]).with_stride([1, 1]));
/// assert_eq!(y.into_data().to_vec::<f32>().unwrap(), vec![5.0, 5.0]);
/// ```
pub fn max_pool2d(x: Tensor<4>, options: MaxPoolOptions<2>) -> Tensor<4> {
    let device = x.device();
    let fast = matches!(device.as_dispatch(), DispatchDevice::Flex(_))
        && options.dilation == [1, 1]
        && options.kernel_size.iter().all(|&k| k > 0)
        && options.stride.iter().all(|&s| s > 0);
    if !fast {
        return burn::tensor::module::max_pool2d(x, options);
    }
    let [n, c, h, w] = x.dims();
    let Some(geom) = Geometry::new(h, w, &options) else {
        return burn::tensor::module::max_pool2d(x, options);
    };
    if x.dtype() != burn::tensor::DType::F32 {
        return burn::tensor::module::max_pool2d(x, options);
    }
    // read in place, however many hold the tensor (a pooled activation is usually a tap)
    match crate::conv::with_values(&x, |values| geom.pool(values, n * c)) {
        Some(out) => Tensor::from_data(TensorData::new(out, [n, c, geom.oh, geom.ow]), &device),
        None => burn::tensor::module::max_pool2d(x, options),
    }
}

/// [`max_pool2d`]'s fast path on host values `x` (`[n, c, h, w]`): the pooled values and
/// their shape, or `None` where the fast path does not apply (dilation, empty output) or
/// `x` is not of that length.
#[allow(dead_code)] // TODO(stacking): decide after the bench
pub(crate) fn max_pool2d_host(
    x: &[f32],
    [n, c, h, w]: [usize; 4],
    options: &MaxPoolOptions<2>,
) -> Option<(Vec<f32>, [usize; 4])> {
    if options.dilation != [1, 1]
        || options.kernel_size.contains(&0)
        || options.stride.contains(&0)
        || x.len() != n * c * h * w
    {
        return None;
    }
    let geom = Geometry::new(h, w, options)?;
    let out = geom.pool(x, n * c);
    Some((out, [n, c, geom.oh, geom.ow]))
}

/// The output size along one dimension: burn's (and PyTorch's) rule for `input` with padding
/// `(begin, end)`, `kernel`, `stride` and `ceil`.
fn out_size(
    input: usize,
    (begin, end): (usize, usize),
    kernel: usize,
    stride: usize,
    ceil: bool,
) -> usize {
    let padded = input + begin + end;
    if padded < kernel {
        return usize::from(ceil);
    }
    let num = padded - kernel;
    if !ceil {
        return num / stride + 1;
    }
    let out = num.div_ceil(stride) + 1;
    if out > 1 && (out - 1) * stride >= input + begin {
        out - 1
    } else {
        out
    }
}

/// A pooling's shape: input and output sizes, kernel, stride, leading padding and the
/// padded row length.
struct Geometry {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    /// Leading row and column padding.
    ph: usize,
    pw: usize,
    /// Length of a row padded with −∞ so that every window lies inside it.
    row_len: usize,
    /// Rows of a plane padded with −∞ so that every window lies inside it.
    plane_rows: usize,
}

/// The larger of `m` and `v` with NaN winning (as burn and PyTorch propagate NaN); on equal
/// values the earlier one, `m`, stays.
#[inline(always)]
fn keep_max(m: f32, v: f32) -> f32 {
    if v > m || v.is_nan() { v } else { m }
}

impl Geometry {
    fn new(h: usize, w: usize, o: &MaxPoolOptions<2>) -> Option<Self> {
        let [kh, kw] = o.kernel_size;
        let [sh, sw] = o.stride;
        let oh = out_size(h, o.padding[0], kh, sh, o.ceil_mode);
        let ow = out_size(w, o.padding[1], kw, sw, o.ceil_mode);
        if oh == 0 || ow == 0 {
            return None;
        }
        let pw = o.padding[1].0;
        let ph = o.padding[0].0;
        Some(Self {
            h,
            w,
            oh,
            ow,
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            row_len: ((ow - 1) * sw + kw).max(pw + w),
            plane_rows: ((oh - 1) * sh + kh).max(ph + h),
        })
    }

    /// Pools `planes` contiguous `h × w` planes of `x`.
    fn pool(&self, x: &[f32], planes: usize) -> Vec<f32> {
        let (hw, ohw) = (self.h * self.w, self.oh * self.ow);
        let mut out = vec![f32::NEG_INFINITY; planes * ohw];
        if hw == 0 {
            return out;
        }
        // a few tasks per thread: each allocates its scratch once
        let per_task = planes.div_ceil(4 * rayon::current_num_threads()).max(1);
        out.par_chunks_mut(ohw * per_task)
            .zip(x.par_chunks(hw * per_task))
            .for_each_init(
                || Scratch::new(self),
                |scratch, (o, xi)| {
                    pulp::Arch::new().dispatch(Separable {
                        g: self,
                        x: xi,
                        out: o,
                        s: scratch,
                    });
                },
            );
        out
    }
}
/// Padded values held by one step of a task: a few planes, so that its three buffers stay
/// in the level-1 and level-2 caches.
const STEP_VALUES: usize = 4096;

/// A task's working buffers: `planes` padded planes stacked (`plane_rows` rows of `row_len`
/// each, −∞ around the values), the row pass's and the column pass's results.
struct Scratch {
    planes: usize,
    padded: Vec<f32>,
    rows: Vec<f32>,
    cols: Vec<f32>,
}

impl Scratch {
    fn new(g: &Geometry) -> Self {
        let plane = g.plane_rows * g.row_len;
        let planes = (STEP_VALUES / plane.max(1)).max(1);
        Self {
            planes,
            padded: vec![f32::NEG_INFINITY; planes * plane],
            rows: vec![f32::NEG_INFINITY; planes * plane],
            cols: vec![f32::NEG_INFINITY; planes * plane],
        }
    }
}

/// The pooling of a chunk of planes, in SIMD over a few padded planes stacked at once, so
/// that small planes (7 × 7, 14 × 14) cost no per-plane loops: the row pass takes at every
/// position `q` the maximum of `q .. q + kw` (one sweep over all the stacked planes), the
/// column pass at every position the maximum of its `kh` rows (one sweep), and the output
/// takes every `sh`-th row and `sw`-th column of each plane. Positions whose window runs off a
/// row or a plane are computed and never read. Windows are swept in row-major order and a
/// value replaces the running maximum only when strictly greater (or NaN), so ties keep the
/// first, as burn's pooling does; the −∞ padding never replaces a value.
struct Separable<'a> {
    g: &'a Geometry,
    x: &'a [f32],
    out: &'a mut [f32],
    s: &'a mut Scratch,
}

/// `keep_max` lane by lane.
#[inline(always)]
fn keep_max_simd<S: Simd>(simd: S, m: S::f32s, v: S::f32s) -> S::f32s {
    let take = simd.or_m32s(
        simd.greater_than_f32s(v, m),
        simd.not_m32s(simd.equal_f32s(v, v)),
    );
    simd.select_f32s(take, v, m)
}

/// `dst[i]` = the running [`keep_max`] of `src[i + t · step]` over `t < taps`, in order, for
/// every `i < dst.len()`. Each vector's maximum is kept in a register and stored once: a
/// select written back to `dst` tap by tap compiles to masked stores (`vmaskmovps`), which
/// are microcoded and very slow on AMD's cores.
#[inline(always)]
fn window_max<S: Simd>(simd: S, dst: &mut [f32], src: &[f32], taps: usize, step: usize) {
    // the usual window sizes with their tap loops unrolled
    match taps {
        0 => {}
        2 => window_max_n::<S, 2>(simd, dst, src, step),
        3 => window_max_n::<S, 3>(simd, dst, src, step),
        _ => window_max_any(simd, dst, src, taps, step),
    }
}

/// [`window_max`] for `T` taps.
#[inline(always)]
fn window_max_n<S: Simd, const T: usize>(simd: S, dst: &mut [f32], src: &[f32], step: usize) {
    window_max_any(simd, dst, src, T, step);
}

/// [`window_max`] for any number of taps (at least one).
#[inline(always)]
fn window_max_any<S: Simd>(simd: S, dst: &mut [f32], src: &[f32], taps: usize, step: usize) {
    let len = dst.len();
    let lanes = S::F32_LANES;
    let full = len / lanes * lanes;
    let (dh, _) = S::as_mut_simd_f32s(&mut dst[..full]);
    for (j, d) in dh.iter_mut().enumerate() {
        let i = j * lanes;
        let mut m = S::as_simd_f32s(&src[i..][..lanes]).0[0];
        for t in 1..taps {
            m = keep_max_simd(simd, m, S::as_simd_f32s(&src[i + t * step..][..lanes]).0[0]);
        }
        *d = m;
    }
    for (i, d) in dst.iter_mut().enumerate().skip(full) {
        let mut m = src[i];
        for t in 1..taps {
            m = keep_max(m, src[i + t * step]);
        }
        *d = m;
    }
}

impl WithSimd for Separable<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Separable { g, x, out, s } = self;
        let (hw, ohw, wp) = (g.h * g.w, g.oh * g.ow, g.row_len);
        let plane = g.plane_rows * wp;
        let step = s.planes;
        for (xs, os) in x.chunks(hw * step).zip(out.chunks_mut(ohw * step)) {
            let used = xs.len() / hw;
            let len = used * plane;
            for (xp, pp) in xs.chunks_exact(hw).zip(s.padded.chunks_exact_mut(plane)) {
                let data = &mut pp[g.ph * wp..];
                for (xr, pr) in xp.chunks_exact(g.w).zip(data.chunks_exact_mut(wp)) {
                    crate::conv::copy_short(&mut pr[g.pw..g.pw + g.w], xr);
                }
            }
            // every window start of the stacked rows, then of the stacked columns
            let nr = len - (g.kw - 1);
            window_max(simd, &mut s.rows[..nr], &s.padded[..len], g.kw, 1);
            let nc = nr - (g.kh - 1) * wp;
            window_max(simd, &mut s.cols[..nc], &s.rows[..nr], g.kh, wp);
            for (cp, op) in s.cols.chunks(plane).zip(os.chunks_exact_mut(ohw)) {
                for (oy, orow) in op.chunks_exact_mut(g.ow).enumerate() {
                    let src = &cp[oy * g.sh * wp..];
                    if g.sw == 1 {
                        crate::conv::copy_short(orow, &src[..g.ow]);
                    } else {
                        for (o, &v) in orow.iter_mut().zip(src.iter().step_by(g.sw)) {
                            *o = v;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    /// Deterministic values with ties, signed zeros, −∞ and (optionally) NaN.
    fn values(len: usize, seed: u64, nan: bool) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                match (s >> 59) as u32 {
                    0 => 0.0,
                    1 => -0.0,
                    2 => f32::NEG_INFINITY,
                    3 if nan => f32::NAN,
                    4..=9 => ((s >> 40) % 4) as f32, // many exact ties
                    _ => ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5,
                }
            })
            .collect()
    }

    fn bits(t: Tensor<4>) -> Vec<u32> {
        let v: Vec<f32> = t.into_data().try_into_vec().expect("f32");
        v.iter()
            .map(|x| if x.is_nan() { 0x7fc0_0000 } else { x.to_bits() })
            .collect()
    }

    /// The fast path equals burn's own max pool bit for bit, over kernels, strides, symmetric
    /// and asymmetric padding, ceil mode and odd sizes (those of GoogLeNet, the embedded model,
    /// Lucid's stage pool and ONNX models).
    #[test]
    fn equals_burn_max_pool_bit_for_bit() {
        let device = Device::flex();
        let mut cases = 0;
        for &(h, w) in &[
            (1, 1),
            (2, 3),
            (7, 7),
            (14, 14),
            (28, 28),
            (13, 9),
            (112, 112),
        ] {
            for &k in &[1usize, 2, 3, 5] {
                for &s in &[1usize, 2, 3] {
                    for &pads in &[(0usize, 0usize), (1, 1), (0, 1), (2, 2), (1, 0)] {
                        if pads.0.max(pads.1) * 2 > k {
                            continue; // PyTorch: padding at most half the kernel
                        }
                        for &ceil in &[false, true] {
                            let o = MaxPoolOptions::new([k, k])
                                .with_stride([s, s])
                                .with_padding_pairs([pads, pads])
                                .with_ceil_mode(ceil);
                            if out_size(h, pads, k, s, ceil) == 0 {
                                continue;
                            }
                            let x =
                                values(2 * 3 * h * w, (h * 131 + k * 7 + s) as u64, cases % 3 == 0);
                            let t =
                                Tensor::<4>::from_data(TensorData::new(x, [2, 3, h, w]), &device);
                            let ours = max_pool2d(t.clone(), o.clone());
                            let theirs = burn::tensor::module::max_pool2d(t, o);
                            assert_eq!(
                                ours.dims(),
                                theirs.dims(),
                                "{h}x{w} k{k} s{s} {pads:?} ceil {ceil}"
                            );
                            assert_eq!(
                                bits(ours),
                                bits(theirs),
                                "{h}x{w} k{k} s{s} {pads:?} ceil {ceil}"
                            );
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert!(cases > 300, "{cases} cases");
    }

    /// Autodiff tensors keep burn's max pool (and its gradient).
    #[test]
    fn autodiff_keeps_burns_gradient() {
        let device = Device::flex().autodiff();
        let x = Tensor::<4>::from_floats([[[[1.0, 5.0, 2.0], [0.0, 3.0, 4.0]]]], &device)
            .require_grad();
        let y = max_pool2d(x.clone(), MaxPoolOptions::new([2, 2]).with_stride([1, 1]));
        let g = y.sum().backward();
        let gx = x
            .grad(&g)
            .expect("grad")
            .into_data()
            .try_into_vec::<f32>()
            .expect("f32");
        assert_eq!(gx, vec![0.0, 2.0, 0.0, 0.0, 0.0, 0.0]);
    }
}
