//! Several models, one dataset (SPEC §4.3): each model's run writes its own output; this
//! writes the comparison of the runs: the suggestion scatter over a bounded set of images (the
//! runs' id-hash samples of all images and of the misclassified ones, the same ids in every
//! run), every model's prediction and heatmap of each, and each model's histogram of
//! `1 − p(true class)` over all its images.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};
use summit_attribution::{AttributionParams, Attributor, Method, write_png};
use summit_data::Transform;
use summit_export::ClassInfo;
use summit_influence::{Aggregates, PROBABILITY_BINS};

use crate::error::{CoreError, Result};
use crate::images::{Loaded, load_images, predict_top, write_file_atomic, write_overlay};
use crate::pipeline::Pipeline;
use crate::run::to_rgb;

/// The comparison's data file.
pub const MODELS_FILE: &str = "models.json";

/// Bins of the histograms of `1 − p(true class)`.
pub const COMPARE_BINS: usize = 20;

/// One model's run, for [`write_model_comparison`].
#[derive(Debug, Clone, Copy)]
pub struct ModelRun<'a> {
    /// The run's pipeline (its model and dataset).
    pub pipeline: &'a Pipeline<'a>,
    /// The run's aggregates (its picks and probability histograms).
    pub aggregates: &'a Aggregates,
    /// The run's class names, in its model's output order.
    pub classes: &'a [ClassInfo],
    /// The run's output directory, relative to the comparison's.
    pub dir: &'a str,
    /// The run's heatmap metrics (SPEC §4.4), when evaluated: shown per model.
    pub evaluation: Option<&'a crate::evaluation::EvaluationFile>,
}

/// What [`write_model_comparison`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelComparison {
    /// Images in the scatter.
    pub points: usize,
    /// Of them, those the models do not all predict the same class for.
    pub disagreements: usize,
    /// Images that could not be loaded.
    pub skipped: usize,
}

