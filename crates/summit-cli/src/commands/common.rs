//! What the commands share: their argument groups (attribution, faithfulness, feature
//! visualization, checkpoints), opening ImageNet-style data in the model's class order,
//! printing a run's report, the stop flag of SIGINT/SIGTERM and the exit status.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use summit_core::data::Dataset;
use summit_core::{
    ClassInfo, ImageFolder, ImageNetVal, Preprocess, Relabeled, RunReport, read_class_list,
};

/// The data arguments of an ImageNet-style run.
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// Ground truth of the validation layout (`val.txt`: `<file> <label>`, 0-based).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// The model's classes in output order, one synset per line with an optional
    /// description (ImageNet's LOC_synset_mapping.txt).
    #[arg(long)]
    pub class_list: Option<PathBuf>,
    /// With the devkit's ground truth (1-based, devkit order): the class list in devkit order;
    /// labels are then renumbered to --class-list's order.
    #[arg(long)]
    pub devkit_class_list: Option<PathBuf>,
}

/// The dataset, relabelled to the model's class order, with the classes' names and the
/// transform (for dataset-example patches).
pub fn open_data(
    args: &DataArgs,
    data: &Path,
    preprocess: Preprocess,
    num_classes: Option<usize>,
) -> Result<(
    Arc<dyn Dataset>,
    Vec<ClassInfo>,
    summit_core::data::Transform,
)> {
    let model_classes = match &args.class_list {
        Some(f) => Some(read_class_list(f)?),
        None => None,
    };
    if let Some(labels) = &args.labels {
        let Some(class_list) = &args.class_list else {
            bail!(
                "--labels needs --class-list (the model's classes in output order, e.g. LOC_synset_mapping.txt)"
            );
        };
        let list_file = args.devkit_class_list.as_ref().unwrap_or(class_list);
        let mut ds = ImageNetVal::open(data, labels, list_file, preprocess).with_context(|| {
            format!(
                "opening the ImageNet validation layout in {}",
                data.display()
            )
        })?;
        if args.devkit_class_list.is_some() {
            let order: Vec<String> = model_classes
                .iter()
                .flatten()
                .filter_map(|c| c.synset.clone())
                .collect();
            ds = ds.remap_classes(&order)?;
        }
        let transform = ds.transform().clone();
        let classes = model_classes.unwrap_or_default();
        return Ok((Arc::new(ds), classes, transform));
    }
    let folder = ImageFolder::open(data, preprocess)
        .with_context(|| format!("opening the image folder {}", data.display()))?;
    let not_listed = folder.skipped_entries();
    if !not_listed.is_empty() {
        eprintln!(
            "{} entries of {} not listed (repeated or outside their class; each image counts once):",
            not_listed.len(),
            data.display()
        );
        for e in not_listed.iter().take(5) {
            eprintln!("  {e}");
        }
    }
    let transform = folder.transform().clone();
    match model_classes {
        Some(classes) => {
            let order: Vec<String> = classes
                .iter()
                .map(|c| c.synset.clone().unwrap_or_else(|| c.name.clone()))
                .collect();
            let source = args
                .class_list
                .as_ref()
                .map_or_else(String::new, |p| p.display().to_string());
            let ds = Relabeled::new(Arc::new(folder), &order, &source)?;
            Ok((Arc::new(ds), classes, transform))
        }
        None => {
            let names = folder.class_names().to_vec();
            if let Some(num_classes) = num_classes.filter(|&n| n != names.len()) {
                bail!(
                    "{} has {} class directories but the model has {num_classes} classes: pass \
                     --class-list LOC_synset_mapping.txt (the model's classes in output order) so \
                     that the directories (named by synset) map to the model's outputs",
                    data.display(),
                    names.len()
                );
            }
            let classes = names
                .iter()
                .map(|n| ClassInfo {
                    name: n.clone(),
                    synset: Some(n.clone()),
                })
                .collect();
            Ok((Arc::new(folder), classes, transform))
        }
    }
}

/// Prints everything a finished run reports: its heatmaps, faithfulness, feature
/// visualizations, then [`print_report`].
pub fn print_run(
    pipeline: &summit_core::Pipeline<'_>,
    report: &RunReport,
    meta: &summit_core::RunMeta,
    out: &Path,
    total_s: f64,
) {
    let layers: Vec<String> = pipeline.layer_descs().into_iter().map(|l| l.name).collect();
    print_images(report);
    let names: Vec<String> = meta.classes.iter().map(|c| c.name.clone()).collect();
    print_faithfulness(report, &names);
    print_feature_vis(report);
    print_report(report, &layers, out, total_s);
}

