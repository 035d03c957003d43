//! `manifest.json`: what a run was and where its files are.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::atomic::read_json;
use crate::error::{ExportError, Result};
use crate::input::{DatasetInfo, LayerDesc, Timings};

/// The value of [`Manifest::format`].
pub const MANIFEST_FORMAT: &str = "summit-rs-output";
/// The version of the output directory layout this build writes.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;
/// The marker file written first into an output directory; `--force` only
/// replaces directories holding it (or a manifest).
pub const MARKER_FILE: &str = ".summit-rs-output";

/// Per-class statistics (SPEC §4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassStats {
    /// Class index.
    pub index: usize,
    /// Class name.
    pub name: String,
    /// ImageNet synset, if known.
    pub synset: Option<String>,
    /// Number of images of the class that were aggregated.
    pub images: u64,
    /// Number of them classified correctly (top-1).
    pub top1_correct: u64,
    /// `top1_correct / images`, `None` for a class without images.
    pub accuracy: Option<f64>,
    /// Histogram of the predicted probability of the true class, 10 equal
    /// bins over `[0, 1]` (the last one closed).
    pub probability_histogram: Vec<u64>,
    /// The class's attribution graph file, relative to the output directory.
    pub graph_file: String,
    /// Number of vertices of its attribution graph.
    pub graph_vertices: usize,
    /// Number of edges of its attribution graph.
    pub graph_edges: usize,
    /// How stable its graph is under a split of its images (runs with `--stability`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stability: Option<ClassStability>,
    /// Whether its graph carries the class, by ablation (SPEC §3.1; the full figures are in
    /// `faithfulness.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faithfulness: Option<ClassFaithfulnessBrief>,
}

/// The faithfulness figures of one class in the manifest (SPEC §3.1; see
/// [`ClassFaithfulness`](crate::ClassFaithfulness) for their definitions).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassFaithfulnessBrief {
    /// Images of the sample.
    pub images: usize,
    /// Why the class was not ablated, if it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Drop in mean `p(c)` with the graph ablated.
    pub drop: Option<f64>,
    /// Mean drop over the random draws.
    pub random_drop: Option<f64>,
    /// The share of random draws dropping `p(c)` at least as much as the graph.
    pub p_random: Option<f64>,
    /// Drop with the activation baseline ablated.
    pub activation_drop: Option<f64>,
    /// Graph drop ÷ mean random drop.
    pub drop_ratio: Option<f64>,
    /// Mean drop on the most similar classes' images.
    pub selectivity_drop: Option<f64>,
    /// Area under the deletion curve.
    pub deletion_area: Option<f64>,
}

impl ClassFaithfulnessBrief {
    /// The brief of a class's full figures.
    pub fn of(c: &crate::ClassFaithfulness) -> Self {
        Self {
            images: c.images,
            note: c.note.clone(),
            drop: c.graph.as_ref().map(|g| g.drop),
            random_drop: c.random.as_ref().map(|r| r.mean_drop),
            p_random: c.random.as_ref().map(|r| r.p_random),
            activation_drop: c.activation.as_ref().map(|a| a.drop),
            drop_ratio: c.drop_ratio,
            selectivity_drop: c.selectivity.as_ref().map(|s| s.drop),
            deletion_area: c.deletion.as_ref().map(|d| d.area),
        }
    }
}

/// The stability of a class's attribution graph: its images split into two halves by a hash
/// of their dataset index, both halves aggregated in the same pass, and the Jaccard index of
/// the graphs' vertex sets (`(layer, channel)` pairs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassStability {
    /// Images of the class in each half.
    pub images: [u64; 2],
    /// Jaccard index of the two halves' vertex sets (1 when both are empty).
    pub halves: f64,
    /// Jaccard index of the whole graph's vertex set with each half's.
    pub whole_vs_half: [f64; 2],
}

/// Dataset-example patches written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchStats {
    /// Side of the PNG patches in pixels.
    pub size: u32,
    /// Examples per channel requested.
    pub per_channel: usize,
    /// Channels with patches (vertices of some class's attribution graph).
    pub channels: usize,
    /// PNG files written.
    pub written: usize,
    /// Examples left out because the source could not load the image.
    pub missing_images: usize,
}

/// The content of `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// [`MANIFEST_FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// Model name.
    pub model: String,
    /// Content hash of the model's weights (BLAKE3, hexadecimal; `None` in outputs of
    /// earlier versions). Shards merge only with equal hashes.
    #[serde(default)]
    pub model_weights_hash: Option<String>,
    /// Content hash of the model's description (layers, paths, folded kernels).
    #[serde(default)]
    pub model_description_hash: Option<String>,
    /// Dataset, images seen and skipped inputs.
    pub dataset: DatasetInfo,
    /// Preset name.
    pub preset: String,
    /// Run parameters as the pipeline gave them.
    pub parameters: serde_json::Value,
    /// Summary layers, first to last.
    pub layers: Vec<LayerDesc>,
    /// Per-class statistics, by class index.
    pub classes: Vec<ClassStats>,
    /// Total images over all classes.
    pub total_images: u64,
    /// Overall top-1 accuracy, `None` without images.
    pub accuracy: Option<f64>,
    /// Software versions.
    pub versions: BTreeMap<String, String>,
    /// Timings of the run.
    pub timings: Timings,
    /// The embedding method of the overview.
    pub overview_method: String,
    /// Dataset-example patches, if written.
    pub patches: Option<PatchStats>,
    /// Whether the Summit-format `data/` files were written.
    pub summit_format: bool,
    /// The summary of the graphs' faithfulness over classes (SPEC §3.1), when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faithfulness: Option<crate::FaithfulnessSummary>,
    /// Every file written, relative to the output directory, sorted.
    pub files: Vec<String>,
    /// Seconds since the Unix epoch when the manifest was written.
    pub created_unix: u64,
}

/// Reads `dir/manifest.json` and checks that it is a summit-rs manifest of
/// a version this build reads.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join("manifest.json");
    let m: Manifest = read_json(&path).map_err(|e| match e {
        ExportError::Json { source, .. } => ExportError::Manifest {
            path: path.clone(),
            reason: format!("not a summit-rs manifest: {source}"),
        },
        other => other,
    })?;
    if m.format != MANIFEST_FORMAT {
        return Err(ExportError::Manifest {
            path,
            reason: format!("format is '{}', expected '{MANIFEST_FORMAT}'", m.format),
        });
    }
    if m.format_version > MANIFEST_FORMAT_VERSION {
        return Err(ExportError::Manifest {
            path,
            reason: format!(
                "format version {} is newer than this build's {MANIFEST_FORMAT_VERSION}",
                m.format_version
            ),
        });
    }
    Ok(m)
}
