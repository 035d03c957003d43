//! Faithfulness by ablation (SPEC §3.1): does each class's attribution graph carry the class?
//!
//! After the graphs are made, a second pass over a sample of every class's images (at most
//! [`FaithfulnessConfig::per_class`], chosen by a hash of the dataset index so that every shard
//! split and rerun picks the same) runs the model with channels of its summary layers ablated
//! ([`summit_model::forward_ablated`]): the class's graph, seeded random draws of the same size
//! per layer, the channels with the highest activation counts, the graph's vertices one at a
//! time by decreasing PageRank (the deletion curve), and the graph on the images of the most
//! similar classes (selectivity). Nothing per image is kept beyond the sample's indices and the
//! class probabilities of the forward in flight; every figure is a sum in a fixed order, so it
//! does not depend on thread count or shard split.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use summit_data::Dataset;
use summit_export::{
    AblationFigures, ClassFaithfulness, DeletionCurve, FaithfulnessReport, FaithfulnessSummary,
    RandomBaseline, Selectivity,
};
use summit_graph::AttributionGraph;
use summit_influence::{Aggregates, id_hash};
use summit_model::burn::tensor::{Device, Tensor, TensorData};
use summit_model::{
    AblationFill, ChannelSet, Summarizable, forward_ablated, forward_ablated_shared, to_host,
};

use crate::analysis::Analysis;
use crate::error::{CoreError, Result};
use crate::pipeline::softmax_rows;

/// What an ablated channel becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AblationMode {
    /// Zero (SPEC §3.1's default).
    #[default]
    Zero,
    /// The channel's mean activation (over its positions and the images of every class's
    /// sample, measured by the unablated forward of this pass).
    Mean,
}

impl AblationMode {
    /// `zero` or `mean`.
    pub fn name(self) -> &'static str {
        match self {
            AblationMode::Zero => "zero",
            AblationMode::Mean => "mean",
        }
    }
}

impl std::str::FromStr for AblationMode {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "zero" => Ok(AblationMode::Zero),
            "mean" => Ok(AblationMode::Mean),
            other => Err(CoreError::Usage(format!(
                "unknown ablation `{other}`: expected `zero` or `mean`"
            ))),
        }
    }
}

/// The default [`FaithfulnessConfig::budget`]: 32 M input pixels through the model.
pub const DEFAULT_BUDGET: u64 = 32_000_000;

/// The fewest images per class the budget shrinks a sample to before it drops classes.
pub const MIN_BUDGET_IMAGES: usize = 10;

/// What measuring one class costs, in forward images.
#[derive(Debug, Clone, Copy)]
pub struct ClassCost {
    /// The class.
    pub class: usize,
    /// Its images in the run.
    pub images: usize,
    /// Forward images per sampled image (the base, the graph, the draws, the activation
    /// baseline, the deletion prefixes).
    pub per_image: usize,
    /// Forward images of the selectivity measure.
    pub selectivity: usize,
}

/// What the budget allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetPlan {
    /// Images per class.
    pub per_class: usize,
    /// The classes measured.
    pub classes: Vec<usize>,
}

/// The images per class and the classes that fit `budget` forward images: `per_class` when all
/// classes fit, else the largest sample size of at least [`MIN_BUDGET_IMAGES`] that fits, else
/// that minimum for the classes taken in the order of a hash of their index while they fit
/// (at least one).
pub fn plan_budget(costs: &[ClassCost], per_class: usize, budget: Option<u64>) -> BudgetPlan {
    let all: Vec<usize> = costs.iter().map(|c| c.class).collect();
    let cost = |c: &ClassCost, n: usize| (c.images.min(n) * c.per_image + c.selectivity) as u64;
    let total = |n: usize| costs.iter().map(|c| cost(c, n)).sum::<u64>();
    let Some(budget) = budget else {
        return BudgetPlan {
            per_class,
            classes: all,
        };
    };
    if total(per_class) <= budget {
        return BudgetPlan {
            per_class,
            classes: all,
        };
    }
    let floor = MIN_BUDGET_IMAGES.min(per_class);
    if total(floor) <= budget {
        // the largest n in [floor, per_class) that fits
        let (mut lo, mut hi) = (floor, per_class);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if total(mid) <= budget {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        return BudgetPlan {
            per_class: lo,
            classes: all,
        };
    }
    let mut order: Vec<&ClassCost> = costs.iter().collect();
    order.sort_by_key(|c| (id_hash(c.class as u64), c.class));
    let mut spent = 0u64;
    let mut classes = Vec::new();
    for c in order {
        let k = cost(c, floor);
        if !classes.is_empty() && spent + k > budget {
            continue;
        }
        spent += k;
        classes.push(c.class);
    }
    classes.sort_unstable();
    BudgetPlan {
        per_class: floor,
        classes,
    }
}

/// How the graphs' faithfulness is measured (SPEC §3.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaithfulnessConfig {
    /// Images per class (default 100: the main job's ablation pass takes 5 s on 2 cores, with
    /// the same findings as 200; docs/faithfulness.md): the class's images with the smallest hash of their
    /// dataset index; all of them when the class has fewer.
    pub per_class: usize,
    /// Random draws per class (20).
    pub draws: usize,
    /// Most similar classes of the selectivity measure (20).
    pub neighbours: usize,
    /// Images per neighbouring class (20, the first of its sample).
    pub per_neighbour: usize,
    /// Most points of a deletion curve (32): a graph with more vertices is measured at this
    /// many evenly spaced prefix sizes (the whole graph last).
    pub deletion_points: usize,
    /// What an ablated channel becomes.
    pub mode: AblationMode,
    /// The most forward-pass input pixels (images × height × width) the measurement may take
    /// (`None`: no bound). The default, 32 M, is the 10k-image main job at 100 images per
    /// class (about 31 000 forward images at 28², 5 s on 2 cores) or about 640 images through an
    /// ImageNet model at 224² (about 25 s); above it the images per class shrink (to no fewer
    /// than 10), then classes are measured in the order of a hash of their index until the
    /// budget is spent (the others say `outside the budget`), but at least one class is
    /// measured, whatever it costs (at 224²: its 10 images, its draws and deletion curve and its
    /// 20 neighbours' 20 images, about 1 300 forward images). Asking for a number of images per
    /// class on the command line lifts the bound.
    pub budget: Option<u64>,
}

