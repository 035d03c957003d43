//! `faithfulness.json`: does each class's attribution graph carry the class? (SPEC §3.1)
//!
//! The types here are what the pipeline measures by ablation and what the output records: per
//! class in `manifest.json` ([`ClassStats::faithfulness`](crate::ClassStats::faithfulness)) and
//! in full, with the summary over classes, in `faithfulness.json`.

use serde::{Deserialize, Serialize};

/// The file name of the faithfulness report in an output directory.
pub const FAITHFULNESS_FILE: &str = "faithfulness.json";

/// The ablation of one class's graph and its baselines, over the class's sample of images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassFaithfulness {
    /// Class index.
    pub class: usize,
    /// Images of the class in the sample (at most the requested number per class).
    pub images: usize,
    /// Images of the class in the run (the sample is all of them when fewer than requested).
    pub class_images: usize,
    /// Vertices of the class's graph (`|V_c|`).
    pub vertices: usize,
    /// Why the class was not ablated (`"empty graph"`, `"no images"` when none of its sample
    /// could be loaded, `"outside the budget"`), else `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Top-1 accuracy on the sample before ablation.
    pub accuracy_before: f64,
    /// Mean softmax probability of the class on the sample before ablation.
    pub p_before: f64,
    /// The graph ablated (`None` for a class not ablated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<AblationFigures>,
    /// The random draws: each ablates as many channels per layer as the graph has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random: Option<RandomBaseline>,
    /// The activation baseline: per layer the same number of channels with the highest
    /// activation counts `A_l[c, ·]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<AblationFigures>,
    /// `graph drop ÷ mean random drop` (`None` when the random draws do not lower `p(c)` on
    /// average, or the class was not ablated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_ratio: Option<f64>,
    /// The graph ablated on the samples of the most similar classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selectivity: Option<Selectivity>,
    /// The deletion curve: the graph's vertices ablated cumulatively by decreasing PageRank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion: Option<DeletionCurve>,
}

/// Accuracy and mean probability of the class after one ablation, and the drops.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AblationFigures {
    /// Top-1 accuracy after.
    pub accuracy_after: f64,
    /// Mean `p(c)` after.
    pub p_after: f64,
    /// `p_before − p_after`.
    pub drop: f64,
    /// `accuracy_before − accuracy_after`.
    pub accuracy_drop: f64,
}

/// The random draws of a class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RandomBaseline {
    /// The drop in mean `p(c)` of every draw, in draw order.
    pub drops: Vec<f64>,
    /// Mean of [`drops`](Self::drops).
    pub mean_drop: f64,
    /// Standard deviation of [`drops`](Self::drops) (population).
    pub std_drop: f64,
    /// Mean accuracy drop over the draws.
    pub mean_accuracy_drop: f64,
    /// The share of draws whose drop is at least the graph's.
    pub p_random: f64,
}

/// The graph of a class ablated on the images of its most similar classes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Selectivity {
    /// The neighbouring classes (most similar first).
    pub classes: Vec<usize>,
    /// Their images ablated.
    pub images: usize,
    /// Mean drop of each image's own class probability.
    pub drop: f64,
}

/// Mean `p(c)` as the graph's vertices are ablated cumulatively.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeletionCurve {
    /// Vertices ablated at each point (0 first, the whole graph last).
    pub vertices: Vec<usize>,
    /// Mean `p(c)` at each point.
    pub p: Vec<f64>,
    /// The area under the curve, x normalised to `[0, 1]` (trapezoids): lower means the
    /// top-ranked vertices matter more.
    pub area: f64,
}

