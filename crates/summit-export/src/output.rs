//! [`write_output`]: the whole output directory of a run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use summit_graph::AttributionGraph;

use crate::atomic::{create_dir, write_atomic, write_atomic_unsynced, write_json};
use crate::error::{ExportError, Result};
use crate::input::{ClassInfo, ExportInput, LayerDesc, WriteOptions};
use crate::manifest::{
    ClassStats, MANIFEST_FORMAT, MANIFEST_FORMAT_VERSION, MARKER_FILE, Manifest,
};
use crate::stage::OutputStage;
use crate::{patches, summit, view};

/// Number of bins of the per-class probability histograms.
pub const HISTOGRAM_BINS: usize = 10;

/// What [`write_output`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputSummary {
    /// The output directory.
    pub dir: PathBuf,
    /// The manifest as written to `manifest.json`.
    pub manifest: Manifest,
}

/// One class's attribution graph file `graphs/{index}-{name}.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphFile {
    /// Class index.
    pub class: usize,
    /// Class name.
    pub name: String,
    /// The attribution graph (layers first to last, the model's layer names).
    pub graph: AttributionGraph,
}

/// One layer of `overview.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OverviewLayerFile {
    /// The model's layer name.
    pub name: String,
    /// The paper's name, if any.
    pub paper_name: Option<String>,
    /// `similar[a]`: the classes most similar to class `a` in this layer (cosine similarity
    /// of their `A` rows), at most [`VIEW_NEIGHBOURS`](crate::VIEW_NEIGHBOURS) of them (every
    /// class when there are no more), as `(class, similarity)` by similarity descending, ties
    /// by class ascending; `a` itself included. (The full `C × C` matrix is not written: at
    /// 1000 classes it was 35 MB of JSON; it follows from `A` in `aggregates.bin`.)
    pub similar: Vec<Vec<(usize, f32)>>,
    /// One 2D point per class.
    pub embedding: Vec<[f64; 2]>,
}

/// The content of `overview.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OverviewFile {
    /// Embedding method.
    pub method: String,
    /// Class names by index.
    pub classes: Vec<String>,
    /// One entry per summary layer, first to last.
    pub layers: Vec<OverviewLayerFile>,
}

/// A file-name-safe form of `name`: ASCII letters, digits, `-` and `_`
/// kept, anything else replaced by `_`, at most 64 characters.
///
/// ```
/// assert_eq!(summit_export::sanitize_name("T-shirt/top"), "T-shirt_top");
/// ```
pub fn sanitize_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if s.is_empty() { "_".to_string() } else { s }
}

/// The relative path of class `index`'s graph file.
pub fn graph_file_name(index: usize, class: &ClassInfo) -> String {
    format!("graphs/{index}-{}.json", sanitize_name(&class.name))
}

/// The relative directory of layer `index`'s patches.
pub fn patch_dir_name(index: usize, layer: &LayerDesc) -> String {
    format!("patches/{index}-{}", sanitize_name(&layer.name))
}

fn input_err(what: impl Into<String>, expected: impl ToString, got: impl ToString) -> ExportError {
    ExportError::Input {
        what: what.into(),
        expected: expected.to_string(),
        got: got.to_string(),
    }
}

