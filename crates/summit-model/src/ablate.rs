//! Ablating channels of summary layers during a forward pass (SPEC §3.1).
//!
//! Ablation goes through [`Summarizable::forward_taps`]: at every summary layer the pass hands
//! its output (after the activation) to a [`TapSink`], which returns the tensor with the chosen
//! channels replaced, and later layers compute from that. One implementation serves every model
//! summit-model runs (native, embedded, ONNX), and each row of a batch may ablate its own set of
//! channels, so that the many ablations of one image (a graph, random draws, a deletion curve)
//! share a batch.

use burn::tensor::{Tensor, TensorData};

use crate::describe::{Summarizable, TapId, TapSink};
use crate::error::{ModelError, Result};

/// What an ablated channel is replaced by.
#[derive(Debug, Clone, PartialEq)]
pub enum AblationFill {
    /// Zero (the default of SPEC §3.1).
    Zero,
    /// A value per channel: `values[l][c]` for channel `c` of summary layer `l` (e.g. the
    /// channel's mean activation over the data).
    Values(Vec<Vec<f32>>),
}

/// The channels one image ablates: `layers[l]` lists channels of summary layer `l` (in any
/// order; repeats are harmless). Layers past the end of `layers` ablate nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelSet {
    /// Per summary layer, the channels to ablate.
    pub layers: Vec<Vec<u32>>,
}

impl ChannelSet {
    /// A set ablating nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether the set ablates no channel.
    pub fn is_empty(&self) -> bool {
        self.layers.iter().all(Vec::is_empty)
    }

    /// The number of channels the set ablates (repeats counted once per entry).
    pub fn len(&self) -> usize {
        self.layers.iter().map(Vec::len).sum()
    }
}

/// Checks `sets` and `fill` against `model`'s summary layers; the error names the layer and
/// channel.
pub fn check_ablation(
    model: &dyn Summarizable,
    sets: &[ChannelSet],
    fill: &AblationFill,
) -> Result<()> {
    let desc = model.description();
    for (row, set) in sets.iter().enumerate() {
        if set.layers.len() > desc.layers.len() {
            return Err(ModelError::Ablation(format!(
                "row {row} ablates {} summary layers, model `{}` has {}",
                set.layers.len(),
                desc.name,
                desc.layers.len()
            )));
        }
        for (l, chans) in set.layers.iter().enumerate() {
            let layer = &desc.layers[l];
            if let Some(&c) = chans.iter().find(|&&c| c as usize >= layer.channels) {
                return Err(ModelError::Ablation(format!(
                    "row {row}: channel {c} of summary layer `{}`, which has {} channels",
                    layer.name, layer.channels
                )));
            }
        }
    }
    if let AblationFill::Values(v) = fill {
        if v.len() != desc.layers.len() {
            return Err(ModelError::Ablation(format!(
                "fill values for {} summary layers, model `{}` has {}",
                v.len(),
                desc.name,
                desc.layers.len()
            )));
        }
        for (layer, vals) in desc.layers.iter().zip(v) {
            if vals.len() != layer.channels {
                return Err(ModelError::Ablation(format!(
                    "fill values for {} channels of summary layer `{}`, which has {}",
                    vals.len(),
                    layer.name,
                    layer.channels
                )));
            }
        }
    }
    Ok(())
}

/// The logits of `images` (`[B, c, h, w]`) with row `b`'s channels `sets[b]` ablated at every
/// summary layer at once (all layers of the set in the same pass: a later layer sees the
/// earlier layers' ablation). `sets.len()` must equal `B`.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use summit_model::ablate::{AblationFill, ChannelSet, forward_ablated};
/// use summit_model::{FashionInception, Summarizable, to_host};
///
/// let device = Device::flex();
/// let model = FashionInception::embedded(&device)?;
/// let x = Tensor::<4>::ones([2, 1, 28, 28], &device);
/// // row 0 unchanged, row 1 with channels 0..8 of the first summary layer set to zero
/// let sets = [ChannelSet::none(), ChannelSet { layers: vec![(0..8).collect()] }];
/// let ablated = to_host(forward_ablated(&model, x.clone(), &sets, &AblationFill::Zero)?, "a")?;
/// let plain = to_host(model.forward(x)?, "p")?;
/// assert_eq!(&ablated[..10], &plain[..10]);
/// assert_ne!(&ablated[10..], &plain[10..]);
/// # Ok::<(), summit_model::ModelError>(())
/// ```
pub fn forward_ablated(
    model: &dyn Summarizable,
    images: Tensor<4>,
    sets: &[ChannelSet],
    fill: &AblationFill,
) -> Result<Tensor<2>> {
    let batch = images.dims()[0];
    if sets.len() != batch {
        return Err(ModelError::Ablation(format!(
            "{} channel sets for a batch of {batch} images",
            sets.len()
        )));
    }
    run_ablated(model, images, sets, fill, false)
}