impl Default for FaithfulnessConfig {
    fn default() -> Self {
        Self {
            per_class: 100,
            draws: 20,
            neighbours: 20,
            per_neighbour: 20,
            deletion_points: 32,
            mode: AblationMode::Zero,
            budget: Some(DEFAULT_BUDGET),
        }
    }
}

impl FaithfulnessConfig {
    /// Fails on parameters that cannot work.
    pub fn validate(&self) -> Result<()> {
        if self.per_class == 0 {
            return Err(CoreError::Config(
                "faithfulness: at least one image per class (--faithfulness N with N ≥ 1, or \
                 off)"
                    .into(),
            ));
        }
        if self.deletion_points == 0 {
            return Err(CoreError::Config(
                "faithfulness: a deletion curve needs at least one point".into(),
            ));
        }
        Ok(())
    }
}

/// The sample of one class: its run indices with the smallest [`id_hash`] (ties by index),
/// at most `n`, in that order.
pub fn class_sample(indices: &[usize], labels: &[usize], class: usize, n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = indices
        .iter()
        .copied()
        .filter(|&i| labels.get(i) == Some(&class))
        .collect();
    v.sort_by_key(|&i| (id_hash(i as u64), i));
    v.truncate(n);
    v
}

/// The vertex set of a graph as a [`ChannelSet`].
pub fn graph_channels(g: &AttributionGraph) -> ChannelSet {
    ChannelSet {
        layers: g
            .layers
            .iter()
            .map(|l| l.vertices.iter().map(|v| v.channel).collect())
            .collect(),
    }
}

/// The graph's vertices `(layer, channel)` by decreasing PageRank; ties by the higher layer,
/// then the higher channel first (the tie rule of SPEC §1).
pub fn deletion_order(g: &AttributionGraph) -> Vec<(usize, u32)> {
    let mut v: Vec<(usize, u32, f64)> = g
        .layers
        .iter()
        .enumerate()
        .flat_map(|(l, layer)| {
            layer
                .vertices
                .iter()
                .map(move |v| (l, v.channel, v.pagerank))
        })
        .collect();
    v.sort_by(|a, b| b.2.total_cmp(&a.2).then(b.0.cmp(&a.0)).then(b.1.cmp(&a.1)));
    v.into_iter().map(|(l, c, _)| (l, c)).collect()
}

/// The prefix sizes of a deletion curve of `n` vertices: every size up to `points`, else
/// `points` evenly spaced sizes ending at `n`.
pub fn deletion_sizes(n: usize, points: usize) -> Vec<usize> {
    if n <= points {
        return (1..=n).collect();
    }
    let mut v: Vec<usize> = (1..=points)
        .map(|i| ((i * n) as f64 / points as f64).round() as usize)
        .map(|k| k.clamp(1, n))
        .collect();
    v.dedup();
    v
}

/// Random draw `draw` of class `class`: per layer, as many channels as `sizes[l]`, uniformly
/// without replacement from the layer's channels that are not excluded.
pub fn random_draw(
    sizes: &[usize],
    channels: &[usize],
    excluded: &[Vec<u32>],
    seed: u64,
    class: usize,
    draw: usize,
) -> ChannelSet {
    let key = id_hash(seed ^ id_hash((class as u64) << 20 | draw as u64));
    let mut rng = ChaCha8Rng::seed_from_u64(key);
    ChannelSet {
        layers: sizes
            .iter()
            .enumerate()
            .map(|(l, &k)| {
                let ex = excluded.get(l).map(Vec::as_slice).unwrap_or_default();
                let mut pool: Vec<u32> = (0..channels[l] as u32)
                    .filter(|c| !ex.contains(c))
                    .collect();
                let k = k.min(pool.len());
                for i in 0..k {
                    let j = rng.random_range(i..pool.len());
                    pool.swap(i, j);
                }
                let mut take = pool[..k].to_vec();
                take.sort_unstable();
                take
            })
            .collect(),
    }
}

