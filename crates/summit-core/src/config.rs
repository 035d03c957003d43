//! Presets (SPEC §6) and the explicit configuration of a pipeline run.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use summit_activation::Selection;
use summit_data::Preprocess;
use summit_graph::{Embedding, GraphParams, NonSemanticParams, UmapParams};
use summit_influence::InfluenceGeometry;
use summit_model::{ConvHop, ModelDescription, TapId};

use crate::error::{CoreError, Result};

/// A named set of parameters (SPEC §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Preset {
    /// The paper (default): activations by top mass 3 %, influences top-5 at each convolution's
    /// own stride and padding on the tensor the convolution actually receives, PageRank
    /// selection 7.5 % per layer.
    #[default]
    Paper,
    /// Reproduces the published Summit data: top mass 1 % with InceptionV1's non-semantic
    /// channels excluded (mixed3a 67, 190; mixed3b 390, 399, 412), influences at stride 3 with
    /// TensorFlow "SAME" padding on the original code's hop inputs, selection with relaxation.
    Summit2019,
}

impl Preset {
    /// The preset's name as used on command lines and in manifests (`paper`, `summit2019`).
    pub fn name(&self) -> &'static str {
        match self {
            Preset::Paper => "paper",
            Preset::Summit2019 => "summit2019",
        }
    }

    /// The input mapping for Lucid's InceptionV1 under this preset (SPEC §6): resize to
    /// 224×224 without a crop, then `summit2019` feeds the original Summit code's
    /// `2·pixel − 372` ([`Preprocess::lucid`]) and `paper` the model's own value range,
    /// `pixel − 117` ([`LUCID_PIXEL_SCALE`](summit_model::LUCID_PIXEL_SCALE),
    /// [`LUCID_PIXEL_OFFSET`](summit_model::LUCID_PIXEL_OFFSET)). Open the dataset with it.
    ///
    /// ```
    /// use summit_core::{Preprocess, Preset};
    /// assert_eq!(Preset::Summit2019.lucid_preprocess(), Preprocess::lucid());
    /// assert_eq!(
    ///     Preset::Paper.lucid_preprocess(),
    ///     Preprocess::Lucid { scale: 1.0, offset: -117.0 }
    /// );
    /// ```
    pub fn lucid_preprocess(self) -> Preprocess {
        match self {
            Preset::Summit2019 => Preprocess::lucid(),
            Preset::Paper => Preprocess::Lucid {
                scale: summit_model::LUCID_PIXEL_SCALE,
                offset: summit_model::LUCID_PIXEL_OFFSET,
            },
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "paper" => Ok(Preset::Paper),
            "summit2019" => Ok(Preset::Summit2019),
            other => Err(CoreError::Config(format!(
                "unknown preset `{other}`: expected `paper` or `summit2019`"
            ))),
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which tensor a convolution hop's influences are computed on (SPEC §2, "Hop inputs").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum HopInput {
    /// The tensor the convolution actually receives ([`ConvHop::input`]; `paper`).
    #[default]
    Actual,
    /// The original Summit code's shortcut ([`ConvHop::original_input`]; `summit2019`).
    Original,
}

impl HopInput {
    /// The tap a hop reads under this choice.
    pub fn tap(&self, hop: &ConvHop) -> TapId {
        match self {
            HopInput::Actual => hop.input,
            HopInput::Original => hop.original_input,
        }
    }
}

/// Where a pass computes the influences (SPEC §2). Both compute the same maxima `L` and the
/// same counts, except where two influences of one (image, output channel) are within float
/// rounding of each other at the top-k boundary (a device's convolution sums in its own order;
/// see `summit_influence::device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum InfluenceOn {
    /// Hop inputs read back to the host and the fused CPU kernel (rayon): the faster on CPU
    /// (measured in `docs/performance.md`). The default.
    #[default]
    Host,
    /// On the model's device with burn tensor operations (grouped convolution and spatial max,
    /// chunked under a 256 MiB budget); only the `[B, C_out, C_in]` maxima are read back. Meant
    /// for GPU runs, where it avoids reading every hop input back to the host.
    Device,
}