/// Prints the phases, the pass, non-semantic channels, warnings and accuracy of a run.
pub fn print_report(report: &RunReport, layers: &[String], out: &Path, total_s: f64) {
    for (phase, s) in &report.phases {
        println!("{phase:>16}: {s:.2} s");
    }
    if let Some(pass) = &report.pass {
        if pass.resumed_from > 0 {
            println!(
                "resumed from the checkpoint: {} of {} images came from it, {} processed now",
                pass.resumed_from, pass.total, pass.images
            );
        }
        println!(
            "{} images in {} batches, {:.1} images/s, {} skipped",
            pass.images,
            pass.batches,
            pass.images_per_second(),
            pass.skipped.len()
        );
        for s in pass.skipped.iter().take(5) {
            println!("  skipped: {s}");
        }
    }
    for line in report.analysis.non_semantic_lines(layers) {
        println!("{line}");
    }
    let names: Vec<&str> = report
        .output
        .manifest
        .classes
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    for line in report.analysis.warning_lines(&names) {
        eprintln!("{line}");
    }
    if let Some(acc) = report.output.manifest.accuracy {
        println!("top-1 accuracy: {acc:.4}");
    }
    println!("total: {total_s:.2} s");
    println!("open {}", out.join("index.html").display());
}

/// The per-image attribution arguments (SPEC §4.2).
#[derive(clap::Args, Debug, Clone)]
pub struct AttributionArgs {
    /// Heatmaps of each class's most confident and most confidently misclassified images and
    /// of the graphs' vertex examples: comma-separated methods (grad-cam, saliency,
    /// input-x-gradient, smoothgrad, integrated-gradients, guided-backprop, occlusion,
    /// deconvnet, guided-grad-cam, and LRP: lrp (= lrp-epsilon-plus-flat),
    /// lrp-epsilon-gamma-box, lrp-epsilon-alpha2-beta1-flat, lrp-epsilon, lrp-z) or `off`.
    #[arg(long, default_value = "grad-cam")]
    pub attribution: String,
    /// Grad-CAM's summary layer (default: the last).
    #[arg(long)]
    pub attribution_layer: Option<String>,
    /// Images picked per class (most confident, and as many most confidently misclassified).
    #[arg(long, default_value_t = 10)]
    pub attribution_per_class: usize,
    /// At most this many images get heatmaps.
    #[arg(long, default_value_t = 2000)]
    pub attribution_images: usize,
    /// Evaluate every method's heatmaps with Quantus' metrics on each class's 2 most
    /// confident picks: `all` (every metric that applies: pixel-flipping, region-perturbation,
    /// faithfulness-correlation, mprt where the model can be re-initialised, sparseness,
    /// complexity), a comma-separated list, or `off`.
    #[arg(long, default_value = "off")]
    pub evaluate_attribution: String,
}

impl AttributionArgs {
    /// Sets `config.attribution` and `config.picks` from the arguments.
    pub fn apply(&self, config: &mut summit_core::Config) -> Result<()> {
        config.picks.per_class = self.attribution_per_class;
        if self.attribution.trim() == "off" {
            config.attribution = None;
            return Ok(());
        }
        let methods =
            summit_core::images::parse_methods(&self.attribution).map_err(anyhow::Error::msg)?;
        let mut att = summit_core::AttributionConfig {
            methods,
            max_images: self.attribution_images,
            ..Default::default()
        };
        att.params.layer = self.attribution_layer.clone();
        att.evaluate = parse_evaluation(&self.evaluate_attribution)?;
        config.attribution = Some(att);
        Ok(())
    }
}

/// `--evaluate-attribution`: `off`, `all` or a comma-separated list of metrics.
pub fn parse_evaluation(v: &str) -> Result<Option<summit_core::EvaluationConfig>> {
    Ok(match v.trim() {
        "off" => None,
        "all" => Some(summit_core::EvaluationConfig::default()),
        list => Some(summit_core::EvaluationConfig {
            metrics: Some(
                list.split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.parse::<summit_core::attribution::Metric>())
                    .collect::<std::result::Result<_, _>>()
                    .map_err(anyhow::Error::msg)?,
            ),
            ..Default::default()
        }),
    })
}

