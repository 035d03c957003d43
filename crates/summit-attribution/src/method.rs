//! The attribution methods and their parameters (SPEC §4.2; Captum's definitions).

use serde::{Deserialize, Serialize};

use crate::error::{AttributionError, Result};
use crate::lrp::{Composite, NameMap};

/// An attribution method. Each explains either the score (logit) of one target class per image
/// or one channel of a summary layer (its activation summed over positions: a *neuron target*,
/// [`crate::Attributor::attribute_neuron`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// `|∂y/∂x|` (Captum `Saliency`, `abs=True`).
    Saliency,
    /// `x · ∂y/∂x` (Captum `InputXGradient`).
    InputXGradient,
    /// The mean of `|∂y/∂x|` at `x + ε`, `ε ~ N(0, σ²)` (Captum `NoiseTunnel(Saliency)`,
    /// `nt_type="smoothgrad"`).
    SmoothGrad,
    /// `(x − x₀) · ∫₀¹ ∂y/∂x(x₀ + α(x − x₀)) dα` by Gauss–Legendre quadrature (Captum
    /// `IntegratedGradients`, `method="gausslegendre"`).
    IntegratedGradients,
    /// `relu(Σ_c mean_hw(∂y/∂A_c) · A_c)` at a summary layer `A` (Captum `LayerGradCam`,
    /// `relu_attributions=True`); one map at the layer's resolution.
    GradCam,
    /// `∂y/∂x` with every ReLU passing back only positive gradients (Captum `GuidedBackprop`).
    GuidedBackprop,
    /// For each pixel, the mean over the sliding windows covering it of `y(x) − y(x with the
    /// window set to the baseline)` (Captum `Occlusion`, the window spanning all channels).
    Occlusion,
    /// `∂y/∂x` with every ReLU passing back `relu(∂)` whatever its input (Zeiler and Fergus;
    /// Captum `Deconvolution`, zennit `DeconvNet`).
    Deconvnet,
    /// Grad-CAM upsampled to the input (nearest) times Guided Backpropagation, per channel
    /// (Captum `GuidedGradCam`).
    GuidedGradCam,
    /// LRP, composite `epsilon-plus-flat` (zennit's; the default LRP).
    LrpEpsilonPlusFlat,
    /// LRP, composite `epsilon-gamma-box` (zennit's).
    LrpEpsilonGammaBox,
    /// LRP, composite `epsilon-alpha2-beta1-flat` (zennit's).
    LrpEpsilonAlpha2Beta1Flat,
    /// LRP, `epsilon` at every linear layer (iNNvestigate's `lrp.epsilon`).
    LrpEpsilon,
    /// LRP, `z` (ε = 0) at every linear layer (iNNvestigate's `lrp.z`, the LRP of
    /// iNNvestigate-GUI's user study).
    LrpZ,
}

impl Method {
    /// Every method, in the order the web view lists them.
    pub const ALL: [Method; 14] = [
        Method::GradCam,
        Method::Saliency,
        Method::InputXGradient,
        Method::SmoothGrad,
        Method::IntegratedGradients,
        Method::GuidedBackprop,
        Method::Occlusion,
        Method::Deconvnet,
        Method::GuidedGradCam,
        Method::LrpEpsilonPlusFlat,
        Method::LrpEpsilonGammaBox,
        Method::LrpEpsilonAlpha2Beta1Flat,
        Method::LrpEpsilon,
        Method::LrpZ,
    ];

    /// The method's name on the command line and in files (`grad-cam`, `saliency`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Method::Saliency => "saliency",
            Method::InputXGradient => "input-x-gradient",
            Method::SmoothGrad => "smoothgrad",
            Method::IntegratedGradients => "integrated-gradients",
            Method::GradCam => "grad-cam",
            Method::GuidedBackprop => "guided-backprop",
            Method::Occlusion => "occlusion",
            Method::Deconvnet => "deconvnet",
            Method::GuidedGradCam => "guided-grad-cam",
            Method::LrpEpsilonPlusFlat => "lrp-epsilon-plus-flat",
            Method::LrpEpsilonGammaBox => "lrp-epsilon-gamma-box",
            Method::LrpEpsilonAlpha2Beta1Flat => "lrp-epsilon-alpha2-beta1-flat",
            Method::LrpEpsilon => "lrp-epsilon",
            Method::LrpZ => "lrp-z",
        }
    }

    /// The LRP composite of an LRP method.
    pub fn composite(self) -> Option<Composite> {
        match self {
            Method::LrpEpsilonPlusFlat => Some(Composite::EpsilonPlusFlat),
            Method::LrpEpsilonGammaBox => Some(Composite::EpsilonGammaBox),
            Method::LrpEpsilonAlpha2Beta1Flat => Some(Composite::EpsilonAlpha2Beta1Flat),
            Method::LrpEpsilon => Some(Composite::LrpEpsilon),
            Method::LrpZ => Some(Composite::LrpZ),
            _ => None,
        }
    }

    /// The LRP method of a composite.
    pub fn lrp(composite: Composite) -> Method {
        match composite {
            Composite::EpsilonPlusFlat => Method::LrpEpsilonPlusFlat,
            Composite::EpsilonGammaBox => Method::LrpEpsilonGammaBox,
            Composite::EpsilonAlpha2Beta1Flat => Method::LrpEpsilonAlpha2Beta1Flat,
            Composite::LrpEpsilon => Method::LrpEpsilon,
            Composite::LrpZ => Method::LrpZ,
        }
    }

    /// Whether the method's attribution lives at the input's resolution and channels
    /// (everything but Grad-CAM).
    pub fn is_input_space(self) -> bool {
        self != Method::GradCam
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Method {
    type Err = AttributionError;

    /// Parses a method name; `_` and `-` are the same, case does not matter. `lrp` is
    /// `lrp-epsilon-plus-flat`, and a composite's own name (`epsilon-gamma-box`) its method.
    fn from_str(s: &str) -> Result<Self> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        let norm = match norm.as_str() {
            "lrp" => "lrp-epsilon-plus-flat".to_string(),
            "deconv-net" | "deconvolution" => "deconvnet".to_string(),
            "epsilon-plus-flat" | "epsilon-gamma-box" | "epsilon-alpha2-beta1-flat" => {
                format!("lrp-{norm}")
            }
            _ => norm,
        };
        Method::ALL
            .into_iter()
            .find(|m| m.name() == norm)
            .ok_or_else(|| AttributionError::UnknownMethod {
                name: s.to_string(),
                known: Method::ALL.map(Method::name).join(", "),
            })
    }
}

