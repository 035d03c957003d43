//! Per-image attribution of a run (SPEC §4.2): the images the pass picked (each class's most
//! confident and most confidently misclassified images) and the dataset examples of the
//! exported graphs' vertices, each with the model's top predictions and a heatmap overlay per
//! method, written as `images/{id}.png`, `attribution/{method}/{id}.png`, `images.json`, and
//! `view/images.js` for the web view's per-image panel.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use summit_attribution::{Attributor, Method, heatmap, overlay, write_png};
use summit_data::Transform;
use summit_influence::Aggregates;

use crate::analysis::Analysis;
use crate::config::AttributionConfig;
use crate::error::{CoreError, Result};
use crate::pipeline::{Pipeline, softmax_rows};
use crate::run::to_rgb;

/// The per-image data file of an output directory.
pub const IMAGES_FILE: &str = "images.json";

/// One attributed image in [`IMAGES_FILE`].
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ImageEntry {
    /// Where the image comes from (the dataset's source string).
    pub source: String,
    /// Its true class.
    pub label: usize,
    /// The model's top predictions `(class, probability)`.
    pub top: Vec<(usize, f32)>,
    /// The image (relative path).
    pub file: String,
    /// The heatmap overlay of each method (relative paths), explaining the predicted class.
    pub heat: BTreeMap<String, String>,
}

/// A class's picked images in [`IMAGES_FILE`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct ClassImages {
    /// Its most confident images (probability of the class descending).
    pub confident: Vec<u64>,
    /// Its most confidently misclassified images.
    pub misclassified: Vec<u64>,
}

/// The content of [`IMAGES_FILE`].
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ImagesFile {
    /// The model.
    pub model: String,
    /// The methods written.
    pub methods: Vec<String>,
    /// Grad-CAM's summary layer.
    pub grad_cam_layer: String,
    /// What the heatmaps explain (`predicted`: the model's top class).
    pub target: String,
    /// Every attributed image, by id.
    pub images: BTreeMap<u64, ImageEntry>,
    /// Per class (by index, as a string key) its picked images.
    pub classes: BTreeMap<usize, ClassImages>,
    /// `"{layer}:{channel}"` → the ids of the vertex's dataset examples, in the order of its
    /// patches (only those attributed).
    pub examples: BTreeMap<String, Vec<u64>>,
    /// Images that could not be loaded (index and reason).
    pub skipped: Vec<(u64, String)>,
    /// Seconds the attribution took.
    pub seconds: f64,
    /// Quantus' metrics of the methods' heatmaps, when evaluated
    /// ([`AttributionConfig::evaluate`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<crate::evaluation::EvaluationFile>,
}

/// The ids to attribute: every class's picks, then the graphs' vertex examples, at most
/// `config.max_images`, each once, in that order.
pub fn attribution_ids(
    aggs: &Aggregates,
    analysis: &Analysis,
    config: &AttributionConfig,
) -> Vec<u64> {
    let mut seen = std::collections::BTreeSet::new();
    let mut ids = Vec::new();
    let mut push = |id: u64, ids: &mut Vec<u64>| {
        if ids.len() < config.max_images && seen.insert(id) {
            ids.push(id);
        }
    };
    let picks = aggs.picks();
    for c in 0..aggs.params().num_classes {
        for p in picks.confident(c).iter().chain(picks.misclassified(c)) {
            push(p.id, &mut ids);
        }
    }
    if config.vertex_examples {
        for &k in &analysis.graph_classes {
            let Some(pos) = analysis.classes.iter().position(|&c| c == k) else {
                continue;
            };
            for (l, layer) in analysis.graphs[pos].layers.iter().enumerate() {
                for v in &layer.vertices {
                    for e in aggs
                        .examples()
                        .get(l, v.channel as usize)
                        .unwrap_or_default()
                    {
                        push(e.image_id, &mut ids);
                    }
                }
            }
        }
    }
    ids
}

