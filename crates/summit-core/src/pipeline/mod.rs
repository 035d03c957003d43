//! The aggregation pass: the dataset streamed once through the model, activations and
//! influences aggregated per batch, with checkpoints, shards and progress.
//!
//! The files: `params` (what a model's description and a configuration make the aggregation's
//! parameters), `pass` (the pass: batches loaded and recorded on worker threads, checkpoints,
//! shards, progress), `batch` (one batch's step: recording, activations, influences, added in
//! order).

mod batch;
mod params;
mod pass;

pub use batch::*;
pub use params::*;
pub use pass::BATCH_WORKERS;

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
    /// Every image's top 5 as the pass recorded them (SPEC §5.1): beside the checkpoint
    /// ([`predictions_log_path`]) when checkpoints are on, else a temporary file; the output's
    /// `predictions.bin` is a copy.
    pub predictions: Option<Arc<summit_export::PredictionLog>>,
}

/// Where a pass with the checkpoint `checkpoint` keeps its predictions log: beside it, with
/// `.predictions` appended to its name. It is written before each checkpoint and resumed with
/// it.
pub fn predictions_log_path(checkpoint: &Path) -> std::path::PathBuf {
    let mut name = checkpoint.as_os_str().to_os_string();
    name.push(".predictions");
    std::path::PathBuf::from(name)
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
mod invariance;
