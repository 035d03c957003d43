//! # summit-attribution
//!
//! Per-image attribution for every model summit-model loads (SPEC §4.2): why did the model
//! give this image this score? Seven methods, with Captum's definitions (the parity tests
//! compare with Captum 0.9): [`Method::Saliency`], [`Method::InputXGradient`],
//! [`Method::SmoothGrad`], [`Method::IntegratedGradients`], [`Method::GradCam`] (at any summary
//! layer, the last by default), [`Method::GuidedBackprop`] and [`Method::Occlusion`]. All run on
//! burn's autodiff, batched ([`AttributionParams::batch_size`] images per pass), deterministic
//! for a seed. [`heatmap`] and [`overlay`] turn an attribution into a picture.
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
mod heatmap;
mod method;
mod quadrature;

pub use attribute::{Attribution, Attributor};
pub use error::{AttributionError, Result};
pub use heatmap::{colormap, heatmap, overlay, upsample, write_png};
pub use method::{AttributionParams, Method};
pub use quadrature::gauss_legendre;