/// Channels excluded from one summary layer, named by the layer's name or alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExcludedChannels {
    /// The summary layer's name or alias (e.g. `mixed3a`).
    pub layer: String,
    /// The excluded channel indices.
    pub channels: Vec<usize>,
    /// The model these channel indices belong to, as a prefix of its name (e.g.
    /// `inceptionv1 (lucid)` for the `summit2019` exclusions); `None` = any model. Another
    /// model's channels mean something else, so the pipeline refuses a model whose name does
    /// not start with it.
    #[serde(default)]
    pub model: Option<String>,
}

/// The model the `summit2019` preset's channel exclusions belong to: Lucid's InceptionV1
/// (its name prefix, see [`ExcludedChannels::model`]).
pub const SUMMIT2019_EXCLUSIONS_MODEL: &str = summit_model::LUCID_MODEL_NAME;

/// How classes are embedded in 2D for the overview.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum EmbeddingMethod {
    /// UMAP with the cosine metric, 15 neighbours, min_dist 0.1 (SPEC §4).
    #[default]
    Umap,
    /// PCA, the fast fallback.
    Pca,
}

impl EmbeddingMethod {
    /// The summit-graph embedding this stands for.
    pub fn embedding(&self) -> Embedding {
        match self {
            EmbeddingMethod::Umap => Embedding::Umap(UmapParams::default()),
            EmbeddingMethod::Pca => Embedding::Pca,
        }
    }
}

impl std::str::FromStr for EmbeddingMethod {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "umap" => Ok(EmbeddingMethod::Umap),
            "pca" => Ok(EmbeddingMethod::Pca),
            other => Err(CoreError::Config(format!(
                "unknown embedding `{other}`: expected `umap` or `pca`"
            ))),
        }
    }
}

/// Non-semantic channels (beyond the paper): channels among the top channels of nearly every
/// class ([`summit_graph::non_semantic_channels`]). They are detected from `A` after the pass
/// and reported (in [`crate::Analysis::non_semantic`], the manifest's parameters and the run
/// report); with [`exclude`](Self::exclude) they are also removed from every attribution graph.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NonSemanticConfig {
    /// Detection parameters; `None` turns detection off.
    pub detect: Option<NonSemanticParams>,
    /// Remove the flagged channels from the attribution graphs (PageRank runs without them).
    /// `A` and `I` are unchanged: to also keep them out of the counts of a pass, pass the
    /// reported channels as [`Config::excluded`] of a second run.
    pub exclude: bool,
}

impl Default for NonSemanticConfig {
    /// Detection on with [`NonSemanticParams::default`], exclusion off.
    fn default() -> Self {
        Self {
            detect: Some(NonSemanticParams::default()),
            exclude: false,
        }
    }
}

/// Periodic checkpoints of the partial aggregates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointConfig {
    /// The checkpoint file (written atomically: a temporary file in the same directory, synced,
    /// then renamed over this path). When it exists at the start of a pass, the pass resumes
    /// from it.
    pub path: PathBuf,
    /// Write a checkpoint every this many batches (at least 1); one is also written when a pass
    /// stops early ([`Config::max_batches`]).
    pub every_batches: usize,
}

