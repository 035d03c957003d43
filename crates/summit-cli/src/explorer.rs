//! What the explorer computes: an output, its model and dataset, and the per-image answers.

use std::collections::{HashMap, VecDeque};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use summit_core::attribution::{AttributionParams, Attributor, Method, heatmap, overlay};
use summit_core::data::{Dataset, FashionMnist, Preprocess, Transform};
use summit_core::export::{Manifest, read_graph, read_manifest};
use summit_core::graph::AttributionGraph;
use summit_core::image_graph::{GraphComparison, ImageGraph, compare_graphs};
use summit_core::model::burn::tensor::Device;
use summit_core::model::{FashionInception, OnnxModel, OnnxOptions, Summarizable};
use summit_core::{Config, Pipeline, to_rgb};

use crate::{CliError, Result};

/// Where the explorer gets the output's model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// From the manifest: one of the embedded models, recognised by its weights hash.
    Auto,
    /// An ONNX file (its weights hash must be the manifest's).
    Onnx(PathBuf),
}

/// What an attribution explains.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A class's logit (`None`: the predicted class).
    Class(Option<usize>),
    /// One channel of a summary layer, summed over positions.
    Neuron {
        /// The summary layer (name or alias).
        layer: String,
        /// The channel.
        channel: usize,
    },
}

/// A byte-budgeted least-recently-used cache of computed answers.
#[derive(Debug, Default)]
struct Cache {
    map: HashMap<String, Arc<Vec<u8>>>,
    order: VecDeque<String>,
    bytes: usize,
    budget: usize,
}

impl Cache {
    fn get(&mut self, key: &str) -> Option<Arc<Vec<u8>>> {
        let v = self.map.get(key).cloned()?;
        if let Some(p) = self.order.iter().position(|k| k == key) {
            self.order.remove(p);
        }
        self.order.push_back(key.to_string());
        Some(v)
    }

    fn put(&mut self, key: String, value: Arc<Vec<u8>>) {
        if value.len() > self.budget || self.map.contains_key(&key) {
            return;
        }
        self.bytes += value.len();
        self.map.insert(key.clone(), value);
        self.order.push_back(key);
        while self.bytes > self.budget {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(v) = self.map.remove(&old) {
                self.bytes -= v.len();
            }
        }
    }
}

/// An output with its model and dataset, ready to answer per-image questions.
pub struct Explorer {
    out: PathBuf,
    manifest: Manifest,
    model: Box<dyn Summarizable>,
    data: Arc<dyn Dataset>,
    transform: Transform,
    config: Config,
    class_graphs: Vec<AttributionGraph>,
    device: Device,
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for Explorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Explorer")
            .field("out", &self.out)
            .field("model", &self.manifest.model)
            .field("images", &self.data.len())
            .finish()
    }
}

fn export_err(context: String) -> impl FnOnce(summit_core::export::ExportError) -> CliError {
    move |source| CliError::Export { context, source }
}

/// The PNG bytes of an image.
fn png(img: &image::RgbImage) -> Result<Vec<u8>> {
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png)
        .map_err(|e| CliError::Compute(format!("encoding a PNG: {e}")))?;
    Ok(buf.into_inner())
}

