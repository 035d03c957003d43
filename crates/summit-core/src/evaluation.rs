//! How faithful is each heatmap method on this model? (SPEC §4.4; Quantus 0.6's metrics.)
//!
//! With [`AttributionConfig::evaluate`](crate::AttributionConfig::evaluate) on, the run's
//! attribution step also evaluates every method it makes over a bounded sample of the picked
//! images (each class's most confident ones, explained for their predicted class) with
//! [`summit_attribution::evaluate()`], and writes the table method × metric (mean, spread) into
//! `images.json` (its `evaluation`), which the page shows under the class images and
//! `compare_models` per model.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use summit_attribution::{
    Attribution, Attributor, Batch, EvaluationParams, EvaluationRow, Method, Metric, upsample,
};
use summit_model::Summarizable;

use crate::error::{CoreError, Result};
use crate::images::{Loaded, load_images, predict_top};
use crate::pipeline::Pipeline;

/// Which metrics, on how many images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationConfig {
    /// The metrics; `None`: every metric that applies to the model (MPRT needs the model's
    /// layers re-initialised, [`Pipeline::with_randomised_models`]).
    pub metrics: Option<Vec<Metric>>,
    /// Images per class: the class's most confident picks (2).
    pub per_class: usize,
    /// The metrics' parameters; `None`: Quantus' defaults with a CPU budget for the input
    /// size ([`cpu_params`]).
    pub params: Option<EvaluationParams>,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        Self {
            metrics: None,
            per_class: 2,
            params: None,
        }
    }
}

/// Quantus' defaults except the pixel-flipping step: the smallest divisor of `h · w` that
/// flips in at most 128 steps (1 pixel per step is Quantus' default and costs `h · w` forward
/// passes per image: 50 176 at 224²). At 28² that is 7 pixels (112 steps), at 224² 392 (128).
pub fn cpu_params(h: usize, w: usize) -> EvaluationParams {
    let n = (h * w).max(1);
    let step = (1..=n)
        .find(|d| n.is_multiple_of(*d) && n / d <= 128)
        .unwrap_or(n);
    EvaluationParams {
        features_in_step: step,
        ..EvaluationParams::default()
    }
}

/// The heatmap evaluation of a run, as written into `images.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationFile {
    /// The metrics evaluated.
    pub metrics: Vec<String>,
    /// Per metric, whether higher values are better (`"higher"`) or lower (`"lower"`).
    pub better: Vec<(String, String)>,
    /// The images evaluated (dataset indices), explained for their predicted class.
    pub images: Vec<u64>,
    /// The parameters used.
    pub params: EvaluationParams,
    /// Method × metric: mean and spread over the images.
    pub rows: Vec<EvaluationRow>,
    /// Metrics left out, with why (e.g. MPRT on a model without randomised copies).
    pub skipped: Vec<(String, String)>,
    /// Seconds it took.
    pub seconds: f64,
}