/// The embedded inception network re-initialised layer by layer from the top (for MPRT).
pub fn fashion_randomised(
    device: &summit_core::Device,
) -> Result<Vec<(String, Box<dyn summit_core::Summarizable>)>> {
    let base = summit_core::FashionInception::embedded(device)?;
    Ok(
        summit_core::attribution::FashionRandomisation::new(&base, 42, device)?
            .map(|r| r.map(|(name, m)| (name, Box::new(m) as Box<dyn summit_core::Summarizable>)))
            .collect::<std::result::Result<_, _>>()?,
    )
}

/// Prints what the per-image attribution wrote, and the heatmap metrics when evaluated.
pub fn print_images(report: &RunReport) {
    if let Some(images) = &report.images {
        println!(
            "attribution ({}): {} images in {:.2} s, {} skipped",
            images.methods.join(", "),
            images.images.len(),
            images.seconds,
            images.skipped.len()
        );
        if let Some(ev) = &images.evaluation {
            println!(
                "heatmap metrics (Quantus 0.6) over {} images in {:.2} s:",
                ev.images.len(),
                ev.seconds
            );
            for r in &ev.rows {
                println!(
                    "  {:<22} {:<26} {:>9.4} ± {:.4} (n {}{})",
                    r.method.name(),
                    r.metric.name(),
                    r.mean,
                    r.std,
                    r.n,
                    if r.undefined > 0 {
                        format!(", {} undefined", r.undefined)
                    } else {
                        String::new()
                    }
                );
            }
            for (m, why) in &ev.skipped {
                println!("  {m}: left out ({why})");
            }
        }
    }
}

/// The feature-visualization options shared by the examples.
#[derive(clap::Args, Debug, Clone)]
pub struct FeatureVisArgs {
    /// Feature visualizations (Lucid's method) of every vertex of every exported graph
    /// (`vertices`), of every channel of every summary layer (`all`), or `off`.
    #[arg(long, default_value = "vertices")]
    pub feature_vis: String,
    /// Optimisation steps per visualization (a CPU budget; Lucid uses 512).
    #[arg(long, default_value_t = summit_core::FEATURE_VIS_STEPS)]
    pub feature_vis_steps: usize,
    /// At most this many channels (the largest vertex counts first; 0 = all): a CPU budget
    /// for ImageNet-size runs.
    #[arg(long, default_value_t = summit_core::FEATURE_VIS_CHANNELS)]
    pub feature_vis_channels: usize,
    /// Where finished visualizations are cached (default `$HOME/.cache/summit-rs/feature-vis`),
    /// or `off`.
    #[arg(long)]
    pub feature_vis_cache: Option<String>,
    /// How the transformed image reaches the model: `own-size` (SPEC §4.1: at its own size
    /// wherever the model accepts other sizes) or `model-size` (resized to the model's input,
    /// as Lucent does).
    #[arg(long, default_value = "own-size")]
    pub feature_vis_feed: String,
}

impl FeatureVisArgs {
    /// Sets `config.feature_vis` from the arguments.
    pub fn apply(&self, config: &mut summit_core::Config) -> Result<()> {
        if self.feature_vis.trim() == "off" {
            config.feature_vis = None;
            return Ok(());
        }
        let mut fv = summit_core::FeatureVisConfig {
            mode: self
                .feature_vis
                .trim()
                .parse()
                .map_err(anyhow::Error::msg)?,
            ..Default::default()
        };
        fv.params.steps = self.feature_vis_steps;
        fv.params.feed = self
            .feature_vis_feed
            .parse()
            .map_err(|e| anyhow::anyhow!("--feature-vis-feed: {e}"))?;
        fv.max_channels = (self.feature_vis_channels > 0).then_some(self.feature_vis_channels);
        fv.cache = match self.feature_vis_cache.as_deref() {
            Some("off") => None,
            Some(dir) => Some(dir.into()),
            None => summit_core::default_feature_vis_cache(),
        };
        config.feature_vis = Some(fv);
        Ok(())
    }
}

