//! The crate's error type.

use crate::select::Selection;

/// Everything that can go wrong in activation aggregation.
///
/// Every variant names the input, layer, image or channel at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ActivationError {
    /// A buffer's length does not match the dimensions given with it.
    #[error("{what}: dimensions {dims:?} need {expected} values, got {got}")]
    Shape {
        /// Which input (e.g. `"activations"`, `"maxima"`).
        what: &'static str,
        /// The dimensions given.
        dims: Vec<usize>,
        /// The number of values those dimensions need.
        expected: usize,
        /// The number of values received.
        got: usize,
    },
    /// A dimension that must be positive is zero (e.g. an empty feature map).
    #[error("{what}: dimension {axis} of {dims:?} must be positive")]
    EmptyDimension {
        /// Which input.
        what: &'static str,
        /// The dimensions given.
        dims: Vec<usize>,
        /// The zero axis.
        axis: usize,
    },
    /// A selection rule with an invalid parameter.
    #[error("invalid selection {selection:?}: {reason}")]
    InvalidSelection {
        /// The rule.
        selection: Selection,
        /// Why it is invalid.
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
    /// An excluded channel index that the layer does not have.
    #[error("layer {layer}: excluded channel {channel} is out of range for {channels} channels")]
    ExcludedOutOfRange {
        /// The layer index.
        layer: usize,
        /// The excluded channel.
        channel: usize,
        /// The layer's channel count.
        channels: usize,
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
    /// A layer index outside the aggregator's layers.
    #[error("layer index {layer} is out of range ({layers} layers)")]
    LayerOutOfRange {
        /// The layer index.
        layer: usize,
        /// The number of layers.
        layers: usize,
    },
    /// A channel index outside a layer.
    #[error("layer {layer}: channel {channel} is out of range for {channels} channels")]
    ChannelOutOfRange {
        /// The layer index.
        layer: usize,
        /// The channel.
        channel: usize,
        /// The layer's channel count.
        channels: usize,
    },
    /// Two aggregates that cannot be merged.
    #[error("cannot merge: {what} differ ({left} vs {right})")]
    Mismatch {
        /// What differs.
        what: &'static str,
        /// The receiving side's value.
        left: String,
        /// The other side's value.
        right: String,
    },
    /// A count that would exceed `u32::MAX`.
    #[error("count overflow in layer {layer}, class {class}, channel {channel}")]
    CountOverflow {
        /// The layer index.
        layer: usize,
        /// The class.
        class: usize,
        /// The channel.
        channel: usize,
    },
}
