//! # summit-featvis
//!
//! Feature visualization of channels, the way Lucid / Lucent make it (SPEC §4.1): an image
//! optimised to maximise a channel's mean activation, parameterised in the Fourier basis
//! (spectrum scaled by `1 / max(freq, 1/size)`), colour-decorrelated with Lucid's ImageNet
//! colour correlation (a single grey channel for one-channel models), squashed by a sigmoid,
//! then mapped to the model's own preprocessing; robustness transforms each step (pad,
//! jitter, random scale, random rotation, jitter); Adam; optionally 4 images per channel with
//! Lucid's diversity penalty. Many channels are optimised together in one batch; everything is
//! seeded (per channel and image, so the batch a channel lands in does not matter).
//!
//! The transformed image is fed at its own size wherever the model accepts other sizes
//! ([`Feed`], [`summit_model::Summarizable::forward_to`], which stops at the layer).
//!
//! Quality (SPEC §4.1, docs/feature-vis.md): beside Lucent on EfficientNet-Lite0 and GoogLeNet
//! (`scripts/featvis_lucent.py quality`), ours drives every one of 32 channels harder than
//! Lucent's image does; on the embedded model (`cargo bench -p summit-featvis --bench quality`,
//! 512 steps, the first 40 channels of mixed4a) the channel's mean activation on its
//! visualization is a median 1.89 times its largest over the 10k test images, and it ranks first
//! in its layer for 67.5 % of the channels.
//!
//! ```
//! use burn::tensor::Device;
//! use summit_featvis::{FeatureVisParams, InputMap, visualize};
//! use summit_model::{FashionInception, burn};
//!
//! let device = Device::flex();
//! let model = FashionInception::embedded(&device)?;
//! let params = FeatureVisParams { steps: 8, diversity: 1, ..FeatureVisParams::default() };
//! let map = InputMap::fashion_mnist();
//! let vis = visualize(&model, "mixed3a", &[0, 5], &map, &params, &device, |_, _| {})?;
//! assert_eq!(vis.len(), 2);
//! assert_eq!(vis[1].channel, 5);
//! assert_eq!(vis[0].images.len(), 1);
//! assert_eq!(vis[0].images[0].dimensions(), (28, 28));
//! # Ok::<(), summit_featvis::FeatVisError>(())
//! ```
#![warn(missing_docs)]

mod error;

use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions, PadMode};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use summit_model::{Summarizable, TapId, burn, to_host};

pub use error::{FeatVisError, Result};

/// Lucid's `color_correlation_svd_sqrt` (ImageNet), rows R, G, B.
pub const COLOR_CORRELATION_SVD_SQRT: [[f32; 3]; 3] =
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]];

/// How an image in `[0, 1]` becomes the model's input: `input = v · 255 · scale[c] + offset[c]`
/// (the `scale` and `offset` of summit-data's preprocessing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputMap {
    /// Per input channel multiplier of the 8-bit pixel value.
    pub scale: Vec<f32>,
    /// Per input channel offset.
    pub offset: Vec<f32>,
}

impl InputMap {
    /// The embedded Fashion-MNIST models' preprocessing (`(v − 0.2860) / 0.3530`).
    pub fn fashion_mnist() -> Self {
        let (m, s) = (summit_model::FASHION_MEAN, summit_model::FASHION_STD);
        Self {
            scale: vec![1.0 / (255.0 * s)],
            offset: vec![-m / s],
        }
    }

    /// torchvision's ImageNet preprocessing (mean/std).
    pub fn imagenet() -> Self {
        let mean = [0.485f32, 0.456, 0.406];
        let std = [0.229f32, 0.224, 0.225];
        Self {
            scale: std.iter().map(|s| 1.0 / (255.0 * s)).collect(),
            offset: mean.iter().zip(&std).map(|(m, s)| -m / s).collect(),
        }
    }
}

/// How the transformed image reaches the model (SPEC §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Feed {
    /// At its own size wherever the model accepts other sizes
    /// ([`Summarizable::accepts_any_size`]: a network whose classifier follows a global
    /// pooling, or one that stops at the visualised layer — what Lucid's `render_vis` does);
    /// resized to the model's input size elsewhere.
    #[default]
    OwnSize,
    /// Always resized (bilinear) to the model's input size, as Lucent's `render_vis` does for
    /// images under 224².
    ModelSize,
}