/// The activation baseline of a class: per layer the `sizes[l]` channels with the highest
/// counts `A_l[class, ·]` (ties: the higher channel first), excluded channels never.
pub fn activation_channels(
    aggs: &Aggregates,
    class: usize,
    sizes: &[usize],
    excluded: &[Vec<u32>],
) -> Result<ChannelSet> {
    let mut layers = Vec::with_capacity(sizes.len());
    for (l, &k) in sizes.iter().enumerate() {
        let m = aggs.activation_matrix(l).ok_or_else(|| {
            CoreError::Config(format!("faithfulness: no activation counts of layer {l}"))
        })?;
        let ex = excluded.get(l).map(Vec::as_slice).unwrap_or_default();
        let row = m.row(class);
        let mut order: Vec<u32> = (0..row.len() as u32).filter(|c| !ex.contains(c)).collect();
        order.sort_by(|&a, &b| row[b as usize].cmp(&row[a as usize]).then(b.cmp(&a)));
        order.truncate(k);
        order.sort_unstable();
        layers.push(order);
    }
    Ok(ChannelSet { layers })
}

/// The distinct sets of `sets` (each layer's channels sorted), and for each set its index among
/// them.
fn distinct_sets(sets: Vec<ChannelSet>) -> (Vec<ChannelSet>, Vec<usize>) {
    let mut distinct: Vec<ChannelSet> = Vec::new();
    let mut index = Vec::with_capacity(sets.len());
    for mut s in sets {
        for l in &mut s.layers {
            l.sort_unstable();
            l.dedup();
        }
        while s.layers.last().is_some_and(Vec::is_empty) {
            s.layers.pop();
        }
        match distinct.iter().position(|d| *d == s) {
            Some(i) => index.push(i),
            None => {
                index.push(distinct.len());
                distinct.push(s);
            }
        }
    }
    (distinct, index)
}

/// One ablated forward to do: an image (by its slot in the loaded images) and a channel set.
struct Row {
    image: usize,
    set: usize,
    /// The class whose probability is read.
    class: usize,
}

/// What ablating one chosen set of channels does to a class's images (SPEC §3.1's measure for a
/// set the user picks, SPEC §5.1): the class's mean probability and top-1 count before and
/// after ([`Ablator::ablate_set`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SetAblation {
    /// The class whose probability is read.
    pub class: usize,
    /// Channels ablated.
    pub channels: usize,
    /// Images measured.
    pub images: usize,
    /// Images asked for that could not be loaded at the model's input size.
    pub skipped: usize,
    /// Mean p(class) unablated.
    pub p_before: f64,
    /// Mean p(class) with the set ablated.
    pub p_after: f64,
    /// `p_before − p_after`.
    pub drop: f64,
    /// Images predicted as the class, unablated.
    pub correct_before: usize,
    /// Images predicted as the class with the set ablated.
    pub correct_after: usize,
}

/// Runs the ablations of SPEC §3.1 for every class of `analysis` that has a graph.
pub struct Ablator<'a> {
    model: &'a dyn Summarizable,
    device: &'a Device,
    dataset: &'a dyn Dataset,
    batch: usize,
    forwards: u64,
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    shared: bool,
}

impl<'a> Ablator<'a> {
    /// An ablator running `model` on `device` over `dataset`, `batch` images per forward.
    pub fn new(
        model: &'a dyn Summarizable,
        device: &'a Device,
        dataset: &'a dyn Dataset,
        batch: usize,
    ) -> Self {
        Self {
            model,
            device,
            dataset,
            batch: batch.max(1),
            forwards: 0,
            stop: None,
            shared: false,
        }
    }