impl Explorer {
    /// Opens the output `out` (its manifest, class graphs and run configuration) with its model
    /// and dataset. The dataset is the manifest's source (the embedded Fashion-MNIST test set
    /// or any Fashion-MNIST IDX file pair); the model comes from `model`.
    pub fn open(out: &Path, model: &ModelSource) -> Result<Self> {
        let out = out.canonicalize().map_err(|e| {
            CliError::Data(format!("cannot open the output {}: {e}", out.display()))
        })?;
        let manifest =
            read_manifest(&out).map_err(export_err(format!("reading {}", out.display())))?;
        let device = Device::flex();
        let model = Self::load_model(&manifest, model, &device)?;
        let (data, transform) = Self::open_data(&manifest)?;
        let config: Config = manifest
            .parameters
            .get("config")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| {
                CliError::Data(format!(
                    "{}: the manifest's run configuration cannot be read: {e}",
                    out.display()
                ))
            })?
            .unwrap_or_else(Config::paper);
        let mut class_graphs = Vec::with_capacity(manifest.classes.len());
        for c in &manifest.classes {
            let g = read_graph(&out.join(&c.graph_file)).map_err(export_err(format!(
                "reading the graph of class {}",
                c.index
            )))?;
            class_graphs.push(g.graph);
        }
        if data.class_names().len() != manifest.classes.len() {
            return Err(CliError::Data(format!(
                "the dataset has {} classes, the output {}",
                data.class_names().len(),
                manifest.classes.len()
            )));
        }
        Ok(Self {
            out,
            manifest,
            model,
            data,
            transform,
            config,
            class_graphs,
            device,
            cache: Mutex::new(Cache {
                budget: 256 << 20,
                ..Cache::default()
            }),
        })
    }

    fn load_model(
        manifest: &Manifest,
        source: &ModelSource,
        device: &Device,
    ) -> Result<Box<dyn Summarizable>> {
        let want = manifest.model_weights_hash.clone();
        let err = |e: summit_core::model::ModelError| CliError::Model(e.to_string());
        let model: Box<dyn Summarizable> = match source {
            ModelSource::Onnx(path) => {
                Box::new(OnnxModel::load(path, &OnnxOptions::default(), device).map_err(err)?)
            }
            ModelSource::Auto => {
                let embedded: Vec<Box<dyn Summarizable>> = vec![
                    Box::new(FashionInception::embedded(device).map_err(err)?),
                    Box::new(OnnxModel::fashion_resnet(device).map_err(err)?),
                ];
                let mut found = None;
                for m in embedded {
                    if Some(m.weights_hash().map_err(err)?) == want {
                        found = Some(m);
                        break;
                    }
                }
                found.ok_or_else(|| {
                    CliError::Model(format!(
                        "the output's model `{}` is none of the embedded models: name its ONNX \
                         file with --onnx",
                        manifest.model
                    ))
                })?
            }
        };
        let got = model.weights_hash().map_err(err)?;
        if want.as_ref().is_some_and(|w| *w != got) {
            return Err(CliError::Model(format!(
                "the model's weights (hash {got}) are not those of the output's model `{}`",
                manifest.model
            )));
        }
        Ok(model)
    }

    fn open_data(manifest: &Manifest) -> Result<(Arc<dyn Dataset>, Transform)> {
        let source = PathBuf::from(&manifest.dataset.source);
        let name = source
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if !name.contains("images-idx3-ubyte") {
            return Err(CliError::Data(format!(
                "the output's dataset {} is not a Fashion-MNIST IDX file; the explorer serves \
                 Fashion-MNIST outputs for now",
                source.display()
            )));
        }
        let labels = source.with_file_name(name.replace("images-idx3", "labels-idx1"));
        let data = FashionMnist::open(&source, &labels)
            .and_then(|d| d.with_preprocess(Preprocess::fashion_mnist()))
            .map_err(|e| CliError::Data(format!("opening {}: {e}", source.display())))?;
        let transform = data.transform().clone();
        Ok((Arc::new(data), transform))
    }

    /// The output directory (canonical).
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// The output's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The model.
    pub fn model(&self) -> &dyn Summarizable {
        self.model.as_ref()
    }

    /// The dataset.
    pub fn data(&self) -> &Arc<dyn Dataset> {
        &self.data
    }

    /// The parameters the explorer's attributions use: the defaults, with `zbox`'s bounds from
    /// the dataset's preprocessing.
    pub fn attribution_params(&self) -> AttributionParams {
        AttributionParams {
            input_bounds: self.data.value_range(),
            ..AttributionParams::default()
        }
    }

    fn cached(&self, key: &str, f: impl FnOnce() -> Result<Vec<u8>>) -> Result<Arc<Vec<u8>>> {
        if let Some(v) = self.cache.lock().ok().and_then(|mut c| c.get(key)) {
            return Ok(v);
        }
        let v = Arc::new(f()?);
        if let Ok(mut c) = self.cache.lock() {
            c.put(key.to_string(), v.clone());
        }
        Ok(v)
    }

    fn load(&self, index: usize) -> Result<summit_core::data::Image> {
        self.data
            .load(index)
            .map_err(|e| CliError::Data(format!("image {index}: {e}")))
    }

    /// The image as the model sees it, as PNG bytes.
    pub fn image_png(&self, index: usize) -> Result<Arc<Vec<u8>>> {
        self.cached(&format!("image/{index}"), || {
            let img = self.load(index)?;
            let rgb = to_rgb(&img, &self.transform)
                .ok_or_else(|| CliError::Compute(format!("image {index}: no picture")))?;
            png(&rgb)
        })
    }

    /// The model's class probabilities of image `index` (softmax of the logits).
    pub fn probabilities(&self, index: usize) -> Result<Vec<f32>> {
        let img = self.load(index)?;
        let [c, h, w] = img.dims();
        let x = summit_core::model::burn::tensor::Tensor::<4>::from_data(
            summit_core::model::burn::tensor::TensorData::new(img.data, [1, c, h, w]),
            &self.device,
        );
        let logits = self
            .model
            .forward(x)
            .and_then(|l| summit_core::model::to_host(l, "logits"))
            .map_err(|e| CliError::Compute(format!("image {index}: {e}")))?;
        Ok(summit_core::softmax_rows(&logits, logits.len()))
    }

    /// The top `k` classes of image `index` with their probabilities (ties: lower class first).
    pub fn top(&self, index: usize, k: usize) -> Result<Vec<(usize, f32)>> {
        let p = self.probabilities(index)?;
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
        Ok(order.into_iter().take(k).map(|c| (c, p[c])).collect())
    }

    /// The attribution of image `index` by `method` for `target`: the heatmap over the image, as
    /// PNG bytes (what the static page shows; `summit_attribution::overlay`).
    pub fn attribution_png(
        &self,
        index: usize,
        method: Method,
        target: &Target,
    ) -> Result<Arc<Vec<u8>>> {
        let key = format!("attribution/{index}/{method}/{target:?}");
        self.cached(&key, || {
            let img = self.load(index)?;
            let [c, h, w] = img.dims();
            let att = Attributor::new(self.model.as_ref(), self.attribution_params(), &self.device)
                .map_err(|e| CliError::Compute(e.to_string()))?;
            let a = match target {
                Target::Class(class) => {
                    let class = match class {
                        Some(c) => *c,
                        None => self.top(index, 1)?.first().map_or(0, |t| t.0),
                    };
                    att.attribute_host(method, &img.data, [1, c, h, w], &[class])
                }
                Target::Neuron { layer, channel } => {
                    att.attribute_neuron_host(method, &img.data, [1, c, h, w], layer, *channel)
                }
            }
            .map_err(|e| CliError::Compute(e.to_string()))?;
            let rgb = to_rgb(&img, &self.transform)
                .ok_or_else(|| CliError::Compute(format!("image {index}: no picture")))?;
            let heat = heatmap(&a, 0, h, w);
            let over = overlay(&rgb, &heat).map_err(|e| CliError::Compute(e.to_string()))?;
            png(&over)
        })
    }

    /// The attribution graph of image `index` (SPEC §3.2) and its comparison with the graphs of
    /// its true and predicted classes.
    pub fn image_graph(&self, index: usize) -> Result<(ImageGraph, Vec<GraphComparison>)> {
        let img = self.load(index)?;
        let label = self.data.labels().get(index).copied();
        let mut config = self.config.clone();
        config.attribution = None;
        config.feature_vis = None;
        config.faithfulness = None;
        config.checkpoint = None;
        config.shard = None;
        config.limit = None;
        config.classes = None;
        config.stability = false;
        let pipeline = Pipeline::new(
            self.model.as_ref(),
            self.data.clone(),
            config,
            self.device.clone(),
        )
        .map_err(|e| CliError::Compute(e.to_string()))?;
        let g = pipeline
            .image_graph(&img.data, img.dims(), label, index as u64)
            .map_err(|e| CliError::Compute(e.to_string()))?;
        let mut cmp = Vec::new();
        let mut classes = vec![g.class, g.predicted];
        classes.dedup();
        for c in classes {
            if let Some(cg) = self.class_graphs.get(c) {
                cmp.push(compare_graphs(&g.graph, c, cg));
            }
        }
        Ok((g, cmp))
    }

    /// A file of the output, by a path relative to it: `None` unless the path is plain (no
    /// `..`, no root) and names a file inside the output.
    pub fn output_file(&self, rel: &str) -> Option<PathBuf> {
        let rel = if rel.is_empty() { "index.html" } else { rel };
        let p = Path::new(rel);
        if !p
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            return None;
        }
        let full = self.out.join(p).canonicalize().ok()?;
        (full.starts_with(&self.out) && full.is_file()).then_some(full)
    }
}
