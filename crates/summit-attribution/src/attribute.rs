//! Computing attributions with burn's autodiff.

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use summit_model::act::{DeconvRelu, GuidedRelu};
use summit_model::{RelevanceSeed, Summarizable, TapId, burn, divide_stabilized, to_host};

use crate::error::{AttributionError, Result};
use crate::lrp::{Composite, LrpRules, Rule};
use crate::method::{AttributionParams, Method};
use crate::quadrature::gauss_legendre;

/// What an attribution explains for each image: a class logit, or one channel of a summary
/// layer summed over positions (a neuron target).
#[derive(Debug, Clone)]
enum Goal {
    /// One target class per row.
    Classes(Vec<usize>),
    /// Channel `channel` of summary layer `layer` (its tap `tap`), for every row.
    Neuron {
        layer: usize,
        tap: TapId,
        channel: usize,
    },
}

impl Goal {
    /// The goal of rows `start..start + k`.
    fn rows(&self, start: usize, k: usize) -> Goal {
        match self {
            Goal::Classes(t) => Goal::Classes(t[start..start + k].to_vec()),
            other => other.clone(),
        }
    }

    /// The goal of row `i`, repeated `count` times (for the samples of one image).
    fn repeat(&self, i: usize, count: usize) -> Goal {
        match self {
            Goal::Classes(t) => Goal::Classes(vec![t[i]; count]),
            other => other.clone(),
        }
    }

    fn targets(&self, n: usize) -> Vec<usize> {
        match self {
            Goal::Classes(t) => t.clone(),
            Goal::Neuron { channel, .. } => vec![*channel; n],
        }
    }
}

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

/// How the ReLUs backpropagate in a gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relu {
    Plain,
    Guided,
    Deconv,
}

