//! How faithful is a heatmap? Quantus 0.6's metrics (SPEC §4.4), equal to Quantus value by value
//! (the parity test `tests/quantus.rs` compares them with Quantus 0.6.0 on fixed inputs).
//!
//! | metric | Quantus class | model output | heatmap preprocessing | one value per image | better |
//! |---|---|---|---|---|---|
//! | [`Metric::PixelFlipping`] | `PixelFlipping` | softmax probability | normalise | AUC (`np.trapz`) of the curve | lower |
//! | [`Metric::RegionPerturbation`] | `RegionPerturbation` | softmax probability | normalise | AUC of the curve | higher (MoRF) |
//! | [`Metric::FaithfulnessCorrelation`] | `FaithfulnessCorrelation` | logit | normalise | Pearson correlation | higher |
//! | [`Metric::Mprt`] | `MPRT` | — | normalise, abs | Spearman correlation ([`MprtScore`]) | lower |
//! | [`Metric::Sparseness`] | `Sparseness` | — | normalise, abs | Gini index | higher |
//! | [`Metric::Complexity`] | `Complexity` | — | normalise, abs | entropy | lower |
//!
//! The model outputs follow each Quantus metric's `softmax` default (`True` for PixelFlipping
//! and RegionPerturbation, `False` for FaithfulnessCorrelation); the models of summit-model give
//! logits (the [`Summarizable::forward`] contract), and the softmax is taken here (in f64; a
//! model whose outputs already were probabilities would get a second one). "normalise" is Quantus' default
//! `normalise_by_max` (divide by the largest `|a|`, an all-zero heatmap left as it is) and
//! "abs" its `abs=True`; both as Quantus' `__init__` defaults per metric. One difference of
//! scope: Quantus' `normalise_by_max` divides a whole call's batch by its single largest `|a|`,
//! so a batched Quantus value depends on the other images of the batch; here each heatmap is
//! divided by its own largest `|a|`, which is Quantus evaluating one image at a time. Only
//! Sparseness (through its `+ 1e-7`) and Complexity (`+ 1e-12`) see the scale at all; the other
//! metrics are invariant to it.
//!
//! As in Quantus, heatmaps are taken as they are given, nothing summed over channels: a
//! `[c, h, w]` heatmap has `c·h·w` features; a `[1, h, w]` heatmap is broadcast over the input's
//! channels by the input-space metrics (Quantus' `np.broadcast_to`), and is `h·w` features for
//! Sparseness, Complexity and MPRT.
//!
//! The input-space metrics (PixelFlipping, RegionPerturbation, FaithfulnessCorrelation) need a
//! heatmap at the input's resolution: Grad-CAM's maps, at a summary layer's resolution, are
//! refused with [`AttributionError::Unsupported`] naming the metric and the method (upsample
//! them first with [`crate::upsample`] to evaluate the upsampled map, which is then a property
//! of the upsampling as much as of the method). Sparseness, Complexity and MPRT take heatmaps
//! of any shape.
//!
//! One value per image, aggregated by [`evaluate`] into a mean and a standard deviation per
//! metric ([`EvaluationRow`]); Quantus returns the per-image values (the curves, for
//! PixelFlipping and RegionPerturbation, whose AUC its `get_auc_score` averages), or their mean
//! where its `return_aggregate` defaults to true (FaithfulnessCorrelation): the row's mean.
//!
//! Quantus' random options (`perturb_baseline="uniform"`, RegionPerturbation's
//! `order="random"`) are not offered; FaithfulnessCorrelation's random subsets are drawn from a seeded RNG
//! ([`EvaluationParams::seed`]) or passed explicitly
//! ([`faithfulness_correlation_with_subsets`]).
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use summit_attribution::{
//!     AttributionParams, Attributor, Batch, EvaluationParams, Method, Metric, evaluate,
//! };
//! use summit_model::{FashionInception, burn};
//!
//! let device = Device::flex();
//! let model = FashionInception::embedded(&device)?;
//! let attributor = Attributor::new(&model, AttributionParams::default(), &device)?;
//! let x = Tensor::<4>::random([2, 1, 28, 28], burn::tensor::Distribution::Default, &device);
//! let images = summit_model::to_host(x, "images")?;
//! let attr = attributor.attribute_host(Method::Saliency, &images, [2, 1, 28, 28], &[0, 3])?;
//! // small settings for a quick example (Quantus' defaults are EvaluationParams::default())
//! let params = EvaluationParams {
//!     features_in_step: 196,
//!     regions_evaluation: 4,
//!     nr_runs: 5,
//!     subset_size: 50,
//!     ..EvaluationParams::default()
//! };
//! let metrics: Vec<Metric> = ["sparseness", "complexity", "pixel-flipping",
//!     "region-perturbation", "faithfulness-correlation"]
//!     .iter()
//!     .map(|m| m.parse())
//!     .collect::<Result<_, _>>()?;
//! let batch = Batch::new(&images, [2, 1, 28, 28], &attr);
//! let rows = evaluate(&model, &device, &batch, &metrics, &params)?;
//! assert_eq!(rows.len(), 5);
//! assert!(rows.iter().all(|r| r.method == Method::Saliency && r.n == 2));
//! assert!((0.0..=1.0).contains(&rows[0].mean)); // a Gini index
//! // Grad-CAM's maps are at a layer's resolution: input-space metrics refuse them
//! let cam = attributor.attribute_host(Method::GradCam, &images, [2, 1, 28, 28], &[0, 3])?;
//! let err = evaluate(&model, &device, &Batch::new(&images, [2, 1, 28, 28], &cam),
//!                    &[Metric::PixelFlipping], &params).unwrap_err();
//! assert!(err.to_string().contains("grad-cam"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::cmp::Ordering;

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use summit_model::{Summarizable, burn, to_host};

use crate::attribute::Attribution;
use crate::error::{AttributionError, Result};
use crate::method::Method;

/// A heatmap metric (Quantus 0.6's definitions and defaults: the table in [`mod@crate::evaluate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Pixel flipping (Bach et al. 2015; Quantus `PixelFlipping`): the features are replaced by
    /// the baseline, most relevant first, [`EvaluationParams::features_in_step`] at a time, and
    /// the target's softmax probability is recorded after each step (not before the first).
    /// The image's value is the curve's area (`np.trapz`, unit spacing): lower is better.
    PixelFlipping,
    /// Region perturbation (Samek et al. 2016; Quantus `RegionPerturbation`): non-overlapping
    /// `patch_size²` patches (over all channels; the image edge-padded to a multiple of the
    /// patch, the heatmap zero-padded), ordered by their heatmap sum, replaced one after the
    /// other for [`EvaluationParams::regions_evaluation`] patches; the curve is the drop of the
    /// target's softmax probability from the unperturbed image. The image's value is the
    /// curve's area: with the most relevant first (MoRF) higher is better (Quantus 0.6 declares
    /// `ScoreDirection.LOWER` for it, which holds for LeRF).
    RegionPerturbation,
    /// Faithfulness correlation (Bhatt et al. 2020; Quantus `FaithfulnessCorrelation`): for
    /// [`EvaluationParams::nr_runs`] random subsets of [`EvaluationParams::subset_size`]
    /// features, the Pearson correlation between the heatmap's sum over the subset and the
    /// drop of the target's logit when the subset is replaced by the baseline. Higher is
    /// better.
    FaithfulnessCorrelation,
    /// The model parameter randomisation test (Adebayo et al. 2018; Quantus `MPRT`): the
    /// Spearman rank correlation between `|heatmap|` of the trained model and `|heatmap|` of
    /// the model with its layers re-initialised from the top, cumulatively. Lower is better
    /// (the method depends on what was learned). See [`mprt`].
    Mprt,
    /// Sparseness (Chalasani et al. 2020; Quantus `Sparseness`): the Gini index of `|heatmap|`.
    /// Higher is better.
    Sparseness,
    /// Complexity (Bhatt et al. 2020; Quantus `Complexity`): the entropy of `|heatmap|` as a
    /// distribution. Lower is better.
    Complexity,
}

