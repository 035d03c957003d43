//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while opening a dataset or loading a sample.
///
/// Every variant names the file (and line, where there is one) or the sample
/// at fault, so that a message alone is enough to find the problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An image file is empty, truncated, corrupt or in an unsupported format.
    #[error("cannot decode image {item}: {reason}")]
    Decode {
        /// The sample's source (a path, or `file#index` for samples inside a container file).
        item: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A decoded image cannot go through the requested preprocessing
    /// (e.g. it is smaller than a fixed crop).
    #[error("cannot preprocess image {item}: {reason}")]
    Preprocess {
        /// The sample's source.
        item: String,
        /// What is wrong.
        reason: String,
    },
    /// A structured file (IDX, label list, class list) does not have the expected format.
    #[error("{}: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// One line of a text file (label list, class list) is malformed.
    #[error("{}:{line}: {reason}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// The line number, 1-based.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// A dataset has no samples (or no classes).
    #[error("dataset at {} is empty: {reason}", path.display())]
    EmptyDataset {
        /// The dataset's root directory or file.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// A sample index is not smaller than the dataset's length.
    #[error("sample index {index} is out of range for a dataset of {len} samples")]
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// The dataset's length.
        len: usize,
    },
    /// A class name asked for does not exist in the dataset.
    #[error("class {name:?} is not one of the dataset's classes ({source_file})")]
    UnknownClass {
        /// The class name (or synset id) asked for.
        name: String,
        /// Where the dataset's classes came from.
        source_file: String,
    },
    /// A parameter (batch size, shard count, preprocessing setting, ...) is invalid.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
}

/// Shorthand for `Result<T, DataError>`.
pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            reason: reason.into(),
        }
    }
}
