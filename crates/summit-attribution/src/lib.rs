//! # summit-attribution
//!
//! Per-image attribution for every model summit-model loads (SPEC §4.2): why did the model
//! give this image this score? Nine methods with Captum's definitions (the parity tests
//! compare with Captum 0.9): [`Method::Saliency`], [`Method::InputXGradient`],
//! [`Method::SmoothGrad`], [`Method::IntegratedGradients`], [`Method::GradCam`] (at any summary
//! layer, the last by default), [`Method::GuidedBackprop`], [`Method::Occlusion`],
//! [`Method::Deconvnet`] and [`Method::GuidedGradCam`]; and layer-wise relevance propagation
//! ([`lrp`]: zennit 0.5.1's [`Rule`]s and [`Composite`]s, rules by layer name, the parity tests
//! compare with zennit) through the model's operator graph. Each explains a class logit or, as a
//! neuron target ([`Attributor::attribute_neuron`]), one channel of a summary layer. All run
//! batched ([`AttributionParams::batch_size`] images per pass), deterministic for a seed.
//! [`heatmap`] and [`overlay`] turn an attribution into a picture.
//!
//! How faithful a method's heatmaps are (SPEC §4.4): [`evaluate()`] runs Quantus 0.6's metrics
//! ([`Metric`]: PixelFlipping, RegionPerturbation, FaithfulnessCorrelation, MPRT, Sparseness,
//! Complexity, with Quantus' definitions and defaults; the parity tests compare with Quantus
//! 0.6.0) over a batch and reports each metric's mean and spread ([`EvaluationRow`]).
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use summit_attribution::{AttributionParams, Attributor, Method, heatmap};
//! use summit_model::{FashionInception, burn};
//!
//! let device = Device::flex();
//! let model = FashionInception::embedded(&device)?;
//! let attributor = Attributor::new(&model, AttributionParams::default(), &device)?;
//! let x = Tensor::<4>::random([1, 1, 28, 28], burn::tensor::Distribution::Default, &device);
//! let attr = attributor.attribute("grad-cam".parse()?, &x, &[9])?;
//! let map = heatmap(&attr, 0, 28, 28);
//! assert!(map.iter().all(|v| (0.0..=1.0).contains(v)));
//! # Ok::<(), summit_attribution::AttributionError>(())
//! ```
#![warn(missing_docs)]

mod attribute;
mod error;
pub mod evaluate;
mod heatmap;
pub mod lrp;
mod method;
mod quadrature;
mod randomise;

pub use attribute::{Attribution, Attributor};
pub use error::{AttributionError, Result};
pub use evaluate::{
    Baseline, Batch, Curve, EvaluationParams, EvaluationRow, Metric, MprtResult, MprtScore,
    RegionOrder, Sample, auc, complexity, evaluate, faithfulness_correlation,
    faithfulness_correlation_with_subsets, faithfulness_subsets, mprt, pearson, pixel_flipping,
    region_perturbation, scores, sparseness, spearman,
};
pub use heatmap::{
    colormap, grid, heatmap, heatmap_image, layer_heatmap, overlay, upsample, write_png,
};
pub use lrp::{Composite, LrpRules, NameMap, Rule};
pub use method::{AttributionParams, Method};
pub use quadrature::gauss_legendre;
pub use randomise::{
    FashionRandomisation, fashion_modules, randomised_fashion_heatmaps, reset_module,
};
