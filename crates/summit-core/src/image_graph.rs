//! The attribution graph of one image (SPEC §3.2): the selection of §1 and the influences of
//! §2/§2.1 on that image alone, merged, ranked and pruned as for a class of one image — the
//! graph the pipeline makes for a dataset holding only that image — and its comparison with the
//! graphs of the image's true and predicted classes (which of its class's concepts the image
//! used, which it lacked).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use summit_graph::AttributionGraph;
use summit_influence::Aggregates;
use summit_model::burn::tensor::{Tensor, TensorData};

use summit_graph::exclusion_lists;

use crate::analysis::{class_graphs, detect_non_semantic, jaccard, vertex_set};
use crate::error::{CoreError, Result};
use crate::pipeline::{Pipeline, aggregate_recording, record_batch, softmax_rows};

/// The attribution graph of one image, with what the model predicted for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageGraph {
    /// The class the image's counts were aggregated under: its label, or for an image without
    /// one (an upload) the predicted class. The graph does not depend on it.
    pub class: usize,
    /// The model's top class.
    pub predicted: usize,
    /// Its probability (softmax of the logits).
    pub probability: f32,
    /// The graph (SPEC §3.2).
    pub graph: AttributionGraph,
}

/// An image's graph beside a class's graph: the Jaccard index of their vertex sets (`(layer,
/// channel)` pairs) and the vertices they share or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphComparison {
    /// The class.
    pub class: usize,
    /// `|image ∩ class| / |image ∪ class|` (1 for two empty graphs).
    pub jaccard: f64,
    /// Vertices of both: the class's concepts the image used.
    pub shared: Vec<(usize, u32)>,
    /// Vertices of the image's graph only.
    pub image_only: Vec<(usize, u32)>,
    /// Vertices of the class's graph only: the class's concepts the image lacked.
    pub class_only: Vec<(usize, u32)>,
}

/// Compares an image's graph with the graph of `class` ([`GraphComparison`]).
pub fn compare_graphs(
    image: &AttributionGraph,
    class: usize,
    class_graph: &AttributionGraph,
) -> GraphComparison {
    let a: BTreeSet<(usize, u32)> = vertex_set(image);
    let b = vertex_set(class_graph);
    GraphComparison {
        class,
        jaccard: jaccard(&a, &b),
        shared: a.intersection(&b).copied().collect(),
        image_only: a.difference(&b).copied().collect(),
        class_only: b.difference(&a).copied().collect(),
    }
}

impl Pipeline<'_> {
    /// The attribution graph of one image (SPEC §3.2): `values` (`[C, H, W]`, preprocessed as
    /// the model expects) aggregated alone with the pipeline's parameters, its graph built as
    /// the run builds a class's (the same graph parameters, non-semantic detection and
    /// exclusions). `label` is the image's class if known; `id` names it in errors.
    pub fn image_graph(
        &self,
        values: &[f32],
        dims: [usize; 3],
        label: Option<usize>,
        id: u64,
    ) -> Result<ImageGraph> {
        let model = self.model();
        let desc = model.description();
        let classes = desc.num_classes;
        if let Some(l) = label
            && l >= classes
        {
            return Err(CoreError::Config(format!(
                "image {id}: class {l} is out of range: the model has {classes} classes"
            )));
        }
        let [c, h, w] = dims;
        if values.len() != c * h * w {
            return Err(CoreError::Config(format!(
                "image {id}: {} values for shape {dims:?}",
                values.len()
            )));
        }
        let what = format!("image {id}");
        let x = Tensor::<4>::from_data(
            TensorData::new(values.to_vec(), [1, c, h, w]),
            self.device(),
        );
        // the logits first (the class of an image without a label is its prediction)
        let rec = record_batch(model, x, &[id], &[label.unwrap_or(0)], &what)?;
        let logits = summit_model::to_host(rec.logits.clone(), "logits")
            .map_err(CoreError::model(format!("reading the logits of {what}")))?;
        let probs = softmax_rows(&logits, classes);
        let (predicted, probability) =
            probs
                .iter()
                .copied()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |(bi, bp), (i, p)| {
                    if p > bp { (i, p) } else { (bi, bp) }
                });
        let class = label.unwrap_or(predicted);
        let mut aggs = Aggregates::new(self.params().clone())
            .map_err(CoreError::aggregate("the aggregates of one image"))?;
        aggregate_recording(
            model,
            self.config().hop_input,
            &mut aggs,
            rec,
            &[id],
            &[class],
            &what,
            None,
        )?;
        let config = self.config();
        let all: Vec<usize> = (0..classes).collect();
        let flagged = match &config.non_semantic.detect {
            Some(p) => detect_non_semantic(&aggs, &all, p)?,
            None => Vec::new(),
        };
        let extra = if config.non_semantic.exclude {
            exclusion_lists(&flagged, aggs.params().layers.len())
        } else {
            Vec::new()
        };
        let names = self.dataset().class_names().to_vec();
        let mut graphs = class_graphs(&aggs, &[class], &names, &config.graph, &extra)?;
        let graph = graphs
            .pop()
            .ok_or_else(|| CoreError::Config(format!("{what}: no graph was built")))?;
        Ok(ImageGraph {
            class,
            predicted,
            probability,
            graph,
        })
    }
}
