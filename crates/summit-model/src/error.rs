//! The error type of summit-model.

use std::path::PathBuf;

/// Everything that can go wrong while loading or describing a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The weights file could not be read or parsed.
    #[error("cannot read weights file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The weights file has an extension we do not know.
    #[error(
        "unsupported weights file {path}: expected a .pth/.pt (torch.save) or .safetensors file"
    )]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
    },
    /// A key the model needs is not in the file.
    #[error("weights file {path}: missing key `{key}`")]
    MissingKey {
        /// The file.
        path: PathBuf,
        /// The missing key.
        key: String,
    },
    /// The file has keys the model does not use.
    #[error("weights file {path}: unexpected key(s) {keys:?} (is this the right architecture?)")]
    UnexpectedKeys {
        /// The file.
        path: PathBuf,
        /// The keys the model did not consume (at most a few are listed).
        keys: Vec<String>,
    },
    /// A tensor has the wrong shape.
    #[error("weights file {path}: key `{key}` has shape {got:?}, expected {expected:?}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The shape the model needs.
        expected: Vec<usize>,
        /// The shape in the file.
        got: Vec<usize>,
    },
    /// A tensor has an element type we cannot convert to f32.
    #[error("weights file {path}: key `{key}` has unsupported dtype {dtype}")]
    DType {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The element type found.
        dtype: String,
    },
    /// The input batch does not fit the model.
    #[error("input of shape {got:?} does not fit the model: expected {expected}")]
    Input {
        /// The shape received.
        got: Vec<usize>,
        /// A description of what the model accepts.
        expected: String,
    },
    /// A tensor could not be read back from the device.
    #[error("cannot read tensor `{what}` back from the device: {reason}")]
    Data {
        /// Which tensor.
        what: String,
        /// The backend's message.
        reason: String,
    },
    /// A selection of the model's outputs does not fit the model.
    #[error("model outputs: {0}")]
    Outputs(String),
    /// An ablation that does not fit the model (a channel out of range, wrong batch).
    #[error("ablation: {0}")]
    Ablation(String),
    /// A model's structure cannot be described or run (an unsupported operator, a path that
    /// cannot be described, a layer that does not exist), naming the node or layer.
    #[error("{0}")]
    Describe(String),
    /// An operation the model or device does not support (e.g. gradients where autodiff is
    /// off).
    #[error("{0}")]
    Unsupported(String),
    /// Writing a weights file failed.
    #[error("cannot write weights file {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, ModelError>;