/// Checks that the parts of `input` agree (see [`ExportInput`]).
pub fn validate_input(input: &ExportInput<'_>) -> Result<()> {
    let params = input.aggregates.params();
    let c = input.classes.len();
    if params.num_classes != c {
        return Err(input_err(
            "number of classes (aggregates vs classes)",
            c,
            params.num_classes,
        ));
    }
    if input.graphs.len() != c {
        return Err(input_err(
            "number of attribution graphs (one per class)",
            c,
            input.graphs.len(),
        ));
    }
    if params.layers.len() != input.layers.len() {
        return Err(input_err(
            "number of summary layers (aggregates vs layers)",
            input.layers.len(),
            params.layers.len(),
        ));
    }
    let mut summit_names = BTreeSet::new();
    for (l, (desc, agg)) in input.layers.iter().zip(&params.layers).enumerate() {
        if desc.name != agg.name || desc.channels != agg.channels {
            return Err(input_err(
                format!("summary layer {l} (name, channels) in the aggregates"),
                format!("({}, {})", desc.name, desc.channels),
                format!("({}, {})", agg.name, agg.channels),
            ));
        }
        if !summit_names.insert(desc.summit_name().to_string()) {
            return Err(input_err(
                format!("summary layer {l}'s Summit name"),
                "a name unique among the layers",
                desc.summit_name(),
            ));
        }
    }
    for (class, g) in input.graphs.iter().enumerate() {
        let cname = &input.classes[class].name;
        if g.layers.len() != input.layers.len() {
            return Err(input_err(
                format!("layers of the attribution graph of class {class} '{cname}'"),
                input.layers.len(),
                g.layers.len(),
            ));
        }
        for (l, (gl, desc)) in g.layers.iter().zip(&input.layers).enumerate() {
            if gl.name != desc.name {
                return Err(input_err(
                    format!(
                        "name of layer {l} of the attribution graph of class {class} '{cname}'"
                    ),
                    &desc.name,
                    &gl.name,
                ));
            }
            for v in &gl.vertices {
                if v.channel as usize >= desc.channels {
                    return Err(input_err(
                        format!(
                            "channel of a vertex of layer '{}' in the graph of class {class} '{cname}'",
                            desc.name
                        ),
                        format!("< {}", desc.channels),
                        v.channel,
                    ));
                }
            }
        }
    }
    if input.overview.layers.len() != input.layers.len() {
        return Err(input_err(
            "overview layers",
            input.layers.len(),
            input.overview.layers.len(),
        ));
    }
    for (ol, desc) in input.overview.layers.iter().zip(&input.layers) {
        if ol.embedding.len() != c {
            return Err(input_err(
                format!("embedding points of layer '{}'", desc.name),
                c,
                ol.embedding.len(),
            ));
        }
        if let Some(p) = ol
            .embedding
            .iter()
            .position(|p| !p[0].is_finite() || !p[1].is_finite())
        {
            return Err(input_err(
                format!("embedding point of class {p} in layer '{}'", desc.name),
                "finite coordinates",
                format!("{:?}", ol.embedding[p]),
            ));
        }
        if ol.similarity.len() != c || ol.similarity.iter().any(|r| r.len() != c) {
            return Err(input_err(
                format!("similarity matrix of layer '{}'", desc.name),
                format!("{c} x {c}"),
                format!(
                    "{} rows of lengths {:?}",
                    ol.similarity.len(),
                    ol.similarity.iter().map(Vec::len).collect::<BTreeSet<_>>()
                ),
            ));
        }
    }
    if let Some(p) = &input.patches {
        if p.geometry.len() != input.layers.len() {
            return Err(input_err(
                "patch geometries (one per layer)",
                input.layers.len(),
                p.geometry.len(),
            ));
        }
        if p.size == 0 {
            return Err(input_err("patch size", "> 0", 0));
        }
    }
    Ok(())
}

/// The top-level entries summit-rs writes in an output directory (replaced by `--force`;
/// anything else in a replaced output is yours and moves into the new one).
pub(crate) const OWNED_ENTRIES: &[&str] = &[
    "manifest.json",
    "aggregates.bin",
    "overview.json",
    "motifs.json",
    "images.json",
    "images",
    "attribution",
    "feature-vis.json",
    "feature-vis",
    "index.html",
    "view",
    "screenshot.png",
    "graphs",
    "patches",
    "data",
    "comparisons",
    MARKER_FILE,
];

/// Per-class probability histograms and statistics.
fn class_stats(input: &ExportInput<'_>) -> Vec<ClassStats> {
    let agg = input.aggregates;
    input
        .classes
        .iter()
        .enumerate()
        .map(|(c, info)| {
            let images = agg.class_images()[c];
            let correct = agg.class_top1_correct()[c];
            ClassStats {
                index: c,
                name: info.name.clone(),
                synset: info.synset.clone(),
                images,
                top1_correct: correct,
                accuracy: (images > 0).then(|| correct as f64 / images as f64),
                probability_histogram: agg
                    .true_class_histogram(c, HISTOGRAM_BINS)
                    .unwrap_or_default(),
                graph_file: graph_file_name(c, info),
                graph_vertices: input.graphs[c].num_vertices(),
                graph_edges: input.graphs[c].num_edges(),
                stability: input.stability.and_then(|s| s.get(c).cloned().flatten()),
                faithfulness: input
                    .faithfulness
                    .and_then(|f| f.class(c))
                    .map(crate::manifest::ClassFaithfulnessBrief::of),
            }
        })
        .collect()
}

/// Writes the output directory of a run (see the crate documentation for
/// the layout). Refuses a non-empty `dir` unless `options.force` and `dir`
/// is a previous summit-rs output. Every file is written into an
/// [`OutputStage`] beside `dir`, `manifest.json` last, and the whole directory
/// is swapped into place: a kill leaves the previous output or the new one.
/// To add files of your own before the manifest, use [`write_output_files`].
pub fn write_output(
    dir: &Path,
    input: &ExportInput<'_>,
    options: &WriteOptions,
) -> Result<OutputSummary> {
    validate_input(input)?;
    let stage = OutputStage::begin(dir, options.force)?;
    let manifest = write_output_files(stage.dir(), input, options)?;
    let manifest = stage.commit(manifest)?;
    Ok(OutputSummary {
        dir: dir.to_path_buf(),
        manifest,
    })
}

