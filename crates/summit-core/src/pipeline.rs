//! The aggregation pass: the dataset streamed once through the model, activations and
//! influences aggregated per batch, with checkpoints, shards and progress.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use summit_data::{Batch, BatchLoader, Dataset, LoaderOptions, Skipped};
use summit_influence::{
    AggregateParams, Aggregates, DeviceInfluenceOptions, DeviceKernel, HopGeometry, HopSpec,
    LayerParams, LayerSelection, PathSpec, influence_device_host,
};
use summit_model::burn::tensor::{Device, Tensor, TensorData};
use summit_model::{
    ConvHop, HopKind, ModelDescription, ModelIdentity, Recording, Summarizable, TapId, to_host,
};

use crate::checkpoint::{Checkpoint, CheckpointRef, RunKey, hash_indices};
pub use crate::checkpoint::{dataset_fingerprint, remove_stale_checkpoint_files};
use crate::config::{Config, HopInput, InfluenceOn};
use crate::error::{CoreError, Result};

/// The [`PathSpec`]s of every summary layer of a model: `specs[l][p]` describes
/// `desc.paths[l][p]` (its concatenation offset and the `(C_in, C_out)` of each hop, read from
/// the folded kernels).
pub fn path_specs(desc: &ModelDescription) -> Result<Vec<Vec<PathSpec>>> {
    desc.paths
        .iter()
        .enumerate()
        .map(|(l, paths)| {
            paths
                .iter()
                .map(|p| {
                    let hops: Vec<HopSpec> = p
                        .hops
                        .iter()
                        .map(|h| HopSpec {
                            c_in: h.in_channels(),
                            c_out: h.out_channels(),
                            groups: h.groups,
                            identity: h.kind == HopKind::Identity,
                        })
                        .collect();
                    match hops.last() {
                        Some(h) if h.c_out == p.out_channels => Ok(PathSpec {
                            out_offset: p.out_offset,
                            hops,
                        }),
                        _ => Err(CoreError::Config(format!(
                            "path `{}` into summary layer {l} of model `{}`: its last kernel \
                             has {:?} output channels, the path declares {}",
                            p.name,
                            desc.name,
                            hops.last().map(|h| h.c_out),
                            p.out_channels
                        ))),
                    }
                })
                .collect()
        })
        .collect()
}

/// The paper's name of a summary layer when the model gives one (`mixed3a`), else the model's
/// own name. (Aggregates and graphs use the model's own name; the Summit format the paper's.)
pub fn layer_display_name(layer: &summit_model::SummaryLayer) -> String {
    layer.alias.clone().unwrap_or_else(|| layer.name.clone())
}

/// The aggregation parameters of `config` for model `desc` (layers, excluded channels, paths,
/// selections, geometry). Errors when `config` names a layer the model lacks.
pub fn aggregate_params(desc: &ModelDescription, config: &Config) -> Result<AggregateParams> {
    config.validate()?;
    if desc.paths.len() != desc.layers.len() {
        return Err(CoreError::Config(format!(
            "model `{}` describes paths for {} summary layers but has {}",
            desc.name,
            desc.paths.len(),
            desc.layers.len()
        )));
    }
    let excluded = config.excluded_per_layer(desc)?;
    let specs = path_specs(desc)?;
    let mut layers = Vec::with_capacity(desc.layers.len());
    for (l, (layer, paths)) in desc.layers.iter().zip(specs).enumerate() {
        let input_channels = match paths.first().and_then(|p| p.hops.first()) {
            Some(h) => h.c_in,
            None if l > 0 => desc.layers[l - 1].channels,
            None => 0,
        };
        layers.push(LayerParams {
            name: layer.name.clone(),
            channels: layer.channels,
            excluded: excluded[l].clone(),
            input_channels,
            paths,
        });
    }
    let params = AggregateParams {
        num_classes: desc.num_classes,
        layers,
        activation_selection: config.activation_selection,
        influence_selection: config.influence_selection,
        influence_geometry: config.influence_geometry,
        examples_per_channel: config.examples_per_channel,
    };
    params
        .validate()
        .map_err(|e| CoreError::Config(format!("model `{}`: {e}", desc.name)))?;
    Ok(params)
}

/// The half (0 or 1) image `index` belongs to in a [`Config::stability`] run: the low bit of
/// a SplitMix64 hash of the dataset index, so the split is the same for every batch size,
/// order, thread count and shard.
///
/// ```
/// let halves: Vec<usize> = (0..1000).map(summit_core::stability_half).collect();
/// let ones = halves.iter().filter(|&&h| h == 1).count();
/// assert!(ones > 450 && ones < 550);
/// ```
pub fn stability_half(index: usize) -> usize {
    let mut z = (index as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) & 1) as usize
}

/// What one call of [`Pipeline::aggregate`] did.
#[derive(Debug, Clone)]
pub struct PassReport {
    /// The aggregates so far (complete when [`complete`](Self::complete)).
    pub aggregates: Aggregates,
    /// Whether every index of the run has been processed.
    pub complete: bool,
    /// Dataset indices of the run processed so far (loaded or skipped), this call and before.
    pub processed: usize,
    /// Dataset indices of the run in all.
    pub total: usize,
    /// Where this call started (0 unless it resumed from a checkpoint).
    pub resumed_from: usize,
    /// Batches this call processed.
    pub batches: usize,
    /// Images this call aggregated.
    pub images: usize,
    /// Every sample that could not be loaded, over the whole run so far.
    pub skipped: Vec<Skipped>,
    /// Whether the pass stopped early because its stop flag was raised
    /// ([`Pipeline::with_stop`], e.g. on SIGINT or SIGTERM), after the batch in flight and a
    /// checkpoint when checkpoints are on.
    pub interrupted: bool,
    /// Wall time of this call.
    pub elapsed: Duration,
    /// With [`Config::stability`]: the aggregates of the two halves of the images
    /// ([`stability_half`]); [`aggregates`](Self::aggregates) is their merge.
    pub halves: Option<Box<[Aggregates; 2]>>,
}

