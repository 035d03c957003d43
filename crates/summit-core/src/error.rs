//! The error type of summit-core: the other crates' errors with the context of where in the
//! pipeline they happened (which file, which batch, which class).

use std::path::PathBuf;

/// Everything that can go wrong while running the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The configuration is inconsistent with the model or the dataset.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The model failed (loading, or a forward pass on a batch).
    #[error("model error while {context}: {source}")]
    Model {
        /// What the pipeline was doing, e.g. `recording batch 3 (images 192..256)`.
        context: String,
        /// The model's error.
        #[source]
        source: summit_model::ModelError,
    },
    /// The dataset failed (opening it, or creating the loader).
    #[error("dataset error while {context}: {source}")]
    Data {
        /// What the pipeline was doing.
        context: String,
        /// The dataset's error.
        #[source]
        source: summit_data::DataError,
    },
    /// Aggregation failed (a batch that does not fit the aggregates, a merge, a file).
    #[error("aggregation error while {context}: {source}")]
    Aggregate {
        /// What the pipeline was doing, e.g. `aggregating influences of batch 2, layer 1, path 0, hop 1`.
        context: String,
        /// The aggregation error.
        #[source]
        source: summit_influence::InfluenceError,
    },
    /// Building a graph or the overview failed.
    #[error("graph error while {context}: {source}")]
    Graph {
        /// What the pipeline was doing, e.g. `building the attribution graph of class 3 (dress)`.
        context: String,
        /// The graph error.
        #[source]
        source: summit_graph::GraphError,
    },
    /// Writing or reading the output directory failed.
    #[error("export error while {context}: {source}")]
    Export {
        /// What the pipeline was doing.
        context: String,
        /// The export error (boxed: it is large, and errors travel in every `Result`).
        #[source]
        source: Box<summit_export::ExportError>,
    },
    /// A file could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A command-line input is missing, malformed or names nothing (a class, a shard spec, the
    /// weights or data of an example); the message says what to provide.
    #[error("{0}")]
    Usage(String),
    /// Per-image attribution failed (an unknown method or layer, a target out of range, a
    /// model without gradients).
    #[error("{context}: {source}")]
    Attribution {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: Box<summit_attribution::AttributionError>,
    },
    /// Feature visualization failed (an unknown layer or channel, parameters that cannot
    /// work, a model without gradients).
    #[error("{context}: {source}")]
    FeatureVis {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: Box<summit_featvis::FeatVisError>,
    },
    /// A checkpoint file is not one this build wrote, is corrupt, or belongs to another run.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The pass was stopped by its stop flag ([`crate::Pipeline::with_stop`]; SIGINT or
    /// SIGTERM in the examples) after the batch in flight; `resume` says how to go on.
    #[error("interrupted after {processed} of {total} images: {resume}")]
    Interrupted {
        /// Dataset indices of the run processed (loaded or skipped) before the stop.
        processed: usize,
        /// Dataset indices of the run in all.
        total: usize,
        /// Where the work went and how to resume it.
        resume: String,
    },
    /// The run would produce an empty analysis (no image processed), or has no image to
    /// process; the message says why.
    #[error("{0}")]
    NothingToDo(String),
}

/// The result type of summit-core.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

impl CoreError {
    pub(crate) fn model(
        context: impl Into<String>,
    ) -> impl FnOnce(summit_model::ModelError) -> Self {
        let context = context.into();
        move |source| Self::Model { context, source }
    }

    pub(crate) fn data(context: impl Into<String>) -> impl FnOnce(summit_data::DataError) -> Self {
        let context = context.into();
        move |source| Self::Data { context, source }
    }

    pub(crate) fn aggregate(
        context: impl Into<String>,
    ) -> impl FnOnce(summit_influence::InfluenceError) -> Self {
        let context = context.into();
        move |source| Self::Aggregate { context, source }
    }

    pub(crate) fn graph(
        context: impl Into<String>,
    ) -> impl FnOnce(summit_graph::GraphError) -> Self {
        let context = context.into();
        move |source| Self::Graph { context, source }
    }

    pub(crate) fn export(
        context: impl Into<String>,
    ) -> impl FnOnce(summit_export::ExportError) -> Self {
        let context = context.into();
        move |source| Self::Export {
            context,
            source: Box::new(source),
        }
    }

    pub(crate) fn attribution(
        context: impl Into<String>,
    ) -> impl FnOnce(summit_attribution::AttributionError) -> Self {
        let context = context.into();
        move |source| Self::Attribution {
            context,
            source: Box::new(source),
        }
    }

    pub(crate) fn featvis(
        context: impl Into<String>,
    ) -> impl FnOnce(summit_featvis::FeatVisError) -> Self {
        let context = context.into();
        move |source| Self::FeatureVis {
            context,
            source: Box::new(source),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