impl std::str::FromStr for Feed {
    type Err = String;

    /// `own-size` or `model-size`.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.trim() {
            "own-size" => Ok(Self::OwnSize),
            "model-size" => Ok(Self::ModelSize),
            other => Err(format!(
                "`{other}` is not a way to feed the image: expected own-size or model-size"
            )),
        }
    }
}

/// The parameters (Lucid's defaults, SPEC §4.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureVisParams {
    /// Side of the optimised image (128; the model's input side when smaller). It is
    /// upsampled to the model's input size.
    pub size: usize,
    /// Optimisation steps (512).
    pub steps: usize,
    /// Adam's learning rate (0.05).
    pub learning_rate: f64,
    /// Images per channel, optimised together with the diversity penalty (4); 1 = a plain
    /// visualization.
    pub diversity: usize,
    /// Weight of the diversity penalty (10; our objective is the sum over the images of the
    /// channel's mean). Lucent's tutorials use 1e2 against the batch mean of InceptionV1's
    /// channel, whose activations are about 10² times those of the embedded model or
    /// EfficientNet-Lite0's ReLU6 layers; the penalty is not scale-free. Looked at on the
    /// embedded model's mixed4a (128 steps): at 100 the diversity images collapse into flat
    /// grey or other channels' textures, at 1 they barely differ from the plain image, at 10
    /// they vary the channel's pattern. Raise it for models with large activations.
    pub diversity_weight: f32,
    /// Padding before the transforms, at 128² (12; scaled with smaller images).
    pub pad: usize,
    /// First jitter, at 128² (8).
    pub jitter: usize,
    /// Random scales (0.90, 0.92, …, 1.10).
    pub scales: Vec<f32>,
    /// Random rotations in degrees (−10…10, with 0 more likely, as Lucid's list).
    pub angles: Vec<f32>,
    /// Second jitter, at 128² (4).
    pub jitter_after: usize,
    /// Decorrelate colours (three-channel models).
    pub decorrelate: bool,
    /// The seed.
    pub seed: u64,
    /// Images optimised together in one batch (32).
    pub batch_size: usize,
    /// Lucid's redirected ReLU gradient (`render_vis(relu_gradient_override=True)`): an image
    /// on which a ReLU passes no gradient gets the gradient through its inactive units
    /// (on burn's CPU device; other devices use the plain ReLU gradient).
    pub redirect_relu: bool,
    /// How the transformed image reaches the model ([`Feed::OwnSize`]).
    #[serde(default)]
    pub feed: Feed,
}

impl Default for FeatureVisParams {
    fn default() -> Self {
        let mut angles: Vec<f32> = (-10..=10).map(|a| a as f32).collect();
        angles.extend([0.0; 5]);
        Self {
            size: 128,
            steps: 512,
            learning_rate: 0.05,
            diversity: 4,
            diversity_weight: 10.0,
            pad: 12,
            jitter: 8,
            scales: (0..=10).map(|i| 1.0 + (i as f32 - 5.0) / 50.0).collect(),
            angles,
            jitter_after: 4,
            decorrelate: true,
            seed: 0,
            batch_size: 32,
            redirect_relu: true,
            feed: Feed::OwnSize,
        }
    }
}

impl FeatureVisParams {
    /// Checks the parameters, naming the first that cannot work.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(FeatVisError::Params(m.to_string()));
        if self.steps == 0 {
            return bad("steps must be at least 1");
        }
        if self.size < 8 {
            return bad("size must be at least 8");
        }
        if self.diversity == 0 {
            return bad("diversity must be at least 1 (1 = a plain visualization)");
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1");
        }
        if self.scales.is_empty() || self.scales.iter().any(|s| !(*s > 0.0 && s.is_finite())) {
            return bad("scales must be a non-empty list of positive numbers");
        }
        if self.angles.is_empty() || self.angles.iter().any(|a| !a.is_finite()) {
            return bad("angles must be a non-empty list of finite numbers");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad("learning_rate must be positive");
        }
        Ok(())
    }
}

