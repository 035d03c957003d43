//! A whole run: aggregation pass, graphs and overview, output directory.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use summit_data::{Image, Transform};
use summit_export::{
    ClassInfo, DatasetInfo, ExportInput, LayerDesc, OutputStage, OutputSummary, OverviewLayer,
    PatchGeometry, PatchSource, SkippedInput, Timings, WriteOptions,
};
use summit_influence::Aggregates;
use summit_model::burn::tensor::{Tensor, TensorData};
use summit_model::{Summarizable, to_host};

use crate::analysis::{Analysis, analyze_subset};
use crate::config::EmbeddingMethod;
use crate::error::{CoreError, Result};
use crate::pipeline::{PassReport, Pipeline};

/// What [`Pipeline::run`] did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The aggregation pass (`None` when the aggregates came from elsewhere, e.g. merged shards).
    pub pass: Option<PassReport>,
    /// Graphs and overview.
    pub analysis: Analysis,
    /// `(phase, seconds)` in the order they ran.
    pub phases: Vec<(String, f64)>,
    /// What was written.
    pub output: OutputSummary,
    /// The per-image attribution written ([`crate::IMAGES_FILE`]), when on.
    pub images: Option<crate::images::ImagesFile>,
    /// The feature visualizations written ([`crate::FEATURE_VIS_FILE`]), when on.
    pub feature_vis: Option<crate::feature_vis::FeatureVisFile>,
    /// The graphs' faithfulness by ablation ([`summit_export::FAITHFULNESS_FILE`]), when on.
    pub faithfulness: Option<summit_export::FaithfulnessReport>,
}

/// Measures the faithfulness of a run's graphs (the pipeline's ablation pass).
pub(crate) type FaithfulnessFn<'f> =
    dyn Fn(&Analysis, &Aggregates) -> Result<summit_export::FaithfulnessReport> + 'f;

/// Turns preprocessed model inputs back into 8-bit RGB images (for dataset-example patches):
/// `pixel = (value − offset[c]) / scale[c]`, clamped to `0..=255`; one grey channel is
/// repeated into R, G and B.
pub fn to_rgb(image: &Image, transform: &Transform) -> Option<image::RgbImage> {
    let (c, h, w) = (image.channels, image.height, image.width);
    if c == 0 || transform.scale.len() != c || transform.offset.len() != c {
        return None;
    }
    let mut out = image::RgbImage::new(u32::try_from(w).ok()?, u32::try_from(h).ok()?);
    for y in 0..h {
        for x in 0..w {
            let mut px = [0u8; 3];
            for (k, p) in px.iter_mut().enumerate() {
                let ch = if c == 1 { 0 } else { k.min(c - 1) };
                let v = image.data[(ch * h + y) * w + x];
                let s = transform.scale[ch];
                let raw = if s == 0.0 {
                    0.0
                } else {
                    (v - transform.offset[ch]) / s
                };
                *p = raw.round().clamp(0.0, 255.0) as u8;
            }
            out.put_pixel(x as u32, y as u32, image::Rgb(px));
        }
    }
    Some(out)
}

