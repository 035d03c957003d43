//! The crate's error type.

use std::path::PathBuf;

use summit_activation::ActivationError;

/// Everything that can go wrong in influence aggregation, merging and
/// aggregate files. Every variant names the input, hop, path, class or file
/// at fault.
#[derive(Debug, thiserror::Error)]
pub enum InfluenceError {
    /// A buffer's length does not match the dimensions given with it.
    #[error("{what}: dimensions {dims:?} need {expected} values, got {got}")]
    Shape {
        /// Which input.
        what: &'static str,
        /// The dimensions given.
        dims: Vec<usize>,
        /// The number of values those dimensions need.
        expected: usize,
        /// The number of values received.
        got: usize,
    },
    /// Two dimensions that must agree do not.
    #[error("{what}: expected {expected}, got {got}")]
    DimensionMismatch {
        /// What is compared.
        what: String,
        /// The expected size.
        expected: usize,
        /// The size found.
        got: usize,
    },
    /// A convolution hop whose geometry yields no output position.
    #[error(
        "hop geometry {geometry:?} with a {kernel_hw:?} kernel on a {input_hw:?} input has no output position"
    )]
    EmptyOutput {
        /// Input height and width.
        input_hw: [usize; 2],
        /// Kernel height and width.
        kernel_hw: [usize; 2],
        /// The hop's stride, padding and dilation.
        geometry: Box<crate::geometry::HopGeometry>,
    },
    /// A zero stride or an empty kernel.
    #[error("invalid hop: {reason}")]
    InvalidHop {
        /// Why.
        reason: &'static str,
    },
    /// A NaN or infinite value where finite values are needed.
    #[error("{what} holds a non-finite value {value} at flat index {index}")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Flat index of the first offending value.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A class label outside `0..num_classes`.
    #[error("image {image} of the batch has label {label}, out of range for {classes} classes")]
    LabelOutOfRange {
        /// Position of the image in its batch.
        image: usize,
        /// The label.
        label: usize,
        /// The number of classes.
        classes: usize,
    },
    /// An index (layer, path, hop, channel) outside its range.
    #[error("{what} {index} is out of range ({len} available)")]
    IndexOutOfRange {
        /// What kind of index.
        what: &'static str,
        /// The index.
        index: usize,
        /// How many exist.
        len: usize,
    },
    /// Path descriptions that do not chain up.
    #[error("path {path}: {reason}")]
    BadPath {
        /// The path within its summary layer.
        path: usize,
        /// What is wrong.
        reason: String,
    },
    /// An error in one summary layer's data.
    #[error("summary layer {layer}: {source}")]
    InLayer {
        /// The summary layer.
        layer: usize,
        /// The error.
        source: Box<InfluenceError>,
    },
    /// Two aggregates that cannot be merged, or a batch that does not fit.
    #[error("mismatch in {what}: {left} vs {right}")]
    Mismatch {
        /// What differs.
        what: String,
        /// The receiving side's value.
        left: String,
        /// The other side's value.
        right: String,
    },
    /// The same image id recorded twice (overlapping shards or batches).
    #[error("image id {image_id} is recorded twice (overlapping shards or batches)")]
    DuplicateImage {
        /// The image id.
        image_id: u64,
    },
    /// A count that would exceed `u32::MAX` (or `u64::MAX` for statistics).
    #[error("count overflow in {what}")]
    CountOverflow {
        /// Where.
        what: String,
    },
    /// A device tensor that could not be read back or has the wrong layout.
    #[error("device tensor {what}: {reason}")]
    Device {
        /// Which tensor.
        what: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// An error from activation aggregation.
    #[error(transparent)]
    Activation(#[from] ActivationError),
    /// An I/O error on an aggregate file.
    #[error("aggregate file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An aggregate file that is not valid: wrong magic, another format
    /// version, truncated or corrupt.
    #[error("aggregate file {path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}
