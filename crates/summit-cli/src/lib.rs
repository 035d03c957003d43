//! # summit-cli
//!
//! The `summit` command's library: its subcommands ([`commands`]: `run`, `merge`, `compare`)
//! and the live explorer (`summit serve`, SPEC §5.1) over Summit run outputs and the models and
//! dataset they were made from. It serves the first output's static page and a JSON/PNG API
//! that computes, on request and cached, what the static page cannot hold: every dataset image
//! by index (paged, filtered by class and by the run's predictions), uploads, any image's
//! predictions by every model, its attribution by any method of `summit-attribution` for any
//! class or for one channel of a summary layer, a channel's activations, and its attribution
//! graph (SPEC §3.2) beside its true and predicted classes'.
//!
//! Secure by default: it binds 127.0.0.1; bound elsewhere it requires an access token on every
//! request; files are named by the server (images by index), never by a client path outside the
//! output; every bad request is a 4xx JSON error naming the parameter.
//!
//! ```no_run
//! use summit_cli::{Explorer, ModelSource, Served};
//! let explorer = Explorer::open("out/fashion-mnist".as_ref(), &ModelSource::Auto)?;
//! let app = summit_cli::router(std::sync::Arc::new(Served::new(vec![explorer])?), None);
//! # let _ = app;
//! # Ok::<(), summit_cli::CliError>(())
//! ```
//!
//! [`args`] holds what the command-line programs share (shard specs, a Slurm job array's task,
//! the InceptionV1 inputs check with its help texts).
#![warn(missing_docs)]

pub mod args;
pub mod commands;
mod explorer;
mod serve;

pub use explorer::{
    CACHE_BUDGET, CacheUse, Explorer, ModelSource, PredictionOrigin, Subject, Target,
    UPLOAD_LIMITS, UPLOAD_MAX_BYTES, Upload,
};
pub use serve::{
    ABLATION_MAX_IMAGES, ApiError, COMPUTE_SLOTS, PAGE_LIMIT, Served, UPLOAD_STORE_BYTES, router,
};

/// Everything that can go wrong when opening or serving an output.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The output directory cannot be read (no manifest, a bad graph file).
    #[error("{context}: {source}")]
    Export {
        /// What was being read.
        context: String,
        /// The reason.
        source: summit_core::export::ExportError,
    },
    /// The model cannot be found or loaded.
    #[error("{0}")]
    Model(String),
    /// The dataset cannot be found or opened.
    #[error("{0}")]
    Data(String),
    /// An uploaded image cannot be used (not a PNG or JPEG, over the size or pixel limits,
    /// not preprocessable to the model's input).
    #[error("{0}")]
    Upload(String),
    /// A computation failed (attribution, forward pass, graph).
    #[error("{0}")]
    Compute(String),
    /// Serving failed (binding the address, the runtime).
    #[error("{0}")]
    Serve(String),
    /// A command-line argument or its environment makes no sense (the message says what to
    /// give instead).
    #[error("{0}")]
    Usage(String),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, CliError>;
