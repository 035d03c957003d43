//! What the pipeline hands to the exporter.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use summit_graph::AttributionGraph;
use summit_influence::Aggregates;

/// One input the pipeline skipped (unreadable or undecodable image, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedInput {
    /// Position of the input in the dataset's listing.
    pub index: u64,
    /// Where it came from (a file path, `archive:member`, ...).
    pub source: String,
    /// Why it was skipped.
    pub reason: String,
}

/// The dataset a run went over.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// The dataset's name (e.g. `imagenet-val`, `fashion-mnist-test`).
    pub name: String,
    /// Where it was read from (a directory or file path).
    pub source: String,
    /// How many images were aggregated.
    pub images_seen: u64,
    /// The inputs that were skipped, with the reason.
    pub skipped: Vec<SkippedInput>,
    /// A fingerprint of the whole dataset (its files, labels and class order), when known:
    /// shards merge only with shards of the same fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// One class of the dataset, by class index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassInfo {
    /// Human-readable name (e.g. `white_wolf`, `T-shirt/top`).
    pub name: String,
    /// The ImageNet synset id (e.g. `n02114548`), when known; the Summit
    /// format writes `""` otherwise.
    pub synset: Option<String>,
}

impl ClassInfo {
    /// A class without a synset.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            synset: None,
        }
    }
}

/// One summary layer, first (closest to the input) to last.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerDesc {
    /// The model's own name of the layer (e.g. `inception3a`); the
    /// attribution graphs and the aggregates use this name.
    pub name: String,
    /// The paper's name (e.g. `mixed3a`), used as the layer key of the
    /// Summit-format files when given.
    pub paper_name: Option<String>,
    /// Channel count `C_l`.
    pub channels: usize,
}

impl LayerDesc {
    /// A layer without a paper alias.
    pub fn new(name: impl Into<String>, channels: usize) -> Self {
        Self {
            name: name.into(),
            paper_name: None,
            channels,
        }
    }

    /// The name the Summit format uses: the paper's name if given, else the
    /// model's.
    pub fn summit_name(&self) -> &str {
        self.paper_name.as_deref().unwrap_or(&self.name)
    }
}

/// The class overview of one summary layer (SPEC §4).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OverviewLayer {
    /// `C × C` cosine similarity of the classes' `A_l` rows.
    pub similarity: Vec<Vec<f64>>,
    /// One 2D point per class.
    pub embedding: Vec<[f64; 2]>,
}

/// The class overview of every summary layer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    /// How the embeddings were made (e.g. `umap`, `pca`).
    pub method: String,
    /// One entry per summary layer, first to last.
    pub layers: Vec<OverviewLayer>,
}

/// Wall-clock timings of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// `(phase, seconds)` in the order they ran (e.g. `("aggregate", 812.4)`).
    pub phases: Vec<(String, f64)>,
    /// Aggregation throughput, images per second.
    pub images_per_second: Option<f64>,
}

/// How a summary layer's feature-map cells map to input pixels, to crop
/// dataset-example patches.
///
/// The arg-max cell `(h, w)` (flat index `h * W + w` with
/// `[H, W] = layer_hw`) has its centre at input position
/// `((h + 0.5) * input_h / H, (w + 0.5) * input_w / W)`. The crop is the
/// `receptive_field × receptive_field` square centred there, shifted to lie
/// inside the image (the whole image if the receptive field is larger), then
/// resized to the patch size. If the image the source returns is not
/// `input_hw`, coordinates are scaled to its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchGeometry {
    /// The layer's feature-map size `[H, W]`.
    pub layer_hw: [usize; 2],
    /// The model input size `[H, W]` the feature map refers to.
    pub input_hw: [usize; 2],
    /// Side of the square receptive field in input pixels.
    pub receptive_field: usize,
}

/// Where dataset-example images come from.
pub struct PatchSource<'a> {
    /// The model-input image (after resize and crop, before normalisation)
    /// of a dataset image id, as RGB; `None` if it cannot be loaded (the
    /// patch is then left out and counted in the summary).
    pub image: &'a dyn Fn(u64) -> Option<image::RgbImage>,
    /// One geometry per summary layer, first to last.
    pub geometry: Vec<PatchGeometry>,
    /// Side of the written PNG patches in pixels (e.g. 64).
    pub size: u32,
    /// How many examples per channel to write (at most the aggregates'
    /// `examples_per_channel`; e.g. 10).
    pub per_channel: usize,
}

/// Everything [`write_output`](crate::write_output) writes.
///
/// Class `c` is index `c` of `classes`, of the aggregates' classes and of
/// `graphs`; layer `l` is index `l` of `layers`, of the aggregates' layers
/// (same names), of every graph's layers (same names) and of
/// `overview.layers`. These are checked before anything is written.
pub struct ExportInput<'a> {
    /// Model name (e.g. `inception_v1_torchvision`).
    pub model: String,
    /// Content hash of the model's weights (BLAKE3, hexadecimal), when known.
    pub weights_hash: Option<String>,
    /// Content hash of the model's description, when known.
    pub description_hash: Option<String>,
    /// The dataset and what was skipped.
    pub dataset: DatasetInfo,
    /// Classes, by class index.
    pub classes: Vec<ClassInfo>,
    /// Summary layers, first to last.
    pub layers: Vec<LayerDesc>,
    /// The aggregates (A, I, dataset examples, prediction statistics).
    pub aggregates: &'a Aggregates,
    /// One attribution graph per class, by class index.
    pub graphs: &'a [AttributionGraph],
    /// Motifs shared across the graphs (written as `motifs.json`).
    pub motifs: &'a summit_graph::MotifSet,
    /// Per class, the stability of its graph (runs with `--stability`; else `None`).
    pub stability: Option<&'a [Option<crate::manifest::ClassStability>]>,
    /// The ablation of every class's graph (SPEC §3.1), when measured: written as
    /// [`FAITHFULNESS_FILE`](crate::FAITHFULNESS_FILE), summarised per class in the manifest and
    /// shown in the view.
    pub faithfulness: Option<&'a crate::faithfulness::FaithfulnessReport>,
    /// The class overview.
    pub overview: Overview,
    /// The preset's name (`paper`, `summit2019`, ...).
    pub preset: String,
    /// Every parameter of the run, as the pipeline describes it.
    pub parameters: serde_json::Value,
    /// Versions of the software that made the run (e.g. `summit-rs`,
    /// `burn`); the exporter adds its own as `summit-export`.
    pub versions: BTreeMap<String, String>,
    /// Timings of the run's phases.
    pub timings: Timings,
    /// The source of dataset-example patches, if any.
    pub patches: Option<PatchSource<'a>>,
}

/// What [`write_output`](crate::write_output) should write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteOptions {
    /// Replace an existing summit-rs output directory (one holding a
    /// `manifest.json` this crate wrote). A non-empty directory without
    /// that manifest is never touched.
    pub force: bool,
    /// Also write the original Summit frontend's `data/` files (SPEC §5).
    pub summit_format: bool,
    /// Write dataset-example patches (needs [`ExportInput::patches`]).
    pub patches: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            force: false,
            summit_format: true,
            patches: true,
        }
    }
}