/// [`forward_ablated`] of one image (`[1, c, h, w]`) under every set of `sets`, sharing the
/// unablated prefix: the pass runs the image alone up to the first summary layer it reaches,
/// repeats that layer's output once per set and goes on with the batch of `sets.len()` rows.
/// Equal to [`forward_ablated`] of the image repeated for every model whose layers after the
/// first summary layer compute from it (or broadcast what came before); a model whose later
/// layers read the input's batch size (e.g. an ONNX `Reshape` to a shape taken from the input)
/// gives logits of another shape, an error here. Check once per model that both agree
/// (`summit_core`'s ablation pass does) before relying on it.
pub fn forward_ablated_shared(
    model: &dyn Summarizable,
    image: Tensor<4>,
    sets: &[ChannelSet],
    fill: &AblationFill,
) -> Result<Tensor<2>> {
    if image.dims()[0] != 1 || sets.is_empty() {
        return Err(ModelError::Ablation(format!(
            "a shared-prefix ablation takes one image and at least one channel set, not {} \
             images and {} sets",
            image.dims()[0],
            sets.len()
        )));
    }
    let logits = run_ablated(model, image, sets, fill, true)?;
    if logits.dims()[0] != sets.len() {
        return Err(ModelError::Ablation(format!(
            "model `{}` gave {} rows of logits for {} channel sets: its layers after the first \
             summary layer depend on the input's batch size",
            model.description().name,
            logits.dims()[0],
            sets.len()
        )));
    }
    Ok(logits)
}

fn run_ablated(
    model: &dyn Summarizable,
    images: Tensor<4>,
    sets: &[ChannelSet],
    fill: &AblationFill,
    expand: bool,
) -> Result<Tensor<2>> {
    let batch = sets.len();
    check_ablation(model, sets, fill)?;
    let desc = model.description();
    let device = images.device();
    // per summary layer with any ablation: the keep mask [B, C, 1, 1] and the fill term
    let mut edits: Vec<(TapId, Tensor<4>, Option<Tensor<4>>)> = Vec::new();
    for (l, layer) in desc.layers.iter().enumerate() {
        if sets
            .iter()
            .all(|s| s.layers.get(l).is_none_or(Vec::is_empty))
        {
            continue;
        }
        let c = layer.channels;
        let mut keep = vec![1f32; batch * c];
        for (b, s) in sets.iter().enumerate() {
            for &ch in s.layers.get(l).map(Vec::as_slice).unwrap_or_default() {
                keep[b * c + ch as usize] = 0.0;
            }
        }
        let added = match fill {
            AblationFill::Zero => None,
            AblationFill::Values(v) => {
                let add: Vec<f32> = keep
                    .iter()
                    .enumerate()
                    .map(|(i, &k)| (1.0 - k) * v[l][i % c])
                    .collect();
                Some(Tensor::from_data(
                    TensorData::new(add, [batch, c, 1, 1]),
                    &device,
                ))
            }
        };
        let keep = Tensor::from_data(TensorData::new(keep, [batch, c, 1, 1]), &device);
        edits.push((layer.tap, keep, added));
    }
    let mut seen = vec![false; edits.len()];
    let summary: Vec<TapId> = desc.layers.iter().map(|l| l.tap).collect();
    let mut expanded = !expand;
    let mut sink = |id: TapId, t: Tensor<4>| -> Tensor<4> {
        // the shared prefix ends at the first summary layer: one row per set from here
        let t = if !expanded && summary.contains(&id) {
            expanded = true;
            t.repeat_dim(0, batch)
        } else {
            t
        };
        match edits.iter().position(|e| e.0 == id) {
            Some(i) => {
                seen[i] = true;
                let (_, keep, added) = &edits[i];
                let t = t.mul(keep.clone());
                match added {
                    Some(a) => t.add(a.clone()),
                    None => t,
                }
            }
            None => t,
        }
    };
    let logits = model.forward_taps(images, &mut sink as &mut dyn TapSink)?;
    if let Some(i) = seen.iter().position(|s| !s) {
        let name = desc
            .layers
            .iter()
            .find(|l| l.tap == edits[i].0)
            .map(|l| l.name.clone())
            .unwrap_or_default();
        return Err(ModelError::Ablation(format!(
            "the forward pass of `{}` never reached summary layer `{name}`: nothing was ablated \
             there",
            desc.name
        )));
    }
    Ok(logits)
}
