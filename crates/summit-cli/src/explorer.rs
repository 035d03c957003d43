//! What the explorer computes: an output, its model and dataset, and the per-image answers.

use std::collections::{HashMap, VecDeque};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use summit_core::Relabeled;
use summit_core::attribution::{
    AttributionParams, Attributor, Method, heatmap, layer_heatmap, overlay,
};
use summit_core::data::{
    Dataset, DecodeLimits, FashionMnist, Image, ImageFolder, Preprocess, Resize, Transform,
    decode_bytes_with_limits,
};
use summit_core::export::{
    Manifest, PREDICTIONS_FILE, Predictions, TOP_K, TopK, read_graph, read_manifest, top_k,
};
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
    /// torchvision GoogLeNet's weights (`.pth` or `.safetensors`), as `summit run inception`
    /// loads them (its weights hash must be the manifest's).
    GoogLeNet(PathBuf),
    /// Lucid InceptionV1's weights, as `summit run inception --model lucid` loads them.
    Lucid(PathBuf),
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

/// The largest upload accepted, in bytes (a bigger body is a 413).
pub const UPLOAD_MAX_BYTES: usize = 8 << 20;

/// What an uploaded image may decode to: 4096 pixels a side, 64 MiB of pixels. The header is
/// read first, so an image over these (a decompression bomb: a small file declaring a huge
/// picture) is refused before its pixels are allocated.
pub const UPLOAD_LIMITS: DecodeLimits = DecodeLimits {
    max_width: 4096,
    max_height: 4096,
    max_alloc: 64 << 20,
};

/// An image a client uploaded (PNG or JPEG), decoded within [`UPLOAD_LIMITS`]; each model
/// preprocesses it as it does its dataset's images, resized to its input where the
/// preprocessing keeps the decoded size.
#[derive(Debug)]
pub struct Upload {
    /// Its id: `u-` and the first 16 hexadecimal digits of the BLAKE3 hash of its bytes (the
    /// same file uploaded twice is one upload).
    pub id: String,
    /// The decoded picture.
    pub picture: image::DynamicImage,
}

impl Upload {
    /// Decodes `bytes` (a PNG or JPEG file) within [`UPLOAD_LIMITS`]: anything else, or an
    /// image over the limits, is [`CliError::Upload`] saying why.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > UPLOAD_MAX_BYTES {
            return Err(CliError::Upload(format!(
                "the upload is {} bytes, over the limit of {UPLOAD_MAX_BYTES}",
                bytes.len()
            )));
        }
        let picture = decode_bytes_with_limits(bytes, "the upload", &UPLOAD_LIMITS)
            .map_err(|e| CliError::Upload(e.to_string()))?;
        let hash = blake3::hash(bytes).to_hex();
        Ok(Self {
            id: format!("u-{}", &hash.as_str()[..16]),
            picture,
        })
    }

    /// The bytes its decoded picture holds.
    pub fn bytes(&self) -> usize {
        self.picture.as_bytes().len()
    }
}

/// What a per-image question is about: a dataset image or an upload.
#[derive(Debug, Clone)]
pub enum Subject {
    /// The dataset image of this index.
    Image(usize),
    /// An uploaded image.
    Upload(Arc<Upload>),
}

impl Subject {
    /// The key of its answers in the cache.
    fn key(&self) -> String {
        match self {
            Self::Image(i) => format!("image/{i}"),
            Self::Upload(u) => format!("upload/{}", u.id),
        }
    }
}

/// Where an image's top 5 came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PredictionOrigin {
    /// The run's pass (`predictions.bin`; probabilities to 1/65535).
    Pass,
    /// Computed now (an image the run did not process, an upload, an output without the file).
    Computed,
}

/// A byte-budgeted least-recently-used cache of computed answers.
#[derive(Debug, Default)]
struct Cache {
    map: HashMap<String, Arc<Vec<u8>>>,
    order: VecDeque<String>,
    bytes: usize,
    budget: usize,
    hits: u64,
    misses: u64,
    evictions: u64,
}

