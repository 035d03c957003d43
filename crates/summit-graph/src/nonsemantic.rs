//! Detection of non-semantic channels: channels that are among the top
//! channels of nearly every class, so they say nothing about any class (the
//! paper found five such channels in InceptionV1 by hand; SPEC §6's
//! `summit2019` preset excludes them). Beyond the paper.

use serde::{Deserialize, Serialize};

use crate::error::{GraphError, Result};
use crate::overview::check_rows;

/// Parameters of [`non_semantic_channels`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NonSemanticParams {
    /// How many of each class's channels count as its top channels. Default 10.
    pub top_k: usize,
    /// A channel is flagged when it is among the top channels of at least
    /// this share of the classes (those with any count). Default 0.9.
    pub min_class_share: f64,
    /// Fewer classes with any count than this in a layer flag nothing there
    /// ("nearly every class" says little about two or three classes).
    /// Default 10.
    #[serde(default = "default_min_classes")]
    pub min_classes: usize,
}

fn default_min_classes() -> usize {
    10
}

impl Default for NonSemanticParams {
    fn default() -> Self {
        Self {
            top_k: 10,
            min_class_share: 0.9,
            min_classes: default_min_classes(),
        }
    }
}

/// A flagged channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NonSemanticChannel {
    /// Layer index.
    pub layer: usize,
    /// Channel.
    pub channel: u32,
    /// Classes that have it among their top channels.
    pub classes: usize,
    /// `classes` over the classes with any count in this layer.
    pub share: f64,
}

/// Flags the channels of each layer that are among the `top_k` channels (by
/// count `A_l[class, j]`, zero counts never count, ties by higher channel
/// first as in SPEC §1) of at least `min_class_share` of the classes.
/// `layers[l][class]` is the row `A_l[class, :]`. Classes whose row is all
/// zero in a layer are left out of that layer's share. Sorted by layer, then
/// share descending, then channel.
///
/// ```
/// use summit_graph::{non_semantic_channels, NonSemanticParams};
/// // channel 0 is in every class's top 1; channels 1..3 are class-specific
/// let a = vec![vec![9, 5, 0, 0], vec![9, 0, 5, 0], vec![9, 0, 0, 5]];
/// let p = NonSemanticParams { top_k: 1, min_class_share: 0.9, min_classes: 1 };
/// let flagged = non_semantic_channels(&[a], &p).unwrap();
/// assert_eq!(flagged.len(), 1);
/// assert_eq!(flagged[0].channel, 0);
/// ```
pub fn non_semantic_channels(
    layers: &[Vec<Vec<u32>>],
    params: &NonSemanticParams,
) -> Result<Vec<NonSemanticChannel>> {
    if params.top_k == 0 {
        return Err(GraphError::InvalidParameter {
            name: "top_k",
            value: "0".into(),
            reason: "must be >= 1",
        });
    }
    if !(params.min_class_share.is_finite()
        && params.min_class_share > 0.0
        && params.min_class_share <= 1.0)
    {
        return Err(GraphError::InvalidParameter {
            name: "min_class_share",
            value: params.min_class_share.to_string(),
            reason: "must lie in (0, 1]",
        });
    }
    let mut out = Vec::new();
    for (l, rows) in layers.iter().enumerate() {
        let d = check_rows(rows, l)?;
        let mut hits = vec![0usize; d];
        let mut classes = 0usize;
        let mut order: Vec<u32> = Vec::with_capacity(d);
        for row in rows {
            order.clear();
            order.extend((0..d as u32).filter(|&c| row[c as usize] > 0));
            if order.is_empty() {
                continue;
            }
            classes += 1;
            order.sort_by(|&a, &b| row[b as usize].cmp(&row[a as usize]).then(b.cmp(&a)));
            for &c in order.iter().take(params.top_k) {
                hits[c as usize] += 1;
            }
        }
        if classes == 0 || classes < params.min_classes {
            continue;
        }
        let mut flagged: Vec<NonSemanticChannel> = hits
            .iter()
            .enumerate()
            .filter(|&(_, &h)| h > 0 && h as f64 >= params.min_class_share * classes as f64)
            .map(|(c, &h)| NonSemanticChannel {
                layer: l,
                channel: c as u32,
                classes: h,
                share: h as f64 / classes as f64,
            })
            .collect();
        flagged.sort_by(|a, b| b.classes.cmp(&a.classes).then(a.channel.cmp(&b.channel)));
        out.extend(flagged);
    }
    Ok(out)
}

/// The flagged channels as per-layer exclusion lists (sorted), ready for
/// [`crate::FullGraph::new`] and the activation aggregation's excluded channels.
pub fn exclusion_lists(flagged: &[NonSemanticChannel], n_layers: usize) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new(); n_layers];
    for f in flagged {
        if let Some(list) = out.get_mut(f.layer) {
            list.push(f.channel);
        }
    }
    for list in &mut out {
        list.sort_unstable();
        list.dedup();
    }
    out
}
