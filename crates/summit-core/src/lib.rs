//! # summit-core
//!
//! The one dependency a Summit user needs: the [`Pipeline`] that streams a dataset once
//! through a model and aggregates activations and influences (SPEC §1, §2), the attribution
//! graph of every class and the class overview ([`analyze`], SPEC §3, §4), the output
//! directory ([`export`](mod@export)), presets ([`Preset`], [`Config`]), and re-exports of the
//! crates it builds on.
//!
//! The embedded default — the inception network trained on Fashion-MNIST over its embedded
//! test images — end to end (here on the first 128 images; the `fashion_mnist` example runs
//! all 10,000):
//!
//! ```
//! use std::sync::Arc;
//! use summit_core::data::Dataset;
//! use summit_core::{
//!     ClassInfo, Config, Device, FashionInception, FashionMnist, Pipeline, Preprocess, RunMeta,
//!     WriteOptions,
//! };
//!
//! let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/fashion-mnist");
//! let device = Device::flex();
//! let model = FashionInception::embedded(&device)?;
//! let data = FashionMnist::open(
//!     assets.join("t10k-images-idx3-ubyte.gz"),
//!     assets.join("t10k-labels-idx1-ubyte.gz"),
//! )?
//! .with_preprocess(Preprocess::fashion_mnist())?;
//! let transform = data.transform().clone();
//! let meta = RunMeta {
//!     dataset_name: "fashion-mnist-test".into(),
//!     dataset_source: assets.display().to_string(),
//!     classes: data.class_names().iter().map(ClassInfo::new).collect(),
//! };
//! let mut config = Config::paper();
//! config.limit = Some(128);
//! config.feature_vis = None; // Lucid-style feature visualizations of the vertices: off here
//! let pipeline = Pipeline::new(&model, Arc::new(data), config, device)?;
//! let out = std::env::temp_dir().join(format!("summit-doc-{}", std::process::id()));
//! let options = WriteOptions { force: true, ..WriteOptions::default() };
//! let report = pipeline.run(&out, &meta, Some(&transform), &options)?;
//! assert_eq!(report.output.manifest.total_images, 128);
//! assert_eq!(report.analysis.graphs.len(), 10); // one attribution graph per class
//! assert!(out.join("index.html").is_file()); // the web view
//! # std::fs::remove_dir_all(&out)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod analysis;
pub mod checkpoint;
pub mod classes;
pub mod config;
pub mod device;
mod error;
pub mod evaluation;
pub mod faithfulness;
pub mod feature_vis;
pub mod image_graph;
pub mod images;
pub mod models;
pub mod outputs;
pub mod pipeline;
pub mod run;

pub use analysis::{
    Analysis, Overview, Unconverged, analyze, analyze_subset, class_aggregate, class_graphs,
    detect_non_semantic, empty_graph, excluded_channels, layer_infos, merged_edges, overview,
};
pub use config::{
    AttributionConfig, CheckpointConfig, Config, EmbeddingMethod, ExcludedChannels,
    FEATURE_VIS_CHANNELS, FEATURE_VIS_STEPS, FeatureVisConfig, FeatureVisMode, HopInput,
    InfluenceOn, NonSemanticConfig, Preset, SUMMIT2019_EXCLUSIONS_MODEL,
};
pub use error::{CoreError, Result};
pub use pipeline::{
    BATCH_WORKERS, DeviceKernels, PassReport, Pipeline, PreparedBatch, aggregate_batch_with,
    aggregate_params, dataset_fingerprint, layer_display_name, merge_aggregate_files, path_specs,
    predictions_log_path, prepare_recording, remove_stale_checkpoint_files, softmax_rows,
    stability_half,
};

pub use classes::{Relabeled, class_index, class_indices, read_class_list, read_output_list};
pub use device::{gpu_from_spec, select_device, select_gpu};
pub use outputs::{
    AGGREGATES_FILE, WrittenComparison, check_output_dir, compare_output_classes, is_within,
    manifest_classes, merge_outputs,
};
pub use run::{
    PredictionSource, RunContext, RunMeta, RunReport, finish_aggregates, patch_geometry, to_rgb,
};

pub use evaluation::{EvaluationConfig, EvaluationFile};
pub use faithfulness::{
    AblationMode, Ablator, FaithfulnessConfig, SetAblation, faithfulness_lines,
};
pub use feature_vis::{
    FEATURE_VIS_FILE, FeatureVisEntry, FeatureVisFile, default_feature_vis_cache,
    feature_vis_channels,
};
pub use images::{ClassImages, IMAGES_FILE, ImageEntry, ImagesFile, attribution_ids};
pub use models::{
    COMPARE_BINS, MODELS_FILE, ModelComparison, ModelRun, check_same_classes, miss_histogram,
    write_model_comparison,
};
pub use summit_activation as activation;
pub use summit_attribution as attribution;
pub use summit_data as data;
pub use summit_export as export;
pub use summit_featvis as featvis;
pub use summit_graph as graph;
pub use summit_influence as influence;
pub use summit_model as model;

pub use summit_data::{
    BatchLoader, Dataset, FashionMnist, ImageFolder, ImageNetVal, Preprocess, Skipped, shard,
};
pub use summit_export::{
    ClassInfo, OutputSummary, WriteOptions, check_summit_format, read_manifest, write_comparison,
};
pub use summit_graph::{
    AttributionGraph, ClassAggregate, Embedding, GraphComparison, GraphParams, LayerInfo,
    NonSemanticChannel, NonSemanticParams, compare,
};
pub use summit_influence::{AggregateParams, Aggregates};
pub use summit_model::burn::tensor::Device;
pub use summit_model::{
    FASHION_CLASSES, FashionInception, GoogLeNet, GoogLeNetOptions, LUCID_NUM_CLASSES,
    LUCID_PIXEL_OFFSET, LUCID_PIXEL_SCALE, LucidInceptionV1, ModelDescription, OnnxModel,
    OnnxOptions, SelectOutputs, Summarizable,
};