impl Metric {
    /// Every metric, in the order the output and the view list them.
    pub const ALL: [Metric; 6] = [
        Metric::PixelFlipping,
        Metric::RegionPerturbation,
        Metric::FaithfulnessCorrelation,
        Metric::Mprt,
        Metric::Sparseness,
        Metric::Complexity,
    ];

    /// The metric's name on the command line and in files (`pixel-flipping`, `mprt`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Metric::PixelFlipping => "pixel-flipping",
            Metric::RegionPerturbation => "region-perturbation",
            Metric::FaithfulnessCorrelation => "faithfulness-correlation",
            Metric::Mprt => "mprt",
            Metric::Sparseness => "sparseness",
            Metric::Complexity => "complexity",
        }
    }

    /// The Quantus 0.6 class that defines it.
    pub fn quantus_class(self) -> &'static str {
        match self {
            Metric::PixelFlipping => "PixelFlipping",
            Metric::RegionPerturbation => "RegionPerturbation",
            Metric::FaithfulnessCorrelation => "FaithfulnessCorrelation",
            Metric::Mprt => "MPRT",
            Metric::Sparseness => "Sparseness",
            Metric::Complexity => "Complexity",
        }
    }

    /// Whether the metric perturbs the input and runs the model: its heatmaps must then be at
    /// the input's resolution.
    pub fn is_input_space(self) -> bool {
        matches!(
            self,
            Metric::PixelFlipping | Metric::RegionPerturbation | Metric::FaithfulnessCorrelation
        )
    }

    /// Quantus' default `abs` for the metric (`|heatmap|` before the metric).
    pub fn quantus_abs(self) -> bool {
        matches!(self, Metric::Mprt | Metric::Sparseness | Metric::Complexity)
    }

    /// Quantus' default `softmax` for the metric's model outputs (probabilities if true,
    /// logits if false; `None` for the metrics that run no model).
    pub fn quantus_softmax(self) -> Option<bool> {
        match self {
            Metric::PixelFlipping | Metric::RegionPerturbation => Some(true),
            Metric::FaithfulnessCorrelation => Some(false),
            Metric::Mprt | Metric::Sparseness | Metric::Complexity => None,
        }
    }

    /// Whether a higher value means a better heatmap, with these parameters (only Region
    /// Perturbation's depends on them: its order).
    pub fn higher_is_better(self, params: &EvaluationParams) -> bool {
        match self {
            Metric::PixelFlipping | Metric::Mprt | Metric::Complexity => false,
            Metric::RegionPerturbation => params.region_order == RegionOrder::Morf,
            Metric::FaithfulnessCorrelation | Metric::Sparseness => true,
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Metric {
    type Err = AttributionError;

    /// Parses a metric name; `_` and `-` are the same, case does not matter, and Quantus'
    /// class names (`PixelFlipping`, `MPRT`, ...) are accepted too.
    fn from_str(s: &str) -> Result<Self> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == norm || m.quantus_class().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| AttributionError::UnknownMetric {
                name: s.to_string(),
                known: Metric::ALL.map(Metric::name).join(", "),
            })
    }
}

/// What replaces a perturbed feature (Quantus' `perturb_baseline`), per image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Baseline {
    /// The image's smallest value (Quantus' default, `"black"`).
    Black,
    /// The image's largest value (`"white"`).
    White,
    /// The image's mean (`"mean"`), as Quantus takes it: the mean of the image as perturbed so
    /// far, before each step (PixelFlipping; RegionPerturbation: of the edge-padded image), of
    /// the unperturbed image (FaithfulnessCorrelation).
    Mean,
    /// A fixed value, in the model's (preprocessed) input space.
    Value(f32),
}

impl std::fmt::Display for Baseline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Baseline::Black => f.write_str("black"),
            Baseline::White => f.write_str("white"),
            Baseline::Mean => f.write_str("mean"),
            Baseline::Value(v) => write!(f, "{v}"),
        }
    }
}

impl std::str::FromStr for Baseline {
    type Err = AttributionError;

    /// `black`, `white`, `mean` or a number.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "black" => Ok(Baseline::Black),
            "white" => Ok(Baseline::White),
            "mean" => Ok(Baseline::Mean),
            other => other
                .parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .map(Baseline::Value)
                .ok_or_else(|| {
                    AttributionError::Evaluation(format!(
                        "perturbation baseline `{s}`: expected black, white, mean or a number"
                    ))
                }),
        }
    }
}

impl Baseline {
    /// The value replacing features of `x` (the image as Quantus hands it to the perturbation).
    fn value(self, x: &[f32]) -> f32 {
        match self {
            Baseline::Black => x.iter().copied().fold(f32::INFINITY, f32::min),
            Baseline::White => x.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            Baseline::Mean => {
                (x.iter().map(|&v| f64::from(v)).sum::<f64>() / x.len().max(1) as f64) as f32
            }
            Baseline::Value(v) => v,
        }
    }
}

/// The order in which Region Perturbation replaces patches (Quantus' `order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RegionOrder {
    /// Most relevant first (Quantus' default, `"morf"`).
    Morf,
    /// Least relevant first (`"lerf"`).
    Lerf,
}

