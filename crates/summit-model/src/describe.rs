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

/// What a hop does (SPEC §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum HopKind {
    /// A convolution (any kernel, stride, dilation, padding and groups).
    #[default]
    Conv,
    /// A skip connection: output channel `j` receives input channel `j` unchanged. Described
    /// as a depthwise 1×1 convolution with unit weights (so that its influence is exactly
    /// `max X_j`), at stride 1 without padding.
    Identity,
}

/// One hop of a path: a convolution or an identity, input tap → output channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvHop {
    /// The convolution's module path where the model knows it (`layer1.0.conv2` in an ONNX
    /// export), `identity` for a skip connection; may be empty.
    pub name: String,
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
    /// The kernel, batch norm folded in: `[C_out, C_in / groups, kh, kw]`.
    pub kernel: FoldedKernel,
    /// Stride `[h, w]`.
    pub stride: [usize; 2],
    /// Zero padding `[top, bottom, left, right]`.
    pub padding: [usize; 4],
    /// Dilation `[h, w]` of the kernel taps.
    pub dilation: [usize; 2],
    /// Groups of the convolution (1: dense; `C_in`: depthwise).
    pub groups: usize,
    /// A convolution or an identity.
    pub kind: HopKind,
}

impl ConvHop {
    /// A dense convolution hop with symmetric padding `[h, w]` and no dilation.
    pub fn conv(
        input: TapId,
        original_input: TapId,
        output: Option<TapId>,
        kernel: FoldedKernel,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Self {
        Self {
            name: String::new(),
            input,
            original_input,
            output,
            kernel,
            stride,
            padding: [padding[0], padding[0], padding[1], padding[1]],
            dilation: [1, 1],
            groups: 1,
            kind: HopKind::Conv,
        }
    }

    /// An identity (skip) hop over `channels` channels read from `input`.
    pub fn identity(input: TapId, output: Option<TapId>, channels: usize) -> Self {
        Self {
            name: "identity".into(),
            input,
            original_input: input,
            output,
            kernel: FoldedKernel {
                dims: [channels, 1, 1, 1],
                weight: vec![1.0; channels],
                bias: vec![0.0; channels],
            },
            stride: [1, 1],
            padding: [0; 4],
            dilation: [1, 1],
            groups: channels,
            kind: HopKind::Identity,
        }
    }

    /// The hop's input channels (`C_in / groups` of the kernel times the groups).
    pub fn in_channels(&self) -> usize {
        self.kernel.dims[1] * self.groups
    }

    /// The hop's output channels.
    pub fn out_channels(&self) -> usize {
        self.kernel.dims[0]
    }

    /// A convolution hop from a burn `Conv2d` and its folded kernel, named `what`. Padding
    /// must be explicit or valid: `Same` depends on the input size and is refused, naming
    /// `what`.
    pub fn from_burn(
        conv: &burn::nn::conv::Conv2d,
        kernel: FoldedKernel,
        input: TapId,
        original_input: TapId,
        output: Option<TapId>,
        what: &str,
    ) -> Result<Self> {
        let padding = match conv.padding {
            burn::nn::PaddingConfig2d::Explicit(t, l, b, r) => [t, b, l, r],
            burn::nn::PaddingConfig2d::Valid => [0; 4],
            burn::nn::PaddingConfig2d::Same => {
                return Err(crate::error::ModelError::Describe(format!(
                    "convolution `{what}` uses `Same` padding, which depends on the input size: \
                     give it explicit padding to describe it"
                )));
            }
        };
        Ok(Self {
            name: what.to_string(),
            input,
            original_input,
            output,
            kernel,
            stride: conv.stride,
            padding,
            dilation: conv.dilation,
            groups: conv.groups,
            kind: HopKind::Conv,
        })
    }
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
    /// A chain of any hops (a residual block's convolution branch, a chain through blocks
    /// that are not summary layers).
    Chain,
    /// A skip connection (ending in an identity hop) that sums with other paths.
    Skip,
}

/// A path from the previous summary layer into a block of channels of a summary layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvPath {
    /// The branch's module path, e.g. `inception3a.branch2`.
    pub name: String,
    /// What kind of path it is.
    pub kind: PathKind,
    /// One hop (direct, pool, an identity skip) or more (through inner layers).
    pub hops: Vec<ConvHop>,
    /// Where the path's output channels start in the summary layer (concatenation offset).
    /// Paths whose channels overlap sum into them (a residual Add, SPEC §2.1).
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

    /// The summary layers' names, comma-separated (for error messages naming what exists).
    pub fn layer_names(&self) -> String {
        self.layers
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
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

/// What a forward pass hands each tapped activation to: the sink returns the tensor the pass
/// goes on with (the same one, or a replacement of the same shape, e.g. a detached copy that
/// requires gradients so that Grad-CAM can read the gradient at a summary layer).
pub trait TapSink {
    /// Sees tap `id` as the pass produces it; the pass continues with the returned tensor.
    fn tap(&mut self, id: TapId, t: Tensor<4>) -> Tensor<4>;
}

impl<F: FnMut(TapId, Tensor<4>) -> Tensor<4>> TapSink for F {
    fn tap(&mut self, id: TapId, t: Tensor<4>) -> Tensor<4> {
        self(id, t)
    }
}

/// A [`TapSink`] that keeps a copy of every tap (what [`Summarizable::record`] returns).
#[derive(Debug, Default)]
pub struct TapStore(pub Vec<Option<Tensor<4>>>);

impl TapStore {
    /// A store for `n` taps.
    pub fn new(n: usize) -> Self {
        Self(vec![None; n])
    }

    /// The stored taps, failing (naming the tap) if the pass missed one.
    pub fn into_taps(self, desc: &ModelDescription) -> Result<Vec<Tensor<4>>> {
        self.0
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                t.ok_or_else(|| crate::error::ModelError::Data {
                    what: desc.taps.get(i).map(|t| t.name.clone()).unwrap_or_default(),
                    reason: "internal: tap not recorded by the forward pass".into(),
                })
            })
            .collect()
    }
}