/// Checks that every run has the first run's classes (same count, same names in the same
/// order); the error names the first class that differs.
pub fn check_same_classes(runs: &[ModelRun<'_>]) -> Result<()> {
    let Some(first) = runs.first() else {
        return Err(CoreError::Config("no model runs to compare".into()));
    };
    if runs.len() < 2 {
        return Err(CoreError::Config(
            "comparing models needs at least two runs".into(),
        ));
    }
    let name0 = &first.pipeline.model().description().name;
    for r in &runs[1..] {
        let name = &r.pipeline.model().description().name;
        if r.classes.len() != first.classes.len() {
            return Err(CoreError::Config(format!(
                "model `{name}` has {} classes but model `{name0}` has {}: models compared must \
                 classify the same classes",
                r.classes.len(),
                first.classes.len()
            )));
        }
        if let Some((i, (a, b))) = first
            .classes
            .iter()
            .zip(r.classes)
            .enumerate()
            .find(|(_, (a, b))| a.name != b.name)
        {
            return Err(CoreError::Config(format!(
                "class {i} is `{}` for model `{name0}` but `{}` for model `{name}`: models \
                 compared must list the same classes in the same order",
                a.name, b.name
            )));
        }
        if r.pipeline.dataset().len() != first.pipeline.dataset().len() {
            return Err(CoreError::Config(format!(
                "model `{name}` ran on {} images, model `{name0}` on {}: compare runs over one \
                 dataset",
                r.pipeline.dataset().len(),
                first.pipeline.dataset().len()
            )));
        }
    }
    Ok(())
}

/// The histogram of `1 − p(true class)` over every image of a run, [`COMPARE_BINS`] bins.
pub fn miss_histogram(aggs: &Aggregates) -> Vec<u64> {
    let mut out = vec![0u64; COMPARE_BINS];
    for c in 0..aggs.params().num_classes {
        if let Some(h) = aggs.probability_histogram(c) {
            for (b, &n) in h.iter().enumerate() {
                // p in [b, b + 1) / 100  ⇒  1 − p in ((99 − b), (100 − b)] / 100
                let miss = PROBABILITY_BINS - 1 - b;
                out[(miss * COMPARE_BINS / PROBABILITY_BINS).min(COMPARE_BINS - 1)] += n;
            }
        }
    }
    out
}

/// Writes the comparison of `runs` over the dataset named `dataset` into `out` (`index.html`,
/// [`MODELS_FILE`], `images/`, and each model's heatmaps by `method` under
/// `attribution/{model}/`). Images are loaded by index from the first run's dataset.
pub fn write_model_comparison(
    out: &Path,
    dataset_name: &str,
    runs: &[ModelRun<'_>],
    method: Method,
    params: &AttributionParams,
    transform: &Transform,
) -> Result<ModelComparison> {
    check_same_classes(runs)?;
    let mut ids = BTreeSet::new();
    for r in runs {
        let picks = r.aggregates.picks();
        ids.extend(
            picks
                .sample()
                .iter()
                .chain(picks.misclassified_sample())
                .map(|p| p.id),
        );
    }
    let ids: Vec<u64> = ids.into_iter().collect();
    let dataset = runs[0].pipeline.dataset().clone();
    let attributors = runs
        .iter()
        .map(|r| {
            Attributor::new(r.pipeline.model(), params.clone(), r.pipeline.device()).map_err(
                CoreError::attribution("setting up the comparison's attribution"),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let mut points = Vec::new();
    let mut skipped = 0;
    for chunk in ids.chunks(params.batch_size.max(1)) {
        let Loaded {
            data,
            dims,
            kept,
            failed,
        } = load_images(dataset.as_ref(), chunk);
        skipped += failed.len();
        if kept.is_empty() {
            continue;
        }
        let rgbs: Vec<Option<image::RgbImage>> =
            kept.iter().map(|(_, i)| to_rgb(i, transform)).collect();
        let mut preds: Vec<Vec<Vec<(usize, f32)>>> = vec![Vec::new(); kept.len()];
        let mut heat: Vec<Vec<String>> = vec![Vec::new(); kept.len()];
        for (m, (r, att)) in runs.iter().zip(&attributors).enumerate() {
            let tops = predict_top(r.pipeline.model(), r.pipeline.device(), &data, dims)?;
            let targets: Vec<usize> = tops.iter().map(|t| t.first().map_or(0, |p| p.0)).collect();
            let attr = att.attribute_host(method, &data, dims, &targets).map_err(
                CoreError::attribution(format!("{method} for the comparison")),
            )?;
            for (i, (rgb, top)) in rgbs.iter().zip(tops).enumerate() {
                let name = format!("attribution/{m}/{}/{}.png", method.name(), kept[i].0);
                if let Some(rgb) = rgb {
                    write_overlay(rgb, &attr, i, &out.join(&name))?;
                }
                heat[i].push(name);
                preds[i].push(top);
            }
        }
        for (i, (id, _)) in kept.iter().enumerate() {
            let file = format!("images/{id}.png");
            if let Some(rgb) = &rgbs[i] {
                write_png(rgb, &out.join(&file))
                    .map_err(CoreError::attribution("writing an image"))?;
            }
            let top1: BTreeSet<usize> = preds[i].iter().map(|p| p[0].0).collect();
            let mean = preds[i].iter().map(|p| f64::from(p[0].1)).sum::<f64>() / runs.len() as f64;
            let idx = usize::try_from(*id).unwrap_or(usize::MAX);
            points.push(json!({
                "id": id,
                "label": dataset.label(idx).unwrap_or(0),
                "source": dataset.source(idx),
                "file": file,
                "x": (mean * 1e4).round() / 1e4,
                "y": top1.len(),
                "preds": preds[i],
                "heat": heat[i],
            }));
        }
    }
    let disagreements = points
        .iter()
        .filter(|p| p["y"].as_u64().unwrap_or(1) > 1)
        .count();
    let models: Vec<Value> = runs
        .iter()
        .map(|r| {
            let a = r.aggregates;
            let n: u64 = a.class_images().iter().sum();
            let right: u64 = a.class_top1_correct().iter().sum();
            json!({
                "name": r.pipeline.model().description().name,
                "dir": r.dir,
                "accuracy": right as f64 / n.max(1) as f64,
                "images": n,
                "hist": miss_histogram(a),
                "evaluation": r.evaluation,
            })
        })
        .collect();
    let data = json!({
        "models": models,
        "classes": runs[0].classes.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
        "dataset": dataset_name,
        "method": method.name(),
        "disagreements": disagreements,
        "points": points,
    });
    let text = serde_json::to_string(&data)
        .map_err(|e| CoreError::Config(format!("encoding {MODELS_FILE}: {e}")))?;
    write_file_atomic(&out.join(MODELS_FILE), text.as_bytes())?;
    summit_export::write_models_page(out, &data).map_err(CoreError::export(format!(
        "writing the comparison page in {}",
        out.display()
    )))?;
    Ok(ModelComparison {
        points: points.len(),
        disagreements,
        skipped,
    })
}
