//! # summit-core
//!
//! The one dependency a Summit user needs: the [`Pipeline`] that streams a dataset once
//! through a model and aggregates activations and influences (SPEC §1, §2), the attribution
//! graph of every class and the class overview ([`analyze`], SPEC §3, §4), the output
//! directory ([`export`](mod@export)), presets ([`Preset`], [`Config`]), and re-exports of the
//! crates it builds on.
#![warn(missing_docs)]

pub mod analysis;
pub mod config;
mod error;
pub mod inputs;
pub mod outputs;
pub mod pipeline;
pub mod run;

pub use analysis::{
    Analysis, Overview, analyze, class_aggregate, class_graphs, detect_non_semantic, empty_graph,
    excluded_channels, layer_infos, merged_edges, overview,
};
pub use config::{
    CheckpointConfig, Config, EmbeddingMethod, ExcludedChannels, HopInput, NonSemanticConfig,
    Preset,
};
pub use error::{CoreError, Result};
pub use pipeline::{
    PassReport, Pipeline, aggregate_params, layer_display_name, merge_aggregate_files, path_specs,
    softmax_rows,
};

pub use inputs::{
    INCEPTION_DATA_HELP, INCEPTION_WEIGHTS_HELP, LUCID_OUTPUTS_HELP, Relabeled, class_index,
    class_indices, parse_shard, read_class_list, read_output_list, require_inception_inputs,
    select_device,
};
pub use outputs::{
    AGGREGATES_FILE, WrittenComparison, check_output_dir, compare_output_classes, manifest_classes,
    merge_outputs,
};
pub use run::{RunContext, RunMeta, RunReport, finish_aggregates, patch_geometry, to_rgb};

pub use summit_activation as activation;
pub use summit_data as data;
pub use summit_export as export;
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
    LUCID_PIXEL_OFFSET, LUCID_PIXEL_SCALE, LucidInceptionV1, ModelDescription, SelectOutputs,
    Summarizable,
};