impl Pipeline<'_> {
    /// Fails when the configuration asks for a heatmap metric this pipeline cannot compute
    /// (MPRT without [`with_randomised_models`](Self::with_randomised_models)): checked before
    /// the pass.
    pub fn check_evaluation(&self) -> Result<()> {
        let Some(ev) = self
            .config()
            .attribution
            .as_ref()
            .and_then(|a| a.evaluate.as_ref())
        else {
            return Ok(());
        };
        if ev.per_class == 0 {
            return Err(CoreError::Usage(
                "--evaluate-attribution needs at least one image per class".into(),
            ));
        }
        if let Some(p) = &ev.params {
            p.validate()
                .map_err(CoreError::attribution("the heatmap metrics' parameters"))?;
        }
        if ev
            .metrics
            .as_ref()
            .is_some_and(|m| m.contains(&Metric::Mprt))
            && self.randomised_models().is_empty()
        {
            return Err(mprt_unsupported(&self.model().description().name));
        }
        Ok(())
    }

    /// Evaluates `methods`' heatmaps of the images `ids` (explained for their predicted class)
    /// with `config`'s metrics (SPEC §4.4). Grad-CAM's maps are upsampled bilinearly to the
    /// input, as the page shows them. Fails before any work when a metric was asked for that
    /// this model or method cannot support.
    pub fn evaluate_heatmaps(
        &self,
        ids: &[u64],
        methods: &[Method],
        attribution: &summit_attribution::AttributionParams,
        config: &EvaluationConfig,
    ) -> Result<EvaluationFile> {
        let t0 = Instant::now();
        let model = self.model();
        let desc = model.description();
        let params = config
            .params
            .clone()
            .unwrap_or_else(|| cpu_params(desc.input.height, desc.input.width));
        params
            .validate()
            .map_err(CoreError::attribution("the heatmap metrics' parameters"))?;
        let randomised = self.randomised_models();
        let mut skipped = Vec::new();
        let metrics: Vec<Metric> = match &config.metrics {
            Some(m) => {
                if m.contains(&Metric::Mprt) && randomised.is_empty() {
                    return Err(mprt_unsupported(&desc.name));
                }
                m.clone()
            }
            None => Metric::ALL
                .into_iter()
                .filter(|&m| {
                    let ok = m != Metric::Mprt || !randomised.is_empty();
                    if !ok {
                        skipped.push((
                            m.name().to_string(),
                            "needs the model's layers re-initialised (available for the \
                             embedded inception network)"
                                .to_string(),
                        ));
                    }
                    ok
                })
                .collect(),
        };
        let Loaded {
            data, dims, kept, ..
        } = load_images(self.dataset().as_ref(), ids);
        let mut file = EvaluationFile {
            metrics: metrics.iter().map(|m| m.name().to_string()).collect(),
            better: metrics
                .iter()
                .map(|m| {
                    let dir = if m.higher_is_better(&params) {
                        "higher"
                    } else {
                        "lower"
                    };
                    (m.name().to_string(), dir.to_string())
                })
                .collect(),
            images: kept.iter().map(|k| k.0).collect(),
            params: params.clone(),
            rows: Vec::new(),
            skipped,
            seconds: 0.0,
        };
        if kept.is_empty() {
            file.seconds = t0.elapsed().as_secs_f64();
            return Ok(file);
        }
        let tops = predict_top(model, self.device(), &data, dims)?;
        let targets: Vec<usize> = tops.iter().map(|t| t.first().map_or(0, |p| p.0)).collect();
        let attributor = Attributor::new(model, attribution.clone(), self.device())
            .map_err(CoreError::attribution("setting up the attribution"))?;
        for &method in methods {
            let explain = |m: &dyn Summarizable| -> Result<Attribution> {
                let a = Attributor::new(m, attribution.clone(), self.device())
                    .map_err(CoreError::attribution("setting up the attribution"))?
                    .attribute_host(method, &data, dims, &targets)
                    .map_err(CoreError::attribution(format!(
                        "{method} (heatmap metrics)"
                    )))?;
                Ok(to_input_space(a, dims))
            };
            let a = to_input_space(
                attributor
                    .attribute_host(method, &data, dims, &targets)
                    .map_err(CoreError::attribution(format!(
                        "{method} (heatmap metrics)"
                    )))?,
                dims,
            );
            let heat_randomised: Vec<Vec<f32>> = if metrics.contains(&Metric::Mprt) {
                randomised
                    .iter()
                    .map(|(_, m)| explain(m.as_ref()).map(|a| a.values))
                    .collect::<Result<_>>()?
            } else {
                Vec::new()
            };
            let mut batch = Batch::new(&data, dims, &a);
            if !heat_randomised.is_empty() {
                batch.randomised = Some(&heat_randomised);
            }
            let rows =
                summit_attribution::evaluate(model, self.device(), &batch, &metrics, &params)
                    .map_err(CoreError::attribution(format!(
                        "evaluating {method}'s heatmaps (--evaluate-attribution)"
                    )))?;
            file.rows.extend(rows);
        }
        file.seconds = t0.elapsed().as_secs_f64();
        Ok(file)
    }
}

fn mprt_unsupported(model: &str) -> CoreError {
    CoreError::Usage(format!(
        "the MPRT metric needs the model's layers re-initialised one by one, which summit-rs \
         does for the embedded Fashion-MNIST inception network only; `{model}` has no such \
         copies (leave mprt out of --evaluate-attribution)"
    ))
}

/// Grad-CAM's `[n, 1, h', w']` maps upsampled bilinearly to the input's `h × w`; other
/// attributions unchanged.
fn to_input_space(mut a: Attribution, dims: [usize; 4]) -> Attribution {
    let [n, _, h, w] = dims;
    let [_, c, ah, aw] = a.dims;
    if (ah, aw) == (h, w) {
        return a;
    }
    let per = c * ah * aw;
    let mut values = Vec::with_capacity(n * c * h * w);
    for i in 0..n {
        for ch in 0..c {
            let plane = &a.values[i * per + ch * ah * aw..i * per + (ch + 1) * ah * aw];
            values.extend(upsample(plane, ah, aw, h, w));
        }
    }
    a.values = values;
    a.dims = [n, c, h, w];
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_step_divides_the_image_and_bounds_the_steps() {
        assert_eq!(cpu_params(28, 28).features_in_step, 7);
        assert_eq!(cpu_params(224, 224).features_in_step, 392);
        assert_eq!(cpu_params(8, 8).features_in_step, 1);
        for (h, w) in [(28, 28), (224, 224), (299, 299), (32, 17)] {
            let s = cpu_params(h, w).features_in_step;
            assert_eq!((h * w) % s, 0);
            assert!((h * w) / s <= 128);
        }
    }
}