/// The methods' parameters. The defaults follow Captum where it has one, and keep a CPU run
/// practical where it does not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributionParams {
    /// SmoothGrad: noisy samples per image (50, SPEC §4.2).
    pub smoothgrad_samples: usize,
    /// SmoothGrad: the noise's standard deviation as a fraction of each image's value range
    /// `max − min` (0.15, as in the SmoothGrad paper).
    pub smoothgrad_noise: f32,
    /// Integrated Gradients: quadrature points (Captum's `n_steps`, 50).
    pub ig_steps: usize,
    /// Integrated Gradients and Occlusion: the baseline value, in the model's (preprocessed)
    /// input space (0, as Captum).
    pub baseline: f32,
    /// Grad-CAM: the summary layer (name or alias); `None` is the last.
    pub layer: Option<String>,
    /// Grad-CAM: apply the ReLU to the map (the original Grad-CAM; Captum's
    /// `relu_attributions`).
    pub grad_cam_relu: bool,
    /// Occlusion: the window's side as a fraction of the image's shorter side (1/7: 32 px at
    /// 224², 4 px at 28²).
    pub occlusion_window: f32,
    /// Occlusion: the stride as a fraction of the window (½).
    pub occlusion_stride: f32,
    /// Seed of SmoothGrad's noise.
    pub seed: u64,
    /// How many images (samples, steps, occluded copies) one forward pass takes.
    pub batch_size: usize,
    /// LRP: rules by linear-layer name, ahead of the composite (zennit's `NameMap`).
    #[serde(default)]
    pub lrp_name_map: NameMap,
    /// LRP `zbox`: the lowest and highest value the model's preprocessing can produce, per
    /// input channel (`(0 − mean) / std` and `(1 − mean) / std`). `None`: composites that need
    /// them fail with an error saying so.
    #[serde(default)]
    pub input_bounds: Option<(Vec<f32>, Vec<f32>)>,
}

impl Default for AttributionParams {
    fn default() -> Self {
        Self {
            smoothgrad_samples: 50,
            smoothgrad_noise: 0.15,
            ig_steps: 50,
            baseline: 0.0,
            layer: None,
            grad_cam_relu: true,
            occlusion_window: 1.0 / 7.0,
            occlusion_stride: 0.5,
            seed: 2019,
            batch_size: 16,
            lrp_name_map: Vec::new(),
            input_bounds: None,
        }
    }
}

impl AttributionParams {
    /// Checks the parameters, naming the first that cannot work.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(AttributionError::Params(m));
        if self.smoothgrad_samples == 0 {
            return bad("smoothgrad_samples must be at least 1".into());
        }
        if !(self.smoothgrad_noise.is_finite() && self.smoothgrad_noise >= 0.0) {
            return bad(format!(
                "smoothgrad_noise must be ≥ 0, got {}",
                self.smoothgrad_noise
            ));
        }
        if self.ig_steps == 0 {
            return bad("ig_steps must be at least 1".into());
        }
        if !self.baseline.is_finite() {
            return bad("baseline must be finite".into());
        }
        if !(self.occlusion_window > 0.0 && self.occlusion_window <= 1.0) {
            return bad(format!(
                "occlusion_window must be in (0, 1], got {}",
                self.occlusion_window
            ));
        }
        if !(self.occlusion_stride > 0.0 && self.occlusion_stride <= 1.0) {
            return bad(format!(
                "occlusion_stride must be in (0, 1] (a fraction of the window), got {}",
                self.occlusion_stride
            ));
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        for (_, rule) in &self.lrp_name_map {
            rule.validate()?;
        }
        if let Some((lo, hi)) = &self.input_bounds
            && (lo.len() != hi.len()
                || lo
                    .iter()
                    .zip(hi)
                    .any(|(l, h)| l.partial_cmp(h) != Some(std::cmp::Ordering::Less)))
        {
            return bad(format!(
                "input_bounds must give one lowest value below one highest value per channel, got {lo:?} and {hi:?}"
            ));
        }
        Ok(())
    }
}