/// Which single MPRT value an image gets ([`MprtResult::score`]); Quantus 0.6 returns the
/// per-layer correlations unless told `return_average_correlation` or
/// `return_last_correlation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MprtScore {
    /// Quantus' `return_average_correlation=True`: the mean over its correlation dictionary,
    /// which in Quantus 0.6 includes the unrandomised model's entry (`"original"`; the code
    /// means to skip it but tests for a key `"orig"`).
    Average,
    /// Quantus' `return_last_correlation=True`: the fully randomised model's correlation.
    Last,
}

/// The metrics' parameters. The defaults are Quantus 0.6's `__init__` defaults (except
/// [`batch_size`](Self::batch_size) and [`seed`](Self::seed), which do not change values, and
/// [`mprt_score`](Self::mprt_score), which Quantus leaves unset). Fields missing from a
/// serialized form take their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EvaluationParams {
    /// PixelFlipping: features replaced per step (Quantus' `features_in_step`, 1; it must
    /// divide `h·w`, as Quantus asserts). Quantus' default runs one forward pass per feature:
    /// `c·h·w` passes per image.
    pub features_in_step: usize,
    /// PixelFlipping, RegionPerturbation and FaithfulnessCorrelation: what replaces a feature
    /// (Quantus' `perturb_baseline`, `"black"`).
    pub perturb_baseline: Baseline,
    /// RegionPerturbation: the patch's side (Quantus' `patch_size`, 8).
    pub patch_size: usize,
    /// RegionPerturbation: patches replaced (Quantus' `regions_evaluation`, 100; fewer if the
    /// image has fewer).
    pub regions_evaluation: usize,
    /// RegionPerturbation: the order (Quantus' `order`, `"morf"`).
    pub region_order: RegionOrder,
    /// FaithfulnessCorrelation: random subsets per image (Quantus' `nr_runs`, 100).
    pub nr_runs: usize,
    /// FaithfulnessCorrelation: features per subset (Quantus' `subset_size`, 224; it must be
    /// smaller than `h·w`, as Quantus asserts).
    pub subset_size: usize,
    /// MPRT: the value an image gets (Quantus sets none by default; [`MprtScore::Average`]).
    pub mprt_score: MprtScore,
    /// MPRT: the seed of the layers' re-initialisation (Quantus' `seed`, 42; every layer is
    /// re-initialised from a generator seeded `seed + 1`, as Quantus does).
    pub mprt_seed: u64,
    /// FaithfulnessCorrelation: the seed of the random subsets (2019, as the rest of the
    /// crate; Quantus draws from numpy's global generator).
    pub seed: u64,
    /// How many perturbed images one forward pass takes (16).
    pub batch_size: usize,
}

impl Default for EvaluationParams {
    fn default() -> Self {
        Self {
            features_in_step: 1,
            perturb_baseline: Baseline::Black,
            patch_size: 8,
            regions_evaluation: 100,
            region_order: RegionOrder::Morf,
            nr_runs: 100,
            subset_size: 224,
            mprt_score: MprtScore::Average,
            mprt_seed: 42,
            seed: 2019,
            batch_size: 16,
        }
    }
}

impl EvaluationParams {
    /// Checks the parameters, naming the first that cannot work. (That `features_in_step`
    /// divides `h·w` and `subset_size < h·w` is checked per image.)
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(AttributionError::Evaluation(m.to_string()));
        if self.features_in_step == 0 {
            return bad("features_in_step must be at least 1");
        }
        if let Baseline::Value(v) = self.perturb_baseline
            && !v.is_finite()
        {
            return bad("perturb_baseline must be finite");
        }
        if self.patch_size == 0 {
            return bad("patch_size must be at least 1");
        }
        if self.regions_evaluation == 0 {
            return bad("regions_evaluation must be at least 1");
        }
        if self.nr_runs < 2 {
            return bad("nr_runs must be at least 2 (a correlation needs two points)");
        }
        if self.subset_size == 0 {
            return bad("subset_size must be at least 1");
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1");
        }
        Ok(())
    }
}

/// One image and its heatmap, as host values.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// The image, `[c, h, w]` row-major, preprocessed as the model expects.
    pub image: &'a [f32],
    /// The image's `[c, h, w]`.
    pub dims: [usize; 3],
    /// The heatmap, row-major.
    pub heatmap: &'a [f32],
    /// The heatmap's shape: `[c, h, w]` or `[1, h, w]` for the input-space metrics, anything
    /// for the others.
    pub heatmap_dims: [usize; 3],
    /// The class the heatmap explains.
    pub target: usize,
}

/// A curve of model outputs as features are replaced, and its area.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// One value per step.
    pub values: Vec<f64>,
    /// The area under the curve by the trapezoidal rule with unit spacing (Quantus'
    /// `calculate_auc`, `np.trapz(values, dx=1)`; 0 for a single point).
    pub auc: f64,
}

impl Curve {
    fn new(values: Vec<f64>) -> Self {
        let auc = auc(&values);
        Self { values, auc }
    }
}

/// The area under `values` by the trapezoidal rule with unit spacing (`np.trapz(values)`).
pub fn auc(values: &[f64]) -> f64 {
    values.windows(2).map(|w| 0.5 * (w[0] + w[1])).sum()
}

/// MPRT's correlations for one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MprtResult {
    /// The unrandomised model's entry (Quantus' `"original"`): the heatmap against itself, 1
    /// (Quantus compares it with a fresh explanation of the same model, which is the same
    /// heatmap for a deterministic method); NaN for a constant heatmap.
    pub original: f64,
    /// The Spearman correlation for each randomised model, in the order given (top-down).
    pub layers: Vec<f64>,
    /// Quantus' `return_average_correlation`: the mean of `original` and `layers`.
    pub average: f64,
    /// Quantus' `return_last_correlation`: the last layer's correlation.
    pub last: f64,
}

impl MprtResult {
    /// The value [`MprtScore`] picks.
    pub fn score(&self, which: MprtScore) -> f64 {
        match which {
            MprtScore::Average => self.average,
            MprtScore::Last => self.last,
        }
    }
}

/// The mean and spread of one metric over a batch, for one method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationRow {
    /// The attribution method whose heatmaps were evaluated.
    pub method: Method,
    /// The metric.
    pub metric: Metric,
    /// The mean over the images where the metric is defined (NaN if none).
    pub mean: f64,
    /// The standard deviation over those images (population, as `np.std`; 0 for one image).
    pub std: f64,
    /// How many images the mean is over.
    pub n: usize,
    /// How many images the metric is undefined for (NaN: a constant heatmap or a constant
    /// model response, where a correlation is undefined, or an all-zero heatmap for
    /// Complexity), left out of the mean.
    pub undefined: usize,
}

