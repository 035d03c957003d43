//! The images worth a closer look, chosen while the pass streams (SPEC §4.2–4.3): per class
//! its most confident images and its most confidently misclassified ones, and a fixed-size
//! sample of all images plus of the misclassified ones (for comparing models). Every set is a
//! top-N under a total order, so the kept images do not depend on batch size, image order,
//! thread count or shard split, and the size is bounded (classes × N + 2 × the sample size).

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// How many images each set keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PickParams {
    /// Per class: its most confident images and, as many again, its most confidently
    /// misclassified images (10).
    pub per_class: usize,
    /// Size of the sample of all images and of the sample of misclassified images, chosen by
    /// a hash of the image id, so that runs of several models over one dataset sample the same
    /// images (1000).
    pub sample: usize,
    /// Predictions kept per picked image (5).
    pub top: usize,
}

impl Default for PickParams {
    fn default() -> Self {
        Self {
            per_class: 10,
            sample: 1000,
            top: 5,
        }
    }
}

/// One picked image: its id, true class, the model's top predictions and the key it is
/// ranked by.
///
/// Two picks are equal when id, label and predicted classes are, and the probabilities and key
/// agree within [`PROBABILITY_TOLERANCE`]: the classifier's final matrix product rounds
/// differently for different batch sizes (a few 1e-8), while the feature maps, and so every
/// other aggregate, do not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pick {
    /// The image id (the dataset index in the pipeline).
    pub id: u64,
    /// The true class.
    pub label: u32,
    /// The top predictions, `(class, probability)`, probability descending, ties by class.
    pub top: Vec<(u32, f32)>,
    /// The ranking key: the probability of the class (confident), of the predicted class
    /// (misclassified), or the id's hash (samples).
    pub key: f64,
}

/// How far two picks' probabilities may differ and the picks still be equal (see [`Pick`]).
pub const PROBABILITY_TOLERANCE: f64 = 1e-6;

impl PartialEq for Pick {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.label == other.label
            && (self.key - other.key).abs() <= PROBABILITY_TOLERANCE
            && self.top.len() == other.top.len()
            // classes of (nearly) equal probability may come in either order
            && self.top.iter().zip(&other.top).all(|(a, b)| {
                (f64::from(a.1) - f64::from(b.1)).abs() <= PROBABILITY_TOLERANCE
            })
            && self.top.first().map(|t| t.0) == other.top.first().map(|t| t.0)
    }
}

impl Pick {
    /// The predicted class (the first maximum).
    pub fn predicted(&self) -> u32 {
        self.top.first().map_or(0, |t| t.0)
    }

    /// The probability of the predicted class.
    pub fn confidence(&self) -> f32 {
        self.top.first().map_or(0.0, |t| t.1)
    }
}

/// The `k` most probable classes of a probability row, `(class, probability)`, probability
/// descending, ties by class ascending.
pub fn top_classes(probs: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    order.into_iter().take(k).map(|c| (c, probs[c])).collect()
}

/// A deterministic hash of an image id (SplitMix64's finaliser).
pub fn id_hash(id: u64) -> u64 {
    let mut z = id.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Key descending, then id ascending.
fn by_key(a: &Pick, b: &Pick) -> Ordering {
    b.key.total_cmp(&a.key).then(a.id.cmp(&b.id))
}

/// Hash ascending, then id ascending.
fn by_hash(a: &Pick, b: &Pick) -> Ordering {
    id_hash(a.id).cmp(&id_hash(b.id)).then(a.id.cmp(&b.id))
}

fn insert(set: &mut Vec<Pick>, cap: usize, p: Pick, cmp: fn(&Pick, &Pick) -> Ordering) {
    if cap == 0 {
        return;
    }
    if set.len() == cap
        && let Some(worst) = set.last()
        && cmp(&p, worst) != Ordering::Less
    {
        return;
    }
    let pos = set.partition_point(|x| cmp(x, &p) == Ordering::Less);
    set.insert(pos, p);
    set.truncate(cap);
}

/// The picked images of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagePicks {
    params: PickParams,
    confident: Vec<Vec<Pick>>,
    misclassified: Vec<Vec<Pick>>,
    sample: Vec<Pick>,
    misclassified_sample: Vec<Pick>,
}

