//! # summit-export
//!
//! Everything a Summit run writes (SPEC §4, §5): the project's own output
//! directory, the original Summit frontend's JSON format, and a
//! self-contained interactive web view. This crate knows nothing of how the
//! aggregates were computed: the pipeline hands it an [`ExportInput`].
//!
//! ## The output directory ([`write_output`])
//!
//! | path | content |
//! |---|---|
//! | `manifest.json` | [`Manifest`]: model, dataset (source, images seen, skipped inputs with reasons), preset and parameters, layers (model and paper names, channels), per-class images, top-1 accuracy and probability histogram, versions, timings, the list of files. Written last: a directory with a manifest is complete. |
//! | `aggregates.bin` | the binary, mergeable aggregates ([`summit_influence::Aggregates::save`]) |
//! | `graphs/{class}-{name}.json` | one [`GraphFile`] per class: the attribution graph as summit-graph defines it |
//! | `overview.json` | [`OverviewFile`]: per layer each class's most similar classes (at most [`VIEW_NEIGHBOURS`]) and the 2D embedding |
//! | `patches/{layer}-{name}/{channel}-{rank}.png` | dataset-example patches of every channel that is a vertex of some class's attribution graph: the receptive-field crop ([`crop_box`]) of its top images (rank 0 = strongest) |
//! | `data/imagenet.json`, `data/ag/ag-{class}.json` | the original Summit frontend's format (below) |
//! | `index.html`, `view/class-{c}.js` | the web view and its per-class data (below) |
//! | `comparisons/{a}-vs-{b}.json` | class comparisons, written separately by [`write_comparison`] |
//!
//! The whole directory is written beside its place ([`OutputStage`]), with
//! `manifest.json` last (its `files` lists every file), and swapped into
//! place in one rename: a run killed at any point leaves the previous output
//! or the new, complete one. A non-empty output directory is refused
//! ([`ExportError::OutputExists`], "pass --force"); with
//! [`WriteOptions::force`] a directory that holds a previous summit-rs output
//! (its [`MARKER_FILE`] or a manifest) is replaced — files of yours at its
//! top level move into the new output; entries named as the layout's are
//! replaced whole — and a non-empty directory that is not a
//! summit-rs output is never touched ([`ExportError::NotAnOutput`]). Runs are
//! therefore never mixed. Files are created with mode 0666 less the umask.
//!
//! ## The Summit format (SPEC §5)
//!
//! `data/imagenet.json` is an array of classes `{synset, name, label,
//! target_class, numOfInstances, topOneAcc, accs, topChannels, embed}` as
//! the published Summit page (fredhohman/summit) reads them: `accs` is the
//! list of the class's images' predicted probabilities of the true class
//! (the page bins it itself), each quantised to the centre of its 1/100 bin
//! and ascending, since the aggregates keep a histogram, not a record per
//! image; `topChannels[layer]` is every channel with a non-zero
//! count as `{c: channel, i: count}`, count descending (ties channel
//! ascending), `embed[layer] = {x, y}`, `label` the 1-based class number as
//! a string, `synset` the ImageNet synset or `c{index}`. `data/ag/ag-{c}.json`
//! has the layer keys from last to first, each an array of `{channel, count,
//! layer, pagerank, prev_channels: [{prev_channel, inf}], attr_channels:
//! [{prev_channel, inf}]}` (`attr_channels[].prev_channel` as a string, as
//! the original wrote it). Layer keys are the paper's names where the
//! [`LayerDesc`] gives them. [`check_summit_format`] checks all of SPEC §5's
//! keys and invariants.
//!
//! ## The web view (`index.html`)
//!
//! One HTML file with the overview data inlined (`<script id="summit-data"
//! type="application/json">`: layers, classes with their statistics,
//! embeddings), d3 v7.9.0 inlined (ISC license in `assets/d3.LICENSE`) and
//! the page's script (`assets/view.js`, vanilla JS on d3) and style; each
//! class's attribution graph and most similar classes are in
//! `view/class-{c}.js` (`summitClassData(c, {graph, similar})`), loaded by a
//! `<script>` element when the class is first shown (`body[data-loading]`
//! meanwhile). It opens from disk (`file://`) with no server and no network,
//! and its size does not grow with the graphs of a 1000-class run. It
//! has Summit's views — the embedding of the classes per layer (`#layer-select`,
//! click a point to select its class), the class sidebar (`#class-search`,
//! `#sort-select`: by similarity to the selected class in the selected layer,
//! by accuracy, by name; rows `#class-list li[data-class]` with a
//! probability histogram and a similarity bar), and the attribution graph
//! (`#graph svg`: layers as rows, last at the top; `circle.vertex` sized by
//! count, `path.edge` width by influence; hover highlights a vertex's edges
//! and shows its dataset-example patches in `#patch-panel`; `#count-filter`
//! keeps vertices with `count >=` its value and their edges; d3 zoom and
//! pan) — plus the class comparison (`#compare-select`): the union of the two
//! graphs with vertices and edges marked `both`, `only-a`, `only-b`.
//!
//! The page is tested in headless Chromium by `tests/web_view.rs` with the
//! Node script `tests/browser/check.mjs` (playwright-core).
//!
//! ```
//! use summit_export::{check_summit_format, sanitize_name};
//! assert_eq!(sanitize_name("white wolf"), "white_wolf");
//! // a directory without Summit files fails the check with a clear error
//! let dir = tempfile::tempdir().unwrap();
//! assert!(check_summit_format(dir.path()).is_err());
//! ```
#![warn(missing_docs)]

mod atomic;
mod compare;
mod error;
mod faithfulness;
mod input;
mod manifest;
mod models;
mod output;
mod patches;
mod predictions;
mod stage;
mod summit;
mod view;

pub use atomic::write_file_atomic;
pub use compare::{ComparedClass, ComparisonFile, write_comparison};
pub use error::{ExportError, Result};
pub use faithfulness::{
    AblationFigures, ClassFaithfulness, DeletionCurve, FAITHFULNESS_FILE, FaithfulnessReport,
    FaithfulnessSummary, RandomBaseline, Selectivity, median,
};
pub use input::{
    ClassInfo, DatasetInfo, ExportInput, LayerDesc, Overview, OverviewLayer, PatchGeometry,
    PatchSource, SkippedInput, Timings, WriteOptions,
};
pub use manifest::{
    ClassFaithfulnessBrief, ClassStability, ClassStats, MANIFEST_FORMAT, MANIFEST_FORMAT_VERSION,
    MARKER_FILE, Manifest, PatchStats, read_manifest,
};
pub use models::write_models_page;
pub use output::{
    GraphFile, HISTOGRAM_BINS, OutputSummary, OverviewFile, OverviewLayerFile, graph_file_name,
    patch_dir_name, read_graph, sanitize_name, validate_input, write_output, write_output_files,
};
pub use patches::{crop_box, summit_dataset_file, write_jpeg};
pub use predictions::{
    PREDICTIONS_FILE, PredictionLog, Predictions, RECORD_BYTES, TOP_K, TopK, merge_predictions,
    top_k,
};
pub use stage::{OutputStage, check_output_target};
pub use summit::{
    AG_VERTEX_KEYS, IMAGENET_KEYS, check_summit_format, missing_summit_images, summit_channel_file,
    summit_diversity_file, summit_synset,
};
pub use view::VIEW_NEIGHBOURS;