/// A batch of images with one method's heatmaps, for [`evaluate`].
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// The method that made the heatmaps.
    pub method: Method,
    /// The images, `[n, c, h, w]` row-major.
    pub images: &'a [f32],
    /// The images' shape.
    pub dims: [usize; 4],
    /// The heatmaps, `[n, hc, hh, hw]` row-major.
    pub heatmaps: &'a [f32],
    /// The heatmaps' shape.
    pub heatmap_dims: [usize; 4],
    /// The class each heatmap explains.
    pub targets: &'a [usize],
    /// MPRT only: for each randomised model, top-down, the heatmaps of all `n` images (each
    /// shaped as `heatmaps`), made by the same method; see
    /// [`crate::randomised_fashion_heatmaps`].
    pub randomised: Option<&'a [Vec<f32>]>,
}

impl<'a> Batch<'a> {
    /// The batch of `images` (`[n, c, h, w]`) and their attribution.
    pub fn new(images: &'a [f32], dims: [usize; 4], attribution: &'a Attribution) -> Self {
        Self {
            method: attribution.method,
            images,
            dims,
            heatmaps: &attribution.values,
            heatmap_dims: attribution.dims,
            targets: &attribution.targets,
            randomised: None,
        }
    }

    /// The same batch with the heatmaps of the randomised models (for MPRT).
    pub fn with_randomised(mut self, randomised: &'a [Vec<f32>]) -> Self {
        self.randomised = Some(randomised);
        self
    }

    /// Image `i` and its heatmap (`None` past the batch's end or where the values are too
    /// few for the shapes).
    pub fn sample(&self, i: usize) -> Option<Sample<'a>> {
        let [_, c, h, w] = self.dims;
        let [_, hc, hh, hw] = self.heatmap_dims;
        let (per, hper) = (c * h * w, hc * hh * hw);
        Some(Sample {
            image: self.images.get(i * per..(i + 1) * per)?,
            dims: [c, h, w],
            heatmap: self.heatmaps.get(i * hper..(i + 1) * hper)?,
            heatmap_dims: [hc, hh, hw],
            target: *self.targets.get(i)?,
        })
    }

    fn check(&self) -> Result<()> {
        let [n, c, h, w] = self.dims;
        let [hn, hc, hh, hw] = self.heatmap_dims;
        let input = |m: String| Err(AttributionError::Input(m));
        if self.images.len() != n * c * h * w {
            return input(format!(
                "{} image values for shape {:?}",
                self.images.len(),
                self.dims
            ));
        }
        if self.heatmaps.len() != hn * hc * hh * hw {
            return input(format!(
                "{} heatmap values for shape {:?}",
                self.heatmaps.len(),
                self.heatmap_dims
            ));
        }
        if hn != n || self.targets.len() != n {
            return input(format!(
                "{n} images, {hn} heatmaps and {} targets",
                self.targets.len()
            ));
        }
        Ok(())
    }
}

/// Heatmap preprocessing as Quantus' defaults: `normalise_by_max` (in f32, as numpy divides
/// the f32 heatmap), then `|·|` if `abs`.
fn preprocess(h: &[f32], abs: bool) -> Vec<f32> {
    let max = h.iter().fold(0f32, |m, v| m.max(v.abs()));
    h.iter()
        .map(|&v| {
            let v = if max > 0.0 { v / max } else { v };
            if abs { v.abs() } else { v }
        })
        .collect()
}

fn check_heatmap(metric: Metric, h: &[f32]) -> Result<()> {
    if h.is_empty() {
        return Err(AttributionError::Input(format!(
            "{metric}: an empty heatmap"
        )));
    }
    if let Some(i) = h.iter().position(|v| !v.is_finite()) {
        return Err(AttributionError::Input(format!(
            "{metric}: heatmap value {i} is {}",
            h[i]
        )));
    }
    Ok(())
}

/// Checks one sample for an input-space metric: shapes, finiteness, the target; returns the
/// heatmap preprocessed (normalised, not abs) and broadcast to the image's `c·h·w` features.
fn input_space(model: &dyn Summarizable, metric: Metric, s: &Sample) -> Result<Vec<f32>> {
    let [c, h, w] = s.dims;
    let [hc, hh, hw] = s.heatmap_dims;
    let desc = model.description();
    if s.image.len() != c * h * w || s.image.is_empty() {
        return Err(AttributionError::Input(format!(
            "{metric}: {} image values for shape {:?}",
            s.image.len(),
            s.dims
        )));
    }
    if c != desc.input.channels {
        return Err(AttributionError::Input(format!(
            "{metric}: images of shape {:?}: model `{}` expects {} channels",
            s.dims, desc.name, desc.input.channels
        )));
    }
    if s.heatmap.len() != hc * hh * hw {
        return Err(AttributionError::Input(format!(
            "{metric}: {} heatmap values for shape {:?}",
            s.heatmap.len(),
            s.heatmap_dims
        )));
    }
    if (hh, hw) != (h, w) || (hc != c && hc != 1) {
        return Err(unsupported_shape(metric, "this heatmap", s));
    }
    check_heatmap(metric, s.heatmap)?;
    if let Some(i) = s.image.iter().position(|v| !v.is_finite()) {
        return Err(AttributionError::Input(format!(
            "{metric}: image value {i} is {}",
            s.image[i]
        )));
    }
    if s.target >= desc.num_classes {
        return Err(AttributionError::TargetOutOfRange {
            image: 0,
            class: s.target,
            classes: desc.num_classes,
        });
    }
    let a = preprocess(s.heatmap, false);
    Ok(if hc == c {
        a
    } else {
        (0..c).flat_map(|_| a.iter().copied()).collect()
    })
}

fn unsupported_shape(metric: Metric, what: &str, s: &Sample) -> AttributionError {
    AttributionError::Unsupported {
        metric: metric.name().to_string(),
        what: what.to_string(),
        reason: format!(
            "it perturbs the input, so it needs a heatmap of shape [{c}, {h}, {w}] or \
             [1, {h}, {w}] (the input's resolution), got {:?} (Grad-CAM's maps are at a \
             layer's resolution: upsample them first with summit_attribution::upsample to \
             evaluate the upsampled map)",
            s.heatmap_dims,
            c = s.dims[0],
            h = s.dims[1],
            w = s.dims[2],
        ),
    }
}

/// Runs the model over perturbed copies of one image, `batch` at a time.
struct Scorer<'m> {
    model: &'m dyn Summarizable,
    device: &'m Device,
    dims: [usize; 3],
    target: usize,
    softmax: bool,
    batch: usize,
    rows: Vec<f32>,
    out: Vec<f64>,
}