/// Prints what the feature visualization wrote.
pub fn print_feature_vis(report: &RunReport) {
    if let Some(fv) = &report.feature_vis {
        println!(
            "feature visualization: {} channels ({} made, {} from the cache) in {:.2} s, {} steps",
            fv.channels.len(),
            fv.computed,
            fv.cached,
            fv.seconds,
            fv.params.steps
        );
    }
}

/// Faithfulness by ablation of every class's graph (SPEC §3.1).
#[derive(clap::Args, Debug, Clone)]
pub struct FaithfulnessArgs {
    /// Ablate each class's graph over N images of the class (the same ones in every rerun and
    /// shard split) against random draws, the top activation channels, a deletion curve and
    /// the most similar classes. `auto`: 100 per class within a CPU budget of 32 M input
    /// pixels (fewer images, then fewer classes, on large runs); `off` skips it. Shard runs
    /// leave it to a merge with the model (inception_imagenet --merge).
    #[arg(long, default_value = "auto")]
    pub faithfulness: String,
    /// What an ablated channel becomes: `zero` or its `mean` activation.
    #[arg(long, default_value = "zero")]
    pub ablation: String,
}

impl FaithfulnessArgs {
    /// Sets `config.faithfulness` from the arguments.
    pub fn apply(&self, config: &mut summit_core::Config) -> Result<()> {
        let v = self.faithfulness.trim();
        if v == "off" {
            config.faithfulness = None;
            return Ok(());
        }
        let mut f = summit_core::FaithfulnessConfig {
            mode: self.ablation.parse().map_err(anyhow::Error::msg)?,
            ..Default::default()
        };
        if v != "auto" {
            f.per_class = v.parse().map_err(|_| {
                anyhow::anyhow!(
                    "--faithfulness `{v}`: expected a number of images per class, `auto` or `off`"
                )
            })?;
            f.budget = None;
        }
        f.validate().map_err(anyhow::Error::msg)?;
        config.faithfulness = Some(f);
        Ok(())
    }
}

/// Prints the faithfulness summary and its notes.
pub fn print_faithfulness(report: &RunReport, class_names: &[String]) {
    if let Some(f) = &report.faithfulness {
        for line in summit_core::faithfulness_lines(f, class_names) {
            println!("{line}");
        }
    }
}

/// Checkpoints of a pass, for every example that runs one.
#[derive(clap::Args, Debug, Clone)]
pub struct CheckpointArgs {
    /// Checkpoint file of the partial aggregates: written every --checkpoint-every batches and
    /// on SIGINT/SIGTERM; a run that finds it resumes from it. Must be outside --out.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Batches between checkpoints.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_every: u64,
}

impl CheckpointArgs {
    /// Sets [`summit_core::Config::checkpoint`].
    pub fn apply(&self, config: &mut summit_core::Config) {
        config.checkpoint = self
            .checkpoint
            .clone()
            .map(|path| summit_core::CheckpointConfig {
                path,
                every_batches: usize::try_from(self.checkpoint_every).unwrap_or(usize::MAX),
            });
    }
}

/// A stop flag raised by the first SIGINT or SIGTERM (Slurm's preemption signal): the pass
/// finishes the batch in flight, writes its checkpoint and the run exits with 130. A second
/// signal exits at once.
pub fn stop_on_signals() -> Result<Arc<std::sync::atomic::AtomicBool>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            eprintln!("second interrupt: exiting now (the last checkpoint written is kept)");
            std::process::exit(130);
        }
        eprintln!(
            "interrupted: stopping after the batch in flight (the checkpoint keeps the work; \
             once the pass is over, before the output is written); again to exit at once"
        );
    })
    .context("installing the SIGINT/SIGTERM handler")?;
    Ok(flag)
}

/// Runs an example's `main`, printing an error as one line per cause (a cause whose text the
/// line before already holds is not repeated) and exiting with 130 for an interrupted pass,
/// 1 for any other error.
pub fn exit_with(result: Result<()>) -> std::process::ExitCode {
    let Err(e) = result else {
        return std::process::ExitCode::SUCCESS;
    };
    eprintln!("error: {}", error_text(&e));
    let interrupted = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<summit_core::CoreError>(),
            Some(summit_core::CoreError::Interrupted { .. })
        )
    });
    std::process::ExitCode::from(if interrupted { 130 } else { 1 })
}

/// An error and its causes as text, without causes that the text before already says.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if text.contains(&msg) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&msg);
    }
    text
}
