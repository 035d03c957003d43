//! The error type of summit-attribution.

/// Everything that can go wrong while attributing.
#[derive(Debug, thiserror::Error)]
pub enum AttributionError {
    /// A method name that is not one of [`crate::Method::ALL`].
    #[error("unknown attribution method `{name}`: expected one of {known}")]
    UnknownMethod {
        /// The name given.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// An LRP rule name that is not one of [`crate::Rule`]'s.
    #[error("unknown LRP rule `{name}`: expected one of {known}")]
    UnknownRule {
        /// The name given.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// An LRP composite name that is not one of [`crate::Composite::ALL`].
    #[error("unknown LRP composite `{name}`: expected one of {known}")]
    UnknownComposite {
        /// The name given.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// A layer named in an LRP name map that is no linear layer of the model.
    #[error("LRP name map: the model has no linear layer `{name}`; its linear layers are {known}")]
    UnknownRuleLayer {
        /// The name given.
        name: String,
        /// The model's linear layers, comma-separated.
        known: String,
    },
    /// A neuron target whose channel the layer does not have.
    #[error("neuron target: layer `{layer}` has {channels} channels, not channel {channel}")]
    NeuronOutOfRange {
        /// The summary layer.
        layer: String,
        /// The channel asked for.
        channel: usize,
        /// The layer's channels.
        channels: usize,
    },
    /// A metric name that is not one of [`crate::Metric::ALL`].
    #[error("unknown evaluation metric `{name}`: expected one of {known}")]
    UnknownMetric {
        /// The name given.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// A metric asked of a heatmap (or a method's heatmaps) it cannot evaluate, such as an
    /// input-space metric given Grad-CAM's layer-resolution maps.
    #[error("metric `{metric}` cannot evaluate {what}: {reason}")]
    Unsupported {
        /// The metric's name.
        metric: String,
        /// What it was asked to evaluate (`method `grad-cam`'s heatmaps`, `this heatmap`).
        what: String,
        /// Why not, and what to do instead.
        reason: String,
    },
    /// Evaluation parameters that cannot work (zero runs, a features-per-step that does not
    /// divide the image, ...).
    #[error("invalid evaluation parameters: {0}")]
    Evaluation(String),
    /// A summary layer that the model does not have.
    #[error("unknown summary layer `{name}`: the model's summary layers are {known}")]
    UnknownLayer {
        /// The name given.
        name: String,
        /// The model's layer names, comma-separated.
        known: String,
    },
    /// A target class outside the model's outputs.
    #[error(
        "target class {class} of image {image} is out of range: the model has {classes} classes"
    )]
    TargetOutOfRange {
        /// The image (row of the batch).
        image: usize,
        /// The target given.
        class: usize,
        /// The model's number of classes.
        classes: usize,
    },
    /// Parameters that cannot work (zero steps, a window larger than the image, ...).
    #[error("invalid attribution parameters: {0}")]
    Params(String),
    /// Input of the wrong shape, or targets that do not match it.
    #[error("attribution input: {0}")]
    Input(String),
    /// The model's forward pass carries no gradient to its input (it leaves burn's autodiff),
    /// or the device cannot compute the method.
    #[error("model without gradients: {0}")]
    NoGradients(String),
    /// The model failed.
    #[error(transparent)]
    Model(#[from] summit_model::ModelError),
    /// Writing an overlay failed.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, AttributionError>;