impl<'m> Scorer<'m> {
    fn new(
        model: &'m dyn Summarizable,
        device: &'m Device,
        s: &Sample,
        softmax: bool,
        batch: usize,
    ) -> Self {
        Self {
            model,
            device,
            dims: s.dims,
            target: s.target,
            softmax,
            batch,
            rows: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Queues one image; runs the queue when it holds a batch.
    fn push(&mut self, x: &[f32]) -> Result<()> {
        self.rows.extend_from_slice(x);
        if self.rows.len() >= self.batch * x.len() {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let [c, h, w] = self.dims;
        let per = c * h * w;
        if self.rows.is_empty() || per == 0 {
            return Ok(());
        }
        let k = self.rows.len() / per;
        let data = std::mem::take(&mut self.rows);
        let x = Tensor::<4>::from_data(TensorData::new(data, [k, c, h, w]), self.device);
        let logits = to_host(self.model.forward(x)?, "logits")?;
        let classes = logits.len() / k.max(1);
        if self.target >= classes {
            return Err(AttributionError::TargetOutOfRange {
                image: 0,
                class: self.target,
                classes,
            });
        }
        for row in logits.chunks(classes) {
            let t = f64::from(row[self.target]);
            self.out.push(if self.softmax {
                let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let sum: f64 = row.iter().map(|&v| f64::from(v - max).exp()).sum();
                (t - f64::from(max)).exp() / sum
            } else {
                t
            });
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<f64>> {
        self.flush()?;
        Ok(self.out)
    }
}

/// Indices of `v` by descending value, ties in index order (a stable sort; numpy's default
/// argsort breaks ties in no documented order).
fn argsort_desc(v: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].partial_cmp(&v[a]).unwrap_or(Ordering::Equal));
    idx
}

/// Pixel flipping (Quantus `PixelFlipping`, see [`Metric::PixelFlipping`]): the curve of the
/// target's softmax probability after each step of `features_in_step` features replaced by
/// the baseline, most relevant first (ties in the heatmap in index order), and its area.
pub fn pixel_flipping(
    model: &dyn Summarizable,
    device: &Device,
    sample: &Sample,
    params: &EvaluationParams,
) -> Result<Curve> {
    params.validate()?;
    let metric = Metric::PixelFlipping;
    let a = input_space(model, metric, sample)?;
    let [_, h, w] = sample.dims;
    let step = params.features_in_step;
    if !(h * w).is_multiple_of(step) {
        return Err(AttributionError::Evaluation(format!(
            "{metric}: features_in_step {step} must divide the image's h·w = {} (Quantus' \
             assert_features_in_step)",
            h * w
        )));
    }
    let order = argsort_desc(&a);
    let mut x = sample.image.to_vec();
    let mut scorer = Scorer::new(model, device, sample, true, params.batch_size);
    for chunk in order.chunks(step) {
        let b = params.perturb_baseline.value(&x);
        for &i in chunk {
            x[i] = b;
        }
        scorer.push(&x)?;
    }
    Ok(Curve::new(scorer.finish()?))
}

/// Quantus' `get_padding_size`: `(before, after)` padding of an axis of `len` to a multiple of
/// `patch`.
fn padding(len: usize, patch: usize) -> (usize, usize) {
    let m = len % patch;
    if m == 0 {
        return (0, 0);
    }
    let total = patch - m;
    (total / 2, total.div_ceil(2))
}

/// Region perturbation (Quantus `RegionPerturbation`, see [`Metric::RegionPerturbation`]):
/// the curve of the drop of the target's softmax probability, `p(x) − p(x̃_k)`, after each
/// of `regions_evaluation` patches replaced by the baseline, and its area.
pub fn region_perturbation(
    model: &dyn Summarizable,
    device: &Device,
    sample: &Sample,
    params: &EvaluationParams,
) -> Result<Curve> {
    params.validate()?;
    let metric = Metric::RegionPerturbation;
    let a = input_space(model, metric, sample)?;
    let [c, h, w] = sample.dims;
    let p = params.patch_size;
    let (top, bottom) = padding(h, p);
    let (left, right) = padding(w, p);
    let (ph, pw) = (h + top + bottom, w + left + right);
    // the image edge-padded, the heatmap zero-padded (Quantus' _pad_array)
    let mut xp = vec![0f32; c * ph * pw];
    let mut ap = vec![0f32; c * ph * pw];
    for ch in 0..c {
        for y in 0..ph {
            let sy = y.saturating_sub(top).min(h - 1);
            for x in 0..pw {
                let sx = x.saturating_sub(left).min(w - 1);
                let src = ch * h * w + sy * w + sx;
                let dst = ch * ph * pw + y * pw + x;
                xp[dst] = sample.image[src];
                let inside = (top..top + h).contains(&y) && (left..left + w).contains(&x);
                if inside {
                    ap[dst] = a[src];
                }
            }
        }
    }
    // patches in row-major order over the padded grid, each over every channel
    let (bh, bw) = (ph / p, pw / p);
    let patch_indices = |k: usize| {
        let (by, bx) = (k / bw, k % bw);
        (0..c).flat_map(move |ch| {
            (by * p..(by + 1) * p)
                .flat_map(move |y| (bx * p..(bx + 1) * p).map(move |x| ch * ph * pw + y * pw + x))
        })
    };
    let sums: Vec<f32> = (0..bh * bw)
        .map(|k| patch_indices(k).map(|i| f64::from(ap[i])).sum::<f64>() as f32)
        .collect();
    let order = match params.region_order {
        RegionOrder::Morf => argsort_desc(&sums),
        RegionOrder::Lerf => {
            let neg: Vec<f32> = sums.iter().map(|v| -v).collect();
            argsort_desc(&neg)
        }
    };
    let mut base = Scorer::new(model, device, sample, true, 1);
    base.push(sample.image)?;
    let y0 = base.finish()?.first().copied().unwrap_or(f64::NAN);
    let mut scorer = Scorer::new(model, device, sample, true, params.batch_size);
    let mut crop = vec![0f32; c * h * w];
    for &k in order.iter().take(params.regions_evaluation) {
        let b = params.perturb_baseline.value(&xp);
        for i in patch_indices(k) {
            xp[i] = b;
        }
        for ch in 0..c {
            for y in 0..h {
                let src = ch * ph * pw + (y + top) * pw + left;
                let dst = ch * h * w + y * w;
                crop[dst..dst + w].copy_from_slice(&xp[src..src + w]);
            }
        }
        scorer.push(&crop)?;
    }
    let values = scorer.finish()?.into_iter().map(|y| y0 - y).collect();
    Ok(Curve::new(values))
}

/// FaithfulnessCorrelation's random subsets for one image: `nr_runs` subsets of `subset_size`
/// distinct feature indices out of the image's `c·h·w`, drawn from a generator seeded by
/// [`EvaluationParams::seed`] and the image's values (so an image gets the same subsets
/// whatever batch it is in).
pub fn faithfulness_subsets(image: &[f32], params: &EvaluationParams) -> Vec<Vec<usize>> {
    let n = image.len();
    let k = params.subset_size.min(n);
    let mut key = 0x9e37_79b9_7f4a_7c15u64 ^ params.seed;
    for v in image {
        key = (key ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01b3);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(key);
    let mut perm: Vec<usize> = (0..n).collect();
    (0..params.nr_runs)
        .map(|_| {
            // partial Fisher–Yates: the first k of a uniform random permutation
            for i in 0..k {
                let j = rng.random_range(i..n);
                perm.swap(i, j);
            }
            perm[..k].to_vec()
        })
        .collect()
}

/// Faithfulness correlation (Quantus `FaithfulnessCorrelation`, see
/// [`Metric::FaithfulnessCorrelation`]) with the subsets of [`faithfulness_subsets`].
pub fn faithfulness_correlation(
    model: &dyn Summarizable,
    device: &Device,
    sample: &Sample,
    params: &EvaluationParams,
) -> Result<f64> {
    params.validate()?;
    let subsets = faithfulness_subsets(sample.image, params);
    faithfulness_correlation_with_subsets(model, device, sample, &subsets, params)
}

/// Faithfulness correlation over the given subsets (indices into the image's row-major
/// `c·h·w` features; Quantus draws them with `np.random.choice(c·h·w, subset_size,
/// replace=False)`): the Pearson correlation between the normalised heatmap's sum over each
/// subset and the drop of the target's logit when the subset is set to the baseline (of the
/// unperturbed image). NaN where either side is constant (as scipy).
pub fn faithfulness_correlation_with_subsets(
    model: &dyn Summarizable,
    device: &Device,
    sample: &Sample,
    subsets: &[Vec<usize>],
    params: &EvaluationParams,
) -> Result<f64> {
    params.validate()?;
    let metric = Metric::FaithfulnessCorrelation;
    let a = input_space(model, metric, sample)?;
    let [_, h, w] = sample.dims;
    if params.subset_size >= h * w {
        return Err(AttributionError::Evaluation(format!(
            "{metric}: subset_size {} must be smaller than the image's h·w = {} (Quantus' \
             assert_value_smaller_than_input_size)",
            params.subset_size,
            h * w
        )));
    }
    if subsets.len() < 2 {
        return Err(AttributionError::Evaluation(format!(
            "{metric}: {} subsets: a correlation needs at least 2",
            subsets.len()
        )));
    }
    let n = a.len();
    if let Some(bad) = subsets.iter().flatten().find(|&&i| i >= n) {
        return Err(AttributionError::Input(format!(
            "{metric}: subset index {bad} out of range: the image has {n} features"
        )));
    }
    let b = params.perturb_baseline.value(sample.image);
    let mut base = Scorer::new(model, device, sample, false, 1);
    base.push(sample.image)?;
    let y0 = base.finish()?.first().copied().unwrap_or(f64::NAN);
    let mut scorer = Scorer::new(model, device, sample, false, params.batch_size);
    let mut sums = Vec::with_capacity(subsets.len());
    let mut x = sample.image.to_vec();
    for subset in subsets {
        for &i in subset {
            x[i] = b;
        }
        scorer.push(&x)?;
        for &i in subset {
            x[i] = sample.image[i];
        }
        sums.push(subset.iter().map(|&i| f64::from(a[i])).sum::<f64>());
    }
    let deltas: Vec<f64> = scorer.finish()?.into_iter().map(|y| y0 - y).collect();
    Ok(pearson(&sums, &deltas))
}

/// The Pearson correlation of `a` and `b` (as `scipy.stats.pearsonr`); NaN if either is
/// constant or they are shorter than 2 or of different lengths.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() || a.len() < 2 {
        return f64::NAN;
    }
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa == 0.0 || sbb == 0.0 {
        return f64::NAN;
    }
    (sab / (saa.sqrt() * sbb.sqrt())).clamp(-1.0, 1.0)
}

/// Ranks from 1, ties given their average rank (`scipy.stats.rankdata`, `method="average"`).
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].partial_cmp(&v[b]).unwrap_or(Ordering::Equal));
    let mut r = vec![0f64; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i + 1;
        while j < idx.len() && v[idx[j]] == v[idx[i]] {
            j += 1;
        }
        // positions i..j (0-based) share the mean of ranks i+1..=j
        let rank = (i + 1 + j) as f64 / 2.0;
        for &k in &idx[i..j] {
            r[k] = rank;
        }
        i = j;
    }
    r
}

