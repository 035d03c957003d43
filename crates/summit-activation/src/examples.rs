//! Dataset examples: per (layer, channel), the images that activate the
//! channel most (SPEC §4), with the arg-max position for cropping.

use std::cmp::Ordering;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::ActivationError;
use crate::maxima::check_len;

/// The default number of dataset examples kept per channel.
pub const DEFAULT_EXAMPLES_PER_CHANNEL: usize = 10;

/// One dataset example of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The channel's maximum over the image's feature map.
    pub value: f32,
    /// The image's id in the dataset.
    pub image_id: u64,
    /// The flat arg-max position `h*W + w` in the layer's feature map.
    pub argmax: u32,
}

impl Example {
    /// The total order of examples: value descending, then `image_id`
    /// ascending, then `argmax` ascending (`-0.0 == +0.0`). `Less` means
    /// "ranks first".
    pub fn rank_cmp(&self, other: &Example) -> Ordering {
        other
            .value
            .partial_cmp(&self.value)
            .unwrap_or(Ordering::Equal)
            .then(self.image_id.cmp(&other.image_id))
            .then(self.argmax.cmp(&other.argmax))
    }
}

/// Per layer and channel, the top `capacity` [`Example`]s in [`Example::rank_cmp`]
/// order. The order is total, so the kept set does not depend on insertion
/// order, batch size or shard split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExampleHeaps {
    capacity: usize,
    channels: Vec<usize>,
    heaps: Vec<Vec<Vec<Example>>>,
}

fn insert(heap: &mut Vec<Example>, capacity: usize, e: Example) {
    if heap.len() == capacity {
        match heap.last() {
            Some(worst) if e.rank_cmp(worst) == Ordering::Less => {}
            _ => return,
        }
    }
    let pos = heap.partition_point(|x| x.rank_cmp(&e) != Ordering::Greater);
    heap.insert(pos, e);
    heap.truncate(capacity);
}

impl ExampleHeaps {
    /// Empty heaps keeping `capacity` examples per channel of layers with the
    /// given channel counts.
    pub fn new(capacity: usize, channels: &[usize]) -> Self {
        Self {
            capacity,
            channels: channels.to_vec(),
            heaps: channels.iter().map(|&c| vec![Vec::new(); c]).collect(),
        }
    }

    /// How many examples are kept per channel.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The channel count of every layer.
    pub fn channels(&self) -> &[usize] {
        &self.channels
    }

    /// The examples of `(layer, channel)`, best first.
    pub fn get(&self, layer: usize, channel: usize) -> Option<&[Example]> {
        self.heaps.get(layer)?.get(channel).map(Vec::as_slice)
    }

    /// Offers one batch of layer `layer`: `maxima` and `argmax` are
    /// `[B, C_l]` row-major, `image_ids[b]` is image `b`'s dataset id.
    /// Channels are processed in parallel; the batch is validated before any
    /// change.
    pub fn add_batch(
        &mut self,
        layer: usize,
        maxima: &[f32],
        argmax: &[u32],
        image_ids: &[u64],
    ) -> Result<(), ActivationError> {
        let c = *self
            .channels
            .get(layer)
            .ok_or(ActivationError::LayerOutOfRange {
                layer,
                layers: self.channels.len(),
            })?;
        let b = image_ids.len();
        check_len("maxima", maxima.len(), &[b, c])?;
        check_len("argmax", argmax.len(), &[b, c])?;
        if let Some((index, &value)) = maxima.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(ActivationError::NonFinite {
                what: "maxima",
                index,
                value,
            });
        }
        let cap = self.capacity;
        self.heaps[layer]
            .par_iter_mut()
            .enumerate()
            .for_each(|(ch, heap)| {
                for (n, &image_id) in image_ids.iter().enumerate() {
                    let k = n * c + ch;
                    insert(
                        heap,
                        cap,
                        Example {
                            value: maxima[k],
                            image_id,
                            argmax: argmax[k],
                        },
                    );
                }
            });
        Ok(())
    }

    /// Merges `other`'s examples into these: the result is the top
    /// `capacity` of the union, as one run over both shards would give.
    pub fn merge(&mut self, other: &ExampleHeaps) -> Result<(), ActivationError> {
        if self.capacity != other.capacity {
            return Err(ActivationError::Mismatch {
                what: "examples per channel",
                left: self.capacity.to_string(),
                right: other.capacity.to_string(),
            });
        }
        if self.channels != other.channels {
            return Err(ActivationError::Mismatch {
                what: "layer channel counts",
                left: format!("{:?}", self.channels),
                right: format!("{:?}", other.channels),
            });
        }
        let cap = self.capacity;
        for (mine, theirs) in self.heaps.iter_mut().zip(&other.heaps) {
            for (heap, src) in mine.iter_mut().zip(theirs) {
                for &e in src {
                    insert(heap, cap, e);
                }
            }
        }
        Ok(())
    }
}
