//! The aggregated activation matrices `A_l` (SPEC §1 step 4) and their
//! batch-wise accumulation.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::ActivationError;
use crate::maxima::check_len;
use crate::select::{ChannelMask, Selection, Selector};

/// Per summary layer, the dense `C × C_l` matrix of selection counts
/// `A_l[class, channel]`, stored class-major (`counts[layer][class * C_l + channel]`).
///
/// Counts add, so [`merge`](Self::merge) of two shards equals one run over
/// both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationCounts {
    num_classes: usize,
    channels: Vec<usize>,
    counts: Vec<Vec<u32>>,
}

impl ActivationCounts {
    /// All-zero counts for `num_classes` classes and layers with the given
    /// channel counts.
    pub fn new(num_classes: usize, channels: &[usize]) -> Self {
        Self {
            num_classes,
            channels: channels.to_vec(),
            counts: channels.iter().map(|&c| vec![0; num_classes * c]).collect(),
        }
    }

    /// The number of classes `C`.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The number of summary layers.
    pub fn num_layers(&self) -> usize {
        self.channels.len()
    }

    /// The channel count `C_l` of every layer.
    pub fn channels(&self) -> &[usize] {
        &self.channels
    }

    /// Layer `layer`'s whole matrix, class-major `[C, C_l]`.
    pub fn layer(&self, layer: usize) -> Option<&[u32]> {
        self.counts.get(layer).map(Vec::as_slice)
    }

    /// The row `A_l[class, :]`.
    pub fn row(&self, layer: usize, class: usize) -> Option<&[u32]> {
        let c = *self.channels.get(layer)?;
        if class >= self.num_classes {
            return None;
        }
        self.counts[layer].get(class * c..(class + 1) * c)
    }

    /// The count `A_l[class, channel]`.
    pub fn get(&self, layer: usize, class: usize, channel: usize) -> Option<u32> {
        self.row(layer, class)?.get(channel).copied()
    }

    fn check_layer(&self, layer: usize) -> Result<usize, ActivationError> {
        self.channels
            .get(layer)
            .copied()
            .ok_or(ActivationError::LayerOutOfRange {
                layer,
                layers: self.channels.len(),
            })
    }

    fn check_class(&self, class: usize) -> Result<(), ActivationError> {
        if class >= self.num_classes {
            return Err(ActivationError::LabelOutOfRange {
                image: 0,
                label: class,
                classes: self.num_classes,
            });
        }
        Ok(())
    }

    /// Adds 1 to `A_l[class, j]` for every `j` in `selected`.
    ///
    /// Checks everything before changing anything.
    pub fn add(
        &mut self,
        layer: usize,
        class: usize,
        selected: &[usize],
    ) -> Result<(), ActivationError> {
        let c = self.check_layer(layer)?;
        self.check_class(class)?;
        let row = &mut self.counts[layer][class * c..(class + 1) * c];
        for &j in selected {
            let v = row.get(j).ok_or(ActivationError::ChannelOutOfRange {
                layer,
                channel: j,
                channels: c,
            })?;
            if *v == u32::MAX {
                return Err(ActivationError::CountOverflow {
                    layer,
                    class,
                    channel: j,
                });
            }
        }
        for &j in selected {
            row[j] += 1;
        }
        Ok(())
    }

    /// Adds `counts[j]` to `A_l[class, j]` for every channel `j` (counts computed elsewhere:
    /// an importer, a simulation). `counts` has one entry per channel of the layer. Checks
    /// everything before changing anything.
    pub fn add_row_counts(
        &mut self,
        layer: usize,
        class: usize,
        counts: &[u32],
    ) -> Result<(), ActivationError> {
        let c = self.check_layer(layer)?;
        self.check_class(class)?;
        if counts.len() != c {
            return Err(ActivationError::ChannelOutOfRange {
                layer,
                channel: counts.len(),
                channels: c,
            });
        }
        let row = &mut self.counts[layer][class * c..(class + 1) * c];
        if let Some(j) = (0..c).find(|&j| row[j].checked_add(counts[j]).is_none()) {
            return Err(ActivationError::CountOverflow {
                layer,
                class,
                channel: j,
            });
        }
        for (r, &n) in row.iter_mut().zip(counts) {
            *r += n;
        }
        Ok(())
    }

    /// Adds `other`'s counts to these. Refuses different class or channel
    /// counts, and an overflow, without changing anything.
    pub fn merge(&mut self, other: &ActivationCounts) -> Result<(), ActivationError> {
        if self.num_classes != other.num_classes {
            return Err(ActivationError::Mismatch {
                what: "class counts",
                left: self.num_classes.to_string(),
                right: other.num_classes.to_string(),
            });
        }
        if self.channels != other.channels {
            return Err(ActivationError::Mismatch {
                what: "layer channel counts",
                left: format!("{:?}", self.channels),
                right: format!("{:?}", other.channels),
            });
        }
        for (layer, (a, b)) in self.counts.iter().zip(&other.counts).enumerate() {
            if let Some(k) = a
                .iter()
                .zip(b)
                .position(|(x, y)| x.checked_add(*y).is_none())
            {
                let c = self.channels[layer];
                return Err(ActivationError::CountOverflow {
                    layer,
                    class: k / c,
                    channel: k % c,
                });
            }
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += *y;
            }
        }
        Ok(())
    }
}