/// Every parameter of a pipeline run, explicit. Build one from a [`Preset`] and override
/// fields as needed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// The preset this configuration started from (recorded in the manifest).
    pub preset: Preset,
    /// Images per batch (default 64). Results do not depend on it.
    pub batch_size: usize,
    /// Channel selection for the activation counts `A` (SPEC §1).
    pub activation_selection: Selection,
    /// Input selection for the influence counts `I` (SPEC §2; top-5).
    pub influence_selection: Selection,
    /// Hop geometry of influences: each convolution's own, or stride 3 TF-SAME.
    pub influence_geometry: InfluenceGeometry,
    /// Which tensor influences are computed on.
    pub hop_input: HopInput,
    /// Where influences are computed: host (default) or the model's device.
    #[serde(default)]
    pub influence_on: InfluenceOn,
    /// Excluded channels, by summary layer name or alias. Every named layer must exist and
    /// every channel be in range, or the pipeline refuses to start.
    pub excluded: Vec<ExcludedChannels>,
    /// Dataset examples kept per channel (default 10).
    pub examples_per_channel: usize,
    /// PageRank and vertex selection parameters.
    pub graph: GraphParams,
    /// Detection (and optional exclusion) of non-semantic channels after the pass.
    pub non_semantic: NonSemanticConfig,
    /// Motifs mined across the classes' attribution graphs (`motifs.json`).
    #[serde(default)]
    pub motifs: summit_graph::MotifParams,
    /// Embedding of the class overview.
    pub embedding: EmbeddingMethod,
    /// Seed of the embedding.
    pub seed: u64,
    /// Process only shard `i` of `n` of the dataset ([`summit_data::shard`]).
    pub shard: Option<(usize, usize)>,
    /// Process only images of these classes (labels); `None` = all. Graphs are built for these
    /// classes only.
    pub classes: Option<Vec<usize>>,
    /// Process only the first `n` images (after the shard and class restrictions).
    pub limit: Option<usize>,
    /// Checkpoints; `None` = none.
    pub checkpoint: Option<CheckpointConfig>,
    /// Aggregate two halves of every class's images as well (split by a hash of the dataset
    /// index, [`stability_half`](crate::stability_half)) and report how stable each graph is
    /// (the Jaccard index of the halves' vertex sets). Not with checkpoints or shards.
    #[serde(default)]
    pub stability: bool,
    /// Stop a pass after this many batches of this call (a checkpoint is written first when
    /// checkpoints are on); the next call resumes. `None` = run to the end.
    pub max_batches: Option<usize>,
    /// Batches decoded ahead of the model (at least 1).
    pub prefetch: usize,
    /// Show a progress bar on stderr (only when stderr is a terminal).
    pub progress: bool,
    /// How many images the pass picks per class (most confident, most confidently
    /// misclassified) and samples for comparing models ([`summit_influence::PickParams`]).
    #[serde(default)]
    pub picks: summit_influence::PickParams,
    /// Per-image attribution heatmaps of the picked images and of the dataset examples of the
    /// exported graphs' vertices (`None`: off). On by default (Grad-CAM).
    #[serde(default)]
    pub attribution: Option<AttributionConfig>,
    /// Feature visualizations of the exported graphs' vertices (or of every channel) for the
    /// web view and the Summit format (`None`: off). On by default, with a CPU step budget
    /// ([`FeatureVisConfig::default`]).
    #[serde(default)]
    pub feature_vis: Option<FeatureVisConfig>,
    /// Faithfulness by ablation of every class's graph (SPEC §3.1; `None`: off). On by default
    /// (100 images per class within a CPU budget). A shard run leaves it to a merge with the model
    /// ([`Pipeline::merge_shards`](crate::Pipeline::merge_shards), `inception_imagenet --merge`),
    /// which has the whole graphs; [`merge_outputs`](crate::merge_outputs) has no model and
    /// measures none.
    #[serde(default)]
    pub faithfulness: Option<crate::faithfulness::FaithfulnessConfig>,
}

/// Which attribution heatmaps a run writes (SPEC §4.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributionConfig {
    /// The methods, each written for every attributed image (default Grad-CAM).
    pub methods: Vec<summit_attribution::Method>,
    /// The methods' parameters.
    pub params: summit_attribution::AttributionParams,
    /// At most this many images get heatmaps: every class's picks first (class by class), then
    /// the dataset examples of the graphs' vertices (default 2000).
    pub max_images: usize,
    /// Whether the dataset examples of the exported graphs' vertices get heatmaps too (so that
    /// the web view's per-image panel opens from them).
    pub vertex_examples: bool,
    /// Quantus' heatmap metrics of every method over some of the picked images (SPEC §4.4;
    /// `None`: off, the default).
    #[serde(default)]
    pub evaluate: Option<crate::evaluation::EvaluationConfig>,
}

impl Default for AttributionConfig {
    fn default() -> Self {
        Self {
            methods: vec![summit_attribution::Method::GradCam],
            params: summit_attribution::AttributionParams::default(),
            max_images: 2000,
            vertex_examples: true,
            evaluate: None,
        }
    }
}