    /// Whether the stop flag ([`with_stop`](Self::with_stop)) is raised.
    fn stop_requested(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Stops between classes once `stop` is raised, with [`CoreError::Interrupted`].
    pub fn with_stop(mut self, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Ablates `set` (every channel in it, filled as `mode` says) on the dataset images
    /// `images`, reading `class`: its mean probability and top-1 count before and after
    /// ([`SetAblation`]). `progress(done, total)` is called before the first batch and after
    /// each; a raised stop flag ([`with_stop`](Self::with_stop)) ends it between batches with
    /// [`CoreError::Interrupted`]. With [`AblationMode::Mean`] the means are those of these
    /// images.
    pub fn ablate_set(
        &mut self,
        class: usize,
        set: &ChannelSet,
        images: &[usize],
        mode: AblationMode,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<SetAblation> {
        let desc = self.model.description();
        if class >= desc.num_classes {
            return Err(CoreError::Usage(format!(
                "class {class} does not exist: model `{}` has {} classes",
                desc.name, desc.num_classes
            )));
        }
        let loaded: Vec<Vec<f32>> = images.iter().filter_map(|&i| self.load(i)).collect();
        let skipped = images.len() - loaded.len();
        let fill = match mode {
            AblationMode::Zero => AblationFill::Zero,
            AblationMode::Mean => AblationFill::Values(self.channel_means(&loaded)?),
        };
        let sets = [ChannelSet::none(), set.clone()];
        let total = loaded.len();
        let (mut p_before, mut p_after, mut correct_before, mut correct_after) =
            (0f64, 0f64, 0usize, 0usize);
        progress(0, total);
        let mut done = 0;
        while done < total {
            if self.stop_requested() {
                return Err(CoreError::Interrupted {
                    processed: done,
                    total,
                    resume: "the ablation was cancelled".into(),
                });
            }
            let end = (done + self.batch).min(total);
            let rows: Vec<Row> = (done..end)
                .flat_map(|i| {
                    [
                        Row {
                            image: i,
                            set: 0,
                            class,
                        },
                        Row {
                            image: i,
                            set: 1,
                            class,
                        },
                    ]
                })
                .collect();
            for pair in self.run_rows(&loaded, &sets, &rows, &fill)?.chunks(2) {
                p_before += pair[0].0;
                p_after += pair[1].0;
                correct_before += usize::from(pair[0].1);
                correct_after += usize::from(pair[1].1);
            }
            done = end;
            progress(done, total);
        }
        let n = total.max(1) as f64;
        Ok(SetAblation {
            class,
            channels: set.len(),
            images: total,
            skipped,
            p_before: p_before / n,
            p_after: p_after / n,
            drop: (p_before - p_after) / n,
            correct_before,
            correct_after,
        })
    }

    /// The probabilities of `classes[r]` for each row `r`, and whether the row's prediction is
    /// its class, with the row's channel set ablated (`images` hold each image's values).
    fn run_rows(
        &mut self,
        images: &[Vec<f32>],
        sets: &[ChannelSet],
        rows: &[Row],
        fill: &AblationFill,
    ) -> Result<Vec<(f64, bool)>> {
        let desc = self.model.description();
        let [c, h, w] = [desc.input.channels, desc.input.height, desc.input.width];
        let per = c * h * w;
        let classes = desc.num_classes;
        let model = self.model;
        let device = self.device;
        let shared = self.shared;
        // a chunk is one forward: rows of one image share its unablated prefix when the model
        // allows it (`shared`), other chunks are batches of rows; chunks run in parallel (one
        // forward per core) and the results are kept in row order
        let run_chunk = |chunk: &[Row]| -> Result<Vec<(f64, bool)>> {
            let one_image = chunk.len() > 1 && chunk.iter().all(|r| r.image == chunk[0].image);
            let row_sets: Vec<ChannelSet> = chunk.iter().map(|r| sets[r.set].clone()).collect();
            let logits = if shared && one_image {
                let x = Tensor::<4>::from_data(
                    TensorData::new(images[chunk[0].image].clone(), [1, c, h, w]),
                    device,
                );
                forward_ablated_shared(model, x, &row_sets, fill)
            } else {
                let mut data = Vec::with_capacity(chunk.len() * per);
                for r in chunk {
                    data.extend_from_slice(&images[r.image]);
                }
                let x =
                    Tensor::<4>::from_data(TensorData::new(data, [chunk.len(), c, h, w]), device);
                forward_ablated(model, x, &row_sets, fill)
            }
            .map_err(CoreError::model(
                "the ablated forward pass (faithfulness)".to_string(),
            ))?;
            let logits = to_host(logits, "ablated logits")
                .map_err(CoreError::model("reading the ablated logits".to_string()))?;
            let probs = softmax_rows(&logits, classes);
            Ok(chunk
                .iter()
                .enumerate()
                .map(|(k, r)| {
                    let row = &probs[k * classes..(k + 1) * classes];
                    let pred = summit_influence::top_classes(row, 1)
                        .first()
                        .map_or(usize::MAX, |t| t.0);
                    (f64::from(row[r.class]), pred == r.class)
                })
                .collect())
        };
        let chunks: Vec<&[Row]> = if shared {
            // each image's run of rows on its own (at most a batch each); runs of single rows
            // of different images together, as batches
            let mut v = Vec::new();
            let mut pending = 0..0;
            let mut start = 0;
            while start < rows.len() {
                let mut end = start + 1;
                while end < rows.len() && rows[end].image == rows[start].image {
                    end += 1;
                }
                if end - start == 1 {
                    if pending.is_empty() {
                        pending = start..start;
                    }
                    pending.end = end;
                    if pending.len() == self.batch {
                        v.push(&rows[pending.clone()]);
                        pending = 0..0;
                    }
                } else {
                    if !pending.is_empty() {
                        v.push(&rows[pending.clone()]);
                        pending = 0..0;
                    }
                    v.extend(rows[start..end].chunks(self.batch));
                }
                start = end;
            }
            if !pending.is_empty() {
                v.push(&rows[pending]);
            }
            v
        } else {
            rows.chunks(self.batch).collect()
        };
        let parts: Vec<Vec<(f64, bool)>> = chunks
            .into_par_iter()
            .map(run_chunk)
            .collect::<Result<_>>()?;
        self.forwards += rows.len() as u64;
        Ok(parts.into_iter().flatten().collect())
    }

    /// Whether this model gives the same logits when an image's ablations share its unablated
    /// prefix ([`forward_ablated_shared`]) as when the image is repeated: tried on the first
    /// image with no ablation and with channel 0, then channel 1, of each summary layer.
    fn probe_shared(&mut self, images: &[Vec<f32>], fill: &AblationFill) -> Result<bool> {
        let Some(img) = images.first() else {
            return Ok(false);
        };
        let desc = self.model.description();
        let [c, h, w] = [desc.input.channels, desc.input.height, desc.input.width];
        let layer = |l: usize, ch: u32| {
            let mut layers = vec![Vec::new(); desc.layers.len()];
            if desc.layers[l].channels > ch as usize {
                layers[l].push(ch);
            }
            ChannelSet { layers }
        };
        let mut sets = vec![ChannelSet::none()];
        for l in 0..desc.layers.len() {
            sets.push(layer(l, 0));
            sets.push(layer(l, 1));
        }
        let one = Tensor::<4>::from_data(TensorData::new(img.clone(), [1, c, h, w]), self.device);
        let Ok(shared) = forward_ablated_shared(self.model, one, &sets, fill) else {
            return Ok(false);
        };
        let rep: Vec<f32> = (0..sets.len()).flat_map(|_| img.iter().copied()).collect();
        let x = Tensor::<4>::from_data(TensorData::new(rep, [sets.len(), c, h, w]), self.device);
        let plain = forward_ablated(self.model, x, &sets, fill)
            .map_err(CoreError::model("the ablated forward pass (faithfulness)"))?;
        let (Ok(a), Ok(b)) = (to_host(shared, "shared"), to_host(plain, "plain")) else {
            return Ok(false);
        };
        let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
        Ok(a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= 1e-5 * scale))
    }

    /// Loads `index` as the model's input, `None` (counted by the caller) when it cannot be
    /// loaded or has another size.
    fn load(&self, index: usize) -> Option<Vec<f32>> {
        let input = self.model.description().input;
        let img = self.dataset.load(index).ok()?;
        (img.dims() == [input.channels, input.height, input.width]).then_some(img.data)
    }

    /// The per-channel mean activation of every summary layer over `images`.
    fn channel_means(&mut self, images: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        let desc = self.model.description();
        let [c, h, w] = [desc.input.channels, desc.input.height, desc.input.width];
        let per = c * h * w;
        let mut sums: Vec<Vec<f64>> = desc.layers.iter().map(|l| vec![0.0; l.channels]).collect();
        for chunk in images.chunks(self.batch) {
            let data: Vec<f32> = chunk.iter().flatten().copied().collect();
            debug_assert_eq!(data.len(), chunk.len() * per);
            let x =
                Tensor::<4>::from_data(TensorData::new(data, [chunk.len(), c, h, w]), self.device);
            let rec = self.model.record(x).map_err(CoreError::model(
                "recording the sample (faithfulness, mean)",
            ))?;
            for (l, layer) in desc.layers.iter().enumerate() {
                let t = rec.tap(layer.tap).clone();
                let [b, lc, lh, lw] = t.dims();
                let v = to_host(t, &layer.name)
                    .map_err(CoreError::model(format!("reading `{}`", layer.name)))?;
                for i in 0..b {
                    for ch in 0..lc {
                        let s = &v[(i * lc + ch) * lh * lw..(i * lc + ch + 1) * lh * lw];
                        let m = s.iter().map(|&x| f64::from(x)).sum::<f64>() / (lh * lw) as f64;
                        sums[l][ch] += m;
                    }
                }
            }
            self.forwards += chunk.len() as u64;
        }
        let n = images.len().max(1) as f64;
        Ok(sums
            .into_iter()
            .map(|s| s.into_iter().map(|v| (v / n) as f32).collect())
            .collect())
    }

    /// Measures every class of `analysis` with a graph and images among the run's `indices`.
    pub fn measure(
        &mut self,
        analysis: &Analysis,
        aggs: &Aggregates,
        indices: &[usize],
        config: &FaithfulnessConfig,
        seed: u64,
    ) -> Result<FaithfulnessReport> {
        config.validate()?;
        let desc = self.model.description();
        let labels = self.dataset.labels();
        let excluded = crate::analysis::excluded_channels(aggs);
        let channels: Vec<usize> = desc.layers.iter().map(|l| l.channels).collect();
        let mut class_counts: BTreeMap<usize, usize> = BTreeMap::new();
        for &i in indices {
            if let Some(&l) = labels.get(i) {
                *class_counts.entry(l).or_default() += 1;
            }
        }
        // the classes with a graph and images in the run (a class without images has nothing
        // to ablate and is left out of the report)
        let classes: Vec<usize> = analysis
            .graph_classes
            .iter()
            .copied()
            .filter(|c| class_counts.contains_key(c))
            .collect();
        let graph_of = |c: usize| -> Option<&AttributionGraph> {
            analysis
                .classes
                .iter()
                .position(|&k| k == c)
                .and_then(|k| analysis.graphs.get(k))
        };
        // the plan: how many images per class (and which classes) the budget allows
        let count = |c: usize| class_counts.get(&c).copied().unwrap_or(0);
        let costs: Vec<ClassCost> = classes
            .iter()
            .map(|&c| {
                let vertices = graph_of(c).map_or(0, |g| graph_channels(g).len());
                ClassCost {
                    class: c,
                    images: count(c),
                    per_image: if vertices == 0 {
                        1
                    } else {
                        2 + config.draws + deletion_sizes(vertices, config.deletion_points).len()
                    },
                    selectivity: if vertices == 0 {
                        0
                    } else {
                        2 * config.neighbours.min(class_counts.len().saturating_sub(1))
                            * config.per_neighbour
                    },
                }
            })
            .collect();
        let pixels = (desc.input.height * desc.input.width) as u64;
        let plan = plan_budget(
            &costs,
            config.per_class,
            config.budget.map(|b| b / pixels.max(1)),
        );
        // the samples, their images (loaded once), and the unablated probabilities
        let mut skipped = 0usize;
        let mut images: Vec<Vec<f32>> = Vec::new();
        let mut sample: BTreeMap<usize, Vec<usize>> = BTreeMap::new(); // class → image slots
        let mut slot_of: BTreeMap<usize, usize> = BTreeMap::new(); // dataset index → slot
        for &c in &classes {
            let mut slots = Vec::new();
            if plan.classes.contains(&c) {
                for i in class_sample(indices, labels, c, plan.per_class) {
                    match self.load(i) {
                        Some(v) => {
                            slot_of.insert(i, images.len());
                            slots.push(images.len());
                            images.push(v);
                        }
                        None => skipped += 1,
                    }
                }
            }
            sample.insert(c, slots);
        }
        let image_class: Vec<usize> = {
            let mut v = vec![0; images.len()];
            for (&c, slots) in &sample {
                for &s in slots {
                    v[s] = c;
                }
            }
            v
        };
        let fill = match config.mode {
            AblationMode::Zero => AblationFill::Zero,
            AblationMode::Mean => AblationFill::Values(self.channel_means(&images)?),
        };
        self.shared = self.probe_shared(&images, &fill)?;
        let none = [ChannelSet::none()];
        let base_rows: Vec<Row> = (0..images.len())
            .map(|i| Row {
                image: i,
                set: 0,
                class: image_class[i],
            })
            .collect();
        let base = self.run_rows(&images, &none, &base_rows, &fill)?;
        let sampled = images.len();

        // the last summary layer's class similarity, for the selectivity neighbours
        let last_sim = analysis.overview.similarity.last();
        let mut out = Vec::with_capacity(classes.len());
        for (done, &c) in classes.iter().enumerate() {
            if self.stop_requested() {
                return Err(CoreError::Interrupted {
                    processed: done,
                    total: classes.len(),
                    resume: "stopped while measuring the graphs' faithfulness (after the pass; \
                             nothing was written): run the same command again, with the \
                             checkpoint it resumes from, or with --faithfulness off"
                        .into(),
                });
            }
            if !plan.classes.contains(&c) {
                out.push(ClassFaithfulness {
                    class: c,
                    images: 0,
                    class_images: count(c),
                    vertices: graph_of(c).map_or(0, |g| graph_channels(g).len()),
                    note: Some("outside the budget".into()),
                    accuracy_before: 0.0,
                    p_before: 0.0,
                    graph: None,
                    random: None,
                    activation: None,
                    drop_ratio: None,
                    selectivity: None,
                    deletion: None,
                });
                continue;
            }
            let slots = &sample[&c];
            let n = slots.len();
            let mean = |v: &mut dyn Iterator<Item = f64>| -> f64 {
                let (s, k) = v.fold((0.0, 0usize), |(s, k), x| (s + x, k + 1));
                if k == 0 { 0.0 } else { s / k as f64 }
            };
            let p_before = mean(&mut slots.iter().map(|&s| base[s].0));
            let acc_before = mean(&mut slots.iter().map(|&s| f64::from(u8::from(base[s].1))));
            let graph = graph_of(c);
            let vset = graph.map(graph_channels).unwrap_or_default();
            let mut entry = ClassFaithfulness {
                class: c,
                images: n,
                class_images: class_counts.get(&c).copied().unwrap_or(0),
                vertices: vset.len(),
                note: None,
                accuracy_before: acc_before,
                p_before,
                graph: None,
                random: None,
                activation: None,
                drop_ratio: None,
                selectivity: None,
                deletion: None,
            };
            let Some(graph) = graph.filter(|_| !vset.is_empty() && n > 0) else {
                entry.note = Some(if n == 0 { "no images" } else { "empty graph" }.into());
                out.push(entry);
                continue;
            };
            let sizes: Vec<usize> = vset.layers.iter().map(Vec::len).collect();
            // the sets: 0 graph, 1..=R random, R+1 activation, then the deletion prefixes
            let mut sets = vec![vset.clone()];
            for r in 0..config.draws {
                sets.push(random_draw(&sizes, &channels, &excluded, seed, c, r));
            }
            sets.push(activation_channels(aggs, c, &sizes, &excluded)?);
            let order = deletion_order(graph);
            let del_sizes = deletion_sizes(order.len(), config.deletion_points);
            let first_del = sets.len();
            for &k in &del_sizes[..del_sizes.len() - 1] {
                let mut s = ChannelSet {
                    layers: vec![Vec::new(); desc.layers.len()],
                };
                for &(l, ch) in &order[..k] {
                    s.layers[l].push(ch);
                }
                sets.push(s);
            }
            // equal channel sets (a draw or the activation baseline equal to the graph) run once,
            // so that they give exactly equal figures
            let (distinct, set_of) = distinct_sets(sets);
            let k = distinct.len();
            let mut run_sets = distinct;
            let none_set = run_sets.len();
            run_sets.push(ChannelSet::none());
            let mut rows = Vec::with_capacity(n * k);
            for &s in slots {
                for set in 0..k {
                    rows.push(Row {
                        image: s,
                        set,
                        class: c,
                    });
                }
            }
            // selectivity: the graph on the first images of the most similar classes (among
            // every class with images in the run), each image's own class probability before
            // (from the base pass, or a row of its own) and after
            let mut neighbours: Vec<(usize, f64)> = Vec::new();
            if let Some(sim) = last_sim
                && let Some(a) = analysis.overview.classes.iter().position(|&k| k == c)
            {
                for (b, &d) in analysis.overview.classes.iter().enumerate() {
                    if d != c && class_counts.contains_key(&d) {
                        let s = sim.get(a).and_then(|r| r.get(b)).copied().unwrap_or(0.0);
                        neighbours.push((d, if s.is_finite() { s } else { 0.0 }));
                    }
                }
            }
            neighbours.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
            neighbours.truncate(config.neighbours);
            let sel_start = rows.len();
            // per neighbour image: its ablated row, and its base probability or its base row
            let mut sel: Vec<(usize, Result<f64, usize>)> = Vec::new();
            for &(d, _) in &neighbours {
                for i in class_sample(indices, labels, d, config.per_neighbour) {
                    let (slot, before) = match slot_of.get(&i) {
                        Some(&s) => (s, Ok(base[s].0)),
                        None => match self.load(i) {
                            Some(v) => {
                                images.push(v);
                                (images.len() - 1, Err(0))
                            }
                            None => {
                                skipped += 1;
                                continue;
                            }
                        },
                    };
                    rows.push(Row {
                        image: slot,
                        set: set_of[0],
                        class: d,
                    });
                    let at = rows.len() - 1;
                    let before = match before {
                        Ok(p) => Ok(p),
                        Err(_) => {
                            rows.push(Row {
                                image: slot,
                                set: none_set,
                                class: d,
                            });
                            Err(rows.len() - 1)
                        }
                    };
                    sel.push((at, before));
                }
            }
            let res = self.run_rows(&images, &run_sets, &rows, &fill)?;
            // the neighbours' images loaded for this class only
            images.truncate(sampled);
            let figures = |set: usize| -> AblationFigures {
                let set = set_of[set];
                let mut p = 0.0;
                let mut acc = 0.0;
                for i in 0..n {
                    let (pp, ok) = res[i * k + set];
                    p += pp;
                    acc += f64::from(u8::from(ok));
                }
                let (p, acc) = (p / n as f64, acc / n as f64);
                AblationFigures {
                    accuracy_after: acc,
                    p_after: p,
                    drop: p_before - p,
                    accuracy_drop: acc_before - acc,
                }
            };
            let g = figures(0);
            let draws: Vec<AblationFigures> = (1..=config.draws).map(figures).collect();
            let drops: Vec<f64> = draws.iter().map(|d| d.drop).collect();
            let random = (!drops.is_empty()).then(|| {
                let m = drops.iter().sum::<f64>() / drops.len() as f64;
                let var = drops.iter().map(|d| (d - m).powi(2)).sum::<f64>() / drops.len() as f64;
                RandomBaseline {
                    mean_drop: m,
                    std_drop: var.sqrt(),
                    mean_accuracy_drop: draws.iter().map(|d| d.accuracy_drop).sum::<f64>()
                        / draws.len() as f64,
                    p_random: drops.iter().filter(|&&d| d >= g.drop).count() as f64
                        / drops.len() as f64,
                    drops,
                }
            });
            let activation = figures(config.draws + 1);
            let mut curve_v = vec![0];
            let mut curve_p = vec![p_before];
            for (j, &size) in del_sizes.iter().enumerate() {
                curve_v.push(size);
                curve_p.push(if j + 1 == del_sizes.len() {
                    g.p_after
                } else {
                    figures(first_del + j).p_after
                });
            }
            let total = order.len() as f64;
            let area = curve_v
                .windows(2)
                .zip(curve_p.windows(2))
                .map(|(v, p)| (v[1] - v[0]) as f64 / total * (p[0] + p[1]) / 2.0)
                .sum();
            debug_assert!(sel.iter().all(|s| s.0 >= sel_start));
            entry.selectivity = (!sel.is_empty()).then(|| Selectivity {
                classes: neighbours.iter().map(|n| n.0).collect(),
                images: sel.len(),
                drop: sel
                    .iter()
                    .map(|(at, before)| {
                        let b = match before {
                            Ok(p) => *p,
                            Err(r) => res[*r].0,
                        };
                        b - res[*at].0
                    })
                    .sum::<f64>()
                    / sel.len() as f64,
            });
            entry.drop_ratio = random
                .as_ref()
                .filter(|r| r.mean_drop > 0.0)
                .map(|r| g.drop / r.mean_drop);
            entry.graph = Some(g);
            entry.random = random;
            entry.activation = Some(activation);
            entry.deletion = Some(DeletionCurve {
                vertices: curve_v,
                p: curve_p,
                area,
            });
            out.push(entry);
        }
        Ok(FaithfulnessReport {
            ablation: config.mode.name().into(),
            per_class: plan.per_class,
            requested_per_class: config.per_class,
            budget: config.budget,
            draws: config.draws,
            neighbours: config.neighbours,
            per_neighbour: config.per_neighbour,
            deletion_points: config.deletion_points,
            seed,
            skipped_images: skipped,
            forward_images: self.forwards,
            shared_prefix: self.shared,
            summary: FaithfulnessSummary::of(&out),
            classes: out,
        })
    }
}

/// The lines a run prints about faithfulness: the summary, and the classes whose sample is
/// smaller than asked for or that were not ablated.
pub fn faithfulness_lines<S: AsRef<str>>(report: &FaithfulnessReport, names: &[S]) -> Vec<String> {
    let name = |c: usize| {
        names
            .get(c)
            .map_or_else(|| format!("class {c}"), |s| s.as_ref().to_string())
    };
    let s = &report.summary;
    let pct = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| format!("{:.0} %", v * 100.0));
    let num = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| format!("{v:.3}"));
    let list = |v: &[String]| {
        let mut s = v.iter().take(10).cloned().collect::<Vec<_>>().join(", ");
        if v.len() > 10 {
            s.push_str(&format!(" and {} more", v.len() - 10));
        }
        s
    };
    let mut lines = vec![format!(
        "faithfulness ({} ablation, {} classes, {} forward images): graph beats random at p < \
         0.05 in {}, beats the activation baseline in {}; median drop in p(class) graph {} vs \
         random {} vs activation {} (ratio {}), on similar classes {}",
        report.ablation,
        s.classes,
        report.forward_images,
        pct(s.share_beating_random),
        pct(s.share_beating_activation),
        num(s.median_drop),
        num(s.median_random_drop),
        num(s.median_activation_drop),
        num(s.median_drop_ratio),
        num(s.median_selectivity_drop),
    )];
    if report.per_class < report.requested_per_class
        || report
            .classes
            .iter()
            .any(|c| c.note.as_deref() == Some("outside the budget"))
    {
        let measured = report.classes.iter().filter(|c| c.images > 0).count();
        lines.push(format!(
            "faithfulness: the budget of {} M input pixels allowed {} images per class (of {} \
             asked) on {measured} of {} classes; --faithfulness N measures N per class on every \
             class",
            report.budget.unwrap_or(0) / 1_000_000,
            report.per_class,
            report.requested_per_class,
            report.classes.len()
        ));
    }
    let small: Vec<String> = report
        .classes
        .iter()
        .filter(|c| c.images > 0 && c.images < report.per_class)
        .map(|c| format!("{} ({})", name(c.class), c.images))
        .collect();
    if !small.is_empty() {
        lines.push(format!(
            "faithfulness: {} classes have fewer images than the {} of a sample; the whole class \
             was used: {}",
            small.len(),
            report.per_class,
            list(&small)
        ));
    }
    let mut notes: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for c in &report.classes {
        if let Some(n) = c.note.as_deref().filter(|&n| n != "outside the budget") {
            notes.entry(n).or_default().push(name(c.class));
        }
    }
    for (note, names) in notes {
        lines.push(format!(
            "faithfulness: {} classes not ablated ({note}): {}",
            names.len(),
            list(&names)
        ));
    }
    if report.skipped_images > 0 {
        lines.push(format!(
            "faithfulness: {} sampled images could not be loaded and were left out",
            report.skipped_images
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(class: usize, images: usize) -> ClassCost {
        ClassCost {
            class,
            images,
            per_image: 10,
            selectivity: 5,
        }
    }

    #[test]
    fn deletion_sizes_end_at_the_whole_graph() {
        assert_eq!(deletion_sizes(3, 32), vec![1, 2, 3]);
        assert_eq!(deletion_sizes(100, 4), vec![25, 50, 75, 100]);
        assert_eq!(deletion_sizes(0, 4), Vec::<usize>::new());
    }

    #[test]
    fn the_budget_shrinks_samples_then_drops_classes() {
        let costs = [cost(0, 50), cost(1, 500), cost(2, 5)];
        let all = vec![0, 1, 2];
        // no bound, or a bound that fits: as asked
        assert_eq!(plan_budget(&costs, 200, None).per_class, 200);
        let fits = (50 + 200 + 5) * 10 + 15;
        assert_eq!(
            plan_budget(&costs, 200, Some(fits as u64)),
            BudgetPlan {
                per_class: 200,
                classes: all.clone()
            }
        );
        // one image less than that: the largest sample that fits (199 → 50 + 199 + 5 images)
        let p = plan_budget(&costs, 200, Some(fits as u64 - 1));
        assert_eq!(p.per_class, 199);
        assert_eq!(p.classes, all);
        // below the minimum sample on every class: classes by hash while they fit
        let p = plan_budget(&costs, 200, Some(120));
        assert_eq!(p.per_class, MIN_BUDGET_IMAGES);
        assert!(!p.classes.is_empty() && p.classes.len() < 3, "{p:?}");
        let spent: usize = p
            .classes
            .iter()
            .map(|&c| costs[c].images.min(MIN_BUDGET_IMAGES) * 10 + 5)
            .sum();
        assert!(spent <= 120 || p.classes.len() == 1);
        // a budget of nothing still measures one class
        assert_eq!(plan_budget(&costs, 200, Some(0)).classes.len(), 1);
    }
}