impl PassReport {
    /// Images per second of this call.
    pub fn images_per_second(&self) -> f64 {
        self.images as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The pipeline: a model, a dataset, a configuration and a device.
///
/// [`aggregate`](Self::aggregate) streams the dataset once (batches decoded in parallel on a
/// background thread while the model runs), [`crate::analyze`] builds the graphs of every class
/// and the overview, [`run`](Self::run) does everything and writes the output directory.
pub struct Pipeline<'m> {
    model: &'m dyn Summarizable,
    dataset: Arc<dyn Dataset>,
    config: Config,
    device: Device,
    params: AggregateParams,
    kernels: Option<DeviceKernels>,
    identity: ModelIdentity,
    fingerprint: String,
    stop: Option<Arc<AtomicBool>>,
    randomised: Vec<(String, Box<dyn Summarizable + 'm>)>,
}

impl std::fmt::Debug for Pipeline<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("model", &self.model.description().name)
            .field("dataset_len", &self.dataset.len())
            .field("config", &self.config)
            .finish()
    }
}

impl<'m> Pipeline<'m> {
    /// A pipeline over `dataset` with `model`. Checks the configuration against the model
    /// (excluded channels, paths) and the dataset (class count, image shape).
    pub fn new(
        model: &'m dyn Summarizable,
        dataset: Arc<dyn Dataset>,
        config: Config,
        device: Device,
    ) -> Result<Self> {
        let desc = model.description();
        let params = aggregate_params(desc, &config)?;
        let classes = dataset.class_names().len();
        if classes != desc.num_classes {
            return Err(CoreError::Config(format!(
                "the dataset has {classes} classes but model `{}` classifies {}: labels must be \
                 the model's class indices (for ImageNet, a class list in the model's order)",
                desc.name, desc.num_classes
            )));
        }
        if let Some([c, h, w]) = dataset.sample_dims() {
            let i = desc.input;
            if [c, h, w] != [i.channels, i.height, i.width] {
                return Err(CoreError::Config(format!(
                    "the dataset yields {c}×{h}×{w} images but model `{}` expects {}×{}×{}",
                    desc.name, i.channels, i.height, i.width
                )));
            }
        }
        if let Some(cl) = &config.classes
            && let Some(&c) = cl.iter().find(|&&c| c >= classes)
        {
            return Err(CoreError::Config(format!(
                "class {c} is out of range: the dataset has {classes} classes"
            )));
        }
        if config.stability && (config.checkpoint.is_some() || config.shard.is_some()) {
            return Err(CoreError::Config(
                "--stability aggregates two halves in one pass: it cannot be combined with \
                 checkpoints or shards (their files hold one set of aggregates)"
                    .into(),
            ));
        }
        let mut config = config;
        if let Some(att) = &mut config.attribution
            && att.params.input_bounds.is_none()
        {
            // LRP's zbox rule: the values the dataset's preprocessing can produce
            att.params.input_bounds = dataset.value_range();
        }
        if let Some(att) = &config.attribution {
            // an unknown Grad-CAM layer or parameters that cannot work: refused before the pass
            let attributor =
                summit_attribution::Attributor::new(model, att.params.clone(), &device).map_err(
                    CoreError::attribution("the per-image attribution of the run (--attribution)"),
                )?;
            // LRP: a model without an operator graph, a rule map naming no layer, zbox without
            // bounds — refused before the pass too
            for composite in att.methods.iter().filter_map(|m| m.composite()) {
                attributor
                    .lrp_rules(composite)
                    .map_err(CoreError::attribution(
                        "the per-image attribution of the run (--attribution)",
                    ))?;
            }
            if att.methods.is_empty() {
                return Err(CoreError::Config(
                    "per-image attribution is on but names no method".into(),
                ));
            }
        }
        if let Some(fv) = &config.feature_vis {
            // parameters that cannot work, or a model without gradients or that refuses the
            // image fed at its own size: refused before the pass (one step of one image of the
            // run's size, to the first summary layer)
            let probe = summit_featvis::FeatureVisParams {
                steps: 1,
                diversity: 1,
                ..fv.params.clone()
            };
            fv.params
                .validate()
                .and_then(|()| {
                    let c_in = desc.input.channels;
                    let map = summit_featvis::InputMap {
                        scale: vec![1.0 / 255.0; c_in],
                        offset: vec![0.0; c_in],
                    };
                    let first = desc.layers.first().map_or("", |l| l.name.as_str());
                    summit_featvis::visualize(model, first, &[0], &map, &probe, &device, |_, _| {})
                })
                .map_err(CoreError::featvis(
                    "the feature visualization of the run (--feature-vis)",
                ))?;
        }
        let kernels = match config.influence_on {
            InfluenceOn::Host => None,
            InfluenceOn::Device => Some(DeviceKernels::new(desc, &device)?),
        };
        let identity = ModelIdentity::of(model).map_err(CoreError::model(format!(
            "hashing the weights of `{}`",
            desc.name
        )))?;
        let fingerprint = dataset_fingerprint(dataset.as_ref());
        Ok(Self {
            model,
            dataset,
            config,
            device,
            params,
            kernels,
            identity,
            fingerprint,
            stop: None,
            randomised: Vec::new(),
        })
    }

