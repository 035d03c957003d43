//! Computing attributions with burn's autodiff.

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use summit_model::act::GuidedRelu;
use summit_model::{Summarizable, TapId, burn, to_host};

use crate::error::{AttributionError, Result};
use crate::method::{AttributionParams, Method};
use crate::quadrature::gauss_legendre;

/// Rows `start..start + k` of `data` (`dims` = `[n, c, h, w]`) as a tensor on `device`.
fn rows_tensor(
    data: &[f32],
    dims: [usize; 4],
    start: usize,
    k: usize,
    device: &Device,
) -> Tensor<4> {
    let per = dims[1] * dims[2] * dims[3];
    Tensor::from_data(
        TensorData::new(
            data[start * per..(start + k) * per].to_vec(),
            [k, dims[1], dims[2], dims[3]],
        ),
        device,
    )
}

/// The attribution of a batch of images.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution {
    /// The method that made it.
    pub method: Method,
    /// `[n, c, h, w]`: the input's shape, or for Grad-CAM `[n, 1, h, w]` at the layer's
    /// resolution.
    pub dims: [usize; 4],
    /// Row-major values.
    pub values: Vec<f32>,
    /// The target class of each image.
    pub targets: Vec<usize>,
}

impl Attribution {
    /// The values of image `i` (`c · h · w` of them).
    pub fn image(&self, i: usize) -> &[f32] {
        let per = self.dims[1] * self.dims[2] * self.dims[3];
        &self.values[i * per..(i + 1) * per]
    }
}

/// Computes attributions for one model. The model may live on a device without autodiff: its
/// weights then act as constants while the input is differentiated on the same device with
/// autodiff.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use summit_attribution::{AttributionParams, Attributor, Method};
/// use summit_model::{FashionInception, burn};
///
/// let device = Device::flex();
/// let model = FashionInception::embedded(&device)?;
/// let attributor = Attributor::new(&model, AttributionParams::default(), &device)?;
/// let x = Tensor::<4>::zeros([2, 1, 28, 28], &device);
/// let cam = attributor.attribute(Method::GradCam, &x, &[0, 3])?;
/// assert_eq!(cam.dims, [2, 1, 7, 7]);
/// let sal = attributor.attribute(Method::Saliency, &x, &[0, 3])?;
/// assert_eq!(sal.dims, [2, 1, 28, 28]);
/// assert!(sal.values.iter().all(|v| *v >= 0.0));
/// # Ok::<(), summit_attribution::AttributionError>(())
/// ```
pub struct Attributor<'m> {
    model: &'m dyn Summarizable,
    params: AttributionParams,
    device: Device,
    layer: usize,
}