/// The visualizations of one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Visualization {
    /// The summary layer's name.
    pub layer: String,
    /// The channel.
    pub channel: usize,
    /// The images (one, or `diversity` of them).
    pub images: Vec<image::RgbImage>,
    /// The same images as values in `[0, 1]`, `[C, size, size]` each (C = the model's input
    /// channels), for measuring them on the model.
    pub pixels: Vec<Vec<f32>>,
    /// Side of the images.
    pub size: usize,
    /// The objective (the channel's mean activation, transforms applied) at the last step,
    /// per image.
    pub objective: Vec<f32>,
}

/// Seeded per (seed, layer, channel, image) so that batching does not change a result.
fn row_seed(seed: u64, layer: usize, channel: usize, image: usize) -> u64 {
    let mut z = seed ^ 0x5157_4d4d_4954_5346;
    for v in [layer as u64, channel as u64, image as u64] {
        z = (z ^ v).wrapping_mul(0x0100_0000_01b3).rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15;
    }
    z
}

/// Standard normal by Box–Muller.
fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// The constant matrices of the real Fourier basis of an `s × s` image from its half spectrum
/// (`s × (s/2 + 1)`): `x = Re(Σ_k Σ_l c_l X[k, l] e^{2πi(km + ln)/s}) / s`, with `c_l = 2`
/// except for the constant and Nyquist columns; and Lucid's frequency scale.
struct Basis {
    s: usize,
    l: usize,
    /// `[s, s]` cos / sin of 2π k m / s, rows m
    ch: Vec<f32>,
    sh: Vec<f32>,
    /// `[l, s]` c_l cos / sin of 2π l n / s
    cw: Vec<f32>,
    sw: Vec<f32>,
    /// `[s, l]` 1 / max(freq, 1/s)
    scale: Vec<f32>,
}

impl Basis {
    fn new(s: usize) -> Self {
        let l = s / 2 + 1;
        let tau = std::f64::consts::TAU;
        let mut ch = vec![0f32; s * s];
        let mut sh = vec![0f32; s * s];
        for m in 0..s {
            for k in 0..s {
                let a = tau * (k * m) as f64 / s as f64;
                ch[m * s + k] = a.cos() as f32;
                sh[m * s + k] = a.sin() as f32;
            }
        }
        let mut cw = vec![0f32; l * s];
        let mut sw = vec![0f32; l * s];
        for li in 0..l {
            let c = if li == 0 || (s.is_multiple_of(2) && li == s / 2) {
                1.0
            } else {
                2.0
            };
            for n in 0..s {
                let a = tau * (li * n) as f64 / s as f64;
                cw[li * s + n] = (c * a.cos()) as f32;
                sw[li * s + n] = (c * a.sin()) as f32;
            }
        }
        let mut scale = vec![0f32; s * l];
        for k in 0..s {
            let fy = if k <= s / 2 {
                k as f64
            } else {
                k as f64 - s as f64
            } / s as f64;
            for li in 0..l {
                let fx = li as f64 / s as f64;
                let f = (fy * fy + fx * fx).sqrt().max(1.0 / s as f64);
                scale[k * l + li] = (1.0 / f) as f32;
            }
        }
        Self {
            s,
            l,
            ch,
            sh,
            cw,
            sw,
            scale,
        }
    }
}

