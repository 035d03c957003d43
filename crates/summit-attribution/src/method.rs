//! The attribution methods and their parameters (SPEC §4.2; Captum's definitions).

use serde::{Deserialize, Serialize};

use crate::error::{AttributionError, Result};

/// An attribution method. Each explains the score (logit) of one target class per image.
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
}

impl Method {
    /// Every method, in the order the web view lists them.
    pub const ALL: [Method; 7] = [
        Method::GradCam,
        Method::Saliency,
        Method::InputXGradient,
        Method::SmoothGrad,
        Method::IntegratedGradients,
        Method::GuidedBackprop,
        Method::Occlusion,
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

    /// Parses a method name; `_` and `-` are the same, case does not matter.
    fn from_str(s: &str) -> Result<Self> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
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
        Ok(())
    }
}