/// Captum's `GuidedGradCam`: the Grad-CAM maps (`[n, 1, lh, lw]`) upsampled to the input by
/// nearest neighbour (`F.interpolate(mode="nearest")`: source index `⌊i · lh / h⌋`) times the
/// guided gradients (`[n, c, h, w]`), per channel.
fn guided_grad_cam(
    cam: &[f32],
    lh: usize,
    lw: usize,
    guided: &[f32],
    dims: [usize; 4],
) -> Vec<f32> {
    let [n, c, h, w] = dims;
    let mut out = Vec::with_capacity(guided.len());
    for i in 0..n {
        let plane = &cam[i * lh * lw..(i + 1) * lh * lw];
        for ch in 0..c {
            let g = &guided[(i * c + ch) * h * w..(i * c + ch + 1) * h * w];
            for y in 0..h {
                let sy = ((y * lh) / h).min(lh.saturating_sub(1));
                for x in 0..w {
                    let sx = ((x * lw) / w).min(lw.saturating_sub(1));
                    out.push(g[y * w + x] * plane[sy * lw + sx]);
                }
            }
        }
    }
    out
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
    /// The target of each image: its class, or with [`Attribution::neuron_layer`] the channel
    /// of that layer.
    pub targets: Vec<usize>,
    /// `Some(layer)` for a neuron target: `targets` are channels of this summary layer.
    pub neuron_layer: Option<String>,
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
        self.run(method, data, dims, &Goal::Classes(targets.to_vec()))
    }

    /// Attributes channel `channel` of summary layer `layer` (its activation summed over
    /// positions, iNNvestigate-GUI's "single neuron") on every image of `images` by `method`.
    /// Grad-CAM (and Guided Grad-CAM) then works at the neuron's layer unless the parameters
    /// name a layer at or before it.
    pub fn attribute_neuron(
        &self,
        method: Method,
        images: &Tensor<4>,
        layer: &str,
        channel: usize,
    ) -> Result<Attribution> {
        let dims = images.dims();
        let data = to_host(images.clone(), "attribution input")?;
        self.attribute_neuron_host(method, &data, dims, layer, channel)
    }

    /// [`attribute_neuron`](Self::attribute_neuron) on host values.
    pub fn attribute_neuron_host(
        &self,
        method: Method,
        data: &[f32],
        dims: [usize; 4],
        layer: &str,
        channel: usize,
    ) -> Result<Attribution> {
        let desc = self.model.description();
        self.check(data, dims, &vec![0; dims[0]])?;
        let l = desc
            .layer_index(layer)
            .ok_or_else(|| AttributionError::UnknownLayer {
                name: layer.to_string(),
                known: desc.layer_names(),
            })?;
        let tap = desc.layers[l].tap;
        let channels = desc.taps[tap.0].channels;
        if channel >= channels {
            return Err(AttributionError::NeuronOutOfRange {
                layer: desc.layers[l].name.clone(),
                channel,
                channels,
            });
        }
        let mut a = self.run(
            method,
            data,
            dims,
            &Goal::Neuron {
                layer: l,
                tap,
                channel,
            },
        )?;
        a.neuron_layer = Some(desc.layers[l].name.clone());
        Ok(a)
    }

    fn run(
        &self,
        method: Method,
        data: &[f32],
        dims: [usize; 4],
        goal: &Goal,
    ) -> Result<Attribution> {
        let [n, c, h, w] = dims;
        let per = c * h * w;
        let mut values = Vec::with_capacity(data.len());
        let mut out_dims = dims;
        match method {
            Method::Saliency => {
                let g = self.gradients(data, dims, goal, Relu::Plain)?;
                values.extend(g.iter().map(|v| v.abs()));
            }
            Method::InputXGradient => {
                let g = self.gradients(data, dims, goal, Relu::Plain)?;
                values.extend(g.iter().zip(data).map(|(g, x)| g * x));
            }
            Method::GuidedBackprop => {
                values = self.gradients(data, dims, goal, Relu::Guided)?;
            }
            Method::Deconvnet => {
                values = self.gradients(data, dims, goal, Relu::Deconv)?;
            }
            Method::SmoothGrad => {
                for i in 0..n {
                    let img = &data[i * per..(i + 1) * per];
                    let noise = self.noise(img);
                    values.extend(self.smooth_one(img, [1, c, h, w], &goal.rows(i, 1), &noise)?);
                }
            }
            Method::IntegratedGradients => {
                for i in 0..n {
                    let img = &data[i * per..(i + 1) * per];
                    values.extend(self.integrated_one(img, [1, c, h, w], &goal.rows(i, 1))?);
                }
            }
            Method::GradCam => {
                let (v, d) = self.grad_cam(data, dims, goal)?;
                values = v;
                out_dims = d;
            }
            Method::GuidedGradCam => {
                let (cam, [_, _, lh, lw]) = self.grad_cam(data, dims, goal)?;
                let guided = self.gradients(data, dims, goal, Relu::Guided)?;
                values = guided_grad_cam(&cam, lh, lw, &guided, dims);
            }
            Method::Occlusion => {
                for i in 0..n {
                    let img = &data[i * per..(i + 1) * per];
                    values.extend(self.occlusion_one(img, [1, c, h, w], &goal.rows(i, 1))?);
                }
            }
            Method::LrpEpsilonPlusFlat
            | Method::LrpEpsilonGammaBox
            | Method::LrpEpsilonAlpha2Beta1Flat
            | Method::LrpEpsilon
            | Method::LrpZ => {
                let composite = method.composite().ok_or_else(|| {
                    AttributionError::Params(format!("{method} has no composite"))
                })?;
                values = self.lrp(data, dims, goal, composite)?;
            }
        }
        Ok(Attribution {
            method,
            dims: out_dims,
            values,
            targets: goal.targets(n),
            neuron_layer: None,
        })
    }

    /// The LRP rules this attributor applies to its model under `composite` (the parameters'
    /// name map ahead of it). Fails on a name-map layer the model does not have and on a
    /// model without an operator graph.
    pub fn lrp_rules(&self, composite: Composite) -> Result<LrpRules> {
        let g = self.model.graph()?;
        LrpRules::new(
            composite,
            &self.params.lrp_name_map,
            &g.model.linear_layers(),
            self.params.input_bounds.clone(),
        )
    }

    /// Layer-wise relevance propagation of every row, in chunks of the batch size.
    fn lrp(
        &self,
        data: &[f32],
        dims: [usize; 4],
        goal: &Goal,
        composite: Composite,
    ) -> Result<Vec<f32>> {
        let [n, c, h, w] = dims;
        let g = self.model.graph()?;
        let rules = self.lrp_rules(composite)?;
        let head_eps = match composite.rule(summit_model::LinearKind::Dense, false) {
            Rule::Epsilon { epsilon } => epsilon,
            _ => 1e-6,
        };
        let desc = self.model.description();
        let mut out = Vec::with_capacity(data.len());
        for start in (0..n).step_by(self.params.batch_size) {
            let k = self.params.batch_size.min(n - start);
            let x = rows_tensor(data, [n, c, h, w], start, k, &self.device);
            let r = match goal.rows(start, k) {
                Goal::Classes(t) => {
                    let outputs = g.outputs.clone();
                    let one_hot = move |logits: &Tensor<2>| -> summit_model::Result<Tensor<2>> {
                        let [rows, classes] = logits.dims();
                        let mut m = vec![0f32; rows * classes];
                        for (i, &t) in t.iter().enumerate() {
                            let col = outputs.as_ref().map_or(Some(t), |o| o.get(t).copied());
                            match col {
                                Some(col) if col < classes => m[i * classes + col] = 1.0,
                                _ => {
                                    return Err(summit_model::ModelError::Outputs(format!(
                                        "class {t} is not an output of the graph ({classes} outputs)"
                                    )));
                                }
                            }
                        }
                        Ok(Tensor::from_data(
                            TensorData::new(m, [rows, classes]),
                            &logits.device(),
                        ))
                    };
                    g.model
                        .relevance(x, &RelevanceSeed::Logits(&one_hot), &rules)?
                }
                Goal::Neuron { layer, channel, .. } => {
                    let name = &desc.layers[layer].name;
                    let value = g.model.value_name_of_layer(name).ok_or_else(|| {
                        AttributionError::UnknownLayer {
                            name: format!("{name} (in the model's operator graph)"),
                            known: desc.layer_names(),
                        }
                    })?;
                    // the head `Σ_hw A_c` as a dense layer under the composite's dense rule
                    let seed = move |a: &Tensor<4>| -> summit_model::Result<Tensor<4>> {
                        let [b, ch, hh, ww] = a.dims();
                        if channel >= ch {
                            return Err(summit_model::ModelError::Describe(format!(
                                "neuron target: channel {channel} of a layer of {ch} channels"
                            )));
                        }
                        let ac = a.clone().slice([0..b, channel..channel + 1, 0..hh, 0..ww]);
                        let z = ac.clone().sum_dim(3).sum_dim(2);
                        let s = divide_stabilized(z.ones_like(), z, head_eps);
                        let rc = ac * s.expand([b, 1, hh, ww]);
                        let mut parts = Vec::with_capacity(3);
                        if channel > 0 {
                            parts.push(Tensor::zeros([b, channel, hh, ww], &a.device()));
                        }
                        parts.push(rc);
                        if channel + 1 < ch {
                            parts.push(Tensor::zeros([b, ch - channel - 1, hh, ww], &a.device()));
                        }
                        Ok(Tensor::cat(parts, 1))
                    };
                    g.model.relevance(
                        x,
                        &RelevanceSeed::Value {
                            name: value,
                            seed: &seed,
                        },
                        &rules,
                    )?
                }
            };
            out.extend(to_host(r, "relevance")?);
        }
        Ok(out)
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
            values.extend(self.smooth_one(
                img,
                [1, c, h, w],
                &Goal::Classes(vec![targets[i]]),
                nz,
            )?);
        }
        Ok(Attribution {
            method: Method::SmoothGrad,
            dims,
            values,
            targets: targets.to_vec(),
            neuron_layer: None,
        })
    }

    /// The target scores (logits) of the images, without gradients.
    pub fn scores(&self, data: &[f32], dims: [usize; 4], targets: &[usize]) -> Result<Vec<f32>> {
        self.check(data, dims, targets)?;
        self.goal_scores(data, dims, &Goal::Classes(targets.to_vec()))
    }

    /// The goal's score of every row, without gradients.
    fn goal_scores(&self, data: &[f32], dims: [usize; 4], goal: &Goal) -> Result<Vec<f32>> {
        let [n, c, h, w] = dims;
        let mut out = Vec::with_capacity(n);
        for start in (0..n).step_by(self.params.batch_size) {
            let k = self.params.batch_size.min(n - start);
            let x = rows_tensor(data, [n, c, h, w], start, k, &self.device);
            out.extend(to_host(self.objective(x, &goal.rows(start, k))?, "scores")?);
        }
        Ok(out)
    }

    /// The goal's score of every row of `x`, `[k]`: the target logit, or the neuron's channel
    /// summed over positions (the model run up to its layer).
    fn objective(&self, x: Tensor<4>, goal: &Goal) -> Result<Tensor<1>> {
        let k = x.dims()[0];
        match goal {
            Goal::Classes(t) => {
                let logits = self.model.forward(x)?;
                let hot = self.one_hot(t, &logits.device());
                Ok(logits.mul(hot).sum_dim(1).reshape([k]))
            }
            Goal::Neuron { tap, channel, .. } => {
                let a = self.model.forward_to(x, *tap)?;
                Ok(self.neuron_sum(a, *channel))
            }
        }
    }

    /// `Σ_hw a[:, channel]`, `[k]`.
    fn neuron_sum(&self, a: Tensor<4>, channel: usize) -> Tensor<1> {
        let [k, _, h, w] = a.dims();
        a.slice([0..k, channel..channel + 1, 0..h, 0..w])
            .reshape([k, h * w])
            .sum_dim(1)
            .reshape([k])
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
    fn one_hot(&self, targets: &[usize], device: &Device) -> Tensor<2> {
        let classes = self.model.description().num_classes;
        let mut m = vec![0f32; targets.len() * classes];
        for (i, &t) in targets.iter().enumerate() {
            m[i * classes + t] = 1.0;
        }
        Tensor::from_data(TensorData::new(m, [targets.len(), classes]), device)
    }

    /// `∂ y / ∂ x` of every row (`dims[0]` rows) for the goal's score `y`, in chunks of the
    /// batch size, with the ReLUs backpropagating as `relu` says.
    fn gradients(
        &self,
        data: &[f32],
        dims: [usize; 4],
        goal: &Goal,
        relu: Relu,
    ) -> Result<Vec<f32>> {
        let [n, c, h, w] = dims;
        let ad = self.device.clone().autodiff();
        let mut out = Vec::with_capacity(data.len());
        for start in (0..n).step_by(self.params.batch_size) {
            let k = self.params.batch_size.min(n - start);
            let x = rows_tensor(data, [n, c, h, w], start, k, &ad).require_grad();
            let scope = |e: summit_model::ModelError| AttributionError::NoGradients(e.to_string());
            let _guided = match relu {
                Relu::Guided => Some(GuidedRelu::enter(&ad).map_err(scope)?),
                _ => None,
            };
            let _deconv = match relu {
                Relu::Deconv => Some(DeconvRelu::enter(&ad).map_err(scope)?),
                _ => None,
            };
            let y = self.objective(x.clone(), &goal.rows(start, k))?;
            if !y.is_tracked() {
                return Err(self.no_gradients());
            }
            let grads = y.sum().backward();
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
        goal: &Goal,
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
            &goal.repeat(0, samples),
            Relu::Plain,
        )?;
        let mut acc = vec![0f64; per];
        for s in 0..samples {
            for (a, v) in acc.iter_mut().zip(&g[s * per..(s + 1) * per]) {
                *a += f64::from(v.abs());
            }
        }
        Ok(acc.iter().map(|a| (a / samples as f64) as f32).collect())
    }

    fn integrated_one(&self, img: &[f32], dims: [usize; 4], goal: &Goal) -> Result<Vec<f32>> {
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
            &goal.repeat(0, steps),
            Relu::Plain,
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

    /// Grad-CAM's layer for a goal: the parameters' (or the last) for a class; for a neuron,
    /// the parameters' layer if it is at or before the neuron's, else the neuron's own.
    fn cam_layer(&self, goal: &Goal) -> Result<usize> {
        match goal {
            Goal::Classes(_) => Ok(self.layer),
            Goal::Neuron { layer, .. } => match &self.params.layer {
                None => Ok(*layer),
                Some(_) if self.layer <= *layer => Ok(self.layer),
                Some(name) => Err(AttributionError::Params(format!(
                    "Grad-CAM at layer `{name}` cannot explain a neuron of the earlier layer `{}`: \
                     choose a Grad-CAM layer at or before it (or none)",
                    self.model.description().layers[*layer].name
                ))),
            },
        }
    }

    fn grad_cam(
        &self,
        data: &[f32],
        dims: [usize; 4],
        goal: &Goal,
    ) -> Result<(Vec<f32>, [usize; 4])> {
        let [n, c, h, w] = dims;
        let ad = self.device.clone().autodiff();
        let layer = self.cam_layer(goal)?;
        let desc = self.model.description();
        let tap: TapId = desc.layers[layer].tap;
        let neuron_tap = match goal {
            Goal::Neuron { tap, .. } => Some(*tap),
            Goal::Classes(_) => None,
        };
        let mut values = Vec::new();
        let mut out_dims = [n, 1, 0, 0];
        for start in (0..n).step_by(self.params.batch_size) {
            let k = self.params.batch_size.min(n - start);
            let x = rows_tensor(data, [n, c, h, w], start, k, &ad);
            let mut act: Option<Tensor<4>> = None;
            let mut neuron: Option<Tensor<4>> = None;
            let mut detached = false;
            let mut sink = |id: TapId, t: Tensor<4>| {
                let t = if id == tap && !t.is_autodiff() {
                    detached = true;
                    t
                } else if id == tap {
                    let a = t.detach().require_grad();
                    act = Some(a.clone());
                    a
                } else {
                    t
                };
                if Some(id) == neuron_tap {
                    neuron = Some(t.clone());
                }
                t
            };
            let logits = self.model.forward_taps(x, &mut sink)?;
            if detached {
                return Err(self.no_gradients());
            }
            let a = act.ok_or_else(|| {
                AttributionError::NoGradients(format!(
                    "the forward pass did not produce layer `{}`",
                    desc.layers[layer].name
                ))
            })?;
            let y = match goal.rows(start, k) {
                Goal::Classes(t) => {
                    if !logits.is_tracked() {
                        return Err(self.no_gradients());
                    }
                    let hot = self.one_hot(&t, &logits.device());
                    logits.mul(hot).sum()
                }
                Goal::Neuron { channel, .. } => {
                    let v = neuron.ok_or_else(|| {
                        AttributionError::NoGradients(
                            "the forward pass did not produce the neuron's layer".into(),
                        )
                    })?;
                    self.neuron_sum(v, channel).sum()
                }
            };
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

    fn occlusion_one(&self, img: &[f32], dims: [usize; 4], goal: &Goal) -> Result<Vec<f32>> {
        let [_, c, h, w] = dims;
        let per = img.len();
        let (window, stride) = self.occlusion_geometry(h, w);
        let ys = Self::occlusion_windows(h, window, stride);
        let xs = Self::occlusion_windows(w, window, stride);
        let base = self.goal_scores(img, [1, c, h, w], goal)?[0];
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
            let s =
                self.goal_scores(&rows, [chunk.len(), c, h, w], &goal.repeat(0, chunk.len()))?;
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
