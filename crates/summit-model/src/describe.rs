//! How a model describes itself to Summit, as data: its tapped activations, its summary
//! layers, and for each summary layer the convolution paths that lead into it from the
//! previous one. The aggregation code reads only this description and the [`Recording`] of a
//! forward pass; it knows nothing of any one architecture.

use burn::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Index of a tapped activation in a model's [`ModelDescription::taps`] and in
/// [`Recording::taps`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TapId(pub usize);

/// A tapped activation: an intermediate tensor the recording forward pass keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TapInfo {
    /// The module path of the tensor, e.g. `inception3a.branch2.0` or `maxpool3`.
    pub name: String,
    /// Its number of channels.
    pub channels: usize,
}

/// A summary layer: a layer whose channels become vertices of the attribution graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryLayer {
    /// The model's own name (`inception3a` for torchvision's GoogLeNet).
    pub name: String,
    /// The paper's name where it differs (`mixed3a`).
    pub alias: Option<String>,
    /// Number of channels.
    pub channels: usize,
    /// The tap holding the layer's output (after its ReLU, after concatenation).
    pub tap: TapId,
}

impl SummaryLayer {
    /// Whether `name` is this layer's name or alias.
    pub fn is_named(&self, name: &str) -> bool {
        self.name == name || self.alias.as_deref() == Some(name)
    }
}

/// A convolution kernel with the following batch norm folded in (SPEC §2):
/// `K'[j, i] = K[j, i] · gamma_j / sqrt(var_j + eps)` and
/// `b'_j = beta_j − mean_j · gamma_j / sqrt(var_j + eps)` (plus the conv's own bias, if any).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldedKernel {
    /// `[C_out, C_in, kh, kw]`, PyTorch layout.
    pub dims: [usize; 4],
    /// Row-major weights.
    pub weight: Vec<f32>,
    /// One bias per output channel.
    pub bias: Vec<f32>,
}

/// One convolution of a path: input tap → output channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvHop {
    /// The tensor the convolution actually receives (after any max pool before it): the
    /// input of the `paper` preset.
    pub input: TapId,
    /// The input the original Summit code used instead (the previous summary layer's output
    /// before the stage max pool, the pool branch's input without its max pool): the
    /// `summit2019` preset.
    pub original_input: TapId,
    /// The tap holding this hop's output when it ends in an inner layer (the reduce layer of
    /// a two-hop branch); `None` when it ends in the summary layer.
    pub output: Option<TapId>,
    /// The kernel, batch norm folded in.
    pub kernel: FoldedKernel,
    /// Stride `[h, w]`.
    pub stride: [usize; 2],
    /// Symmetric zero padding `[h, w]`.
    pub padding: [usize; 2],
}

/// The kind of a branch path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathKind {
    /// One convolution from the previous layer (InceptionV1's 1×1 branch; a plain CNN layer).
    Direct,
    /// Two convolutions through an inner (reduce) layer.
    TwoHop,
    /// A 3×3 max pool then a 1×1 projection.
    Pool,
}

/// A path from the previous summary layer into a block of channels of a summary layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvPath {
    /// The branch's module path, e.g. `inception3a.branch2`.
    pub name: String,
    /// What kind of path it is.
    pub kind: PathKind,
    /// One hop (direct, pool) or two (through an inner layer).
    pub hops: Vec<ConvHop>,
    /// Where the path's output channels start in the summary layer (concatenation offset).
    pub out_offset: usize,
    /// How many output channels the path contributes.
    pub out_channels: usize,
}

/// The shape of one input image a model expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Channels (3 for RGB, 1 for greyscale).
    pub channels: usize,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
}

/// Everything Summit needs to know about a model, as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelDescription {
    /// The model's name, e.g. `googlenet (torchvision)`.
    pub name: String,
    /// The input the model expects.
    pub input: InputSpec,
    /// Number of classes of its classifier.
    pub num_classes: usize,
    /// Every tapped activation, indexed by [`TapId`].
    pub taps: Vec<TapInfo>,
    /// The summary layers, first to last.
    pub layers: Vec<SummaryLayer>,
    /// `paths[l]`: the paths into summary layer `l` from layer `l − 1` (for `l = 0`, from the
    /// stem tap; the graph has no stem vertices).
    pub paths: Vec<Vec<ConvPath>>,
}

impl ModelDescription {
    /// The summary layer with this name or alias.
    pub fn layer_index(&self, name: &str) -> Option<usize> {
        self.layers.iter().position(|l| l.is_named(name))
    }

    /// The tap with this name.
    pub fn tap_index(&self, name: &str) -> Option<TapId> {
        self.taps.iter().position(|t| t.name == name).map(TapId)
    }
}

/// The result of a recording forward pass: logits plus every tapped activation, batch first,
/// staying on the device.
#[derive(Debug, Clone)]
pub struct Recording {
    /// `[B, num_classes]` logits.
    pub logits: Tensor<2>,
    /// One `[B, C, H, W]` tensor per tap, indexed by [`TapId`].
    pub taps: Vec<Tensor<4>>,
}

impl Recording {
    /// The tensor of one tap.
    pub fn tap(&self, id: TapId) -> &Tensor<4> {
        &self.taps[id.0]
    }
}

/// A model Summit can summarise: it describes itself and records its activations.
pub trait Summarizable {
    /// The model's description (taps, summary layers, paths).
    fn description(&self) -> &ModelDescription;
    /// Plain forward pass: `[B, C, H, W]` images to `[B, num_classes]` logits.
    fn forward(&self, images: Tensor<4>) -> Result<Tensor<2>>;
    /// Recording forward pass: logits plus every tap.
    fn record(&self, images: Tensor<4>) -> Result<Recording>;
    /// A content hash of the model's weights (64 hexadecimal digits): equal for equal
    /// weights, whatever file they were loaded from ([`crate::weights_hash`] of the burn
    /// module). Runs are resumed and merged only across equal hashes.
    fn weights_hash(&self) -> Result<String>;
}

/// Reads a tensor back to the host as f32 values.
pub fn to_host<const D: usize>(t: Tensor<D>, what: &str) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| crate::error::ModelError::Data {
            what: what.to_string(),
            reason: format!("{e:?}"),
        })
}