/// The Spearman rank correlation of `a` and `b` (as `scipy.stats.spearmanr`: Pearson of the
/// average ranks); NaN if either is constant.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

/// Sparseness (Quantus `Sparseness`): the Gini index of the heatmap after Quantus' defaults
/// (normalised by its largest `|a|`, absolute values), `Σᵢ (2i − n − 1)·aᵢ / (n·Σ a)` over the
/// values sorted ascending, each plus 1e-7 (as Quantus). In `[0, 1)`; higher is sparser.
pub fn sparseness(heatmap: &[f32]) -> Result<f64> {
    check_heatmap(Metric::Sparseness, heatmap)?;
    let mut a: Vec<f64> = preprocess(heatmap, true)
        .into_iter()
        .map(|v| f64::from(v) + 1e-7)
        .collect();
    a.sort_by(|x, y| x.partial_cmp(y).unwrap_or(Ordering::Equal));
    let n = a.len() as f64;
    let num: f64 = a
        .iter()
        .enumerate()
        .map(|(i, v)| (2.0 * (i + 1) as f64 - n - 1.0) * v)
        .sum();
    Ok(num / (n * a.iter().sum::<f64>()))
}

/// Complexity (Quantus `Complexity`): the entropy `−Σ p ln(p + 1e-12)` of `p = |a| / Σ|a|`,
/// `a` the heatmap after Quantus' defaults (normalised, absolute values). NaN for an all-zero
/// heatmap (as Quantus). Lower is simpler.
pub fn complexity(heatmap: &[f32]) -> Result<f64> {
    check_heatmap(Metric::Complexity, heatmap)?;
    let a = preprocess(heatmap, true);
    let total: f64 = a.iter().map(|&v| f64::from(v)).sum();
    Ok(-a
        .iter()
        .map(|&v| {
            let p = f64::from(v) / total;
            p * (p + 1e-12).ln()
        })
        .sum::<f64>())
}

