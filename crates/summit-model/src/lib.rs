//! # summit-model
//!
//! CNN image classifiers for Summit, built on [burn](https://burn.dev) 0.22, and the
//! description each one gives of itself so that Summit's aggregation code can work on any of
//! them without knowing its architecture:
//!
//! - [`GoogLeNet`]: InceptionV1 exactly as torchvision's `googlenet` (loaded from a
//!   torchvision `.pth` or `.safetensors` state dict).
//! - [`LucidInceptionV1`]: InceptionV1 as Lucid defines it (the Caffe-trained "inception5h"
//!   graph with local response normalisation that Summit analysed), exactly as torch-lucent's
//!   `InceptionV1`, loaded from a lucent state dict.
//! - [`FashionInception`]: the small inception network trained on Fashion-MNIST that ships
//!   with the project as its embedded default.
//! - [`Summarizable`]: the trait a model implements: a [`ModelDescription`] (tapped
//!   activations, summary layers, convolution paths with batch norm folded into their
//!   kernels) and a recording forward pass returning a [`Recording`] (logits plus every tap,
//!   on the device).
//! - [`SelectOutputs`]: a model seen through some of its outputs, reordered (Lucid's 1008
//!   outputs as the 1000 ImageNet classes in sorted-synset order).
//! - [`StateDict`]: reading `.pth`/`.safetensors` files as named f32 tensors with errors that
//!   name the missing or unexpected key or the mismatched shape.
//!
//! ```
//! use summit_model::{FashionInception, Summarizable};
//! use burn::tensor::{Device, Tensor};
//!
//! let device = Device::flex();
//! let model = FashionInception::embedded(&device)?;
//! let desc = model.description();
//! assert_eq!(desc.layers.len(), 3);
//! let rec = model.record(Tensor::zeros([2, 1, 28, 28], &device))?;
//! assert_eq!(rec.logits.dims(), [2, 10]);
//! assert_eq!(rec.tap(desc.layers[0].tap).dims(), [2, 104, 14, 14]);
//! # Ok::<(), summit_model::ModelError>(())
//! ```
#![warn(missing_docs)]

pub mod ablate;
pub mod act;
pub mod blocks;
pub mod convgrad;
pub mod describe;
pub mod error;
pub mod fashion;
pub mod googlenet;
pub mod identity;
pub mod kernels;
pub mod lucid;
pub mod onnx;
pub mod outputs;
pub mod train;
pub mod weights;

pub use ablate::{AblationFill, ChannelSet, forward_ablated, forward_ablated_shared};
pub use burn;
pub use describe::{
    ConvHop, ConvPath, FoldedKernel, GraphRef, HopKind, InputSpec, ModelDescription, NoTaps,
    PathKind, Recording, Summarizable, SummaryLayer, TapId, TapInfo, TapSink, TapStore, to_host,
};
pub use error::{ModelError, Result};
pub use fashion::{FASHION_CLASSES, FASHION_MEAN, FASHION_STD, FashionInception, FashionNet};
pub use googlenet::{GOOGLENET_BN_EPS, GoogLeNet, GoogLeNetOptions};
pub use identity::{ModelIdentity, description_hash, weights_hash};
pub use kernels::pool;
pub(crate) use kernels::{conv, im2col};
pub use lucid::{
    LUCID_MODEL_NAME, LUCID_NUM_CLASSES, LUCID_PIXEL_OFFSET, LUCID_PIXEL_SCALE,
    LUCID_SUMMIT2019_EXCLUSIONS, LucidInceptionV1, local_response_norm,
};
pub use onnx::relevance::{
    LinearKind, LinearLayer, LinearRelevance, RelevanceSeed, divide_stabilized, stabilize,
};
pub use onnx::{FASHION_RESNET_ONNX, OnnxModel, OnnxOptions};
pub use outputs::SelectOutputs;
pub use weights::{HostTensor, StateDict};
