//! Activation aggregation for Summit (paper §6.1, SPEC §1).
//!
//! From a batch's summary-layer activations: the per-image channel maxima
//! ([`channel_max`], a host reference; the device computes them normally),
//! then per image the selection of important channels by Method 1 (top-k) or
//! Method 2 (top mass) with the SPEC's tie-break ([`select_channels`]),
//! accumulated into per-layer class × channel counts `A`
//! ([`ActivationAggregator`], [`ActivationCounts`]). In the same pass the
//! dataset examples of every channel are kept ([`ExampleHeaps`]).
//!
//! Everything here is a count or a top-N under a total order, so results do
//! not depend on batch size, image order, shard split or thread count.
//!
//! ```
//! use summit_activation::{channel_max, ActivationAggregator, Selection};
//! // 2 images, 3 channels, 1×2 maps
//! let act = [0.0, 1.0,  3.0, 2.0,  0.5, 0.0,
//!            4.0, 0.0,  0.0, 0.0,  0.0, 0.0];
//! let (maxima, _argmax) = channel_max(&act, [2, 3, 1, 2]).unwrap();
//! let mut agg = ActivationAggregator::new(2, &[3], &[], Selection::TopK(1)).unwrap();
//! agg.add_batch(0, &maxima, 2, &[1, 1]).unwrap();
//! assert_eq!(agg.counts().row(0, 1).unwrap(), &[1, 1, 0]);
//! ```
#![warn(missing_docs)]

mod counts;
mod error;
mod examples;
mod maxima;
mod select;

pub use counts::{ActivationAggregator, ActivationCounts, select_rows};
pub use error::ActivationError;
pub use examples::{DEFAULT_EXAMPLES_PER_CHANNEL, Example, ExampleHeaps};
pub use maxima::channel_max;
pub use select::{ChannelMask, Selection, Selector, key_channel, order_key, select_channels};