/// Estimates, for every summary layer, its feature-map size and receptive field, for cropping
/// dataset-example patches: two images (deterministic pseudo-random values, and the same with
/// the centre pixel raised by 8 in every channel) are recorded, and the bounding box of the
/// feature-map cells that differ, in cells times the layer's stride (`input / layer` size),
/// is the receptive field (at least one stride, at most the input). An estimate: cells where a
/// ReLU or max pool hides the change are missed.
pub fn patch_geometry(
    model: &dyn Summarizable,
    device: &summit_model::burn::tensor::Device,
) -> Result<Vec<PatchGeometry>> {
    let desc = model.description();
    let (c, h, w) = (desc.input.channels, desc.input.height, desc.input.width);
    let n = c * h * w;
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut data = Vec::with_capacity(2 * n);
    for _ in 0..n {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        data.push(((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0);
    }
    let mut bumped = data.clone();
    for ch in 0..c {
        bumped[(ch * h + h / 2) * w + w / 2] += 8.0;
    }
    data.extend(bumped);
    let x = Tensor::<4>::from_data(TensorData::new(data, [2, c, h, w]), device);
    let rec = model
        .record(x)
        .map_err(CoreError::model("recording the receptive-field probe"))?;
    let mut out = Vec::with_capacity(desc.layers.len());
    for layer in &desc.layers {
        let t = rec.tap(layer.tap).clone();
        let [_, lc, lh, lw] = t.dims();
        let v = to_host(t, &layer.name).map_err(CoreError::model(format!(
            "reading `{}` of the receptive-field probe",
            layer.name
        )))?;
        let (a, b) = v.split_at(lc * lh * lw);
        let (mut y0, mut y1, mut x0, mut x1) = (usize::MAX, 0, usize::MAX, 0);
        for ch in 0..lc {
            for yy in 0..lh {
                for xx in 0..lw {
                    let i = (ch * lh + yy) * lw + xx;
                    if (a[i] - b[i]).abs() > 1e-5 {
                        y0 = y0.min(yy);
                        y1 = y1.max(yy);
                        x0 = x0.min(xx);
                        x1 = x1.max(xx);
                    }
                }
            }
        }
        let stride = (h / lh.max(1)).max(w / lw.max(1)).max(1);
        let cells = if y0 == usize::MAX {
            1
        } else {
            (y1 - y0 + 1).max(x1 - x0 + 1)
        };
        out.push(PatchGeometry {
            layer_hw: [lh, lw],
            input_hw: [h, w],
            receptive_field: (cells * stride).clamp(stride, h.max(w)),
        });
    }
    Ok(out)
}

/// Metadata of a run for the output directory.
#[derive(Debug, Clone)]
pub struct RunMeta {
    /// Dataset name (e.g. `fashion-mnist-test`).
    pub dataset_name: String,
    /// Where the dataset was read from.
    pub dataset_source: String,
    /// Class names and synsets, by class index.
    pub classes: Vec<ClassInfo>,
}

impl<'m> Pipeline<'m> {
    /// The [`LayerDesc`]s of the model's summary layers.
    pub fn layer_descs(&self) -> Vec<LayerDesc> {
        self.model()
            .description()
            .layers
            .iter()
            .map(|l| LayerDesc {
                name: l.name.clone(),
                paper_name: l.alias.clone(),
                channels: l.channels,
            })
            .collect()
    }

    /// Runs everything: the aggregation pass (resuming from a checkpoint when configured),
    /// graphs of every class and the overview, and the output directory `out` (checked first:
    /// an existing output needs [`WriteOptions::force`]). A pass stopped
    /// early by [`Config::max_batches`](crate::Config::max_batches) is an error here (call
    /// [`aggregate`](Self::aggregate) to run in steps).
    pub fn run(
        &self,
        out: &Path,
        meta: &RunMeta,
        patches: Option<&Transform>,
        options: &WriteOptions,
    ) -> Result<RunReport> {
        crate::outputs::check_output_dir(out, options.force)?;
        self.check_evaluation()?;
        if let Some(ck) = &self.config().checkpoint
            && crate::outputs::is_within(&ck.path, out)
        {
            return Err(CoreError::Usage(format!(
                "the checkpoint {} is inside the output directory {}: the output replaces that \
                 directory when it is written; put the checkpoint elsewhere",
                ck.path.display(),
                out.display()
            )));
        }
        if self.indices()?.is_empty() {
            return Err(CoreError::NothingToDo(format!(
                "no image to process: the dataset has {} images, none of them in this run \
                 (--limit, --classes or --shard select none)",
                self.dataset().len()
            )));
        }
        let pass = self.aggregate()?;
        if pass.interrupted {
            let resume = match &self.config().checkpoint {
                Some(ck) => format!(
                    "the checkpoint {} holds them; run the same command again to resume",
                    ck.path.display()
                ),
                None => "no checkpoint was configured, so they are lost; pass --checkpoint FILE \
                         to make a run resumable"
                    .to_string(),
            };
            return Err(CoreError::Interrupted {
                processed: pass.processed,
                total: pass.total,
                resume,
            });
        }
        if !pass.complete {
            return Err(CoreError::Config(format!(
                "the pass stopped after {} of {} images (max_batches); run again to resume",
                pass.processed, pass.total
            )));
        }
        if let Some(ck) = &self.config().checkpoint
            && self.stop_requested()
        {
            // stopped after the pass, before the export: the complete checkpoint resumes it
            return Err(CoreError::Interrupted {
                processed: pass.processed,
                total: pass.total,
                resume: format!(
                    "the pass is complete in the checkpoint {}; run the same command again to \
                     write the output",
                    ck.path.display()
                ),
            });
        }
        let seen: u64 = pass.aggregates.class_images().iter().sum();
        if seen == 0 {
            let reasons: Vec<String> = pass
                .skipped
                .iter()
                .take(3)
                .map(|s| format!("{}: {}", s.source, s.reason))
                .collect();
            return Err(CoreError::NothingToDo(format!(
                "no image could be processed: all {} images of the run were skipped{}",
                pass.skipped.len(),
                if reasons.is_empty() {
                    String::new()
                } else {
                    format!(" (e.g. {})", reasons.join("; "))
                }
            )));
        }
        let mut phases = vec![("aggregate".to_string(), pass.elapsed.as_secs_f64())];
        let ips = pass.images_per_second();
        let predictions = match &pass.predictions {
            Some(log) => PredictionSource::Log(log),
            None => PredictionSource::None,
        };
        let mut report = self.finish_with(
            &pass.aggregates,
            pass.halves.as_deref(),
            predictions,
            &pass.skipped,
            Some(ips),
            &mut phases,
            out,
            meta,
            patches,
            options,
        )?;
        report.pass = Some(pass);
        Ok(report)
    }

    /// Merges the shard output directories `shards` (each a run of this pipeline's model over
    /// one shard of this pipeline's dataset) into `out`, as
    /// [`merge_outputs`](crate::merge_outputs) does, and, when `patches` is given, also writes
    /// the dataset-example patches of the merged examples from this pipeline's dataset (the
    /// shards' image ids index it). The shards must come from this model (by name) and have
    /// this pipeline's aggregation parameters; otherwise nothing is written and the error says
    /// which differs.
    pub fn merge_shards<P: AsRef<Path>>(
        &self,
        shards: &[P],
        out: &Path,
        meta: &RunMeta,
        patches: Option<&Transform>,
        options: &WriteOptions,
    ) -> Result<RunReport> {
        let start = Instant::now();
        // the shards' model and dataset first (from the first manifest), then the set
        let first = shards
            .first()
            .map(|d| {
                summit_export::read_manifest(d.as_ref()).map_err(CoreError::export(format!(
                    "reading the manifest of shard output {}",
                    d.as_ref().display()
                )))
            })
            .transpose()?;
        let name = &self.model().description().name;
        if let Some(first) = &first
            && &first.model != name
        {
            return Err(CoreError::Usage(format!(
                "the shard outputs are of the model `{}`, this pipeline's is `{name}`",
                first.model
            )));
        }
        if let Some(first) = &first
            && first.model_weights_hash.as_deref() != Some(self.identity().weights.as_str())
        {
            return Err(CoreError::Usage(format!(
                "the shard outputs were made with weights {} of `{}`, this pipeline's model \
                 has weights {}: other weights",
                first
                    .model_weights_hash
                    .as_deref()
                    .unwrap_or("(not recorded)"),
                first.model,
                self.identity().weights
            )));
        }
        if let Some(first) = &first
            && let Some(fp) = &first.dataset.fingerprint
            && fp != self.dataset_fingerprint()
        {
            return Err(CoreError::Usage(format!(
                "the shard outputs were made over another dataset than this pipeline's (dataset \
                 fingerprint {fp}, this one {}: other files, labels or class order)",
                self.dataset_fingerprint()
            )));
        }
        let merged = crate::outputs::read_shards(shards, out, options)?;
        if merged.aggregates.params() != self.params() {
            return Err(CoreError::Usage(
                "the shard outputs were computed with other aggregation parameters than this \
                 pipeline's (preset, selections, influence geometry, excluded channels, classes \
                 or examples per channel)"
                    .into(),
            ));
        }
        let images: u64 = merged.aggregates.class_images().iter().sum();
        if images > self.dataset().len() as u64 {
            return Err(CoreError::Usage(format!(
                "the shard outputs hold {images} images, this pipeline's dataset {}: not its \
                 shards",
                self.dataset().len()
            )));
        }
        let mut phases = vec![("merge".to_string(), start.elapsed().as_secs_f64())];
        let dirs: Vec<std::path::PathBuf> =
            shards.iter().map(|d| d.as_ref().to_path_buf()).collect();
        self.finish_with(
            &merged.aggregates,
            None,
            PredictionSource::Shards(&dirs),
            &merged.skipped,
            None,
            &mut phases,
            out,
            meta,
            patches,
            options,
        )
    }

    /// Graphs, overview and output for aggregates computed already (one pass, or merged
    /// shards), with dataset-example patches from this pipeline's dataset when `patches` is
    /// given. `phases` gets the timings of the phases run here appended.
    #[allow(clippy::too_many_arguments)]
    pub fn finish(
        &self,
        aggs: &Aggregates,
        skipped: &[summit_data::Skipped],
        images_per_second: Option<f64>,
        phases: &mut Vec<(String, f64)>,
        out: &Path,
        meta: &RunMeta,
        patches: Option<&Transform>,
        options: &WriteOptions,
    ) -> Result<RunReport> {
        self.finish_with(
            aggs,
            None,
            PredictionSource::None,
            skipped,
            images_per_second,
            phases,
            out,
            meta,
            patches,
            options,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_with(
        &self,
        aggs: &Aggregates,
        halves: Option<&[Aggregates; 2]>,
        predictions: PredictionSource<'_>,
        skipped: &[summit_data::Skipped],
        images_per_second: Option<f64>,
        phases: &mut Vec<(String, f64)>,
        out: &Path,
        meta: &RunMeta,
        patches: Option<&Transform>,
        options: &WriteOptions,
    ) -> Result<RunReport> {
        let config = self.config();
        let dataset = self.dataset().clone();
        let loader = |id: u64| -> Option<image::RgbImage> {
            let tr = patches?;
            let img = dataset.load(usize::try_from(id).ok()?).ok()?;
            to_rgb(&img, tr)
        };
        let patch_source = match patches {
            Some(_) => Some(PatchSource {
                image: &loader,
                geometry: patch_geometry(self.model(), self.device())?,
                size: 64,
                per_channel: config.examples_per_channel,
            }),
            None => None,
        };
        let measure =
            |analysis: &Analysis, aggs: &Aggregates| self.measure_faithfulness(analysis, aggs);
        let faithfulness: Option<&FaithfulnessFn<'_>> = match (&config.faithfulness, config.shard) {
            (Some(_), None) => Some(&measure),
            _ => None,
        };
        let context = RunContext {
            model: self.model().description().name.clone(),
            identity: Some(self.identity().clone()),
            layers: self.layer_descs(),
            dataset_fingerprint: Some(self.dataset_fingerprint().to_string()),
            config,
            meta,
            halves,
            predictions,
            transform: patches,
        };
        // everything goes into a stage beside `out`, the manifest last, swapped in at the end
        let stage = begin_output(out, options)?;
        let (mut report, manifest) = stage_aggregates(
            aggs,
            skipped,
            images_per_second,
            phases,
            &stage,
            &context,
            patch_source,
            faithfulness,
            options,
        )?;
        let dir = stage.dir();
        if let (Some(att), Some(tr)) = (&config.attribution, patches) {
            let t = Instant::now();
            report.images = Some(self.write_images(aggs, &report.analysis, att, tr, dir)?);
            report
                .phases
                .push(("attribution".into(), t.elapsed().as_secs_f64()));
            phases.push(("attribution".into(), t.elapsed().as_secs_f64()));
        }
        if let (Some(fv), Some(tr)) = (&config.feature_vis, patches) {
            let t = Instant::now();
            let map = summit_featvis::InputMap {
                scale: tr.scale.clone(),
                offset: tr.offset.clone(),
            };
            report.feature_vis = Some(self.write_feature_vis(
                &report.analysis,
                fv,
                &map,
                options.summit_format,
                dir,
            )?);
            report
                .phases
                .push(("feature-vis".into(), t.elapsed().as_secs_f64()));
            phases.push(("feature-vis".into(), t.elapsed().as_secs_f64()));
        }
        report.output = commit_output(stage, manifest)?;
        Ok(report)
    }
}

impl Pipeline<'_> {
    /// The faithfulness of `analysis`'s graphs (SPEC §3.1) over this pipeline's dataset, with
    /// its [`Config::faithfulness`](crate::Config::faithfulness) (the default when off). The
    /// samples come from the run's images ignoring any shard, so a merge measures what the
    /// unsharded run measures. Honours a stop request between classes.
    pub fn measure_faithfulness(
        &self,
        analysis: &Analysis,
        aggs: &Aggregates,
    ) -> Result<summit_export::FaithfulnessReport> {
        let config = self.config();
        let fc = config.faithfulness.clone().unwrap_or_default();
        let indices = self.unsharded_indices();
        let mut ablator = crate::faithfulness::Ablator::new(
            self.model(),
            self.device(),
            self.dataset().as_ref(),
            config.batch_size,
        );
        if let Some(stop) = self.stop_flag() {
            ablator = ablator.with_stop(stop);
        }
        ablator.measure(analysis, aggs, &indices, &fc, config.seed)
    }
}

/// What the output directory records about a run besides its aggregates.
#[derive(Debug, Clone)]
pub struct RunContext<'a> {
    /// The model's name.
    pub model: String,
    /// The model's identity (weights and description hashes), when known.
    pub identity: Option<summit_model::ModelIdentity>,
    /// The model's summary layers, first to last.
    pub layers: Vec<LayerDesc>,
    /// The dataset's [`dataset_fingerprint`](crate::dataset_fingerprint), when known.
    pub dataset_fingerprint: Option<String>,
    /// The run's configuration (graph parameters, embedding, seed, preset).
    pub config: &'a crate::config::Config,
    /// Dataset and class names.
    pub meta: &'a RunMeta,
    /// The aggregates of the two halves of a [`Config::stability`](crate::Config::stability)
    /// pass, whose graphs give each class's stability.
    pub halves: Option<&'a [Aggregates; 2]>,
    /// Where the output's per-image predictions (`predictions.bin`, SPEC §5.1) come from.
    pub predictions: PredictionSource<'a>,
    /// The dataset's preprocessing, recorded in the manifest (`parameters.transform`) so that
    /// the explorer opens the dataset as the run did.
    pub transform: Option<&'a Transform>,
}

/// Where an output's per-image top-5 file (`predictions.bin`, SPEC §5.1) comes from.
#[derive(Debug, Clone, Copy, Default)]
pub enum PredictionSource<'a> {
    /// None is written (aggregates made elsewhere, e.g. an import or a simulation).
    #[default]
    None,
    /// The log the pass wrote as it streamed ([`PassReport::predictions`](crate::PassReport)).
    Log(&'a summit_export::PredictionLog),
    /// The shard outputs' files, overlaid: all of them must have one, or none.
    Shards(&'a [std::path::PathBuf]),
}

impl PredictionSource<'_> {
    /// Writes the predictions into `dir` (an output stage), if there are any.
    fn write(&self, dir: &Path) -> Result<()> {
        let dest = dir.join(summit_export::PREDICTIONS_FILE);
        match self {
            Self::None => Ok(()),
            Self::Log(log) => log.copy_to(&dest).map_err(CoreError::export(format!(
                "writing the predictions {}",
                dest.display()
            ))),
            Self::Shards(dirs) => {
                let files: Vec<_> = dirs
                    .iter()
                    .map(|d| d.join(summit_export::PREDICTIONS_FILE))
                    .collect();
                let have = files.iter().filter(|f| f.is_file()).count();
                if have == 0 {
                    return Ok(());
                }
                if let Some(missing) = files.iter().find(|f| !f.is_file()) {
                    return Err(CoreError::Usage(format!(
                        "{} is missing, but other shards have their {}: rerun that shard with \
                         this build so that the merged output lists every image's predictions",
                        missing.display(),
                        summit_export::PREDICTIONS_FILE
                    )));
                }
                summit_export::merge_predictions(&files, &dest).map_err(CoreError::export(
                    "merging the shards' predictions".to_string(),
                ))
            }
        }
    }
}

/// Graphs of every class, overview and the output directory `out` for aggregates computed
/// already, without a model or dataset at hand (e.g. merged shards, see
/// [`merge_outputs`](crate::merge_outputs)). `patches` is the source of dataset-example
/// patches, if any. `phases` gets the timings of the phases run here appended
/// (`graphs+overview`, `export`).
#[allow(clippy::too_many_arguments)]
pub fn finish_aggregates(
    aggs: &Aggregates,
    skipped: &[summit_data::Skipped],
    images_per_second: Option<f64>,
    phases: &mut Vec<(String, f64)>,
    out: &Path,
    context: &RunContext<'_>,
    patches: Option<PatchSource<'_>>,
    options: &WriteOptions,
) -> Result<RunReport> {
    let stage = begin_output(out, options)?;
    let (mut report, manifest) = stage_aggregates(
        aggs,
        skipped,
        images_per_second,
        phases,
        &stage,
        context,
        patches,
        None,
        options,
    )?;
    report.output = commit_output(stage, manifest)?;
    Ok(report)
}

/// Starts the output directory `out` ([`OutputStage::begin`]).
pub(crate) fn begin_output(out: &Path, options: &WriteOptions) -> Result<OutputStage> {
    OutputStage::begin(out, options.force).map_err(CoreError::export(format!(
        "writing the output directory {}",
        out.display()
    )))
}

/// Commits `stage` with its manifest, returning what was written.
pub(crate) fn commit_output(
    stage: OutputStage,
    manifest: summit_export::Manifest,
) -> Result<OutputSummary> {
    let dir = stage.target().to_path_buf();
    let context = format!("writing the output directory {}", dir.display());
    let manifest = stage.commit(manifest).map_err(CoreError::export(context))?;
    Ok(OutputSummary { dir, manifest })
}

/// [`finish_aggregates`] into an output stage, returning the manifest to commit.
#[allow(clippy::too_many_arguments)]
pub(crate) fn stage_aggregates(
    aggs: &Aggregates,
    skipped: &[summit_data::Skipped],
    images_per_second: Option<f64>,
    phases: &mut Vec<(String, f64)>,
    stage: &OutputStage,
    context: &RunContext<'_>,
    patches: Option<PatchSource<'_>>,
    faithfulness: Option<&FaithfulnessFn<'_>>,
    options: &WriteOptions,
) -> Result<(RunReport, summit_export::Manifest)> {
    let out = stage.target();
    let config = context.config;
    let meta = context.meta;
    let t = Instant::now();
    let names: Vec<String> = meta.classes.iter().map(|c| c.name.clone()).collect();
    let classes: Vec<usize> = (0..aggs.params().num_classes).collect();
    let analysis = analyze_subset(
        aggs,
        &classes,
        config.classes.as_deref(),
        &names,
        &config.graph,
        &config.embedding.embedding(),
        config.seed,
        &config.non_semantic,
    )?
    .with_motifs(&config.motifs);
    let stability = match context.halves {
        Some(h) => Some(crate::analysis::class_stability(
            &analysis,
            aggs,
            h,
            &names,
            &config.graph,
        )?),
        None => None,
    };
    phases.push(("graphs+overview".into(), t.elapsed().as_secs_f64()));
    context.predictions.write(stage.dir())?;
    let faithfulness = match faithfulness {
        Some(measure) => {
            let t = Instant::now();
            let f = measure(&analysis, aggs)?;
            phases.push(("faithfulness".into(), t.elapsed().as_secs_f64()));
            Some(f)
        }
        None => None,
    };

    let t = Instant::now();
    let mut versions = BTreeMap::new();
    versions.insert(
        "summit-rs".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    versions.insert("burn".to_string(), "0.22.1".to_string());
    let parameters = serde_json::json!({
        "config": config,
        "aggregation": aggs.params(),
        "non_semantic_channels": analysis.non_semantic,
        "non_semantic_excluded": analysis.non_semantic_excluded,
        "graph_classes": analysis.graph_classes,
        "pagerank_not_converged": analysis.unconverged(),
        "transform": context.transform,
    });
    let input = ExportInput {
        model: context.model.clone(),
        weights_hash: context.identity.as_ref().map(|i| i.weights.clone()),
        description_hash: context.identity.as_ref().map(|i| i.description.clone()),
        dataset: DatasetInfo {
            name: meta.dataset_name.clone(),
            source: meta.dataset_source.clone(),
            images_seen: aggs.class_images().iter().sum(),
            fingerprint: context.dataset_fingerprint.clone(),
            skipped: skipped
                .iter()
                .map(|s| SkippedInput {
                    index: s.index as u64,
                    source: s.source.clone(),
                    reason: s.reason.clone(),
                })
                .collect(),
        },
        classes: meta.classes.clone(),
        layers: context.layers.clone(),
        aggregates: aggs,
        graphs: &analysis.graphs,
        motifs: &analysis.motifs,
        stability: stability.as_deref(),
        faithfulness: faithfulness.as_ref(),
        overview: summit_export::Overview {
            method: match config.embedding {
                EmbeddingMethod::Umap => "umap".into(),
                EmbeddingMethod::Pca => "pca".into(),
            },
            layers: analysis
                .overview
                .similarity
                .iter()
                .zip(&analysis.overview.embedding)
                .map(|(s, e)| OverviewLayer {
                    similarity: s.clone(),
                    embedding: e.clone(),
                })
                .collect(),
        },
        preset: config.preset.name().to_string(),
        parameters,
        versions,
        timings: Timings {
            phases: phases.clone(),
            images_per_second,
        },
        patches,
    };
    let manifest = summit_export::write_output_files(stage.dir(), &input, options).map_err(
        CoreError::export(format!("writing the output directory {}", out.display())),
    )?;
    phases.push(("export".into(), t.elapsed().as_secs_f64()));
    let output = OutputSummary {
        dir: out.to_path_buf(),
        manifest: manifest.clone(),
    };
    Ok((
        RunReport {
            pass: None,
            analysis,
            phases: phases.clone(),
            output,
            images: None,
            feature_vis: None,
            faithfulness,
        },
        manifest,
    ))
}
