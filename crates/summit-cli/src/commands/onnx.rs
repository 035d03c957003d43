//! Summit on your own CNN classifier, exported to ONNX, over your images: the whole pipeline
//! and one output directory (or one shard of it).
//!
//! ```sh
//! cargo run --release --example onnx_model -- --onnx resnet18.onnx \
//!     --data imagenet/val --labels val.txt --class-list LOC_synset_mapping.txt --out out/resnet18
//! ```
//!
//! Run without arguments to see what to provide.

use std::path::PathBuf;
use std::time::Instant;

use super::common::{DataArgs, open_data, print_run};
use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use summit_core::model::{OnnxModel, OnnxOptions};
use summit_core::{
    Config, Pipeline, Preprocess, Preset, RunMeta, Summarizable, WriteOptions, class_indices,
    select_gpu,
};

/// How images become the model's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Prep {
    /// torchvision's ImageNet evaluation transform: shorter side 256, centre crop 224,
    /// ImageNet mean and standard deviation.
    Imagenet,
    /// One grey channel, (pixel/255 − 0.2860)/0.3530 (the embedded Fashion-MNIST models).
    FashionMnist,
    /// Lucid InceptionV1's: resize to 224, 2·pixel − 372.
    Lucid,
}

/// Summit on an ONNX classifier.
#[derive(Parser, Debug)]
pub struct Args {
    #[command(flatten)]
    checkpoint: super::common::CheckpointArgs,
    #[command(flatten)]
    attribution: super::common::AttributionArgs,
    #[command(flatten)]
    faithfulness: super::common::FaithfulnessArgs,
    #[command(flatten)]
    feature_vis: super::common::FeatureVisArgs,
    /// The model: an ONNX file written by `torch.onnx.export` (see --help of --onnx below).
    #[arg(long)]
    onnx: Option<PathBuf>,
    /// The images: an image folder (`DIR/<class>/*.jpg`) or the ImageNet validation layout
    /// (DIR/*.JPEG with --labels and --class-list).
    #[arg(long)]
    data: Option<PathBuf>,
    #[command(flatten)]
    classes_in: DataArgs,
    /// The summary layers, comma-separated module paths or tensor names (`layer1.0,layer2.1`);
    /// by default every residual Add or Concat block output (every convolution in a network
    /// without them).
    #[arg(long)]
    layers: Option<String>,
    /// The input transform the model was trained with.
    #[arg(long, value_enum, default_value_t = Prep::Imagenet)]
    preprocess: Prep,
    /// Output directory.
    #[arg(long, default_value = "out/onnx")]
    out: PathBuf,
    /// Replace an existing output directory.
    #[arg(long)]
    force: bool,
    /// Preset: paper or summit2019.
    #[arg(long, default_value = "paper")]
    preset: Preset,
    /// Process only shard i of n (`i/n`, from 0; in a Slurm job array, the task's shard).
    #[arg(long)]
    shard: Option<String>,
    /// Only these classes: comma-separated names, synsets or indices.
    #[arg(long)]
    classes: Option<String>,
    /// Images per batch.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Only the first N images (after shard and class restrictions).
    #[arg(long)]
    limit: Option<usize>,
    /// Run the model on this CUDA device (needs `--features cuda`).
    #[arg(long)]
    cuda: Option<usize>,
    /// Run the model on this discrete GPU through burn's wgpu backend on Vulkan (needs
    /// `--features vulkan`).
    #[arg(long)]
    vulkan: Option<usize>,
}

const ONNX_HELP: &str = "\
--onnx FILE: your classifier exported to ONNX, e.g. a torchvision model with three lines of
  Python (pip install torch torchvision onnx):
    import torch, torchvision
    model = torchvision.models.resnet18(weights=\"IMAGENET1K_V1\").eval()
    torch.onnx.export(model, torch.zeros(1, 3, 224, 224), \"resnet18.onnx\", dynamo=False)
  then pass --onnx resnet18.onnx (eval mode folds batch norm into the convolutions)";

/// Runs the command.
pub fn run(args: Args) -> Result<()> {
    let (Some(onnx), Some(data)) = (args.onnx.clone(), args.data.clone()) else {
        let mut missing = Vec::new();
        if args.onnx.is_none() {
            missing.push(ONNX_HELP);
        }
        if args.data.is_none() {
            missing.push(crate::args::INCEPTION_DATA_HELP);
        }
        eprintln!(
            "error: this example runs Summit on your ONNX classifier over your images; provide\n{}",
            missing.join("\n")
        );
        std::process::exit(2);
    };
    let total = Instant::now();
    let device = select_gpu(args.cuda, args.vulkan)?;
    let options = OnnxOptions {
        layers: args
            .layers
            .as_deref()
            .map(|l| l.split(',').map(|s| s.trim().to_string()).collect()),
        input_hw: None,
    };
    let t = Instant::now();
    let model = OnnxModel::load(&onnx, &options, &device)
        .with_context(|| format!("loading {}", onnx.display()))?;
    let desc = model.description();
    println!(
        "{}: {} summary layers ({}), {} paths, {} classes, loaded in {:.2} s",
        onnx.display(),
        desc.layers.len(),
        desc.layers
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        desc.paths.iter().map(Vec::len).sum::<usize>(),
        desc.num_classes,
        t.elapsed().as_secs_f64()
    );
    let preprocess = match args.preprocess {
        Prep::Imagenet => Preprocess::Torchvision,
        Prep::FashionMnist => Preprocess::fashion_mnist(),
        Prep::Lucid => Preprocess::lucid(),
    };
    // the absolute path: the manifest's source and the dataset fingerprint tell folders apart
    let data = data
        .canonicalize()
        .with_context(|| format!("opening the image data {}", data.display()))?;
    let (dataset, classes, transform) =
        open_data(&args.classes_in, &data, preprocess, Some(desc.num_classes))?;
    if classes.len() != desc.num_classes {
        bail!(
            "the data has {} classes, the model {} outputs {}: pass --class-list with the \
             model's classes in output order",
            classes.len(),
            onnx.display(),
            desc.num_classes
        );
    }
    let mut config = Config::preset(args.preset);
    config.excluded.clear(); // the preset's exclusions are Lucid InceptionV1's channels
    config.batch_size = args.batch_size;
    args.attribution.apply(&mut config)?;
    args.faithfulness.apply(&mut config)?;
    args.feature_vis.apply(&mut config)?;
    config.limit = args.limit;
    config.shard = crate::args::shard_or_slurm(args.shard.as_deref())?;
    config.classes = args
        .classes
        .as_deref()
        .map(|c| class_indices(&classes, c))
        .transpose()?;
    args.checkpoint.apply(&mut config);
    let pipeline = Pipeline::new(&model, dataset, config, device)?
        .with_stop(super::common::stop_on_signals()?);
    let meta = RunMeta {
        dataset_name: data
            .file_name()
            .map_or_else(|| "images".into(), |f| f.to_string_lossy().to_string()),
        dataset_source: data.display().to_string(),
        classes,
    };
    let write = WriteOptions {
        force: args.force,
        ..WriteOptions::default()
    };
    let report = pipeline.run(&args.out, &meta, Some(&transform), &write)?;
    print_run(
        &pipeline,
        &report,
        &meta,
        &args.out,
        total.elapsed().as_secs_f64(),
    );
    Ok(())
}