/// MPRT's similarity part for one image (Quantus `MPRT` with its defaults: Spearman
/// correlation, `abs=True`, normalised): `original` is the heatmap of the trained model,
/// `randomised` those of the same image and method on the model with its layers
/// re-initialised cumulatively from the top (Quantus' `layer_order="top_down"`), in that
/// order. Heatmaps of any shape, all of one length.
///
/// ```
/// use summit_attribution::mprt;
/// let original = [0.1, -0.5, 0.9, 0.0];
/// let r = mprt(&original, &[vec![0.2, 0.4, 1.0, 0.1], vec![1.0, 0.0, 0.2, 0.5]])?;
/// assert!((r.original - 1.0).abs() < 1e-12);
/// assert!((r.layers[0] - 1.0).abs() < 1e-12); // same ranks of |a|
/// assert_eq!(r.last, r.layers[1]);
/// assert!((r.average - (1.0 + r.layers[0] + r.layers[1]) / 3.0).abs() < 1e-12);
/// # Ok::<(), summit_attribution::AttributionError>(())
/// ```
pub fn mprt(original: &[f32], randomised: &[Vec<f32>]) -> Result<MprtResult> {
    check_heatmap(Metric::Mprt, original)?;
    if randomised.is_empty() {
        return Err(AttributionError::Input(
            "mprt: no heatmaps of randomised models".into(),
        ));
    }
    let prep = |h: &[f32]| -> Vec<f64> { preprocess(h, true).into_iter().map(f64::from).collect() };
    let a = prep(original);
    let mut layers = Vec::with_capacity(randomised.len());
    for (l, r) in randomised.iter().enumerate() {
        if r.len() != original.len() {
            return Err(AttributionError::Input(format!(
                "mprt: the heatmap of randomised model {l} has {} values, the original {}",
                r.len(),
                original.len()
            )));
        }
        check_heatmap(Metric::Mprt, r)?;
        layers.push(spearman(&a, &prep(r)));
    }
    let original = spearman(&a, &a);
    let average = (original + layers.iter().sum::<f64>()) / (layers.len() + 1) as f64;
    let last = layers.last().copied().unwrap_or(f64::NAN);
    Ok(MprtResult {
        original,
        layers,
        average,
        last,
    })
}

/// One metric's value for every image of the batch (NaN where undefined).
pub fn scores(
    model: &dyn Summarizable,
    device: &Device,
    batch: &Batch,
    metric: Metric,
    params: &EvaluationParams,
) -> Result<Vec<f64>> {
    params.validate()?;
    batch.check()?;
    let n = batch.dims[0];
    let what = || format!("method `{}`'s heatmaps", batch.method);
    let sample = |i: usize| {
        batch
            .sample(i)
            .ok_or_else(|| AttributionError::Input(format!("image {i} is not in the batch of {n}")))
    };
    if metric.is_input_space() && n > 0 {
        let s = sample(0)?;
        let [c, h, w] = s.dims;
        let [hc, hh, hw] = s.heatmap_dims;
        if (hh, hw) != (h, w) || (hc != c && hc != 1) {
            return Err(unsupported_shape(metric, &what(), &s));
        }
        let classes = model.description().num_classes;
        if let Some((image, &class)) = batch
            .targets
            .iter()
            .enumerate()
            .find(|(_, t)| **t >= classes)
        {
            return Err(AttributionError::TargetOutOfRange {
                image,
                class,
                classes,
            });
        }
    }
    let randomised = match (metric, batch.randomised) {
        (Metric::Mprt, None) => {
            return Err(AttributionError::Unsupported {
                metric: metric.name().into(),
                what: what(),
                reason: "MPRT needs the heatmaps of the randomised models (Batch::randomised; \
                         randomised_fashion_heatmaps makes them for the embedded FashionNet)"
                    .into(),
            });
        }
        (_, r) => r.unwrap_or(&[]),
    };
    let hper = batch.heatmap_dims[1] * batch.heatmap_dims[2] * batch.heatmap_dims[3];
    if metric == Metric::Mprt {
        if randomised.is_empty() {
            return Err(AttributionError::Input(
                "mprt: no heatmaps of randomised models".into(),
            ));
        }
        if let Some(l) = randomised.iter().position(|r| r.len() != n * hper) {
            return Err(AttributionError::Input(format!(
                "mprt: randomised model {l} has {} heatmap values, expected {} ({n} heatmaps \
                 of shape {:?})",
                randomised[l].len(),
                n * hper,
                &batch.heatmap_dims[1..]
            )));
        }
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let s = sample(i)?;
        let v = match metric {
            Metric::PixelFlipping => pixel_flipping(model, device, &s, params)?.auc,
            Metric::RegionPerturbation => region_perturbation(model, device, &s, params)?.auc,
            Metric::FaithfulnessCorrelation => faithfulness_correlation(model, device, &s, params)?,
            Metric::Mprt => {
                let rs: Vec<Vec<f32>> = randomised
                    .iter()
                    .map(|r| r[i * hper..(i + 1) * hper].to_vec())
                    .collect();
                mprt(s.heatmap, &rs)?.score(params.mprt_score)
            }
            Metric::Sparseness => sparseness(s.heatmap)?,
            Metric::Complexity => complexity(s.heatmap)?,
        };
        out.push(v);
    }
    Ok(out)
}

/// Runs `metrics` over the batch's images and heatmaps (one method): per metric, the mean and
/// standard deviation over the images. Fails, naming the metric and the method, where a
/// metric cannot evaluate the method's heatmaps (an input-space metric on Grad-CAM's maps,
/// MPRT without the randomised models' heatmaps).
pub fn evaluate(
    model: &dyn Summarizable,
    device: &Device,
    batch: &Batch,
    metrics: &[Metric],
    params: &EvaluationParams,
) -> Result<Vec<EvaluationRow>> {
    params.validate()?;
    batch.check()?;
    metrics
        .iter()
        .map(|&metric| {
            let v = scores(model, device, batch, metric, params)?;
            Ok(row(batch.method, metric, &v))
        })
        .collect()
}