/// Which channels get feature visualizations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureVisMode {
    /// Every vertex of every exported attribution graph (each channel once).
    Vertices,
    /// Every channel of every summary layer.
    All,
}

impl std::str::FromStr for FeatureVisMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "vertices" => Ok(Self::Vertices),
            "all" => Ok(Self::All),
            other => Err(format!(
                "unknown feature-visualization mode `{other}` (known: vertices, all, off)"
            )),
        }
    }
}

/// How a run makes feature visualizations (SPEC §4.1): for each channel a plain
/// visualization and `params.diversity` (4) diversity images, cached by model weights, layer,
/// channel and parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureVisConfig {
    /// Which channels.
    pub mode: FeatureVisMode,
    /// The optimisation's parameters (Lucid's, except the step budget, see
    /// [`FeatureVisConfig::default`]).
    pub params: summit_featvis::FeatureVisParams,
    /// Where finished visualizations are kept, so that a re-run or a resumed run does not
    /// redo them (`None`: no cache).
    pub cache: Option<std::path::PathBuf>,
    /// At most this many channels (`None`: all): the vertices with the largest summed count
    /// over the graphs first (ties: layer, then channel ascending); the others show their top
    /// dataset example in the web view. A CPU budget for ImageNet-size runs
    /// ([`FEATURE_VIS_CHANNELS`]).
    #[serde(default)]
    pub max_channels: Option<usize>,
}

/// The default channel budget of a run's feature visualizations: at 224² a channel's 5 images
/// take about 30 s at 32 steps on 2 cores, so 64 channels take about half an hour; the
/// embedded model's graphs have 57 vertex channels, all visualised.
pub const FEATURE_VIS_CHANNELS: usize = 64;

/// The default step budget of a run's feature visualizations: a CPU budget. On the embedded
/// model's 57 vertex channels (5 images each) a step costs about 1.7 s on 2 cores, so 32 steps
/// take about a minute and Lucid's 512 about 16 minutes; raise it with
/// `--feature-vis-steps 512` (or on a GPU). Finished channels are cached.
pub const FEATURE_VIS_STEPS: usize = 32;

impl Default for FeatureVisConfig {
    /// Vertices, Lucid's parameters with [`FEATURE_VIS_STEPS`] steps, at most
    /// [`FEATURE_VIS_CHANNELS`] channels, no cache.
    fn default() -> Self {
        Self {
            mode: FeatureVisMode::Vertices,
            params: summit_featvis::FeatureVisParams {
                steps: FEATURE_VIS_STEPS,
                ..summit_featvis::FeatureVisParams::default()
            },
            cache: None,
            max_channels: Some(FEATURE_VIS_CHANNELS),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::preset(Preset::Paper)
    }
}

impl Config {
    /// The configuration of a preset, with batch size 64, 10 examples per channel, UMAP, seed 0,
    /// the whole dataset, no checkpoints, progress on.
    pub fn preset(preset: Preset) -> Self {
        let base = Self {
            preset,
            batch_size: 64,
            activation_selection: Selection::TopMass(0.03),
            influence_selection: Selection::TopK(5),
            influence_geometry: InfluenceGeometry::LayerOwn,
            hop_input: HopInput::Actual,
            influence_on: InfluenceOn::Host,
            excluded: Vec::new(),
            examples_per_channel: summit_activation::DEFAULT_EXAMPLES_PER_CHANNEL,
            graph: GraphParams::paper(),
            non_semantic: NonSemanticConfig::default(),
            motifs: summit_graph::MotifParams::default(),
            embedding: EmbeddingMethod::Umap,
            seed: 0,
            shard: None,
            classes: None,
            limit: None,
            checkpoint: None,
            max_batches: None,
            stability: false,
            prefetch: 1,
            progress: true,
            picks: summit_influence::PickParams::default(),
            attribution: Some(AttributionConfig::default()),
            feature_vis: Some(FeatureVisConfig::default()),
            faithfulness: Some(crate::faithfulness::FaithfulnessConfig::default()),
        };
        match preset {
            Preset::Paper => base,
            Preset::Summit2019 => Self {
                activation_selection: Selection::TopMass(0.01),
                influence_geometry: InfluenceGeometry::TfSame { stride: [3, 3] },
                hop_input: HopInput::Original,
                // the exclusions live beside the Lucid model (summit-model's lucid.rs)
                excluded: summit_model::LUCID_SUMMIT2019_EXCLUSIONS
                    .iter()
                    .map(|(layer, channels)| ExcludedChannels {
                        layer: (*layer).into(),
                        channels: channels.to_vec(),
                        model: Some(SUMMIT2019_EXCLUSIONS_MODEL.into()),
                    })
                    .collect(),
                graph: GraphParams::summit2019(),
                ..base
            },
        }
    }