impl Pipeline<'_> {
    /// Attributes the picked images and the graphs' vertex examples of `aggs` and `analysis`
    /// with `config`'s methods and writes them under `out` (see the module docs). Images are
    /// loaded by index from the pipeline's dataset (no second pass over the data);
    /// `transform` turns them back into RGB. Returns what was written.
    pub fn write_images(
        &self,
        aggs: &Aggregates,
        analysis: &Analysis,
        config: &AttributionConfig,
        transform: &Transform,
        out: &Path,
    ) -> Result<ImagesFile> {
        let t0 = Instant::now();
        let model = self.model();
        let desc = model.description();
        let attributor = Attributor::new(model, config.params.clone(), self.device())
            .map_err(CoreError::attribution("setting up the attribution"))?;
        let ids = attribution_ids(aggs, analysis, config);
        let dataset = self.dataset();
        let mut file = ImagesFile {
            model: desc.name.clone(),
            methods: config
                .methods
                .iter()
                .map(|m| m.name().to_string())
                .collect(),
            grad_cam_layer: attributor.layer_name().to_string(),
            target: "predicted".into(),
            images: BTreeMap::new(),
            classes: BTreeMap::new(),
            examples: BTreeMap::new(),
            skipped: Vec::new(),
            seconds: 0.0,
            evaluation: None,
        };
        for chunk in ids.chunks(config.params.batch_size.max(1)) {
            let Loaded {
                data,
                dims,
                kept,
                failed,
            } = load_images(dataset.as_ref(), chunk);
            file.skipped.extend(failed);
            if kept.is_empty() {
                continue;
            }
            let tops = predict_top(model, self.device(), &data, dims)?;
            // the heatmaps explain the predicted class
            let targets: Vec<usize> = tops.iter().map(|t| t.first().map_or(0, |p| p.0)).collect();
            let mut heat: Vec<BTreeMap<String, String>> = vec![BTreeMap::new(); kept.len()];
            let rgbs: Vec<Option<image::RgbImage>> =
                kept.iter().map(|(_, img)| to_rgb(img, transform)).collect();
            for &method in &config.methods {
                let attr = attributor
                    .attribute_host(method, &data, dims, &targets)
                    .map_err(CoreError::attribution(format!(
                        "{method} of images {:?}",
                        kept.iter().map(|k| k.0).collect::<Vec<_>>()
                    )))?;
                for (i, rgb) in rgbs.iter().enumerate() {
                    let Some(rgb) = rgb else { continue };
                    let name = format!("attribution/{}/{}.png", method.name(), kept[i].0);
                    write_overlay(rgb, &attr, i, &out.join(&name))?;
                    heat[i].insert(method.name().to_string(), name);
                }
            }
            for (i, ((id, _), rgb)) in kept.iter().zip(&rgbs).enumerate() {
                let name = format!("images/{id}.png");
                if let Some(rgb) = rgb {
                    write_png(rgb, &out.join(&name))
                        .map_err(CoreError::attribution("writing an image"))?;
                }
                let idx = usize::try_from(*id).unwrap_or(usize::MAX);
                file.images.insert(
                    *id,
                    ImageEntry {
                        source: dataset.source(idx),
                        label: dataset.label(idx).unwrap_or(0),
                        top: tops[i].clone(),
                        file: name,
                        heat: std::mem::take(&mut heat[i]),
                    },
                );
            }
        }
        let picks = aggs.picks();
        for c in 0..aggs.params().num_classes {
            let has = |p: &&summit_influence::Pick| file.images.contains_key(&p.id);
            let entry = ClassImages {
                confident: picks
                    .confident(c)
                    .iter()
                    .filter(has)
                    .map(|p| p.id)
                    .collect(),
                misclassified: picks
                    .misclassified(c)
                    .iter()
                    .filter(has)
                    .map(|p| p.id)
                    .collect(),
            };
            if !entry.confident.is_empty() || !entry.misclassified.is_empty() {
                file.classes.insert(c, entry);
            }
        }
        for (l, layer) in aggs.examples().channels().iter().enumerate() {
            for ch in 0..*layer {
                let ids: Vec<u64> = aggs
                    .examples()
                    .get(l, ch)
                    .unwrap_or_default()
                    .iter()
                    .map(|e| e.image_id)
                    .collect();
                if !ids.is_empty() && ids.iter().any(|id| file.images.contains_key(id)) {
                    file.examples.insert(format!("{l}:{ch}"), ids);
                }
            }
        }
        if let Some(ev) = &config.evaluate {
            // each class's most confident picks that were attributed
            let mut ids = Vec::new();
            for c in file.classes.values() {
                ids.extend(c.confident.iter().take(ev.per_class).copied());
            }
            file.evaluation =
                Some(self.evaluate_heatmaps(&ids, &config.methods, &config.params, ev)?);
        }
        file.seconds = t0.elapsed().as_secs_f64();
        write_images_file(out, &file)?;
        Ok(file)
    }
}