impl ImagePicks {
    /// Empty picks for `classes` classes.
    pub fn new(classes: usize, params: PickParams) -> Self {
        Self {
            params,
            confident: vec![Vec::new(); classes],
            misclassified: vec![Vec::new(); classes],
            sample: Vec::new(),
            misclassified_sample: Vec::new(),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &PickParams {
        &self.params
    }

    /// Offers one image: `probs` is its softmax row, `label` its class (checked by the
    /// caller).
    pub fn offer(&mut self, id: u64, label: usize, probs: &[f32]) {
        let top: Vec<(u32, f32)> = top_classes(probs, self.params.top.max(1))
            .into_iter()
            .map(|(c, p)| (c as u32, p))
            .collect();
        let pred = top.first().map_or(label, |t| t.0 as usize);
        let base = Pick {
            id,
            label: label as u32,
            top,
            key: 0.0,
        };
        let n = self.params.per_class;
        let Some(conf) = self.confident.get_mut(label) else {
            return;
        };
        insert(
            conf,
            n,
            Pick {
                key: f64::from(probs[label]),
                ..base.clone()
            },
            by_key,
        );
        if pred != label {
            insert(
                &mut self.misclassified[label],
                n,
                Pick {
                    key: f64::from(probs[pred]),
                    ..base.clone()
                },
                by_key,
            );
            insert(
                &mut self.misclassified_sample,
                self.params.sample,
                base.clone(),
                by_hash,
            );
        }
        insert(&mut self.sample, self.params.sample, base, by_hash);
    }

    /// Class `c`'s most confident images (probability of the class descending).
    pub fn confident(&self, c: usize) -> &[Pick] {
        self.confident.get(c).map_or(&[], |v| v.as_slice())
    }

    /// Class `c`'s most confidently misclassified images (probability of the predicted class
    /// descending).
    pub fn misclassified(&self, c: usize) -> &[Pick] {
        self.misclassified.get(c).map_or(&[], |v| v.as_slice())
    }

    /// The sample of all images (by id hash).
    pub fn sample(&self) -> &[Pick] {
        &self.sample
    }

    /// The sample of the misclassified images (by id hash).
    pub fn misclassified_sample(&self) -> &[Pick] {
        &self.misclassified_sample
    }

    /// Every picked image once, by id.
    pub fn all(&self) -> Vec<&Pick> {
        let mut v: Vec<&Pick> = self
            .confident
            .iter()
            .chain(&self.misclassified)
            .flatten()
            .chain(&self.sample)
            .chain(&self.misclassified_sample)
            .collect();
        v.sort_by_key(|p| p.id);
        v.dedup_by_key(|p| p.id);
        v
    }

    /// Merges another run's picks (of other images) into these; `false` when the parameters
    /// or class counts differ.
    pub fn merge(&mut self, other: &ImagePicks) -> bool {
        if self.params != other.params || self.confident.len() != other.confident.len() {
            return false;
        }
        let n = self.params.per_class;
        for (mine, theirs) in self.confident.iter_mut().zip(&other.confident) {
            for p in theirs {
                insert(mine, n, p.clone(), by_key);
            }
        }
        for (mine, theirs) in self.misclassified.iter_mut().zip(&other.misclassified) {
            for p in theirs {
                insert(mine, n, p.clone(), by_key);
            }
        }
        for p in &other.sample {
            insert(&mut self.sample, self.params.sample, p.clone(), by_hash);
        }
        for p in &other.misclassified_sample {
            insert(
                &mut self.misclassified_sample,
                self.params.sample,
                p.clone(),
                by_hash,
            );
        }
        true
    }
}