impl std::fmt::Debug for Attributor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attributor")
            .field("model", &self.model.description().name)
            .field("params", &self.params)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<'m> Attributor<'m> {
    /// An attributor for `model` on `device` (the device its weights are on). Fails on
    /// parameters that cannot work and on a Grad-CAM layer the model does not have.
    pub fn new(
        model: &'m dyn Summarizable,
        params: AttributionParams,
        device: &Device,
    ) -> Result<Self> {
        params.validate()?;
        let desc = model.description();
        if desc.layers.is_empty() {
            return Err(AttributionError::Params(format!(
                "model `{}` has no summary layers (Grad-CAM needs one)",
                desc.name
            )));
        }
        let layer = match &params.layer {
            None => desc.layers.len() - 1,
            Some(name) => desc
                .layer_index(name)
                .ok_or_else(|| AttributionError::UnknownLayer {
                    name: name.clone(),
                    known: desc
                        .layers
                        .iter()
                        .map(|l| l.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?,
        };
        Ok(Self {
            model,
            params,
            device: device.clone(),
            layer,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &AttributionParams {
        &self.params
    }

    /// The name of Grad-CAM's summary layer.
    pub fn layer_name(&self) -> &str {
        &self.model.description().layers[self.layer].name
    }

    /// Attributes `targets[i]`'s score on image `i` of `images` (`[n, c, h, w]`, preprocessed
    /// as the model expects) by `method`.
    pub fn attribute(
        &self,
        method: Method,
        images: &Tensor<4>,
        targets: &[usize],
    ) -> Result<Attribution> {
        let dims = images.dims();
        let data = to_host(images.clone(), "attribution input")?;
        self.attribute_host(method, &data, dims, targets)
    }

    /// [`attribute`](Self::attribute) on host values (`dims` = `[n, c, h, w]`, row-major).
    pub fn attribute_host(
        &self,
        method: Method,
        data: &[f32],
        dims: [usize; 4],
        targets: &[usize],
    ) -> Result<Attribution> {
        self.check(data, dims, targets)?;
        let [n, c, h, w] = dims;
        let per = c * h * w;
        let mut values = Vec::with_capacity(data.len());
        let mut out_dims = dims;
        match method {
            Method::Saliency => {
                let g = self.gradients(data, dims, targets, false)?;
                values.extend(g.iter().map(|v| v.abs()));
            }
            Method::InputXGradient => {
                let g = self.gradients(data, dims, targets, false)?;
                values.extend(g.iter().zip(data).map(|(g, x)| g * x));
            }
            Method::GuidedBackprop => {
                values = self.gradients(data, dims, targets, true)?;
            }
            Method::SmoothGrad => {
                for i in 0..n {
                    let img = &data[i * per..(i + 1) * per];
                    let noise = self.noise(img);
                    values.extend(self.smooth_one(img, [1, c, h, w], targets[i], &noise)?);
                }
            }
            Method::IntegratedGradients => {
                for i in 0..n {
                    let img = &data[i * per..(i + 1) * per];
                    values.extend(self.integrated_one(img, [1, c, h, w], targets[i])?);
                }
            }
            Method::GradCam => {
                let (v, d) = self.grad_cam(data, dims, targets)?;
                values = v;
                out_dims = d;
            }
            Method::Occlusion => {
                for i in 0..n {
                    let img = &data[i * per..(i + 1) * per];
                    values.extend(self.occlusion_one(img, [1, c, h, w], targets[i])?);
                }
            }
        }
        Ok(Attribution {
            method,
            dims: out_dims,
            values,
            targets: targets.to_vec(),
        })
    }

    /// SmoothGrad with the noise given: `noise` holds `n · samples` noise images, image-major
    /// (sample `s` of image `i` is row `i · samples + s`, as Captum's `repeat_interleave`).
    pub fn smooth_grad_with_noise(
        &self,
        data: &[f32],
        dims: [usize; 4],
        targets: &[usize],
        noise: &[f32],
    ) -> Result<Attribution> {
        self.check(data, dims, targets)?;
        let [n, c, h, w] = dims;
        let per = c * h * w;
        if n == 0 || noise.is_empty() || !noise.len().is_multiple_of(n * per) {
            return Err(AttributionError::Input(format!(
                "{} noise values for {n} images of {per} values: expected a multiple of {}",
                noise.len(),
                n * per
            )));
        }
        let samples = noise.len() / (n * per);
        let mut values = Vec::with_capacity(data.len());
        for i in 0..n {
            let img = &data[i * per..(i + 1) * per];
            let nz = &noise[i * samples * per..(i + 1) * samples * per];
            values.extend(self.smooth_one(img, [1, c, h, w], targets[i], nz)?);
        }
        Ok(Attribution {
            method: Method::SmoothGrad,
            dims,
            values,
            targets: targets.to_vec(),
        })
    }

    /// The target scores (logits) of the images, without gradients.
    pub fn scores(&self, data: &[f32], dims: [usize; 4], targets: &[usize]) -> Result<Vec<f32>> {
        self.check(data, dims, targets)?;
        let [n, c, h, w] = dims;
        let classes = self.model.description().num_classes;
        let mut out = Vec::with_capacity(n);
        for start in (0..n).step_by(self.params.batch_size) {
            let k = self.params.batch_size.min(n - start);
            let x = rows_tensor(data, [n, c, h, w], start, k, &self.device);
            let logits = to_host(self.model.forward(x)?, "logits")?;
            for (j, &t) in targets[start..start + k].iter().enumerate() {
                out.push(logits[j * classes + t]);
            }
        }
        Ok(out)
    }

    fn check(&self, data: &[f32], dims: [usize; 4], targets: &[usize]) -> Result<()> {
        let [n, c, h, w] = dims;
        let input = self.model.description().input;
        if data.len() != n * c * h * w {
            return Err(AttributionError::Input(format!(
                "{} values for shape {dims:?}",
                data.len()
            )));
        }
        if c != input.channels {
            return Err(AttributionError::Input(format!(
                "images of shape {dims:?}: model `{}` expects {} channels",
                self.model.description().name,
                input.channels
            )));
        }
        if targets.len() != n {
            return Err(AttributionError::Input(format!(
                "{} targets for {n} images",
                targets.len()
            )));
        }
        let classes = self.model.description().num_classes;
        if let Some((image, &class)) = targets.iter().enumerate().find(|(_, t)| **t >= classes) {
            return Err(AttributionError::TargetOutOfRange {
                image,
                class,
                classes,
            });
        }
        Ok(())
    }

    /// `[k, classes]` one-hot rows of the targets.
    fn one_hot(&self, targets: &[usize]) -> Tensor<2> {
        let classes = self.model.description().num_classes;
        let mut m = vec![0f32; targets.len() * classes];
        for (i, &t) in targets.iter().enumerate() {
            m[i * classes + t] = 1.0;
        }
        Tensor::from_data(
            TensorData::new(m, [targets.len(), classes]),
            &self.device.clone().autodiff(),
        )
    }

    /// `∂ y_target / ∂ x` of every row (`dims[0]` rows), in chunks of the batch size.
    fn gradients(
        &self,
        data: &[f32],
        dims: [usize; 4],
        targets: &[usize],
        guided: bool,
    ) -> Result<Vec<f32>> {
        let [n, c, h, w] = dims;
        let ad = self.device.clone().autodiff();
        let mut out = Vec::with_capacity(data.len());
        for start in (0..n).step_by(self.params.batch_size) {
            let k = self.params.batch_size.min(n - start);
            let x = rows_tensor(data, [n, c, h, w], start, k, &ad).require_grad();
            let _guided = if guided {
                Some(
                    GuidedRelu::enter(&ad)
                        .map_err(|e| AttributionError::NoGradients(e.to_string()))?,
                )
            } else {
                None
            };
            let logits = self.model.forward(x.clone())?;
            if !logits.is_tracked() {
                return Err(self.no_gradients());
            }
            let y = logits.mul(self.one_hot(&targets[start..start + k])).sum();
            let grads = y.backward();
            let g = x.grad(&grads).ok_or_else(|| self.no_gradients())?;
            out.extend(to_host(g, "input gradient")?);
        }
        Ok(out)
    }

    fn no_gradients(&self) -> AttributionError {
        AttributionError::NoGradients(format!(
            "the forward pass of `{}` does not carry gradients to its input",
            self.model.description().name
        ))
    }

    /// SmoothGrad's noise for one image: `samples` images of N(0, σ²), σ = noise × range,
    /// seeded by the parameters' seed and the image's values (so the same image gets the same
    /// noise whatever batch it is in).
    fn noise(&self, img: &[f32]) -> Vec<f32> {
        let (lo, hi) = img
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let sigma = f64::from(self.params.smoothgrad_noise) * f64::from((hi - lo).max(0.0));
        let mut key = 0xcbf2_9ce4_8422_2325u64 ^ self.params.seed;
        for v in img {
            key = (key ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01b3);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(key);
        let count = self.params.smoothgrad_samples * img.len();
        let mut out = Vec::with_capacity(count + 1);
        while out.len() < count {
            // Box–Muller: two standard normals from two uniforms in (0, 1]
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random::<f64>();
            let r = (-2.0 * u1.ln()).sqrt();
            let t = std::f64::consts::TAU * u2;
            out.push((sigma * r * t.cos()) as f32);
            out.push((sigma * r * t.sin()) as f32);
        }
        out.truncate(count);
        out
    }

    fn smooth_one(
        &self,
        img: &[f32],
        dims: [usize; 4],
        target: usize,
        noise: &[f32],
    ) -> Result<Vec<f32>> {
        let per = img.len();
        let samples = noise.len() / per;
        let mut rows = Vec::with_capacity(noise.len());
        for s in 0..samples {
            rows.extend(
                img.iter()
                    .zip(&noise[s * per..(s + 1) * per])
                    .map(|(x, e)| x + e),
            );
        }
        let g = self.gradients(
            &rows,
            [samples, dims[1], dims[2], dims[3]],
            &vec![target; samples],
            false,
        )?;
        let mut acc = vec![0f64; per];
        for s in 0..samples {
            for (a, v) in acc.iter_mut().zip(&g[s * per..(s + 1) * per]) {
                *a += f64::from(v.abs());
            }
        }
        Ok(acc.iter().map(|a| (a / samples as f64) as f32).collect())
    }

    fn integrated_one(&self, img: &[f32], dims: [usize; 4], target: usize) -> Result<Vec<f32>> {
        let per = img.len();
        let steps = self.params.ig_steps;
        let (alphas, weights) = gauss_legendre(steps);
        let b = self.params.baseline;
        let mut rows = Vec::with_capacity(steps * per);
        for &a in &alphas {
            let a = a as f32;
            rows.extend(img.iter().map(|&x| b + a * (x - b)));
        }
        let g = self.gradients(
            &rows,
            [steps, dims[1], dims[2], dims[3]],
            &vec![target; steps],
            false,
        )?;
        let mut acc = vec![0f64; per];
        for (s, wt) in weights.iter().enumerate() {
            for (a, v) in acc.iter_mut().zip(&g[s * per..(s + 1) * per]) {
                *a += wt * f64::from(*v);
            }
        }
        Ok(acc
            .iter()
            .zip(img)
            .map(|(a, &x)| (a * f64::from(x - b)) as f32)
            .collect())
    }

    fn grad_cam(
        &self,
        data: &[f32],
        dims: [usize; 4],
        targets: &[usize],
    ) -> Result<(Vec<f32>, [usize; 4])> {
        let [n, c, h, w] = dims;
        let ad = self.device.clone().autodiff();
        let tap: TapId = self.model.description().layers[self.layer].tap;
        let mut values = Vec::new();
        let mut out_dims = [n, 1, 0, 0];
        for start in (0..n).step_by(self.params.batch_size) {
            let k = self.params.batch_size.min(n - start);
            let x = rows_tensor(data, [n, c, h, w], start, k, &ad);
            let mut act: Option<Tensor<4>> = None;
            let mut detached = false;
            let mut sink = |id: TapId, t: Tensor<4>| {
                if id == tap && !t.is_autodiff() {
                    detached = true;
                    t
                } else if id == tap {
                    let a = t.detach().require_grad();
                    act = Some(a.clone());
                    a
                } else {
                    t
                }
            };
            let logits = self.model.forward_taps(x, &mut sink)?;
            if detached {
                return Err(self.no_gradients());
            }
            let a = act.ok_or_else(|| {
                AttributionError::NoGradients(format!(
                    "the forward pass did not produce layer `{}`",
                    self.layer_name()
                ))
            })?;
            if !logits.is_tracked() {
                return Err(self.no_gradients());
            }
            let y = logits.mul(self.one_hot(&targets[start..start + k])).sum();
            let grads = y.backward();
            let g = a.grad(&grads).ok_or_else(|| self.no_gradients())?;
            let a = a.inner();
            let [_, _, lh, lw] = a.dims();
            let weights = g.mean_dim(3).mean_dim(2); // [k, C, 1, 1]
            let mut cam = a.mul(weights).sum_dim(1); // [k, 1, h, w]
            if self.params.grad_cam_relu {
                cam = burn::tensor::activation::relu(cam);
            }
            out_dims = [n, 1, lh, lw];
            values.extend(to_host(cam, "grad-cam")?);
        }
        Ok((values, out_dims))
    }

    /// The occlusion windows of one axis of length `len`: `(start, end)` pairs, as Captum
    /// (`⌈(len − window) / stride⌉ + 1` positions, the last one clipped at the border).
    pub fn occlusion_windows(len: usize, window: usize, stride: usize) -> Vec<(usize, usize)> {
        let window = window.clamp(1, len.max(1));
        let stride = stride.max(1);
        let count = (len - window).div_ceil(stride) + 1;
        (0..count)
            .map(|k| (k * stride, (k * stride + window).min(len)))
            .collect()
    }

    /// Occlusion's window and stride in pixels for an `h × w` image.
    pub fn occlusion_geometry(&self, h: usize, w: usize) -> (usize, usize) {
        let side = h.min(w) as f32;
        let window = ((self.params.occlusion_window * side).round() as usize).clamp(1, h.min(w));
        let stride = ((self.params.occlusion_stride * window as f32).round() as usize).max(1);
        (window, stride)
    }

    fn occlusion_one(&self, img: &[f32], dims: [usize; 4], target: usize) -> Result<Vec<f32>> {
        let [_, c, h, w] = dims;
        let per = img.len();
        let (window, stride) = self.occlusion_geometry(h, w);
        let ys = Self::occlusion_windows(h, window, stride);
        let xs = Self::occlusion_windows(w, window, stride);
        let base = self.scores(img, [1, c, h, w], &[target])?[0];
        let mut sum = vec![0f64; h * w];
        let mut count = vec![0u32; h * w];
        let wins: Vec<((usize, usize), (usize, usize))> = ys
            .iter()
            .flat_map(|&y| xs.iter().map(move |&x| (y, x)))
            .collect();
        for chunk in wins.chunks(self.params.batch_size) {
            let mut rows = Vec::with_capacity(chunk.len() * per);
            for &((y0, y1), (x0, x1)) in chunk {
                let start = rows.len();
                rows.extend_from_slice(img);
                for ch in 0..c {
                    for y in y0..y1 {
                        let r = start + ch * h * w + y * w;
                        rows[r + x0..r + x1].fill(self.params.baseline);
                    }
                }
            }
            let s = self.scores(&rows, [chunk.len(), c, h, w], &vec![target; chunk.len()])?;
            for (&((y0, y1), (x0, x1)), v) in chunk.iter().zip(s) {
                let d = f64::from(base - v);
                for y in y0..y1 {
                    for x in x0..x1 {
                        sum[y * w + x] += d;
                        count[y * w + x] += 1;
                    }
                }
            }
        }
        let plane: Vec<f32> = sum
            .iter()
            .zip(&count)
            .map(|(s, &k)| {
                if k == 0 {
                    0.0
                } else {
                    (s / f64::from(k)) as f32
                }
            })
            .collect();
        let mut out = Vec::with_capacity(per);
        for _ in 0..c {
            out.extend_from_slice(&plane);
        }
        Ok(out)
    }
}
