//! The crate's error type.

use thiserror::Error;

/// Everything that can go wrong in summit-graph. Messages name the layer,
/// channel, class or parameter at fault.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum GraphError {
    /// No summary layers were given.
    #[error("no summary layers given: a graph needs at least one layer")]
    NoLayers,
    /// A per-layer list has the wrong number of layers.
    #[error("{what}: expected {expected} layers (one per summary layer), got {got}")]
    LayerCount {
        /// Which input (e.g. `counts`, `edges`, `excluded`).
        what: &'static str,
        /// Number of summary layers.
        expected: usize,
        /// Length of the list given.
        got: usize,
    },
    /// A per-channel list of one layer has the wrong length.
    #[error("{what} of layer {layer} (`{name}`): expected {expected} channels, got {got}")]
    ChannelCount {
        /// Which input.
        what: &'static str,
        /// Layer index (0 = first summary layer).
        layer: usize,
        /// Layer name.
        name: String,
        /// Channels of the layer.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// A channel index is not below the layer's channel count.
    #[error(
        "{what}: channel {channel} is out of range for layer {layer} (`{name}`, {channels} channels)"
    )]
    ChannelOutOfRange {
        /// Which input.
        what: &'static str,
        /// Layer index.
        layer: usize,
        /// Layer name.
        name: String,
        /// The offending channel.
        channel: u32,
        /// Channels of the layer.
        channels: usize,
    },
    /// `edges[0]` must be empty: the first summary layer has no layer below it.
    #[error(
        "edges[0] must be empty (the first summary layer `{name}` has no layer below it), got {got} edges"
    )]
    EdgesIntoFirstLayer {
        /// Name of the first layer.
        name: String,
        /// Number of edges given.
        got: usize,
    },
    /// An edge weight is negative, NaN or infinite.
    #[error(
        "edge {from} -> {to} into layer {layer} (`{name}`) has weight {weight}; weights must be finite and >= 0"
    )]
    InvalidWeight {
        /// Layer index of the edge's upper end.
        layer: usize,
        /// Layer name.
        name: String,
        /// Lower channel.
        from: u32,
        /// Upper channel.
        to: u32,
        /// The weight.
        weight: f64,
    },
    /// A per-vertex vector (personalization, PageRank) has the wrong length.
    #[error("{what}: expected {expected} values (one per vertex of the full graph), got {got}")]
    VertexCount {
        /// Which vector.
        what: &'static str,
        /// Vertices of the graph.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// A per-vertex value is negative, NaN or infinite.
    #[error(
        "{what}: value {value} at vertex {vertex} (layer {layer}, channel {channel}) must be finite and >= 0"
    )]
    InvalidValue {
        /// Which vector.
        what: &'static str,
        /// Vertex index.
        vertex: usize,
        /// Layer of the vertex.
        layer: usize,
        /// Channel of the vertex.
        channel: u32,
        /// The value.
        value: f64,
    },
    /// The personalization vector sums to zero (every count of every
    /// non-excluded channel is 0, e.g. a class without images).
    #[error(
        "the personalization is zero everywhere: every count A_l[class, j] of every non-excluded channel is 0"
    )]
    ZeroPersonalization,
    /// A parameter is out of its valid range.
    #[error("invalid parameter {name} = {value}: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// Its value, printed.
        value: String,
        /// What the valid range is.
        reason: &'static str,
    },
    /// Two attribution graphs to compare have different layers.
    #[error("the compared attribution graphs differ at layer {layer}: `{a}` vs `{b}`")]
    LayerMismatch {
        /// Layer index (or the shorter length when the layer counts differ).
        layer: usize,
        /// Layer name in graph A (or `<none>`).
        a: String,
        /// Layer name in graph B (or `<none>`).
        b: String,
    },
    /// The rows of an A matrix (one per class) have different lengths.
    #[error("A matrix of layer {layer}: row 0 has {expected} channels but row {row} has {got}")]
    RaggedRows {
        /// Layer index.
        layer: usize,
        /// The offending row (class).
        row: usize,
        /// Length of row 0.
        expected: usize,
        /// Length of the offending row.
        got: usize,
    },
    /// The layers of an embedding have different numbers of classes.
    #[error("layer {layer} has {got} classes (rows) but layer 0 has {expected}")]
    ClassCount {
        /// Layer index.
        layer: usize,
        /// Rows of layer 0.
        expected: usize,
        /// Rows of this layer.
        got: usize,
    },
    /// An error while handling one class, with the class named.
    #[error("class {class}: {source}")]
    InClass {
        /// Class index or name.
        class: String,
        /// The underlying error.
        source: Box<GraphError>,
    },
}

impl GraphError {
    /// Wraps the error with the class it occurred in, for messages such as
    /// `class 294 (brown_bear): the personalization is zero everywhere ...`.
    pub fn in_class(self, class: impl Into<String>) -> Self {
        GraphError::InClass {
            class: class.into(),
            source: Box::new(self),
        }
    }
}

/// Result alias of the crate.
pub type Result<T> = std::result::Result<T, GraphError>;