/// The images `[n, c, s, s]` in `[0, 1]` of spectra `re`, `im` (`[n·c, s, l]`).
fn render(
    basis: &Basis,
    re: Tensor<3>,
    im: Tensor<3>,
    n: usize,
    c: usize,
    decorrelate: bool,
    device: &Device,
) -> Tensor<4> {
    let (s, l) = (basis.s, basis.l);
    let rows = n * c;
    let t2 = |v: &[f32], a: usize, b: usize| {
        Tensor::<3>::from_data(TensorData::new(v.to_vec(), [1, a, b]), device).repeat_dim(0, rows)
    };
    let scale = Tensor::<3>::from_data(TensorData::new(basis.scale.clone(), [1, s, l]), device);
    let xr = re.mul(scale.clone());
    let xi = im.mul(scale);
    let (ch, sh) = (t2(&basis.ch, s, s), t2(&basis.sh, s, s));
    let zr = ch
        .clone()
        .matmul(xr.clone())
        .sub(sh.clone().matmul(xi.clone()));
    let zi = sh.matmul(xr).add(ch.matmul(xi));
    let (cw, sw) = (t2(&basis.cw, l, s), t2(&basis.sw, l, s));
    // the orthonormal inverse transform (1/s), then Lucid's magic 1/4
    let x = zr
        .matmul(cw)
        .sub(zi.matmul(sw))
        .mul_scalar(1.0 / (4.0 * s as f32));
    let mut x = x.reshape([n, c, s, s]);
    if c == 3 && decorrelate {
        let m = COLOR_CORRELATION_SVD_SQRT;
        let max_norm = (0..3)
            .map(|j| (0..3).map(|i| m[i][j] * m[i][j]).sum::<f32>().sqrt())
            .fold(0f32, f32::max);
        let flat: Vec<f32> = m.iter().flatten().map(|v| v / max_norm).collect();
        let mt = Tensor::<3>::from_data(TensorData::new(flat, [1, 3, 3]), device).repeat_dim(0, n);
        x = mt.matmul(x.reshape([n, 3, s * s])).reshape([n, 3, s, s]);
    }
    burn::tensor::activation::sigmoid(x)
}

/// One random draw of the transforms of a step, the same for the whole batch (as Lucid).
struct Draw {
    jitter: [usize; 2],
    scale: f32,
    angle: f32,
    jitter_after: [usize; 2],
}

fn scaled(px: usize, size: usize) -> usize {
    if size >= 128 {
        px
    } else {
        ((px * size) as f32 / 128.0).round().max(1.0) as usize
    }
}

/// Rotation by `deg` about the centre, bilinear, zero outside (as `tf.contrib.image.rotate`).
fn rotate(x: Tensor<4>, deg: f32, device: &Device) -> Tensor<4> {
    if deg == 0.0 {
        return x;
    }
    let [n, c, h, w] = x.dims();
    let (sin, cos) = (deg.to_radians().sin(), deg.to_radians().cos());
    let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
    let mut idx = vec![vec![0i64; h * w]; 4];
    let mut wts = vec![vec![0f32; h * w]; 4];
    for y in 0..h {
        for xx in 0..w {
            let (dy, dx) = (y as f32 - cy, xx as f32 - cx);
            // the source of output pixel (y, x): rotated back
            let sy = cy + dy * cos - dx * sin;
            let sx = cx + dy * sin + dx * cos;
            let (y0, x0) = (sy.floor(), sx.floor());
            let (fy, fx) = (sy - y0, sx - x0);
            let corners = [
                (y0, x0, (1.0 - fy) * (1.0 - fx)),
                (y0, x0 + 1.0, (1.0 - fy) * fx),
                (y0 + 1.0, x0, fy * (1.0 - fx)),
                (y0 + 1.0, x0 + 1.0, fy * fx),
            ];
            let o = y * w + xx;
            for (k, &(py, px, wt)) in corners.iter().enumerate() {
                if py >= 0.0 && px >= 0.0 && (py as usize) < h && (px as usize) < w {
                    idx[k][o] = (py as usize * w + px as usize) as i64;
                    wts[k][o] = wt;
                }
            }
        }
    }
    let flat = x.reshape([n * c, h * w]);
    let mut out: Option<Tensor<2>> = None;
    for k in 0..4 {
        let i = Tensor::<1, Int>::from_data(TensorData::new(idx[k].clone(), [h * w]), device);
        let wk = Tensor::<2>::from_data(TensorData::new(wts[k].clone(), [1, h * w]), device);
        let term = flat.clone().select(1, i).mul(wk);
        out = Some(match out {
            Some(o) => o.add(term),
            None => term,
        });
    }
    match out {
        Some(o) => o.reshape([n, c, h, w]),
        None => flat.reshape([n, c, h, w]),
    }
}

fn crop(x: Tensor<4>, off: [usize; 2], jitter: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    if jitter == 0 || h <= jitter || w <= jitter {
        return x;
    }
    x.slice([
        0..n,
        0..c,
        off[0]..off[0] + h - jitter,
        off[1]..off[1] + w - jitter,
    ])
}

fn bilinear(x: Tensor<4>, hw: [usize; 2]) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    if [h, w] == hw {
        return x;
    }
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Bilinear).with_output_size(hw),
    )
}

