//! The crate's error type.

use std::path::PathBuf;

/// Errors of summit-export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A file system operation failed.
    #[error("{op} '{path}': {source}")]
    Io {
        /// What was being done (`writing`, `reading`, `creating directory`, ...).
        op: &'static str,
        /// The path at fault.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The output directory exists and is not empty.
    #[error(
        "output directory '{dir}' is not empty{detail}; pass --force (WriteOptions::force) to replace a previous summit-rs output, or choose another directory"
    )]
    OutputExists {
        /// The directory.
        dir: PathBuf,
        /// More about what was found.
        detail: String,
    },
    /// The directory is not empty and holds no summit-rs manifest, so
    /// `--force` does not replace it.
    #[error(
        "refusing to replace '{dir}': it is not empty and holds no summit-rs manifest.json (it is not a previous summit-rs output); choose an empty or new directory"
    )]
    NotAnOutput {
        /// The directory.
        dir: PathBuf,
    },
    /// The output could not be moved into place (the target changed during the run); the
    /// finished output is kept in its staging directory.
    #[error("{source}; the finished output is kept in '{staging}'")]
    Kept {
        /// Where the finished output is.
        staging: PathBuf,
        /// Why it was not moved into place.
        #[source]
        source: Box<ExportError>,
    },
    /// JSON (de)serialisation failed.
    #[error("JSON in '{path}': {source}")]
    Json {
        /// The file at fault.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// Encoding a PNG failed.
    #[error("PNG '{path}': {source}")]
    Image {
        /// The file at fault.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: image::ImageError,
    },
    /// Saving the aggregates failed.
    #[error("aggregates '{path}': {source}")]
    Aggregates {
        /// The file at fault.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: summit_influence::InfluenceError,
    },
    /// The input to export is inconsistent.
    #[error("invalid export input: {what}: expected {expected}, got {got}")]
    Input {
        /// What is inconsistent (names the class, layer or field).
        what: String,
        /// What was expected.
        expected: String,
        /// What was found.
        got: String,
    },
    /// A Summit-format file breaks a rule of SPEC §5.
    #[error("Summit format '{file}': {reason}")]
    SummitFormat {
        /// The file at fault, relative to the output directory.
        file: String,
        /// The rule broken, naming the class, layer and key.
        reason: String,
    },
    /// A per-image predictions file (`predictions.bin`, SPEC §5.1) is of another format, of
    /// another run, truncated, or overlaps another shard's.
    #[error("predictions '{path}': {reason}")]
    Predictions {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong (names the image or the field).
        reason: String,
    },
    /// A manifest is missing, of another format, or unreadable.
    #[error("manifest '{path}': {reason}")]
    Manifest {
        /// The manifest's path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Result with [`ExportError`].
pub type Result<T, E = ExportError> = std::result::Result<T, E>;
