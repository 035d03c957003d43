//! The error type of summit-featvis.

/// Everything that can go wrong while visualising channels.
#[derive(Debug, thiserror::Error)]
pub enum FeatVisError {
    /// A summary layer the model does not have.
    #[error("unknown layer `{name}`: the model's summary layers are {known}")]
    UnknownLayer {
        /// The name given.
        name: String,
        /// The model's layers, comma-separated.
        known: String,
    },
    /// A channel outside the layer.
    #[error("channel {channel} does not exist in layer `{layer}` ({channels} channels)")]
    UnknownChannel {
        /// The layer.
        layer: String,
        /// The channel given.
        channel: usize,
        /// The layer's channel count.
        channels: usize,
    },
    /// Parameters that cannot work (zero steps, an empty transform list, ...).
    #[error("invalid feature-visualization parameters: {0}")]
    Params(String),
    /// The model's forward pass carries no gradient to its input.
    #[error("model without gradients: {0}")]
    NoGradients(String),
    /// The model failed.
    #[error(transparent)]
    Model(#[from] summit_model::ModelError),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, FeatVisError>;
