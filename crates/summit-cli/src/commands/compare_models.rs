//! Several models, one dataset: the embedded inception network and the embedded ResNet on the
//! embedded Fashion-MNIST test set, each model's full Summit output in a subdirectory, and a
//! comparison page (suggestion scatter, per-image predictions and heatmaps side by side, the
//! histograms of 1 − p(true class), the models' attribution graphs of a class side by side).
//!
//! ```sh
//! cargo run --release --example compare_models -- --out out/compare-models --force
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use summit_core::data::Dataset;
use summit_core::{
    ClassInfo, Config, Device, FashionInception, FashionMnist, ModelRun, OnnxModel, Pipeline,
    Preprocess, RunMeta, Summarizable, WriteOptions, attribution::Method,
};

/// Compare the two embedded Fashion-MNIST models.
#[derive(Parser, Debug)]
pub struct Args {
    /// Output directory (the comparison page; each model's output in a subdirectory).
    #[arg(long, default_value = "out/compare-models")]
    out: PathBuf,
    /// Overwrite an existing output.
    #[arg(long)]
    force: bool,
    /// Only the first N test images.
    #[arg(long)]
    limit: Option<usize>,
    /// Attribution method of the comparison's heatmaps.
    #[arg(long, default_value = "grad-cam")]
    attribution: Method,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[command(flatten)]
    feature_vis: super::common::FeatureVisArgs,
    #[command(flatten)]
    faithfulness: super::common::FaithfulnessArgs,
    /// Evaluate each model's heatmaps (the comparison's method) with Quantus' metrics, shown
    /// per model: `all`, a comma-separated list of metrics, or `off`.
    #[arg(long, default_value = "off")]
    evaluate_attribution: String,
    /// Directory of the models' checkpoints (`{model}.ck`, resumed from when they exist;
    /// written every --checkpoint-every batches and on SIGINT/SIGTERM). Must be outside --out.
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Batches between checkpoints.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    checkpoint_every: u64,
}

/// Runs the command.
pub fn run(args: Args) -> Result<()> {
    let total = Instant::now();
    if args.out.join("index.html").exists() && !args.force {
        bail!(
            "{} holds an output already: pass --force to overwrite it",
            args.out.display()
        );
    }
    let root = PathBuf::from(super::EMBEDDED_DATA);
    let images = root.join("t10k-images-idx3-ubyte.gz");
    let data = FashionMnist::open(&images, root.join("t10k-labels-idx1-ubyte.gz"))
        .and_then(|d| d.with_preprocess(Preprocess::fashion_mnist()))
        .with_context(|| format!("opening {}", images.display()))?;
    let transform = data.transform().clone();
    let classes: Vec<ClassInfo> = data.class_names().iter().map(ClassInfo::new).collect();
    let data: Arc<dyn Dataset> = Arc::new(data);
    let device = Device::flex();
    let models: Vec<(&str, Box<dyn Summarizable>)> = vec![
        ("inception", Box::new(FashionInception::embedded(&device)?)),
        ("resnet", Box::new(OnnxModel::fashion_resnet(&device)?)),
    ];
    let meta = RunMeta {
        dataset_name: "fashion-mnist-test".into(),
        dataset_source: images.display().to_string(),
        classes: classes.clone(),
    };
    let options = WriteOptions {
        force: args.force,
        ..WriteOptions::default()
    };
    let mut pipelines = Vec::new();
    let mut reports = Vec::new();
    let stop = super::common::stop_on_signals()?;
    for (dir, model) in &models {
        let mut config = Config::paper();
        config.batch_size = args.batch_size;
        config.limit = args.limit;
        args.feature_vis.apply(&mut config)?;
        args.faithfulness.apply(&mut config)?;
        let evaluate = super::common::parse_evaluation(&args.evaluate_attribution)?;
        let randomised = match (*dir, &evaluate) {
            ("inception", Some(_)) => super::common::fashion_randomised(&device)?,
            _ => Vec::new(),
        };
        if let Some(att) = config.attribution.as_mut() {
            if !att.methods.contains(&args.attribution) {
                att.methods.push(args.attribution);
            }
            att.evaluate = evaluate;
        }
        super::common::CheckpointArgs {
            checkpoint: args
                .checkpoint_dir
                .as_ref()
                .map(|d| d.join(format!("{dir}.ck"))),
            checkpoint_every: args.checkpoint_every,
        }
        .apply(&mut config);
        let pipeline = Pipeline::new(model.as_ref(), data.clone(), config, device.clone())?
            .with_stop(stop.clone())
            .with_randomised_models(randomised);
        let t = Instant::now();
        let report = pipeline.run(&args.out.join(dir), &meta, Some(&transform), &options)?;
        println!(
            "{dir}: {} in {:.1} s, top-1 {:.4}",
            model.description().name,
            t.elapsed().as_secs_f64(),
            report.output.manifest.accuracy.unwrap_or(0.0)
        );
        super::common::print_images(&report);
        pipelines.push(pipeline);
        reports.push(report);
    }
    let mut runs = Vec::new();
    for ((p, r), (dir, _)) in pipelines.iter().zip(&reports).zip(&models) {
        let pass = r.pass.as_ref().context("a run reports its pass")?;
        runs.push(ModelRun {
            pipeline: p,
            aggregates: &pass.aggregates,
            classes: &classes,
            dir,
            evaluation: r.images.as_ref().and_then(|i| i.evaluation.as_ref()),
        });
    }
    let t = Instant::now();
    let params = summit_core::AttributionConfig::default().params;
    let cmp = summit_core::write_model_comparison(
        &args.out,
        &meta.dataset_name,
        &runs,
        args.attribution,
        &params,
        &transform,
    )?;
    println!(
        "comparison: {} images ({} disagreements) in {:.1} s; total {:.1} s",
        cmp.points,
        cmp.disagreements,
        t.elapsed().as_secs_f64(),
        total.elapsed().as_secs_f64()
    );
    println!("open {}", args.out.join("index.html").display());
    Ok(())
}