    /// The pipeline with the model's copies for the MPRT heatmap metric (SPEC §4.4): the model
    /// with its layers re-initialised from the top, cumulatively, each named by the layer last
    /// re-initialised (e.g. `summit_attribution::FashionRandomisation`).
    pub fn with_randomised_models(
        mut self,
        models: Vec<(String, Box<dyn Summarizable + 'm>)>,
    ) -> Self {
        self.randomised = models;
        self
    }

    /// The copies of [`with_randomised_models`](Self::with_randomised_models).
    pub fn randomised_models(&self) -> &[(String, Box<dyn Summarizable + 'm>)] {
        &self.randomised
    }

    /// The pipeline with a stop flag: once raised (e.g. by a SIGINT or SIGTERM handler), a
    /// pass finishes the batch in flight, writes a checkpoint when checkpoints are on, and
    /// returns with [`PassReport::interrupted`]; [`run`](Self::run) then fails with
    /// [`CoreError::Interrupted`], saying how to resume.
    pub fn with_stop(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Whether the stop flag ([`with_stop`](Self::with_stop)) has been raised.
    pub fn stop_requested(&self) -> bool {
        self.stop
            .as_deref()
            .is_some_and(|f| f.load(Ordering::SeqCst))
    }

    /// The dataset's [`dataset_fingerprint`] (in the manifest and the checkpoint key).
    pub fn dataset_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The model's identity: content hashes of its weights and description, recorded in the
    /// manifest and the checkpoint key (runs of other weights are neither resumed nor merged).
    pub fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    /// The aggregation parameters.
    pub fn params(&self) -> &AggregateParams {
        &self.params
    }

    /// The model.
    pub fn model(&self) -> &dyn Summarizable {
        self.model
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dataset.
    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.dataset
    }

    /// The classes graphs are built for: [`Config::classes`] or all the model's classes.
    pub fn graph_classes(&self) -> Vec<usize> {
        match &self.config.classes {
            Some(c) => {
                let mut c = c.clone();
                c.sort_unstable();
                c.dedup();
                c
            }
            None => (0..self.params.num_classes).collect(),
        }
    }

    /// The dataset indices of this run, in processing order: the shard's range, restricted to
    /// [`Config::classes`], cut to [`Config::limit`].
    pub fn indices(&self) -> Result<Vec<usize>> {
        let len = self.dataset.len();
        let range = match self.config.shard {
            Some((i, n)) => summit_data::shard(i, n, len)
                .map_err(CoreError::data(format!("choosing shard {i} of {n}")))?,
            None => 0..len,
        };
        Ok(self.restrict(range))
    }

    /// The dataset indices of the run as if it were not sharded (the classes and limit apply):
    /// what a merge of all its shards covers.
    pub fn unsharded_indices(&self) -> Vec<usize> {
        self.restrict(0..self.dataset.len())
    }

    /// The pipeline's stop flag, if it has one ([`with_stop`](Self::with_stop)).
    pub fn stop_flag(&self) -> Option<Arc<AtomicBool>> {
        self.stop.clone()
    }

    fn restrict(&self, range: std::ops::Range<usize>) -> Vec<usize> {
        let labels = self.dataset.labels();
        let mut idx: Vec<usize> = match &self.config.classes {
            Some(cl) => range
                .filter(|&i| labels.get(i).is_some_and(|l| cl.contains(l)))
                .collect(),
            None => range.collect(),
        };
        if let Some(n) = self.config.limit {
            idx.truncate(n);
        }
        idx
    }

    fn run_key(&self, indices: &[usize]) -> RunKey {
        RunKey {
            model: self.model.description().name.clone(),
            weights: self.identity.weights.clone(),
            description: self.identity.description.clone(),
            dataset: self.fingerprint.clone(),
            dataset_len: self.dataset.len(),
            indices_len: indices.len(),
            indices_hash: hash_indices(indices),
            hop_input: self.config.hop_input,
            picks: self.config.picks,
        }
    }

    /// Streams the run's images once through the model and aggregates them. With
    /// [`Config::checkpoint`] set, resumes from an existing checkpoint of the same run (same
    /// model name, dataset size, indices, parameters; anything else is an error naming the
    /// file) and writes one every `every_batches` batches; with [`Config::max_batches`] it
    /// stops early (writing a checkpoint first) and reports `complete: false`.
    pub fn aggregate(&self) -> Result<PassReport> {
        let start = Instant::now();
        let indices = self.indices()?;
        let key = self.run_key(&indices);
        let mut position = 0usize;
        let mut skipped = Vec::new();
        let mut aggs = None;
        if let Some(ck) = &self.config.checkpoint {
            // temporaries of a checkpoint write that was killed
            remove_stale_checkpoint_files(&ck.path)?;
        }
        if let Some(ck) = &self.config.checkpoint
            && ck.path.exists()
        {
            let c = Checkpoint::load(&ck.path)?;
            let fail = |reason: String| CoreError::Checkpoint {
                path: ck.path.clone(),
                reason,
            };
            if c.key.weights != key.weights {
                return Err(fail(format!(
                    "was written by model `{}` with weights {}, but this run's model `{}` has \
                     weights {}: other weights; delete it to start over",
                    c.key.model, c.key.weights, key.model, key.weights
                )));
            }
            if c.key != key {
                let diff = c.key.differences(&key);
                let what = if diff.is_empty() {
                    "its run key".to_string()
                } else {
                    diff.join("; ")
                };
                return Err(fail(format!(
                    "belongs to another run ({what}); rerun with the checkpoint's settings to \
                     resume, or delete it to start over"
                )));
            }
            if c.aggregates.params() != &self.params {
                return Err(fail(
                    "was written with other aggregation parameters; delete it to start over".into(),
                ));
            }
            if c.position > indices.len() {
                return Err(fail(format!(
                    "records {} processed indices, the run has {}",
                    c.position,
                    indices.len()
                )));
            }
            position = c.position;
            skipped = c.skipped;
            aggs = Some(c.aggregates);
        }
        let mut aggs = match aggs {
            Some(a) => a,
            None => Aggregates::new(self.params.clone())
                .map(|a| a.with_picks(self.config.picks))
                .map_err(CoreError::aggregate("creating the aggregates"))?,
        };
        let mut halves = if self.config.stability {
            let new = || {
                Aggregates::new(self.params.clone())
                    .map(|a| a.with_picks(self.config.picks))
                    .map_err(CoreError::aggregate("creating the aggregates of a half"))
            };
            Some(Box::new([new()?, new()?]))
        } else {
            None
        };
        let resumed_from = position;
        let total = indices.len();
        let bar = self.progress_bar(total as u64, position as u64);
        let mut batches = 0usize;
        let mut images = 0usize;
        let mut stopped = false;
        let mut interrupted = false;
        let stop_flag = self.stop.as_deref();
        if position < total {
            let options = LoaderOptions {
                batch_size: self.config.batch_size,
                prefetch: self.config.prefetch.max(1),
                pool: None,
            };
            // the model's input shape is authoritative: a sample of another shape is skipped
            // with its reason, wherever it lies in the run (even first)
            let input = self.model.description().input;
            let loader = BatchLoader::with_expected_dims(
                self.dataset.clone(),
                indices[position..].to_vec(),
                options,
                [input.channels, input.height, input.width],
            )
            .map_err(CoreError::data("starting the batch loader"))?;
            // Batches are recorded and prepared (forward pass, influences, selections) by up
            // to `BATCH_WORKERS` threads at once, each taking the next batch from the loader,
            // and added to the aggregates here in run order, so the result is that of the
            // sequential loop whatever the number of threads.
            let model = self.model;
            let device = &self.device;
            let split = self.config.stability;
            let hop_input = self.config.hop_input;
            let kernels = self.kernels.as_ref();
            let params = &self.params;
            let source = std::sync::Mutex::new((loader, 0usize, position));
            let threads = rayon::current_num_threads().max(1);
            let n_workers = BATCH_WORKERS.min(threads);
            let threads_per_worker = (threads / n_workers).max(1);
            std::thread::scope(|scope| -> Result<()> {
                let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Result<PreparedBatches>)>(
                    BATCH_WORKERS,
                );
                let mut workers = Vec::with_capacity(n_workers);
                for _ in 0..n_workers {
                    let tx = tx.clone();
                    let source = &source;
                    workers.push(scope.spawn(move || -> Result<()> {
                        // each worker's inner parallelism runs on a pool of its own, so that
                        // two batches use two cores without waking each other's threads
                        let pool = rayon::ThreadPoolBuilder::new()
                            .num_threads(threads_per_worker)
                            .thread_name(|i| format!("summit-batch-{i}"))
                            .build()
                            .map_err(|e| {
                                CoreError::Config(format!(
                                    "cannot start the thread pool of a batch worker: {e}"
                                ))
                            })?;
                        pool.install(|| {
                            loop {
                                let next = {
                                    let Ok(mut guard) = source.lock() else {
                                        break;
                                    };
                                    let (loader, seq, first) = &mut *guard;
                                    match loader.next() {
                                        Some(batch) => {
                                            let item = (*seq, *first, batch);
                                            *seq += 1;
                                            *first += item.2.len() + item.2.skipped.len();
                                            item
                                        }
                                        None => break,
                                    }
                                };
                                let (seq, first, batch) = next;
                                let prepared = record_parts(model, device, &batch, first, split)
                                    .and_then(|r| r.prepare(model, hop_input, params, kernels));
                                if tx.send((seq, prepared)).is_err() {
                                    break;
                                }
                            }
                        });
                        Ok(())
                    }));
                }
                drop(tx);
                // the receiver is dropped when this returns, which stops the workers
                let mut consume = |rx: std::sync::mpsc::Receiver<_>| -> Result<()> {
                    let mut waiting: BTreeMap<usize, Result<PreparedBatches>> = BTreeMap::new();
                    let mut next = 0usize;
                    for (seq, prepared) in rx.iter() {
                        waiting.insert(seq, prepared);
                        while let Some(prepared) = waiting.remove(&next) {
                            next += 1;
                            let prepared = prepared?;
                            for part in &prepared.parts {
                                let aggs = match (&mut halves, part.half) {
                                    (Some(h), Some(i)) => &mut h[i],
                                    _ => &mut aggs,
                                };
                                part.batch.add_to(aggs)?;
                            }
                            skipped.extend(prepared.skipped);
                            position += prepared.consumed;
                            batches += 1;
                            images += prepared.images;
                            bar.set_position(position as u64);
                            let signalled = stop_flag.is_some_and(|f| f.load(Ordering::SeqCst));
                            let stop =
                                signalled || self.config.max_batches.is_some_and(|m| batches >= m);
                            if let Some(ck) = &self.config.checkpoint
                                && (batches.is_multiple_of(ck.every_batches) || stop)
                            {
                                CheckpointRef {
                                    key: &key,
                                    position,
                                    skipped: &skipped,
                                    aggregates: &aggs,
                                }
                                .save(&ck.path)?;
                            }
                            if stop && position < total {
                                stopped = true;
                                interrupted = signalled;
                                return Ok(());
                            }
                        }
                    }
                    // every batch taken is sent, so a gap means a worker died
                    match waiting.into_iter().next() {
                        Some((_, Err(e))) => Err(e),
                        Some((seq, Ok(_))) => Err(CoreError::Config(format!(
                            "batch {next} of the aggregation was never prepared (batch {seq} was)"
                        ))),
                        None => Ok(()),
                    }
                };
                let result = consume(rx);
                for w in workers {
                    w.join().map_err(|_| {
                        CoreError::Config("a batch worker of the aggregation panicked".into())
                    })??;
                }
                result
            })?;
            let (loader, _, _) = source.into_inner().map_err(|_| {
                CoreError::Config("a batch worker of the aggregation panicked".into())
            })?;
            if !stopped {
                // samples skipped at the very end travel with no batch
                skipped.extend(loader.skipped().iter().cloned());
                position = total;
            }
        }
        let complete = !stopped;
        if let Some(h) = &halves {
            // the whole is the exact merge of the two halves
            let mut whole = h[0].clone();
            whole
                .merge(&h[1])
                .map_err(CoreError::aggregate("merging the two halves"))?;
            aggs = whole;
        }
        if complete && let Some(ck) = &self.config.checkpoint {
            CheckpointRef {
                key: &key,
                position,
                skipped: &skipped,
                aggregates: &aggs,
            }
            .save(&ck.path)?;
        }
        bar.finish_and_clear();
        skipped.sort_by_key(|s| s.index);
        skipped.dedup_by_key(|s| s.index);
        Ok(PassReport {
            aggregates: aggs,
            complete,
            processed: position,
            total,
            resumed_from,
            batches,
            images,
            skipped,
            interrupted,
            elapsed: start.elapsed(),
            halves,
        })
    }

    fn progress_bar(&self, total: u64, position: u64) -> ProgressBar {
        let target = if self.config.progress && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        if let Ok(style) = ProgressStyle::with_template(
            "{bar:40} {pos}/{len} images  {per_sec}  elapsed {elapsed}  ETA {eta}",
        ) {
            bar.set_style(style);
        }
        bar.set_position(position);
        bar.reset_eta();
        bar
    }
}

/// One recorded part of a batch: the whole batch, or (with [`Config::stability`]) the images
/// of one half.
struct RecordedPart {
    /// `None`: the whole run's aggregates; `Some(h)`: half `h`'s.
    half: Option<usize>,
    ids: Vec<u64>,
    labels: Vec<usize>,
    what: String,
    recording: Recording,
}

/// A batch after its forward pass, ready to be aggregated.
struct RecordedBatch {
    parts: Vec<RecordedPart>,
    /// Samples the batch consumed from the run's index list (loaded and skipped).
    consumed: usize,
    /// Images in the batch.
    images: usize,
    skipped: Vec<Skipped>,
}

impl RecordedBatch {
    /// Prepares every part ([`prepare_recording`]).
    fn prepare(
        self,
        model: &dyn Summarizable,
        hop_input: HopInput,
        params: &AggregateParams,
        kernels: Option<&DeviceKernels>,
    ) -> Result<PreparedBatches> {
        let mut parts = Vec::with_capacity(self.parts.len());
        for part in self.parts {
            let batch = prepare_recording(
                model,
                hop_input,
                params,
                part.recording,
                &part.ids,
                &part.labels,
                &part.what,
                kernels,
            )?;
            parts.push(PreparedPart {
                half: part.half,
                batch,
            });
        }
        Ok(PreparedBatches {
            parts,
            consumed: self.consumed,
            images: self.images,
            skipped: self.skipped,
        })
    }
}

/// One prepared part of a batch ([`RecordedPart`] after [`prepare_recording`]).
struct PreparedPart {
    half: Option<usize>,
    batch: PreparedBatch,
}

/// A batch ready to be added to the aggregates.
struct PreparedBatches {
    parts: Vec<PreparedPart>,
    consumed: usize,
    images: usize,
    skipped: Vec<Skipped>,
}

/// How many batches the aggregation records and prepares at once at most (fewer when the
/// rayon pool has fewer threads): each worker runs its batches' inner parallelism on a rayon
/// pool of its own with an equal share of the threads; results are added in run order.
pub const BATCH_WORKERS: usize = 2;

/// Runs the recording forward pass of `batch` (first at run position `first`): the whole
/// batch, or with `split` its two halves by [`stability_half`] apart.
fn record_parts(
    model: &dyn Summarizable,
    device: &Device,
    batch: &Batch,
    first: usize,
    split: bool,
) -> Result<RecordedBatch> {
    let what = format!(
        "batch at run position {first} (dataset indices {}..={})",
        batch.indices.first().copied().unwrap_or(0),
        batch.indices.last().copied().unwrap_or(0)
    );
    let per: usize = batch.dims[1..].iter().product();
    let mut parts = Vec::new();
    let groups: Vec<(Option<usize>, Vec<usize>)> = if split {
        (0..2)
            .map(|h| {
                let rows = (0..batch.len())
                    .filter(|&b| stability_half(batch.indices[b]) == h)
                    .collect();
                (Some(h), rows)
            })
            .collect()
    } else {
        vec![(None, (0..batch.len()).collect())]
    };
    for (half, rows) in groups {
        if rows.is_empty() {
            continue;
        }
        let mut images = Vec::with_capacity(rows.len() * per);
        for &b in &rows {
            images.extend_from_slice(&batch.images[b * per..(b + 1) * per]);
        }
        let mut dims = batch.dims;
        dims[0] = rows.len();
        let ids: Vec<u64> = rows.iter().map(|&b| batch.indices[b] as u64).collect();
        let labels: Vec<usize> = rows.iter().map(|&b| batch.labels[b]).collect();
        let x = Tensor::<4>::from_data(TensorData::new(images, dims), device);
        let recording = record_batch(model, x, &ids, &labels, &what)?;
        parts.push(RecordedPart {
            half,
            ids,
            labels,
            what: what.clone(),
            recording,
        });
    }
    Ok(RecordedBatch {
        parts,
        consumed: batch.len() + batch.skipped.len(),
        images: batch.len(),
        skipped: batch.skipped.clone(),
    })
}

/// Aggregates one batch of images into `aggs`: the step [`Pipeline::aggregate`] runs for
/// every batch, public so that benches and tests run exactly the pipeline's code.
///
/// Records `images` (`[B, C, H, W]`, on the model's device) with `model`, adds the
/// predictions (softmax of the logits), the channel maxima and arg-max of every summary layer
/// (reduced on the device, selected on the host) and the influences of every convolution hop
/// of every path (read back to the host, fused CPU kernel); first hops read the tap
/// `hop_input` chooses. `ids[b]` and `labels[b]` identify image `b`; `what` names the batch in
/// error messages. On error `aggs` may hold part of the batch.
pub fn aggregate_batch(
    model: &dyn Summarizable,
    hop_input: HopInput,
    aggs: &mut Aggregates,
    images: Tensor<4>,
    ids: &[u64],
    labels: &[usize],
    what: &str,
) -> Result<()> {
    aggregate_batch_with(model, hop_input, aggs, images, ids, labels, what, None)
}

/// The folded kernels of every hop of a model on its device, arranged for
/// [`influence_device`](summit_influence::influence_device): `[layer][path][hop]`. Built once
/// per pipeline when [`Config::influence_on`] is [`InfluenceOn::Device`].
pub struct DeviceKernels(Vec<Vec<Vec<DeviceKernel>>>);

impl DeviceKernels {
    /// Uploads every hop kernel of `desc` to `device`.
    pub fn new(desc: &ModelDescription, device: &Device) -> Result<Self> {
        let mut layers = Vec::with_capacity(desc.paths.len());
        for (l, paths) in desc.paths.iter().enumerate() {
            let mut ps = Vec::with_capacity(paths.len());
            for path in paths {
                let mut hs = Vec::with_capacity(path.hops.len());
                for (h, hop) in path.hops.iter().enumerate() {
                    let k = DeviceKernel::with_groups(
                        &hop.kernel.weight,
                        hop.kernel.dims,
                        hop.groups,
                        device,
                    )
                    .map_err(CoreError::aggregate(format!(
                        "uploading the kernel of hop {h} of path `{}` into `{}`",
                        path.name,
                        desc.layers.get(l).map_or("?", |x| x.name.as_str())
                    )))?;
                    hs.push(k);
                }
                ps.push(hs);
            }
            layers.push(ps);
        }
        Ok(Self(layers))
    }

    fn get(&self, l: usize, p: usize, h: usize) -> Option<&DeviceKernel> {
        self.0.get(l)?.get(p)?.get(h)
    }
}

/// [`aggregate_batch`], with the influences computed on the model's device when `kernels` is
/// given ([`InfluenceOn::Device`]; the kernels of `model`'s hops, [`DeviceKernels::new`]):
/// each hop input stays on the device and only its `[B, C_out, C_in]` maxima are read back.
#[allow(clippy::too_many_arguments)]
pub fn aggregate_batch_with(
    model: &dyn Summarizable,
    hop_input: HopInput,
    aggs: &mut Aggregates,
    images: Tensor<4>,
    ids: &[u64],
    labels: &[usize],
    what: &str,
    kernels: Option<&DeviceKernels>,
) -> Result<()> {
    let rec = record_batch(model, images, ids, labels, what)?;
    aggregate_recording(model, hop_input, aggs, rec, ids, labels, what, kernels)
}

/// The recording forward pass of [`aggregate_batch_with`]: checks that `ids` and `labels`
/// have one entry per image and records `images` with `model`.
pub fn record_batch(
    model: &dyn Summarizable,
    images: Tensor<4>,
    ids: &[u64],
    labels: &[usize],
    what: &str,
) -> Result<Recording> {
    let b = images.dims()[0];
    if ids.len() != b || labels.len() != b {
        return Err(CoreError::Config(format!(
            "{what}: {b} images but {} ids and {} labels",
            ids.len(),
            labels.len()
        )));
    }
    model
        .record(images)
        .map_err(CoreError::model(format!("recording {what}")))
}

/// The aggregation step of [`aggregate_batch_with`] on a recording `rec` of `model`
/// ([`record_batch`]): predictions, activations and influences added to `aggs`
/// ([`prepare_recording`] with `aggs`' parameters, then [`PreparedBatch::add_to`]).
#[allow(clippy::too_many_arguments)]
pub fn aggregate_recording(
    model: &dyn Summarizable,
    hop_input: HopInput,
    aggs: &mut Aggregates,
    rec: Recording,
    ids: &[u64],
    labels: &[usize],
    what: &str,
    kernels: Option<&DeviceKernels>,
) -> Result<()> {
    prepare_recording(
        model,
        hop_input,
        aggs.params(),
        rec,
        ids,
        labels,
        what,
        kernels,
    )?
    .add_to(aggs)
}

/// What a batch adds to the aggregates, computed from its recording but not yet recorded:
/// its predictions, every summary layer's channel maxima and arg-max, and every layer's
/// influence selection ([`prepare_recording`]). Only [`add_to`](Self::add_to) needs the
/// aggregates themselves, so batches are prepared on several threads and added in order.
#[derive(Debug, Clone)]
pub struct PreparedBatch {
    ids: Vec<u64>,
    labels: Vec<usize>,
    what: String,
    probs: Vec<f32>,
    /// per summary layer: channel maxima and their positions, `[B, C]`
    activations: Vec<(Vec<f32>, Vec<u32>)>,
    selections: Vec<LayerSelection>,
}

impl PreparedBatch {
    /// The number of images.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether it holds no image.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Adds the batch to `aggs` (whose parameters must be those it was prepared with).
    pub fn add_to(&self, aggs: &mut Aggregates) -> Result<()> {
        let what = &self.what;
        aggs.add_predictions(&self.ids, &self.labels, &self.probs)
            .map_err(CoreError::aggregate(format!(
                "adding the predictions of {what}"
            )))?;
        for (l, (max, arg)) in self.activations.iter().enumerate() {
            aggs.add_activations(l, &self.ids, &self.labels, max, arg)
                .map_err(CoreError::aggregate(format!(
                    "adding the activations of summary layer {l} for {what}"
                )))?;
        }
        for sel in &self.selections {
            aggs.add_layer_selection(&self.labels, sel)
                .map_err(CoreError::aggregate(format!(
                    "adding the influences into summary layer {} for {what}",
                    sel.layer()
                )))?;
        }
        Ok(())
    }
}

/// Computes what a recording `rec` of `model` adds to aggregates of parameters `params`
/// ([`PreparedBatch`]): the softmax of the logits, every summary layer's channel maxima and
/// arg-max (reduced on the device, read back), and the influences of every convolution hop of
/// every path (read back to the host, fused CPU kernel, or on the device with `kernels`),
/// selected per output channel. Reads no aggregates: it runs on any thread.
#[allow(clippy::too_many_arguments)]
pub fn prepare_recording(
    model: &dyn Summarizable,
    hop_input: HopInput,
    params: &AggregateParams,
    mut rec: Recording,
    ids: &[u64],
    labels: &[usize],
    what: &str,
    kernels: Option<&DeviceKernels>,
) -> Result<PreparedBatch> {
    let desc = model.description();
    let b = ids.len();
    if rec.logits.dims()[0] != b || labels.len() != b {
        return Err(CoreError::Config(format!(
            "{what}: a recording of {} images but {b} ids and {} labels",
            rec.logits.dims()[0],
            labels.len()
        )));
    }

    // predictions
    let logits = to_host(rec.logits.clone(), "logits")
        .map_err(CoreError::model(format!("reading the logits of {what}")))?;
    let probs = softmax_rows(&logits, desc.num_classes);
    let mut activations = Vec::with_capacity(desc.layers.len());
    let mut selections = Vec::with_capacity(desc.paths.len());

    // activations: channel maxima and arg-max on the device
    for layer in desc.layers.iter() {
        let t = rec.tap(layer.tap).clone();
        let [tb, c, h, w] = t.dims();
        if tb != b || c != layer.channels {
            return Err(CoreError::Config(format!(
                "summary layer `{}` recorded {:?}, expected [{b}, {}, H, W] ({what})",
                layer.name,
                [tb, c, h, w],
                layer.channels
            )));
        }
        let (max, arg) = t.reshape([b, c, h * w]).max_dim_with_indices(2);
        let max = to_host(max, &layer.name).map_err(CoreError::model(format!(
            "reading the channel maxima of `{}` for {what}",
            layer.name
        )))?;
        let arg: Vec<u32> = arg
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .map_err(|e| {
                CoreError::Config(format!(
                    "cannot read the arg-max of `{}` for {what}: {e:?}",
                    layer.name
                ))
            })?
            .into_iter()
            .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
            .collect();
        activations.push((max, arg));
    }

    // influences: every hop of every path, on the host (or on the device); the hops of one
    // layer are recorded together, so that paths summing into one channel compete
    let mut host: BTreeMap<TapId, (TensorData, [usize; 4])> = BTreeMap::new();
    for (l, paths) in desc.paths.iter().enumerate() {
        let mut values: Vec<Vec<Vec<f32>>> = Vec::with_capacity(paths.len());
        // hops already computed in this layer: a hop shared by several paths (a chain through
        // a block that is not a summary layer, e.g. MobileNetV2's blocks without a skip) is
        // computed once
        let mut done: Vec<(TapId, &ConvHop, usize, usize)> = Vec::new();
        // (path, hop) filled from an earlier (path, hop) once computed
        let mut dups: Vec<(usize, usize, usize, usize)> = Vec::new();
        // host hops to compute, all of a layer's together in parallel: (path, hop, input tap)
        let mut pending: Vec<(usize, usize, TapId)> = Vec::new();
        for (p, path) in paths.iter().enumerate() {
            let mut per_hop = Vec::with_capacity(path.hops.len());
            for (h, hop) in path.hops.iter().enumerate() {
                let tap = if h == 0 {
                    hop_input.tap(hop)
                } else {
                    hop.input
                };
                if let Some(&(_, _, q, g)) = done
                    .iter()
                    .find(|(t, other, q, _)| *q != p && *t == tap && same_hop(other, hop))
                {
                    dups.push((p, h, q, g));
                    per_hop.push(Vec::new());
                    continue;
                }
                done.push((tap, hop, p, h));
                let hop_what = || hop_context(h, &path.name, &desc.layers[l].name, what);
                let Some(t) = rec.taps.get_mut(tap.0) else {
                    return Err(CoreError::Config(format!(
                        "path `{}` reads tap {} which the recording lacks",
                        path.name, tap.0
                    )));
                };
                let spec = params
                    .hop_spec(l, p, h)
                    .map_err(CoreError::aggregate(hop_what()))?;
                if let Some(kernels) = kernels {
                    let kernel = kernels.get(l, p, h).ok_or_else(|| {
                        CoreError::Config(format!(
                            "no device kernel for hop {h} of path `{}` (kernels of another model?)",
                            path.name
                        ))
                    })?;
                    let dims = t.dims();
                    let geom = params.hop_geometry(&spec, hop_geometry(hop), dims, hop.kernel.dims);
                    let lmax = influence_device_host(
                        t.clone(),
                        kernel,
                        &geom,
                        &DeviceInfluenceOptions::default(),
                    )
                    .map_err(CoreError::aggregate(hop_what()))?;
                    per_hop.push(lmax);
                    continue;
                }
                match host.entry(tap) {
                    std::collections::btree_map::Entry::Occupied(_) => {}
                    std::collections::btree_map::Entry::Vacant(e) => {
                        let dims = t.dims();
                        let name = &desc.taps[tap.0].name;
                        // the recording's last reference to the tap moves to the host without a
                        // copy (the map keeps it while later layers read it)
                        let empty = Tensor::<4>::empty([0, 0, 0, 0], &t.device());
                        let v = host_data(std::mem::replace(t, empty), name).map_err(
                            CoreError::model(format!("reading tap `{name}` for {what}")),
                        )?;
                        e.insert((v, dims));
                    }
                }
                pending.push((p, h, tap));
                per_hop.push(Vec::new());
            }
            values.push(per_hop);
        }
        // the layer's host hops in parallel (each one's values do not depend on it)
        let computed: Vec<Result<Vec<f32>>> = pending
            .par_iter()
            .map(|&(p, h, tap)| {
                let path = &paths[p];
                let hop = &path.hops[h];
                let hop_what = || hop_context(h, &path.name, &desc.layers[l].name, what);
                let (x, dims) = host.get(&tap).ok_or_else(|| {
                    CoreError::Config(format!("tap {} of {what} is not on the host", tap.0))
                })?;
                let x = x.as_slice::<f32>().map_err(|e| {
                    CoreError::Config(format!("cannot read a tap of {what} as f32: {e:?}"))
                })?;
                params
                    .hop_influences_cpu(
                        l,
                        p,
                        h,
                        x,
                        *dims,
                        &hop.kernel.weight,
                        hop.kernel.dims,
                        hop_geometry(hop),
                    )
                    .map_err(CoreError::aggregate(hop_what()))
            })
            .collect();
        for (&(p, h, _), lmax) in pending.iter().zip(computed) {
            values[p][h] = lmax?;
        }
        for &(p, h, q, g) in &dups {
            values[p][h] = values[q][g].clone();
        }
        let refs: Vec<Vec<&[f32]>> = values
            .iter()
            .map(|p| p.iter().map(Vec::as_slice).collect())
            .collect();
        selections.push(params.select_layer_influences(l, labels, &refs).map_err(
            CoreError::aggregate(format!(
                "selecting the influences into `{}` for {what}",
                desc.layers[l].name
            )),
        )?);
        // taps of this layer's paths are no longer needed unless a later layer reads them
        let later: Vec<TapId> = desc.paths[l + 1..]
            .iter()
            .flatten()
            .flat_map(|p| {
                p.hops
                    .iter()
                    .map(|h| h.input)
                    .chain(p.hops.iter().map(|h| h.original_input))
            })
            .collect();
        host.retain(|t, _| later.contains(t));
    }
    Ok(PreparedBatch {
        ids: ids.to_vec(),
        labels: labels.to_vec(),
        what: what.to_string(),
        probs,
        activations,
        selections,
    })
}

/// What a hop's errors say they were doing.
fn hop_context(hop: usize, path: &str, layer: &str, what: &str) -> String {
    format!("aggregating influences of hop {hop} of path `{path}` into `{layer}` for {what}")
}

/// A tap's values on the host: the tensor's own data where it reads as `f32` in place (no
/// copy when nothing else holds the tensor), else an `f32` copy.
fn host_data(t: Tensor<4>, what: &str) -> summit_model::Result<TensorData> {
    let data = t.into_data();
    if data.as_slice::<f32>().is_ok() {
        return Ok(data);
    }
    let shape = data.shape().clone();
    let values = data.convert::<f32>().try_into_vec::<f32>().map_err(|e| {
        summit_model::ModelError::Data {
            what: what.to_string(),
            reason: format!("{e:?}"),
        }
    })?;
    Ok(TensorData::new(values, shape))
}

/// Whether two hops compute the same influences from the same input: same kind, kernel,
/// geometry and groups.
fn same_hop(a: &ConvHop, b: &ConvHop) -> bool {
    a.kind == b.kind
        && a.groups == b.groups
        && a.stride == b.stride
        && a.padding == b.padding
        && a.dilation == b.dilation
        && a.kernel.dims == b.kernel.dims
        && a.kernel.weight == b.kernel.weight
}

/// The geometry of a hop as described (its stride, padding and dilation).
pub fn hop_geometry(hop: &ConvHop) -> HopGeometry {
    HopGeometry::new(hop.stride, hop.padding).with_dilation(hop.dilation)
}

/// Row-wise softmax of `[B, C]` logits, in f64 for stability, max subtracted.
pub fn softmax_rows(logits: &[f32], classes: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(logits.len());
    for row in logits.chunks(classes.max(1)) {
        let m = row
            .iter()
            .map(|&v| f64::from(v))
            .fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = row.iter().map(|&v| (f64::from(v) - m).exp()).collect();
        let s: f64 = e.iter().sum();
        out.extend(e.iter().map(|v| (v / s) as f32));
    }
    out
}

/// Reads shard aggregates files (written by [`Aggregates::save`], e.g. each shard output's
/// `aggregates.bin`) and merges them into one. Errors name the file at fault; shards with
/// different parameters or overlapping images are refused.
pub fn merge_aggregate_files<P: AsRef<Path>>(files: &[P]) -> Result<Aggregates> {
    let mut merged: Option<Aggregates> = None;
    for f in files {
        let f = f.as_ref();
        let a = Aggregates::load(f).map_err(CoreError::aggregate(format!(
            "reading shard aggregates {}",
            f.display()
        )))?;
        match &mut merged {
            None => merged = Some(a),
            Some(m) => m.merge(&a).map_err(CoreError::aggregate(format!(
                "merging shard aggregates {}",
                f.display()
            )))?,
        }
    }
    merged.ok_or_else(|| CoreError::Config("no shard aggregates to merge".into()))
}

#[cfg(test)]
#[path = "pipeline_invariance.rs"]
mod invariance;