/// Writes every file of the output directory but `manifest.json` into `dir` (an
/// [`OutputStage`]'s directory) and returns the manifest to pass to
/// [`OutputStage::commit`] once the caller's own files are written too.
pub fn write_output_files(
    dir: &Path,
    input: &ExportInput<'_>,
    options: &WriteOptions,
) -> Result<Manifest> {
    validate_input(input)?;
    let mut files: BTreeSet<String> = BTreeSet::new();
    write_atomic(
        &dir.join(MARKER_FILE),
        format!("{MANIFEST_FORMAT} {MANIFEST_FORMAT_VERSION}\n").as_bytes(),
    )?;
    files.insert(MARKER_FILE.to_string());

    let agg_path = dir.join("aggregates.bin");
    input
        .aggregates
        .save(&agg_path)
        .map_err(|source| ExportError::Aggregates {
            path: agg_path.clone(),
            source,
        })?;
    files.insert("aggregates.bin".into());

    create_dir(&dir.join("graphs"))?;
    for (c, (info, graph)) in input.classes.iter().zip(input.graphs).enumerate() {
        let rel = graph_file_name(c, info);
        write_json(
            &dir.join(&rel),
            &GraphFile {
                class: c,
                name: info.name.clone(),
                graph: graph.clone(),
            },
        )?;
        files.insert(rel);
    }

    // each class's most similar classes per layer, sorted once for overview.json and the view
    let neighbours = view::neighbours(input);
    let overview = OverviewFile {
        method: input.overview.method.clone(),
        classes: input.classes.iter().map(|c| c.name.clone()).collect(),
        layers: input
            .overview
            .layers
            .iter()
            .zip(&input.layers)
            .zip(&neighbours)
            .map(|((o, d), near)| OverviewLayerFile {
                name: d.name.clone(),
                paper_name: d.paper_name.clone(),
                similar: near
                    .iter()
                    .map(|row| row.iter().map(|&(j, s)| (j, s as f32)).collect())
                    .collect(),
                embedding: o.embedding.clone(),
            })
            .collect(),
    };
    write_json(&dir.join("overview.json"), &overview)?;
    files.insert("overview.json".into());

    write_json(
        &dir.join("motifs.json"),
        &MotifsFile {
            layers: input.layers.iter().map(|l| l.name.clone()).collect(),
            set: input.motifs,
        },
    )?;
    files.insert("motifs.json".into());

    let stats = class_stats(input);

    if let Some(f) = input.faithfulness {
        write_json(&dir.join(crate::FAITHFULNESS_FILE), f)?;
        files.insert(crate::FAITHFULNESS_FILE.into());
    }

    let (patch_stats, patch_counts) = match (&input.patches, options.patches) {
        (Some(src), true) => {
            let (st, counts, written) =
                patches::write_patches(dir, input, src, options.summit_format)?;
            files.extend(written);
            (Some(st), counts)
        }
        _ => (None, BTreeMap::new()),
    };

    if options.summit_format {
        files.extend(summit::write_summit_format(dir, input, &stats)?);
    }

    create_dir(&dir.join(view::CLASS_DATA_DIR))?;
    for (c, script) in view::class_scripts(input)? {
        let rel = view::class_data_file(c);
        write_atomic_unsynced(&dir.join(&rel), script.as_bytes())?;
        files.insert(rel);
    }
    // the per-image data of the page: none here (the pipeline's attribution step, when on,
    // writes it over this)
    let rel = format!("{}/images.js", view::CLASS_DATA_DIR);
    write_atomic_unsynced(&dir.join(&rel), b"summitImageData(null);\n")?;
    files.insert(rel);
    // the feature visualizations of the page: none here (the pipeline's feature-visualization
    // step, when on, writes them over this)
    let rel = format!("{}/featvis.js", view::CLASS_DATA_DIR);
    write_atomic_unsynced(&dir.join(&rel), b"summitFeatVisData(null);\n")?;
    files.insert(rel);
    let html = view::render(input, &stats, &patch_counts)?;
    write_atomic(&dir.join("index.html"), html.as_bytes())?;
    files.insert("index.html".into());

    let total_images: u64 = stats.iter().map(|s| s.images).sum();
    let total_correct: u64 = stats.iter().map(|s| s.top1_correct).sum();
    let mut versions = input.versions.clone();
    versions.insert("summit-export".into(), env!("CARGO_PKG_VERSION").into());
    files.insert("manifest.json".into());
    let manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        format_version: MANIFEST_FORMAT_VERSION,
        model: input.model.clone(),
        model_weights_hash: input.weights_hash.clone(),
        model_description_hash: input.description_hash.clone(),
        dataset: input.dataset.clone(),
        preset: input.preset.clone(),
        parameters: input.parameters.clone(),
        layers: input.layers.clone(),
        classes: stats,
        total_images,
        accuracy: (total_images > 0).then(|| total_correct as f64 / total_images as f64),
        versions,
        timings: input.timings.clone(),
        overview_method: input.overview.method.clone(),
        patches: patch_stats,
        summit_format: options.summit_format,
        faithfulness: input.faithfulness.map(|f| f.summary.clone()),
        files: files.into_iter().collect(),
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    Ok(manifest)
}

/// `motifs.json`: the motifs shared across the classes' attribution graphs, with the layer
/// names their layer indices refer to.
#[derive(Debug, Clone, Serialize)]
pub struct MotifsFile<'a> {
    /// Layer names, first to last.
    pub layers: Vec<String>,
    /// The motifs and how they were mined.
    #[serde(flatten)]
    pub set: &'a summit_graph::MotifSet,
}

/// Reads back a graph file written by [`write_output`].
pub fn read_graph(path: &Path) -> Result<GraphFile> {
    crate::atomic::read_json(path)
}