/// Mean and population standard deviation of the defined values.
fn row(method: Method, metric: Metric, values: &[f64]) -> EvaluationRow {
    let ok: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let n = ok.len();
    let mean = if n == 0 {
        f64::NAN
    } else {
        ok.iter().sum::<f64>() / n as f64
    };
    let std = if n == 0 {
        f64::NAN
    } else {
        (ok.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt()
    };
    EvaluationRow {
        method,
        metric,
        mean,
        std,
        n,
        undefined: values.len() - n,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_quantus_defaults() {
        // Quantus 0.6.0 __init__ defaults: PixelFlipping(features_in_step=1,
        // perturb_baseline="black"), RegionPerturbation(patch_size=8, order="morf",
        // regions_evaluation=100), FaithfulnessCorrelation(nr_runs=100, subset_size=224),
        // MPRT(seed=42, layer_order="top_down")
        let p = EvaluationParams::default();
        assert_eq!(p.features_in_step, 1);
        assert_eq!(p.perturb_baseline, Baseline::Black);
        assert_eq!(p.patch_size, 8);
        assert_eq!(p.regions_evaluation, 100);
        assert_eq!(p.region_order, RegionOrder::Morf);
        assert_eq!(p.nr_runs, 100);
        assert_eq!(p.subset_size, 224);
        assert_eq!(p.mprt_seed, 42);
        p.validate().unwrap();
        // abs and softmax defaults per metric
        let abs: Vec<bool> = Metric::ALL.iter().map(|m| m.quantus_abs()).collect();
        assert_eq!(abs, [false, false, false, true, true, true]);
        let sm: Vec<Option<bool>> = Metric::ALL.iter().map(|m| m.quantus_softmax()).collect();
        assert_eq!(sm, [Some(true), Some(true), Some(false), None, None, None]);
    }

    #[test]
    fn names_round_trip_and_unknown_names_list_the_known() {
        for m in Metric::ALL {
            assert_eq!(m.name().parse::<Metric>().unwrap(), m);
            assert_eq!(m.quantus_class().parse::<Metric>().unwrap(), m);
            assert_eq!(m.to_string(), m.name());
        }
        assert_eq!(
            "Pixel_Flipping".parse::<Metric>().unwrap(),
            Metric::PixelFlipping
        );
        let err = "roar".parse::<Metric>().unwrap_err().to_string();
        assert!(
            err.contains("roar") && err.contains("faithfulness-correlation"),
            "{err}"
        );
        assert_eq!("mean".parse::<Baseline>().unwrap(), Baseline::Mean);
        assert_eq!("0.5".parse::<Baseline>().unwrap(), Baseline::Value(0.5));
        assert!("grey".parse::<Baseline>().is_err());
    }

    #[test]
    fn validate_names_the_bad_parameter() {
        for (p, word) in [
            (
                EvaluationParams {
                    features_in_step: 0,
                    ..Default::default()
                },
                "features_in_step",
            ),
            (
                EvaluationParams {
                    nr_runs: 1,
                    ..Default::default()
                },
                "nr_runs",
            ),
            (
                EvaluationParams {
                    patch_size: 0,
                    ..Default::default()
                },
                "patch_size",
            ),
            (
                EvaluationParams {
                    perturb_baseline: Baseline::Value(f32::NAN),
                    ..Default::default()
                },
                "perturb_baseline",
            ),
            (
                EvaluationParams {
                    batch_size: 0,
                    ..Default::default()
                },
                "batch_size",
            ),
        ] {
            let e = p.validate().unwrap_err().to_string();
            assert!(e.contains(word), "{e}");
        }
    }

    #[test]
    fn sparseness_and_complexity_by_hand() {
        // one hot: maximally sparse, zero entropy
        let mut h = vec![0f32; 100];
        h[3] = -2.0;
        let s = sparseness(&h).unwrap();
        assert!(s > 0.98, "{s}");
        assert!(complexity(&h).unwrap().abs() < 1e-9);
        // uniform: Gini 0, entropy ln n
        let u = vec![0.5f32; 100];
        assert!(sparseness(&u).unwrap().abs() < 1e-9);
        assert!((complexity(&u).unwrap() - 100f64.ln()).abs() < 1e-9);
        // abs: the sign does not matter
        let a = [0.1f32, -0.7, 0.3, 0.0];
        let b = [0.1f32, 0.7, -0.3, 0.0];
        assert_eq!(sparseness(&a).unwrap(), sparseness(&b).unwrap());
        assert_eq!(complexity(&a).unwrap(), complexity(&b).unwrap());
        // all zero: Gini 0, entropy undefined (as Quantus)
        assert!(sparseness(&[0.0; 4]).unwrap().abs() < 1e-9);
        assert!(complexity(&[0.0; 4]).unwrap().is_nan());
        // bad heatmaps are errors
        assert!(sparseness(&[]).is_err());
        assert!(complexity(&[1.0, f32::NAN]).is_err());
    }

    #[test]
    fn rank_correlations_as_scipy() {
        // scipy.stats.spearmanr([1, 2, 2, 3], [1, 3, 2, 4]) = 0.9486832980505139
        let r = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]);
        assert!((r - 0.948_683_298_050_513_8).abs() < 1e-12, "{r}");
        // scipy.stats.pearsonr([1, 2, 3, 5], [2, 1, 4, 4]).statistic = 0.7481900559272089
        let p = pearson(&[1.0, 2.0, 3.0, 5.0], &[2.0, 1.0, 4.0, 4.0]);
        assert!((p - 0.748_190_055_927_208_9).abs() < 1e-12, "{p}");
        assert!(pearson(&[1.0, 1.0], &[1.0, 2.0]).is_nan());
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn mprt_checks_its_input() {
        assert!(mprt(&[1.0, 2.0], &[]).is_err());
        let e = mprt(&[1.0, 2.0], &[vec![1.0]]).unwrap_err().to_string();
        assert!(e.contains("randomised model 0"), "{e}");
        let r = mprt(&[1.0, 2.0, 3.0], &[vec![3.0, 2.0, 1.0]]).unwrap();
        assert!((r.last + 1.0).abs() < 1e-12);
        assert!(r.average.abs() < 1e-12);
        assert_eq!(r.score(MprtScore::Last), r.last);
    }

    #[test]
    fn auc_is_numpy_trapz() {
        assert_eq!(auc(&[1.0, 3.0, 2.0]), 4.5);
        assert_eq!(auc(&[2.0]), 0.0);
        assert_eq!(auc(&[]), 0.0);
    }

    #[test]
    fn padding_is_quantus() {
        assert_eq!(padding(64, 8), (0, 0));
        assert_eq!(padding(64, 5), (0, 1));
        assert_eq!(padding(28, 8), (2, 2));
        assert_eq!(padding(3, 8), (2, 3));
    }

    #[test]
    fn subsets_are_seeded_distinct_and_in_range() {
        let img: Vec<f32> = (0..300).map(|i| i as f32).collect();
        let p = EvaluationParams {
            nr_runs: 4,
            subset_size: 50,
            ..Default::default()
        };
        let a = faithfulness_subsets(&img, &p);
        assert_eq!(a, faithfulness_subsets(&img, &p));
        assert_eq!(a.len(), 4);
        for s in &a {
            let mut u = s.clone();
            u.sort_unstable();
            u.dedup();
            assert_eq!(u.len(), 50);
            assert!(u.iter().all(|&i| i < 300));
        }
        assert_ne!(a[0], a[1]);
        let other = faithfulness_subsets(&img, &EvaluationParams { seed: 1, ..p });
        assert_ne!(a, other);
    }

    #[test]
    fn rows_leave_out_undefined_values() {
        let r = row(Method::Saliency, Metric::Complexity, &[1.0, f64::NAN, 3.0]);
        assert_eq!((r.mean, r.std, r.n, r.undefined), (2.0, 1.0, 2, 1));
    }
}
