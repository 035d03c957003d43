//! The main job: an embedded Fashion-MNIST model (the inception network, or with
//! `--model resnet` the residual one) on the embedded 10k test images, the whole Summit
//! pipeline, and the output directory with its web page.
//!
//! ```sh
//! cargo run --release --example fashion_mnist -- --out out/fashion-mnist --force
//! cargo run --release --example fashion_mnist -- --model resnet --out out/fashion-resnet --force
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::common::print_run;
use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use summit_core::data::Dataset;
use summit_core::{
    ClassInfo, Config, Device, EmbeddingMethod, FashionInception, FashionMnist, OnnxModel,
    Pipeline, Preprocess, Preset, RunMeta, Summarizable, WriteOptions,
};

/// Which embedded model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Model {
    /// The small inception network (burn, safetensors weights).
    Inception,
    /// The small ResNet (ONNX): residual blocks, skip edges in the graphs.
    Resnet,
}

/// Summit on the embedded default (Fashion-MNIST).
#[derive(Parser, Debug)]
pub struct Args {
    #[command(flatten)]
    attribution: super::common::AttributionArgs,
    #[command(flatten)]
    faithfulness: super::common::FaithfulnessArgs,
    #[command(flatten)]
    feature_vis: super::common::FeatureVisArgs,
    #[command(flatten)]
    checkpoint: super::common::CheckpointArgs,
    /// The embedded model.
    #[arg(long, value_enum, default_value_t = Model::Inception)]
    model: Model,
    /// Output directory.
    #[arg(long, default_value = "out/fashion-mnist")]
    out: PathBuf,
    /// Replace an existing output directory.
    #[arg(long)]
    force: bool,
    /// Preset: paper or summit2019 (InceptionV1's excluded channels are dropped here).
    #[arg(long, default_value = "paper")]
    preset: Preset,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Only the first N test images (a quick try).
    #[arg(long)]
    limit: Option<usize>,
    /// Process only shard i of n (`i/n`, from 0; in a Slurm job array, the task's shard by
    /// default); merge the shard outputs with merge_shards.
    #[arg(long)]
    shard: Option<String>,
    /// Class embedding: umap or pca.
    #[arg(long, default_value = "umap")]
    embedding: EmbeddingMethod,
    /// Also aggregate two halves of every class's images and report how stable each graph is
    /// (Jaccard of the halves' vertex sets; the sidebar's badge).
    #[arg(long)]
    stability: bool,
    /// Remove detected non-semantic channels (top channels of nearly every class) from the
    /// attribution graphs.
    #[arg(long)]
    exclude_non_semantic: bool,
    /// The attribution graphs' vertex selection: the share of each layer's PageRank total
    /// taken (SPEC §3; the paper's 0.075).
    #[arg(long)]
    graph_share: Option<f64>,
}

/// Runs the command.
pub fn run(args: Args) -> Result<()> {
    let total = Instant::now();
    let root = PathBuf::from(super::EMBEDDED_DATA);
    let images = root.join("t10k-images-idx3-ubyte.gz");
    let labels = root.join("t10k-labels-idx1-ubyte.gz");

    let t = Instant::now();
    let device = Device::flex();
    let model: Box<dyn Summarizable> = match args.model {
        Model::Inception => {
            Box::new(FashionInception::embedded(&device).context("loading the embedded model")?)
        }
        Model::Resnet => {
            Box::new(OnnxModel::fashion_resnet(&device).context("loading the embedded ResNet")?)
        }
    };
    let data = FashionMnist::open(&images, &labels)
        .and_then(|d| d.with_preprocess(Preprocess::fashion_mnist()))
        .with_context(|| format!("opening {}", images.display()))?;
    let transform = data.transform().clone();
    let classes: Vec<ClassInfo> = data.class_names().iter().map(ClassInfo::new).collect();
    let data: Arc<dyn Dataset> = Arc::new(data);
    let load_s = t.elapsed().as_secs_f64();

    let mut config = Config::preset(args.preset);
    if args.preset == Preset::Summit2019 {
        eprintln!(
            "note: summit2019's excluded channels are InceptionV1's (mixed3a 67, 190; mixed3b 390, 399, 412); none are excluded for this model"
        );
        config.excluded.clear();
    }
    config.batch_size = args.batch_size;
    args.attribution.apply(&mut config)?;
    args.faithfulness.apply(&mut config)?;
    args.feature_vis.apply(&mut config)?;
    config.limit = args.limit;
    config.shard = crate::args::shard_or_slurm(args.shard.as_deref())?;
    config.embedding = args.embedding;
    config.non_semantic.exclude = args.exclude_non_semantic;
    config.stability = args.stability;
    if let Some(share) = args.graph_share {
        config.graph.selection = summit_core::graph::Selection::PerLayer { share };
    }
    args.checkpoint.apply(&mut config);

    // MPRT (--evaluate-attribution) re-initialises the embedded inception network's layers
    let evaluating = config
        .attribution
        .as_ref()
        .is_some_and(|a| a.evaluate.is_some());
    let randomised: Vec<(String, Box<dyn Summarizable>)> = match args.model {
        Model::Inception if evaluating => super::common::fashion_randomised(&device)?,
        _ => Vec::new(),
    };
    let pipeline = Pipeline::new(model.as_ref(), data, config, device)?
        .with_stop(super::common::stop_on_signals()?)
        .with_randomised_models(randomised);
    let meta = RunMeta {
        dataset_name: "fashion-mnist-test".into(),
        dataset_source: images.display().to_string(),
        classes,
    };
    let options = WriteOptions {
        force: args.force,
        ..WriteOptions::default()
    };
    let report = pipeline.run(&args.out, &meta, Some(&transform), &options)?;

    println!("loaded model and data in {load_s:.2} s");
    print_run(
        &pipeline,
        &report,
        &meta,
        &args.out,
        total.elapsed().as_secs_f64(),
    );
    Ok(())
}