/// The summary over the classes ablated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaithfulnessSummary {
    /// Classes whose graphs were ablated.
    pub classes: usize,
    /// Classes not ablated (empty graph, no images loaded, outside the budget).
    pub not_ablated: usize,
    /// The share of ablated classes with `p_random < 0.05`.
    pub share_beating_random: Option<f64>,
    /// The share of ablated classes whose graph's drop exceeds the activation baseline's.
    pub share_beating_activation: Option<f64>,
    /// Median of the graph's drop in mean `p(c)`.
    pub median_drop: Option<f64>,
    /// Median of the mean random drop.
    pub median_random_drop: Option<f64>,
    /// Median of the activation baseline's drop.
    pub median_activation_drop: Option<f64>,
    /// Median of [`ClassFaithfulness::drop_ratio`] over the classes that have one.
    pub median_drop_ratio: Option<f64>,
    /// Median drop on the neighbouring classes' images.
    pub median_selectivity_drop: Option<f64>,
    /// Median deletion-curve area.
    pub median_deletion_area: Option<f64>,
}

/// The content of `faithfulness.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaithfulnessReport {
    /// `"zero"` or `"mean"`.
    pub ablation: String,
    /// Images per class measured (the sample size; a class with fewer images gives all).
    pub per_class: usize,
    /// Images per class asked for (more than [`per_class`](Self::per_class) when the budget
    /// shrank the samples).
    pub requested_per_class: usize,
    /// The budget in forward input pixels, if bounded.
    pub budget: Option<u64>,
    /// Random draws per class.
    pub draws: usize,
    /// Neighbouring classes of the selectivity measure.
    pub neighbours: usize,
    /// Images per neighbouring class.
    pub per_neighbour: usize,
    /// Most points of a deletion curve.
    pub deletion_points: usize,
    /// The seed of the random draws.
    pub seed: u64,
    /// Images of the samples that could not be loaded (left out).
    pub skipped_images: usize,
    /// Forward passes (images) the ablations took.
    pub forward_images: u64,
    /// Whether the ablations of one image shared its unablated prefix (the part of the forward
    /// pass before the first summary layer, computed once per image): used where the model
    /// gives the same logits that way.
    #[serde(default)]
    pub shared_prefix: bool,
    /// The summary over classes.
    pub summary: FaithfulnessSummary,
    /// Per class, by class index in the run's order.
    pub classes: Vec<ClassFaithfulness>,
}

impl FaithfulnessReport {
    /// The figures of `class`, if it was measured.
    pub fn class(&self, class: usize) -> Option<&ClassFaithfulness> {
        self.classes.iter().find(|c| c.class == class)
    }
}

/// The median of `values` (the mean of the two middle values for an even count); `None` when
/// empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

impl FaithfulnessSummary {
    /// The summary of `classes`.
    pub fn of(classes: &[ClassFaithfulness]) -> Self {
        let ablated: Vec<&ClassFaithfulness> =
            classes.iter().filter(|c| c.graph.is_some()).collect();
        let n = ablated.len();
        let share = |f: &dyn Fn(&ClassFaithfulness) -> bool| {
            (n > 0).then(|| ablated.iter().filter(|c| f(c)).count() as f64 / n as f64)
        };
        let col = |f: &dyn Fn(&ClassFaithfulness) -> Option<f64>| -> Option<f64> {
            median(&ablated.iter().filter_map(|c| f(c)).collect::<Vec<_>>())
        };
        Self {
            classes: n,
            not_ablated: classes.len() - n,
            share_beating_random: share(&|c| c.random.as_ref().is_some_and(|r| r.p_random < 0.05)),
            share_beating_activation: share(&|c| match (&c.graph, &c.activation) {
                (Some(g), Some(a)) => g.drop > a.drop,
                _ => false,
            }),
            median_drop: col(&|c| c.graph.as_ref().map(|g| g.drop)),
            median_random_drop: col(&|c| c.random.as_ref().map(|r| r.mean_drop)),
            median_activation_drop: col(&|c| c.activation.as_ref().map(|a| a.drop)),
            median_drop_ratio: col(&|c| c.drop_ratio),
            median_selectivity_drop: col(&|c| c.selectivity.as_ref().map(|s| s.drop)),
            median_deletion_area: col(&|c| c.deletion.as_ref().map(|d| d.area)),
        }
    }
}