    /// The `paper` preset.
    pub fn paper() -> Self {
        Self::preset(Preset::Paper)
    }

    /// The `summit2019` preset.
    pub fn summit2019() -> Self {
        Self::preset(Preset::Summit2019)
    }

    /// The excluded channels of every summary layer of `desc`, sorted and deduplicated.
    /// Errors when a named layer does not exist, a channel is out of range, or the channels
    /// belong to another model ([`ExcludedChannels::model`]; the
    /// `summit2019` exclusions are InceptionV1's: clear [`Config::excluded`] for other models).
    pub fn excluded_per_layer(&self, desc: &ModelDescription) -> Result<Vec<Vec<usize>>> {
        let mut out = vec![Vec::new(); desc.layers.len()];
        for ex in &self.excluded {
            if let Some(m) = &ex.model
                && !desc.name.starts_with(m.as_str())
            {
                return Err(CoreError::Config(format!(
                    "excluded channels {:?} of layer `{}` are channels of model `{m}`, but this \
                     model is `{}`, whose channels are others (the summit2019 exclusions are \
                     Lucid InceptionV1's): clear `Config::excluded` for this model",
                    ex.channels, ex.layer, desc.name
                )));
            }
            let l = desc.layer_index(&ex.layer).ok_or_else(|| {
                CoreError::Config(format!(
                    "excluded channels name summary layer `{}`, which model `{}` does not have \
                     (its layers: {}); the summit2019 exclusions are InceptionV1's — clear \
                     `Config::excluded` for other models",
                    ex.layer,
                    desc.name,
                    layer_names(desc)
                ))
            })?;
            let layer = &desc.layers[l];
            if let Some(&c) = ex.channels.iter().find(|&&c| c >= layer.channels) {
                return Err(CoreError::Config(format!(
                    "excluded channel {c} of layer `{}` is out of range: the layer of model `{}` \
                     has {} channels; the summit2019 exclusions are InceptionV1's — clear \
                     `Config::excluded` for other models",
                    ex.layer, desc.name, layer.channels
                )));
            }
            out[l].extend_from_slice(&ex.channels);
        }
        for v in &mut out {
            v.sort_unstable();
            v.dedup();
        }
        Ok(out)
    }

    /// Checks the parameters that do not depend on the model or dataset.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(CoreError::Config("batch size must be at least 1".into()));
        }
        if let Some(f) = &self.faithfulness {
            f.validate()?;
        }
        if let Some(c) = &self.checkpoint
            && c.every_batches == 0
        {
            return Err(CoreError::Config(
                "checkpoint interval must be at least 1 batch".into(),
            ));
        }
        if let Some((i, n)) = self.shard
            && (n == 0 || i >= n)
        {
            return Err(CoreError::Config(format!(
                "shard {i} of {n} does not exist (shards are numbered 0..n, n >= 1)"
            )));
        }
        for sel in [&self.activation_selection, &self.influence_selection] {
            sel.validate()
                .map_err(|e| CoreError::Config(format!("selection {sel:?}: {e}")))?;
        }
        Ok(())
    }
}

fn layer_names(desc: &ModelDescription) -> String {
    desc.layers
        .iter()
        .map(|l| match &l.alias {
            Some(a) => format!("{} ({a})", l.name),
            None => l.name.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