impl TapSink for TapStore {
    fn tap(&mut self, id: TapId, t: Tensor<4>) -> Tensor<4> {
        if let Some(slot) = self.0.get_mut(id.0) {
            *slot = Some(t.clone());
        }
        t
    }
}

/// A [`TapSink`] that passes every tap on unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTaps;

impl TapSink for NoTaps {
    fn tap(&mut self, _id: TapId, t: Tensor<4>) -> Tensor<4> {
        t
    }
}

/// Runs `pass` with a sink that keeps tap `tap` and a `done()` that says whether it has been
/// kept (a pass may stop there), and returns the kept tap, or an error naming the tap where the
/// pass did not produce it. The early-stopping [`Summarizable::forward_to`] of the native
/// models is built on it.
pub(crate) fn capture_tap(
    tap: TapId,
    pass: impl FnOnce(&mut dyn TapSink, &dyn Fn() -> bool),
) -> Result<Tensor<4>> {
    let got = std::cell::RefCell::new(None);
    let mut sink = |id: TapId, t: Tensor<4>| {
        if id == tap {
            *got.borrow_mut() = Some(t.clone());
        }
        t
    };
    let done = || got.borrow().is_some();
    pass(&mut sink, &done);
    got.into_inner()
        .ok_or_else(|| crate::error::ModelError::Data {
            what: format!("tap {}", tap.0),
            reason: "the forward pass did not produce this tap".into(),
        })
}

/// A model Summit can summarise: it describes itself and records its activations. Models are
/// `Send + Sync`: the aggregation pass runs the forward pass of the next batch on a thread of
/// its own while it aggregates the current one.
pub trait Summarizable: Send + Sync {
    /// The model's description (taps, summary layers, paths).
    fn description(&self) -> &ModelDescription;
    /// Forward pass that hands every tap to `sink` as it is produced and continues with what
    /// the sink returns (see [`TapSink`]): the one forward pass a model implements.
    fn forward_taps(&self, images: Tensor<4>, sink: &mut dyn TapSink) -> Result<Tensor<2>>;
    /// Plain forward pass: `[B, C, H, W]` images to `[B, num_classes]` logits
    /// ([`Summarizable::forward_taps`] with every tap passed on).
    fn forward(&self, images: Tensor<4>) -> Result<Tensor<2>> {
        self.forward_taps(images, &mut NoTaps)
    }
    /// Recording forward pass: logits plus every tap ([`Summarizable::forward_taps`] into a
    /// [`TapStore`]).
    fn record(&self, images: Tensor<4>) -> Result<Recording> {
        let desc = self.description();
        let mut store = TapStore::new(desc.taps.len());
        let logits = self.forward_taps(images, &mut store)?;
        Ok(Recording {
            logits,
            taps: store.into_taps(desc)?,
        })
    }
    /// A content hash of the model's weights (64 hexadecimal digits): equal for equal
    /// weights, whatever file they were loaded from ([`crate::weights_hash`] of the burn
    /// module). Runs are resumed and merged only across equal hashes.
    fn weights_hash(&self) -> Result<String>;

    /// The activations of tap `tap` for `images`. Where [`Summarizable::accepts_any_size`]
    /// says so, the images may have other heights and widths than the description's input
    /// (feature visualization feeds transformed images at their own size, SPEC §4.1), and a
    /// model may stop once the tap is computed. By default: [`Summarizable::forward_taps`],
    /// keeping the tap.
    fn forward_to(&self, images: Tensor<4>, tap: TapId) -> Result<Tensor<4>> {
        let mut result = Ok(());
        let out = capture_tap(tap, |sink, _| {
            result = self.forward_taps(images, sink).map(|_| ());
        });
        result.and(out)
    }

    /// Whether [`Summarizable::forward_to`] takes images of other heights and widths than the
    /// description's input (a network whose classifier follows a global pooling, or one that
    /// stops at the tap). `false` by default.
    fn accepts_any_size(&self) -> bool {
        false
    }

    /// The model as one operator graph, which layer-wise relevance propagation walks (SPEC
    /// §4.2). ONNX models are their graph; the native models build theirs from their weights
    /// (once, on first use). A model without one answers an error naming it.
    fn graph(&self) -> Result<GraphRef<'_>> {
        Err(crate::ModelError::Unsupported(format!(
            "model `{}` has no operator graph (relevance propagation needs one)",
            self.description().name
        )))
    }
}

/// A model's operator graph ([`Summarizable::graph`]).
#[derive(Clone)]
pub struct GraphRef<'a> {
    /// The graph, runnable and walkable.
    pub model: &'a crate::OnnxModel,
    /// Which graph output each of the model's classes is (`None`: the same order), for a
    /// model that shows some outputs of its graph ([`crate::SelectOutputs`]).
    pub outputs: Option<Vec<usize>>,
}

impl<'a> GraphRef<'a> {
    /// The graph `model`, every output a class in its own order.
    pub fn whole(model: &'a crate::OnnxModel) -> Self {
        Self {
            model,
            outputs: None,
        }
    }
}

impl std::fmt::Debug for GraphRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphRef")
            .field("model", &self.model.description().name)
            .field("outputs", &self.outputs.as_ref().map(Vec::len))
            .finish()
    }
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