/// Selects the channels of every row of `rows` (`[B, c]` row-major) in
/// parallel, by [`Selector::select`]; a non-finite value is reported with
/// its flat index in `rows`. The result does not depend on the thread count.
pub fn select_rows(
    rows: &[f32],
    c: usize,
    excluded: &ChannelMask,
    sel: &Selection,
) -> Result<Vec<Vec<usize>>, ActivationError> {
    sel.validate()?;
    if c == 0 {
        return Ok(Vec::new());
    }
    if !rows.len().is_multiple_of(c) {
        return Err(ActivationError::Shape {
            what: "rows",
            dims: vec![rows.len() / c + 1, c],
            expected: (rows.len() / c + 1) * c,
            got: rows.len(),
        });
    }
    let selections: Vec<Result<Vec<usize>, ActivationError>> = rows
        .par_chunks(c)
        .map_init(Selector::new, |selector, row| {
            let mut out = Vec::new();
            selector.select(row, excluded, sel, &mut out).map(|()| out)
        })
        .collect();
    selections
        .into_iter()
        .enumerate()
        .map(|(b, s)| {
            s.map_err(|e| match e {
                ActivationError::NonFinite { value, index, .. } => ActivationError::NonFinite {
                    what: "maxima",
                    index: b * c + index,
                    value,
                },
                other => other,
            })
        })
        .collect()
}

/// Accumulates `A` from per-image channel maxima, batch by batch.
///
/// The selection of each image depends only on that image's row, so the
/// result is independent of batch size, image order and thread count.
#[derive(Debug, Clone)]
pub struct ActivationAggregator {
    selection: Selection,
    masks: Vec<ChannelMask>,
    counts: ActivationCounts,
}

impl ActivationAggregator {
    /// An aggregator for `num_classes` classes and summary layers with
    /// `channels[l]` channels; `excluded[l]` lists layer `l`'s excluded
    /// channels (`excluded` may be shorter than `channels`: missing layers
    /// exclude nothing).
    pub fn new(
        num_classes: usize,
        channels: &[usize],
        excluded: &[Vec<usize>],
        selection: Selection,
    ) -> Result<Self, ActivationError> {
        selection.validate()?;
        if excluded.len() > channels.len() {
            return Err(ActivationError::LayerOutOfRange {
                layer: excluded.len() - 1,
                layers: channels.len(),
            });
        }
        let mut masks = Vec::with_capacity(channels.len());
        for (layer, &c) in channels.iter().enumerate() {
            let ex = excluded.get(layer).map_or(&[][..], Vec::as_slice);
            if let Some(&bad) = ex.iter().find(|&&e| e >= c) {
                return Err(ActivationError::ExcludedOutOfRange {
                    layer,
                    channel: bad,
                    channels: c,
                });
            }
            masks.push(ChannelMask::from_channels(ex));
        }
        Ok(Self {
            selection,
            masks,
            counts: ActivationCounts::new(num_classes, channels),
        })
    }

    /// The selection rule in use.
    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// The counts so far.
    pub fn counts(&self) -> &ActivationCounts {
        &self.counts
    }

    /// The counts, consuming the aggregator.
    pub fn into_counts(self) -> ActivationCounts {
        self.counts
    }

    /// Adds one batch of layer `layer`: `maxima` is `[batch, C_l]` row-major
    /// (from [`channel_max`](crate::channel_max) or the device), `labels[b]`
    /// is image `b`'s class. Rows are selected in parallel; the batch is
    /// validated completely before any count changes.
    pub fn add_batch(
        &mut self,
        layer: usize,
        maxima: &[f32],
        batch: usize,
        labels: &[usize],
    ) -> Result<(), ActivationError> {
        let c = self.counts.check_layer(layer)?;
        check_len("maxima", maxima.len(), &[batch, c])?;
        check_len("labels", labels.len(), &[batch])?;
        let classes = self.counts.num_classes;
        if let Some((image, &label)) = labels.iter().enumerate().find(|(_, l)| **l >= classes) {
            return Err(ActivationError::LabelOutOfRange {
                image,
                label,
                classes,
            });
        }
        if batch == 0 || c == 0 {
            return Ok(());
        }
        let chosen = select_rows(maxima, c, &self.masks[layer], &self.selection)?;
        // Overflow check before any change: an entry can grow by at most `batch`.
        let m = &mut self.counts.counts[layer];
        let room = u32::try_from(batch).unwrap_or(u32::MAX);
        for (&class, sel) in labels.iter().zip(&chosen) {
            if let Some(&j) = sel
                .iter()
                .find(|&&j| m[class * c + j].checked_add(room).is_none())
            {
                return Err(ActivationError::CountOverflow {
                    layer,
                    class,
                    channel: j,
                });
            }
        }
        for (&class, sel) in labels.iter().zip(&chosen) {
            for &j in sel {
                m[class * c + j] += 1;
            }
        }
        Ok(())
    }
}