/// A batch of images loaded by dataset index: their values (`dims` = `[n, c, h, w]`), the ids
/// and images loaded, and the ids that failed with why.
pub(crate) struct Loaded {
    pub data: Vec<f32>,
    pub dims: [usize; 4],
    pub kept: Vec<(u64, summit_data::Image)>,
    pub failed: Vec<(u64, String)>,
}

/// Loads the images `ids` (dataset indices) of `dataset`.
pub(crate) fn load_images(dataset: &dyn summit_data::Dataset, ids: &[u64]) -> Loaded {
    let mut out = Loaded {
        data: Vec::new(),
        dims: [0; 4],
        kept: Vec::with_capacity(ids.len()),
        failed: Vec::new(),
    };
    for &id in ids {
        match dataset.load(usize::try_from(id).unwrap_or(usize::MAX)) {
            Ok(img) => {
                out.dims = [0, img.channels, img.height, img.width];
                out.data.extend_from_slice(&img.data);
                out.kept.push((id, img));
            }
            Err(e) => out.failed.push((id, e.to_string())),
        }
    }
    out.dims[0] = out.kept.len();
    out
}

/// The model's 5 most probable classes `(class, probability)` of each image of `data`.
pub(crate) fn predict_top(
    model: &dyn summit_model::Summarizable,
    device: &summit_model::burn::tensor::Device,
    data: &[f32],
    dims: [usize; 4],
) -> Result<Vec<Vec<(usize, f32)>>> {
    let classes = model.description().num_classes;
    let x = summit_model::burn::tensor::Tensor::<4>::from_data(
        summit_model::burn::tensor::TensorData::new(data.to_vec(), dims),
        device,
    );
    let logits = summit_model::to_host(
        model
            .forward(x)
            .map_err(CoreError::model("predicting the attributed images"))?,
        "logits",
    )
    .map_err(CoreError::model("reading the logits"))?;
    Ok(softmax_rows(&logits, classes)
        .chunks(classes.max(1))
        .map(|row| summit_influence::top_classes(row, 5))
        .collect())
}

/// Writes the overlay of image `i`'s heatmap of `attr` over `rgb` to `path`.
pub(crate) fn write_overlay(
    rgb: &image::RgbImage,
    attr: &summit_attribution::Attribution,
    i: usize,
    path: &Path,
) -> Result<()> {
    let (w, h) = rgb.dimensions();
    let map = heatmap(attr, i, h as usize, w as usize);
    let img = overlay(rgb, &map).map_err(CoreError::attribution("drawing an overlay"))?;
    write_png(&img, path).map_err(CoreError::attribution("writing an overlay"))
}

/// Writes `bytes` to `path` atomically ([`summit_export::write_file_atomic`]: a regular
/// file's mode, parent directories created).
pub(crate) fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    summit_export::write_file_atomic(path, bytes)
        .map_err(CoreError::export(format!("writing {}", path.display())))
}

/// Writes `images.json` and `view/images.js` (atomically).
pub fn write_images_file(out: &Path, file: &ImagesFile) -> Result<()> {
    write_view_data(out, IMAGES_FILE, "images.js", "summitImageData", file)
}

/// Writes `value` as JSON to `out/{json}` and as the page's script `out/view/{script}`
/// (`{callback}({json});`), both atomically.
pub(crate) fn write_view_data<T: Serialize>(
    out: &Path,
    json: &str,
    script: &str,
    callback: &str,
    value: &T,
) -> Result<()> {
    let text = serde_json::to_string(value)
        .map_err(|e| CoreError::Config(format!("encoding {json}: {e}")))?;
    write_file_atomic(&out.join(json), text.as_bytes())?;
    write_file_atomic(
        &out.join("view").join(script),
        format!("{callback}({text});\n").as_bytes(),
    )
}

/// Whether `method` names one of [`Method::ALL`] (for argument parsing).
pub fn parse_methods(list: &str) -> std::result::Result<Vec<Method>, String> {
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.parse::<Method>().map_err(|e| e.to_string()))
        .collect()
}