/// The layer index of a name or alias, with a clear error.
fn layer_index(model: &dyn Summarizable, layer: &str) -> Result<usize> {
    let desc = model.description();
    desc.layer_index(layer)
        .ok_or_else(|| FeatVisError::UnknownLayer {
            name: layer.to_string(),
            known: desc.layer_names(),
        })
}

/// Feature visualizations of `channels` of summary layer `layer` (name or alias) of `model`
/// (its weights on `device`; the images are optimised with autodiff there). `map` is the
/// model's preprocessing; `progress(done, total)` sees each finished optimisation step of
/// each batch (`total` = batches × steps).
pub fn visualize(
    model: &dyn Summarizable,
    layer: &str,
    channels: &[usize],
    map: &InputMap,
    params: &FeatureVisParams,
    device: &Device,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<Visualization>> {
    params.validate()?;
    let desc = model.description();
    let l = layer_index(model, layer)?;
    let info = &desc.layers[l];
    if channels.is_empty() {
        return Err(FeatVisError::Params(format!(
            "no channel of `{}` to visualize: the channel list is empty",
            info.name
        )));
    }
    if let Some(&c) = channels.iter().find(|&&c| c >= info.channels) {
        return Err(FeatVisError::UnknownChannel {
            layer: info.name.clone(),
            channel: c,
            channels: info.channels,
        });
    }
    let input = desc.input;
    let c_in = input.channels;
    if map.scale.len() != c_in || map.offset.len() != c_in {
        return Err(FeatVisError::Params(format!(
            "the input map has {} scales and {} offsets for a model of {c_in} input channels",
            map.scale.len(),
            map.offset.len()
        )));
    }
    let size = params.size.min(input.height.min(input.width));
    let basis = Basis::new(size);
    let d = params.diversity;
    let per_batch = (params.batch_size / d).max(1);
    let batches: Vec<&[usize]> = channels.chunks(per_batch).collect();
    let total = batches.len() * params.steps;
    let mut out = Vec::with_capacity(channels.len());
    let tap = info.tap;
    for (bi, chunk) in batches.iter().enumerate() {
        let vis = optimise(
            model,
            &basis,
            l,
            tap,
            chunk,
            map,
            params,
            device,
            size,
            |s| progress(bi * params.steps + s, total),
        )?;
        out.extend(vis);
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn optimise(
    model: &dyn Summarizable,
    basis: &Basis,
    layer: usize,
    tap: TapId,
    channels: &[usize],
    map: &InputMap,
    params: &FeatureVisParams,
    device: &Device,
    size: usize,
    mut progress: impl FnMut(usize),
) -> Result<Vec<Visualization>> {
    let desc = model.description();
    let input = desc.input;
    let c_in = input.channels;
    let d = params.diversity;
    let n = channels.len() * d;
    let (s, lf) = (basis.s, basis.l);
    let per = c_in * s * lf;
    // seeded initial spectra, N(0, 0.01²), per image
    let mut re = vec![0f32; n * per];
    let mut im = vec![0f32; n * per];
    for (k, &ch) in channels.iter().enumerate() {
        for j in 0..d {
            let row = k * d + j;
            let mut rng = ChaCha8Rng::seed_from_u64(row_seed(params.seed, layer, ch, j));
            for v in &mut re[row * per..(row + 1) * per] {
                *v = 0.01 * normal(&mut rng);
            }
            for v in &mut im[row * per..(row + 1) * per] {
                *v = 0.01 * normal(&mut rng);
            }
        }
    }
    let mut mask = vec![0f32; n * desc.layers[layer].channels];
    let cl = desc.layers[layer].channels;
    for (k, &ch) in channels.iter().enumerate() {
        for j in 0..d {
            mask[(k * d + j) * cl + ch] = 1.0;
        }
    }
    let ad = device.clone().autodiff();
    let mask_t = Tensor::<2>::from_data(TensorData::new(mask, [n, cl]), &ad);
    let mul: Vec<f32> = map.scale.iter().map(|v| v * 255.0).collect();
    let mul_t = Tensor::<4>::from_data(TensorData::new(mul, [1, c_in, 1, 1]), &ad);
    let off_t = Tensor::<4>::from_data(TensorData::new(map.offset.clone(), [1, c_in, 1, 1]), &ad);
    let mut adam_re = Adam::new(re.len());
    let mut adam_im = Adam::new(im.len());
    let mut rng = ChaCha8Rng::seed_from_u64(row_seed(params.seed, layer, usize::MAX, 0));
    let (pad, jit, jit2) = (
        scaled(params.pad, size),
        scaled(params.jitter, size),
        scaled(params.jitter_after, size),
    );
    let mut objective = vec![0f32; n];
    let own_size = params.feed == Feed::OwnSize && model.accepts_any_size();
    // the redirected step is implemented for burn's CPU backend; elsewhere plain ReLUs
    let _redirect = if params.redirect_relu && format!("{ad:?}").contains("Flex") {
        Some(summit_model::act::RedirectedRelu::enter(&ad)?)
    } else {
        None
    };
    for step in 0..params.steps {
        let draw = Draw {
            jitter: [
                rng.random_range(0..jit.max(1)),
                rng.random_range(0..jit.max(1)),
            ],
            scale: params.scales[rng.random_range(0..params.scales.len())],
            angle: params.angles[rng.random_range(0..params.angles.len())],
            jitter_after: [
                rng.random_range(0..jit2.max(1)),
                rng.random_range(0..jit2.max(1)),
            ],
        };
        let re_t = Tensor::<3>::from_data(TensorData::new(re.clone(), [n * c_in, s, lf]), &ad)
            .require_grad();
        let im_t = Tensor::<3>::from_data(TensorData::new(im.clone(), [n * c_in, s, lf]), &ad)
            .require_grad();
        let img = render(
            basis,
            re_t.clone(),
            im_t.clone(),
            n,
            c_in,
            params.decorrelate,
            &ad,
        );
        let x = img.pad([(pad, pad), (pad, pad)], PadMode::Constant(0.5));
        let x = crop(x, draw.jitter, jit);
        let [_, _, h, w] = x.dims();
        let x = bilinear(
            x,
            [
                ((h as f32 * draw.scale).round() as usize).max(1),
                ((w as f32 * draw.scale).round() as usize).max(1),
            ],
        );
        let x = rotate(x, draw.angle, &ad);
        let x = crop(x, draw.jitter_after, jit2);
        let x = if own_size {
            x
        } else {
            bilinear(x, [input.height, input.width])
        };
        let x = x.mul(mul_t.clone()).add(off_t.clone());
        let a = model.forward_to(x, tap)?;
        if !a.is_tracked() {
            return Err(FeatVisError::NoGradients(format!(
                "layer `{}` of `{}` does not carry gradients to the input",
                desc.layers[layer].name, desc.name
            )));
        }
        let [_, _, ah, aw] = a.dims();
        let means = a.clone().mean_dim(3).mean_dim(2).reshape([n, cl]);
        let per_row = means.mul(mask_t.clone()).sum_dim(1).reshape([n]);
        let mut loss = per_row.clone().sum().neg();
        if d > 1 {
            // Lucid's diversity: Σ_i Σ_{j≠i} <G_i, G_j> / d of L2-normalised Gram matrices
            let flat = a.reshape([n, cl, ah * aw]);
            let gram = flat
                .clone()
                .matmul(flat.swap_dims(1, 2))
                .reshape([n, cl * cl]);
            let norm = gram
                .clone()
                .powf_scalar(2.0)
                .sum_dim(1)
                .sqrt()
                .add_scalar(1e-10);
            let g = gram.div(norm);
            let groups = n / d;
            let g = g.reshape([groups, d, cl * cl]);
            let sims = g.clone().matmul(g.clone().swap_dims(1, 2)); // [groups, d, d]
            let total = sims.sum();
            let diag = g.powf_scalar(2.0).sum();
            let div = total.sub(diag).div_scalar(d as f32);
            loss = loss.add(div.mul_scalar(params.diversity_weight));
        }
        let grads = loss.backward();
        let gr = re_t.grad(&grads).ok_or_else(|| {
            FeatVisError::NoGradients(format!("`{}`: no gradient reached the image", desc.name))
        })?;
        let gi = im_t.grad(&grads).ok_or_else(|| {
            FeatVisError::NoGradients(format!("`{}`: no gradient reached the image", desc.name))
        })?;
        adam_re.step(&mut re, &to_host(gr, "gradient")?, params.learning_rate);
        adam_im.step(&mut im, &to_host(gi, "gradient")?, params.learning_rate);
        if step + 1 == params.steps {
            objective = to_host(per_row.inner(), "objective")?;
        }
        progress(step + 1);
    }
    // the final images, without transforms
    let re_t = Tensor::<3>::from_data(TensorData::new(re, [n * c_in, s, lf]), device);
    let im_t = Tensor::<3>::from_data(TensorData::new(im, [n * c_in, s, lf]), device);
    let img = to_host(
        render(basis, re_t, im_t, n, c_in, params.decorrelate, device),
        "visualization",
    )?;
    let px = c_in * s * s;
    let mut out = Vec::with_capacity(channels.len());
    for (k, &ch) in channels.iter().enumerate() {
        let mut images = Vec::with_capacity(d);
        let mut pixels = Vec::with_capacity(d);
        for j in 0..d {
            let row = k * d + j;
            let v = img[row * px..(row + 1) * px].to_vec();
            let mut rgb = image::RgbImage::new(s as u32, s as u32);
            for y in 0..s {
                for x in 0..s {
                    let mut p = [0u8; 3];
                    for (q, o) in p.iter_mut().enumerate() {
                        let cidx = if c_in == 1 { 0 } else { q };
                        *o = (v[(cidx * s + y) * s + x] * 255.0)
                            .round()
                            .clamp(0.0, 255.0) as u8;
                    }
                    rgb.put_pixel(x as u32, y as u32, image::Rgb(p));
                }
            }
            images.push(rgb);
            pixels.push(v);
        }
        out.push(Visualization {
            layer: desc.layers[layer].name.clone(),
            channel: ch,
            images,
            pixels,
            size: s,
            objective: objective[k * d..(k + 1) * d].to_vec(),
        });
    }
    Ok(out)
}

/// Adam (PyTorch's defaults: β = (0.9, 0.999), ε = 1e-8) on host values.
struct Adam {
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl Adam {
    fn new(n: usize) -> Self {
        Self {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    fn step(&mut self, p: &mut [f32], g: &[f32], lr: f64) {
        self.t += 1;
        let (b1, b2) = (0.9f64, 0.999f64);
        let c1 = 1.0 - b1.powi(self.t);
        let c2 = 1.0 - b2.powi(self.t);
        for i in 0..p.len().min(g.len()) {
            let gi = f64::from(g[i]);
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * gi;
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * gi * gi;
            let mh = self.m[i] / c1;
            let vh = self.v[i] / c2;
            p[i] -= (lr * mh / (vh.sqrt() + 1e-8)) as f32;
        }
    }
}

/// The model input (`[n, C, H, W]`, the model's size) of images in `[0, 1]` (`[C, s, s]`
/// each), upsampled bilinearly and mapped by `map`.
pub fn to_input(
    model: &dyn Summarizable,
    pixels: &[Vec<f32>],
    size: usize,
    map: &InputMap,
    device: &Device,
) -> Tensor<4> {
    let input = model.description().input;
    let c = input.channels;
    let data: Vec<f32> = pixels.iter().flatten().copied().collect();
    let x = Tensor::<4>::from_data(TensorData::new(data, [pixels.len(), c, size, size]), device);
    let x = bilinear(x, [input.height, input.width]);
    let mul: Vec<f32> = map.scale.iter().map(|v| v * 255.0).collect();
    x.mul(Tensor::<4>::from_data(
        TensorData::new(mul, [1, c, 1, 1]),
        device,
    ))
    .add(Tensor::<4>::from_data(
        TensorData::new(map.offset.clone(), [1, c, 1, 1]),
        device,
    ))
}

/// Every channel's mean activation over positions (the statistic the `channel` objective
/// maximises, SPEC §4.1) of summary layer `layer` for each image of `input` (`[n][C_l]`).
pub fn layer_means(
    model: &dyn Summarizable,
    layer: &str,
    input: Tensor<4>,
) -> Result<Vec<Vec<f32>>> {
    let l = layer_index(model, layer)?;
    let desc = model.description();
    let rec = model.record(input)?;
    let t = rec.tap(desc.layers[l].tap).clone();
    let [n, c, h, w] = t.dims();
    let m = to_host(
        t.reshape([n, c, h * w]).mean_dim(2).reshape([n, c]),
        "means",
    )?;
    Ok(m.chunks(c).map(<[f32]>::to_vec).collect())
}

/// The quality of a visualization (SPEC §4.1): its channel's activation on it (the mean over
/// positions, [`layer_means`]) divided by the channel's largest activation over a dataset, and
/// the channel's rank within its layer on it (each channel's activation divided by its dataset
/// maximum; 1 = first).
pub fn quality(activations: &[f32], dataset_max: &[f32], channel: usize) -> (f32, usize) {
    let rel: Vec<f32> = activations
        .iter()
        .zip(dataset_max)
        .map(|(m, d)| if *d > 0.0 { m / d } else { 0.0 })
        .collect();
    let mine = rel.get(channel).copied().unwrap_or(0.0);
    let rank = 1 + rel.iter().filter(|&&r| r > mine).count();
    (mine, rank)
}

/// A contact sheet of `vis`: one row per channel (its images left to right), each image
/// scaled (nearest neighbour) to `cell` pixels with a 2-pixel white gap.
///
/// ```
/// use summit_featvis::{Visualization, contact_sheet};
/// let v = Visualization {
///     layer: "l".into(), channel: 0, size: 4, objective: vec![0.0, 0.0],
///     images: vec![image::RgbImage::new(4, 4); 2], pixels: vec![vec![0.0; 16]; 2],
/// };
/// let sheet = contact_sheet(&[v.clone(), v], 8);
/// assert_eq!(sheet.dimensions(), (2 * 10, 2 * 10));
/// ```
pub fn contact_sheet(vis: &[Visualization], cell: u32) -> image::RgbImage {
    let cols = vis.iter().map(|v| v.images.len()).max().unwrap_or(0) as u32;
    let step = cell + 2;
    let mut sheet = image::RgbImage::from_pixel(
        cols * step,
        vis.len() as u32 * step,
        image::Rgb([255, 255, 255]),
    );
    for (r, v) in vis.iter().enumerate() {
        for (c, img) in v.images.iter().enumerate() {
            let scaled =
                image::imageops::resize(img, cell, cell, image::imageops::FilterType::Nearest);
            image::imageops::replace(
                &mut sheet,
                &scaled,
                i64::from(c as u32 * step),
                i64::from(r as u32 * step),
            );
        }
    }
    sheet
}

/// Mean pairwise cosine similarity of the (flattened) Gram matrices of summary layer
/// `layer`'s activations on each of `images` (values in `[0, 1]`, `[C, size, size]` each;
/// Lucid's diversity measure: lower = more diverse). `None` for fewer than 2 images.
pub fn gram_similarity(
    model: &dyn Summarizable,
    layer: &str,
    images: &[Vec<f32>],
    size: usize,
    map: &InputMap,
    device: &Device,
) -> Result<Option<f32>> {
    if images.len() < 2 {
        return Ok(None);
    }
    let l = layer_index(model, layer)?;
    let desc = model.description();
    let rec = model.record(to_input(model, images, size, map, device))?;
    let t = rec.tap(desc.layers[l].tap).clone();
    let [n, c, h, w] = t.dims();
    let v = to_host(t, "activations")?;
    let grams: Vec<Vec<f64>> = v
        .chunks(c * h * w)
        .map(|a| {
            let mut g = vec![0f64; c * c];
            for i in 0..c {
                for j in 0..c {
                    let (ai, aj) = (
                        &a[i * h * w..(i + 1) * h * w],
                        &a[j * h * w..(j + 1) * h * w],
                    );
                    g[i * c + j] = ai
                        .iter()
                        .zip(aj)
                        .map(|(x, y)| f64::from(*x) * f64::from(*y))
                        .sum();
                }
            }
            let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-30);
            g.iter().map(|x| x / norm).collect()
        })
        .collect();
    let mut sum = 0f64;
    let mut pairs = 0usize;
    for i in 0..n {
        for j in i + 1..n {
            sum += grams[i]
                .iter()
                .zip(&grams[j])
                .map(|(x, y)| x * y)
                .sum::<f64>();
            pairs += 1;
        }
    }
    Ok(Some((sum / pairs as f64) as f32))
}
