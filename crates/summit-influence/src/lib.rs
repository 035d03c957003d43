//! Influence aggregation for Summit (paper §6.2, SPEC §2).
//!
//! For every convolution hop of every path into a summary layer: the
//! per-image influence `L[i, j] = max_p (X_i ⋆ K'[j, i])(p)` of each input
//! channel `i` on each output channel `j` ([`influence_cpu`], exact closed
//! form for 1×1 hops, a fused cache-blocked kernel otherwise), with
//! batch-norm folding ([`fold_batch_norm`]) and the layer's or the
//! `summit2019` geometry ([`HopGeometry`], [`InfluenceGeometry`]). Per image
//! and output channel the top-k (default 5) input channels
//! ([`top_influences`]) are counted per class in sparse counts `I`
//! ([`InfluenceCounts`]); a summary layer's paths ([`PathCounts`], one hop
//! direct or several through inner layers) are merged into edges between
//! consecutive summary layers with the bottleneck rule ([`merge_paths`]).
//! Everything a pass accumulates is one mergeable, savable value
//! ([`Aggregates`], module [`aggregates`]).
//!
//! ```
//! use summit_activation::{ChannelMask, Selection};
//! use summit_influence::{influence_cpu, HopGeometry, InfluenceCounts};
//! // one image of class 0, 3 input channels 2×2, one output channel, 3×3 kernel pad 1
//! let x = [1.0, 0.0, 0.0, 0.0,  0.0, 2.0, 0.0, 0.0,  0.5, 0.5, 0.5, 0.5];
//! let k: Vec<f32> = (0..27).map(|t| if t % 9 == 4 { 1.0 } else { 0.0 }).collect(); // centre taps
//! let l = influence_cpu(&x, [1, 3, 2, 2], &k, [1, 3, 3, 3], &HopGeometry::conv([1, 1], [1, 1])).unwrap();
//! assert_eq!(l, vec![1.0, 2.0, 0.5]);
//! let mut counts = InfluenceCounts::new(1, 1, 3);
//! counts.add_batch(&l, 1, &[0], &ChannelMask::none(), &Selection::TopK(2)).unwrap();
//! assert_eq!(counts.row(0, 0).unwrap().to_vec(), vec![(0, 1), (1, 1)]);
//! ```
#![warn(missing_docs)]

pub mod aggregates;
mod counts;
pub mod device;
mod error;
mod geometry;
mod kernel;
mod merge;
pub mod picks;

pub use aggregates::{
    AGGREGATES_FORMAT_VERSION, AGGREGATES_MAGIC, AggregateParams, Aggregates, ClassCounts, HopRows,
    LayerParams, LayerSelection, PROBABILITY_BINS,
};
pub use counts::{InfluenceCounts, RowRef, top_influences, top_influences_hop};
pub use merge::{
    HopSpec, PathCounts, PathSpec, bottleneck_edge_budget, merge_paths, merge_paths_class,
};

pub use device::{
    DEFAULT_DEVICE_CHUNK_BYTES, DeviceInfluenceOptions, DeviceKernel, influence_device,
    influence_device_host,
};
pub use error::InfluenceError;
pub use geometry::{HopGeometry, InfluenceGeometry};
pub use kernel::{
    ExactInfluences, fold_batch_norm, influence_cpu, influence_cpu_grouped, influence_error_bound,
    influence_exact, influence_reference,
};
pub use picks::{ImagePicks, Pick, PickParams, id_hash, top_classes};