/// How an explorer's answer cache is used ([`Explorer::cache_use`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CacheUse {
    /// Bytes held.
    pub bytes: usize,
    /// The byte budget it stays within.
    pub budget: usize,
    /// Answers held.
    pub entries: usize,
    /// Requests answered from it.
    pub hits: u64,
    /// Requests computed.
    pub misses: u64,
    /// Answers dropped to stay within the budget (least recently used first).
    pub evictions: u64,
}

/// The default byte budget of an explorer's answer cache: 256 MiB.
pub const CACHE_BUDGET: usize = 256 << 20;

impl Cache {
    fn get(&mut self, key: &str) -> Option<Arc<Vec<u8>>> {
        let Some(v) = self.map.get(key).cloned() else {
            self.misses += 1;
            return None;
        };
        self.hits += 1;
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
                self.evictions += 1;
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
    predictions: Option<Predictions>,
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
    /// and dataset. The dataset is the manifest's source (Fashion-MNIST IDX files, or an image
    /// folder opened with the preprocessing the run recorded); the model comes from `model`.
    pub fn open(out: &Path, model: &ModelSource) -> Result<Self> {
        Self::open_with(out, model, None)
    }

    /// [`open`](Self::open) with the dataset at `data` instead of the manifest's source (moved
    /// or mounted elsewhere): Fashion-MNIST's images IDX file or an image folder.
    pub fn open_with(out: &Path, model: &ModelSource, data: Option<&Path>) -> Result<Self> {
        let out = out.canonicalize().map_err(|e| {
            CliError::Data(format!("cannot open the output {}: {e}", out.display()))
        })?;
        let manifest =
            read_manifest(&out).map_err(export_err(format!("reading {}", out.display())))?;
        let device = Device::flex();
        let model = Self::load_model(&manifest, model, &device)?;
        let (data, transform) = Self::open_data(&manifest, data)?;
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
        let predictions = Self::open_predictions(&out, data.len(), manifest.classes.len())?;
        Ok(Self {
            out,
            manifest,
            model,
            data,
            transform,
            config,
            class_graphs,
            predictions,
            device,
            cache: Mutex::new(Cache {
                budget: CACHE_BUDGET,
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
            ModelSource::GoogLeNet(path) => Box::new(
                summit_core::model::GoogLeNet::load(
                    path,
                    summit_core::model::GoogLeNetOptions {
                        transform_input: true,
                    },
                    device,
                )
                .map_err(err)?,
            ),
            ModelSource::Lucid(path) => {
                Box::new(summit_core::model::LucidInceptionV1::load(path, device).map_err(err)?)
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
                         file with --onnx, or InceptionV1's weights with --weights (torchvision) \
                         or --lucid-weights",
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

    /// The output's `predictions.bin` (SPEC §5.1), if it has one (outputs of earlier versions
    /// do not); it must cover the dataset's images and the model's classes.
    fn open_predictions(out: &Path, images: usize, classes: usize) -> Result<Option<Predictions>> {
        let path = out.join(PREDICTIONS_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let p = Predictions::read(&path).map_err(export_err(format!(
            "reading the predictions {}",
            path.display()
        )))?;
        if (p.len(), p.classes()) != (images, classes) {
            return Err(CliError::Data(format!(
                "{} holds {} images of {} classes, the dataset {images} images of {classes}",
                path.display(),
                p.len(),
                p.classes()
            )));
        }
        Ok(Some(p))
    }

    /// The output's dataset: `data` if given, else the manifest's source. Fashion-MNIST IDX
    /// files (images and labels side by side), or an image folder (`DIR/<class>/*`) opened with
    /// the preprocessing the run recorded and renumbered to the output's classes (by synset,
    /// else name), so a folder holding some of the model's classes serves them.
    fn open_data(
        manifest: &Manifest,
        data: Option<&Path>,
    ) -> Result<(Arc<dyn Dataset>, Transform)> {
        let source = data.map_or_else(
            || PathBuf::from(&manifest.dataset.source),
            Path::to_path_buf,
        );
        let recorded: Option<Transform> = match manifest.parameters.get("transform") {
            None | Some(serde_json::Value::Null) => None,
            Some(t) => Some(serde_json::from_value(t.clone()).map_err(|e| {
                CliError::Data(format!(
                    "the manifest's `parameters.transform` cannot be read: {e}"
                ))
            })?),
        };
        let name = source
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if name.contains("images-idx3-ubyte") {
            let labels = source.with_file_name(name.replace("images-idx3", "labels-idx1"));
            let preprocess = recorded.map_or_else(Preprocess::fashion_mnist, Preprocess::Custom);
            let data = FashionMnist::open(&source, &labels)
                .and_then(|d| d.with_preprocess(preprocess))
                .map_err(|e| CliError::Data(format!("opening {}: {e}", source.display())))?;
            let transform = data.transform().clone();
            return Ok((Arc::new(data), transform));
        }
        if source.is_dir() {
            let Some(transform) = recorded else {
                return Err(CliError::Data(format!(
                    "the output's dataset {} is an image folder, but the output does not record \
                     its preprocessing (it was made before runs recorded it): run it again",
                    source.display()
                )));
            };
            let folder = ImageFolder::open(&source, Preprocess::Custom(transform.clone()))
                .map_err(|e| CliError::Data(format!("opening {}: {e}", source.display())))?;
            let order: Vec<String> = manifest
                .classes
                .iter()
                .map(|c| c.synset.clone().unwrap_or_else(|| c.name.clone()))
                .collect();
            let data: Arc<dyn Dataset> = if folder.class_names() == order.as_slice() {
                Arc::new(folder)
            } else {
                Arc::new(
                    Relabeled::new(Arc::new(folder), &order, "the output's classes").map_err(
                        |e| CliError::Data(format!("opening {}: {e}", source.display())),
                    )?,
                )
            };
            return Ok((data, transform));
        }
        Err(CliError::Data(format!(
            "the output's dataset {} is neither Fashion-MNIST IDX files nor an image folder \
             (`DIR/<class>/*`; ImageNet's validation layout is not served yet): name it with \
             --data",
            source.display()
        )))
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

    /// The same explorer with an answer cache of `bytes` (least recently used answers go
    /// first; an answer larger than the budget is not kept).
    pub fn with_cache_budget(self, bytes: usize) -> Self {
        if let Ok(mut c) = self.cache.lock() {
            c.budget = bytes;
        }
        self
    }

    /// How the answer cache is used.
    pub fn cache_use(&self) -> CacheUse {
        self.cache
            .lock()
            .map(|c| CacheUse {
                bytes: c.bytes,
                budget: c.budget,
                entries: c.map.len(),
                hits: c.hits,
                misses: c.misses,
                evictions: c.evictions,
            })
            .unwrap_or(CacheUse {
                bytes: 0,
                budget: 0,
                entries: 0,
                hits: 0,
                misses: 0,
                evictions: 0,
            })
    }

    /// The output's per-image predictions, when it has them (`predictions.bin`).
    pub fn predictions_file(&self) -> Option<&Predictions> {
        self.predictions.as_ref()
    }

    /// A transform for uploads: the dataset's, resized to the model's input where the
    /// dataset's keeps the decoded size (Fashion-MNIST's does: its images are all 28×28).
    fn upload_transform(&self) -> Transform {
        let input = self.model.description().input;
        let want = [input.channels, input.height, input.width];
        let mut t = self.transform.clone();
        if t.output_dims() != Some(want) && t.resize == Resize::None {
            t.resize = Resize::Exact {
                width: u32::try_from(input.width).unwrap_or(u32::MAX),
                height: u32::try_from(input.height).unwrap_or(u32::MAX),
            };
            t.center_crop = None;
        }
        t
    }

    /// The subject as the model's input.
    pub fn load(&self, subject: &Subject) -> Result<Image> {
        match subject {
            Subject::Image(index) => self
                .data
                .load(*index)
                .map_err(|e| CliError::Data(format!("image {index}: {e}"))),
            Subject::Upload(u) => {
                let img = self
                    .upload_transform()
                    .apply_with_limits(&u.picture, &u.id, &UPLOAD_LIMITS)
                    .map_err(|e| CliError::Upload(e.to_string()))?;
                let input = self.model.description().input;
                let want = [input.channels, input.height, input.width];
                if img.dims() != want {
                    return Err(CliError::Upload(format!(
                        "{}: preprocessed to {:?}, but the model `{}` takes {want:?}",
                        u.id,
                        img.dims(),
                        self.manifest.model
                    )));
                }
                Ok(img)
            }
        }
    }

    /// The subject's true class, if it has one (dataset images).
    pub fn label(&self, subject: &Subject) -> Option<usize> {
        match subject {
            Subject::Image(i) => self.data.labels().get(*i).copied(),
            Subject::Upload(_) => None,
        }
    }

    fn picture(&self, subject: &Subject, img: &Image) -> Result<image::RgbImage> {
        to_rgb(img, &self.transform)
            .ok_or_else(|| CliError::Compute(format!("{}: no picture", subject.key())))
    }

    /// The subject as the model sees it, as PNG bytes.
    pub fn image_png(&self, subject: &Subject) -> Result<Arc<Vec<u8>>> {
        self.cached(&subject.key(), || {
            let img = self.load(subject)?;
            png(&self.picture(subject, &img)?)
        })
    }

    /// The model's class probabilities of the subject (softmax of the logits).
    pub fn probabilities(&self, subject: &Subject) -> Result<Vec<f32>> {
        let img = self.load(subject)?;
        let [c, h, w] = img.dims();
        let x = summit_core::model::burn::tensor::Tensor::<4>::from_data(
            summit_core::model::burn::tensor::TensorData::new(img.data, [1, c, h, w]),
            &self.device,
        );
        let logits = self
            .model
            .forward(x)
            .and_then(|l| summit_core::model::to_host(l, "logits"))
            .map_err(|e| CliError::Compute(format!("{}: {e}", subject.key())))?;
        Ok(summit_core::softmax_rows(&logits, logits.len()))
    }

    /// The subject's top `k` classes with their probabilities, computed now (ties: lower class
    /// first).
    pub fn top(&self, subject: &Subject, k: usize) -> Result<TopK> {
        Ok(top_k(&self.probabilities(subject)?, k))
    }

    /// The subject's top 5: the pass's for a dataset image the run processed, else computed.
    pub fn predictions(&self, subject: &Subject) -> Result<(TopK, PredictionOrigin)> {
        if let (Subject::Image(i), Some(p)) = (subject, &self.predictions)
            && let Some(top) = p.get(*i)
        {
            return Ok((top, PredictionOrigin::Pass));
        }
        Ok((self.top(subject, TOP_K)?, PredictionOrigin::Computed))
    }

    /// The attribution of the subject by `method` for `target`: the heatmap over the image, as
    /// PNG bytes (what the static page shows; `summit_attribution::overlay`).
    pub fn attribution_png(
        &self,
        subject: &Subject,
        method: Method,
        target: &Target,
    ) -> Result<Arc<Vec<u8>>> {
        let key = format!("attribution/{}/{method}/{target:?}", subject.key());
        self.cached(&key, || {
            let img = self.load(subject)?;
            let [c, h, w] = img.dims();
            let att = Attributor::new(self.model.as_ref(), self.attribution_params(), &self.device)
                .map_err(|e| CliError::Compute(e.to_string()))?;
            let a = match target {
                Target::Class(class) => {
                    let class = match class {
                        Some(c) => *c,
                        None => self.predictions(subject)?.0.first().map_or(0, |t| t.0),
                    };
                    att.attribute_host(method, &img.data, [1, c, h, w], &[class])
                }
                Target::Neuron { layer, channel } => {
                    att.attribute_neuron_host(method, &img.data, [1, c, h, w], layer, *channel)
                }
            }
            .map_err(|e| CliError::Compute(e.to_string()))?;
            let rgb = self.picture(subject, &img)?;
            let heat = heatmap(&a, 0, h, w);
            let over = overlay(&rgb, &heat).map_err(|e| CliError::Compute(e.to_string()))?;
            png(&over)
        })
    }

    /// The activations of `channel` of summary layer `layer` (name or alias) on the subject,
    /// over the image as PNG bytes: the channel's map upsampled to the image, its positive
    /// part divided by its maximum ([`layer_heatmap`]).
    pub fn activation_png(
        &self,
        subject: &Subject,
        layer: &str,
        channel: usize,
    ) -> Result<Arc<Vec<u8>>> {
        let key = format!("activation/{}/{layer}/{channel}", subject.key());
        self.cached(&key, || {
            let desc = self.model.description();
            let l = desc.layer_index(layer).ok_or_else(|| {
                CliError::Compute(format!(
                    "no summary layer `{layer}`: the model's are {}",
                    desc.layer_names()
                ))
            })?;
            let img = self.load(subject)?;
            let [c, h, w] = img.dims();
            let x = summit_core::model::burn::tensor::Tensor::<4>::from_data(
                summit_core::model::burn::tensor::TensorData::new(img.data.clone(), [1, c, h, w]),
                &self.device,
            );
            let fail = |e: summit_core::model::ModelError| {
                CliError::Compute(format!("{}: {e}", subject.key()))
            };
            let rec = self.model.record(x).map_err(fail)?;
            let tap = rec.tap(desc.layers[l].tap).clone();
            let [_, channels, th, tw] = tap.dims();
            if channel >= channels {
                return Err(CliError::Compute(format!(
                    "layer `{layer}` has {channels} channels, not channel {channel}"
                )));
            }
            let values = summit_core::model::to_host(tap, "activations").map_err(fail)?;
            let map = &values[channel * th * tw..(channel + 1) * th * tw];
            let heat = layer_heatmap(map, th, tw, h, w);
            let rgb = self.picture(subject, &img)?;
            let over = overlay(&rgb, &heat).map_err(|e| CliError::Compute(e.to_string()))?;
            png(&over)
        })
    }

    /// The graph of `class` as the run wrote it (SPEC §3).
    pub fn class_graph(&self, class: usize) -> Option<&AttributionGraph> {
        self.class_graphs.get(class)
    }

    /// Ablates `set` on up to `images` images of `class` (the dataset's, in the order of SPEC
    /// §3.1's samples: by hash of the index), filled as `mode` says, reading `class`
    /// ([`Ablator::ablate_set`](summit_core::Ablator::ablate_set)). `progress(done, total)`
    /// after each batch; `stop` ends it between batches.
    pub fn ablate(
        &self,
        class: usize,
        set: &summit_core::model::ChannelSet,
        images: usize,
        mode: summit_core::AblationMode,
        stop: Arc<std::sync::atomic::AtomicBool>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<summit_core::SetAblation> {
        let all: Vec<usize> = (0..self.data.len()).collect();
        let sample =
            summit_core::faithfulness::class_sample(&all, self.data.labels(), class, images);
        summit_core::Ablator::new(
            self.model.as_ref(),
            &self.device,
            self.data.as_ref(),
            self.config.batch_size.max(1),
        )
        .with_stop(stop)
        .ablate_set(class, set, &sample, mode, progress)
        .map_err(|e| CliError::Compute(e.to_string()))
    }

    /// The attribution graph of the subject (SPEC §3.2) and its comparison with the graphs of
    /// its true class (dataset images) and its predicted class.
    pub fn image_graph(&self, subject: &Subject) -> Result<(ImageGraph, Vec<GraphComparison>)> {
        let img = self.load(subject)?;
        let label = self.label(subject);
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
        let id = match subject {
            Subject::Image(i) => *i as u64,
            Subject::Upload(_) => u64::MAX,
        };
        let g = pipeline
            .image_graph(&img.data, img.dims(), label, id)
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
