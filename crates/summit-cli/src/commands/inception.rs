//! Summit on InceptionV1 (torchvision's GoogLeNet, or Lucid's as torch-lucent ports it) over
//! your ImageNet images: the whole pipeline, one output directory (or one shard of it, to merge
//! with `merge_shards`).
//!
//! ```sh
//! cargo run --release --example inception_imagenet -- \
//!     --weights googlenet.pth --data imagenet/val --labels val.txt \
//!     --class-list LOC_synset_mapping.txt --out out/imagenet
//! # Summit's own model and choices (the published data):
//! cargo run --release --example inception_imagenet -- --model lucid --preset summit2019 \
//!     --weights inceptionv1_lucid.pth --output-classes ImageNet_alternate_synsets.txt \
//!     --data imagenet/val --labels val.txt --class-list LOC_synset_mapping.txt
//! ```
//!
//! Run without `--weights` or `--data` to see what to provide and how to get it. Shards
//! (`--shard i/n`, one output each) merge with `--merge DIR...` and the same other arguments
//! (with dataset-example patches), or with the `merge_shards` example (without them).

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::common::{DataArgs, open_data, print_run};
use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use summit_core::{
    Config, Device, GoogLeNet, GoogLeNetOptions, LUCID_NUM_CLASSES, LucidInceptionV1, Pipeline,
    Preprocess, Preset, RunMeta, SelectOutputs, Summarizable, WriteOptions, class_indices,
    read_output_list, select_gpu,
};

/// Which InceptionV1 definition the weights are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModelKind {
    /// torchvision's `googlenet` (batch norm), a state dict as `.pth` or `.safetensors`.
    Torchvision,
    /// Lucid's InceptionV1 (Caffe-trained, local response normalisation) as torch-lucent's
    /// `inceptionv1` state dict; needs `--output-classes`.
    Lucid,
}

/// Summit on InceptionV1 over ImageNet images.
#[derive(Parser, Debug)]
pub struct Args {
    #[command(flatten)]
    attribution: super::common::AttributionArgs,
    #[command(flatten)]
    faithfulness: super::common::FaithfulnessArgs,
    #[command(flatten)]
    feature_vis: super::common::FeatureVisArgs,
    /// The model definition of the weights.
    #[arg(long, value_enum, default_value_t = ModelKind::Torchvision)]
    model: ModelKind,
    /// The weights: a state dict (.pth or .safetensors) of the --model definition.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// The images: an image folder (`DIR/<class>/*.jpg`) or the ImageNet validation layout
    /// (DIR/*.JPEG with --labels and --class-list).
    #[arg(long)]
    data: Option<PathBuf>,
    #[command(flatten)]
    classes_in: DataArgs,
    /// The class id (synset) of each model output, one per line in output order (`dummy` or
    /// blank for unused outputs); Summit's classes are then read from their outputs. Required
    /// with --model lucid (Lucid's ImageNet_alternate_synsets.txt).
    #[arg(long)]
    output_classes: Option<PathBuf>,
    /// Output directory.
    #[arg(long, default_value = "out/imagenet")]
    out: PathBuf,
    /// Replace an existing output directory.
    #[arg(long)]
    force: bool,
    /// Preset: paper or summit2019.
    #[arg(long, default_value = "paper")]
    preset: Preset,
    /// Process only shard i of n (`i/n`, from 0); merge the shard outputs with merge_shards.
    /// In a Slurm job array it defaults to the task's shard (SLURM_ARRAY_TASK_ID of
    /// SLURM_ARRAY_TASK_COUNT).
    #[arg(long)]
    shard: Option<String>,
    /// Only these classes: comma-separated names, synsets or indices.
    #[arg(long)]
    classes: Option<String>,
    /// Images per batch.
    #[arg(long, default_value_t = 32)]
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
    #[command(flatten)]
    checkpoint: super::common::CheckpointArgs,
    /// Compute the influences on the model's device (burn; for --cuda runs) instead of
    /// reading hop inputs back to the host for the fused CPU kernel.
    #[arg(long)]
    influences_on_device: bool,
    /// Instead of a pass: merge these shard output directories (runs with --shard over the
    /// same --data and model) into --out, with the dataset-example patches of the merged
    /// examples (merge_shards merges without the images, so without patches).
    #[arg(long, num_args = 1..)]
    merge: Vec<PathBuf>,
    /// Remove the detected non-semantic channels (top channels of nearly every class) from the
    /// attribution graphs (they are always reported).
    #[arg(long)]
    exclude_non_semantic: bool,
}

/// The model and the preprocessing its weights expect. Adding a model definition is one arm.
fn load_model(
    kind: ModelKind,
    weights: &Path,
    preset: Preset,
    device: &Device,
) -> Result<(Box<dyn Summarizable>, Preprocess)> {
    Ok(match kind {
        ModelKind::Lucid => (
            Box::new(
                LucidInceptionV1::load(weights, device)
                    .with_context(|| format!("loading Lucid weights {}", weights.display()))?,
            ),
            preset.lucid_preprocess(),
        ),
        ModelKind::Torchvision => (
            Box::new(
                GoogLeNet::load(
                    weights,
                    GoogLeNetOptions {
                        transform_input: true,
                    },
                    device,
                )
                .with_context(|| format!("loading torchvision weights {}", weights.display()))?,
            ),
            Preprocess::Torchvision,
        ),
    })
}

/// Runs the command.
pub fn run(args: Args) -> Result<()> {
    let (weights, data) = match crate::args::require_inception_inputs(
        args.weights.as_deref(),
        args.data.as_deref(),
    ) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let total = Instant::now();
    let device = select_gpu(args.cuda, args.vulkan)?;
    let (model, preprocess) = load_model(args.model, &weights, args.preset, &device)?;
    let output_list = match (&args.output_classes, args.model) {
        (Some(f), _) => Some(read_output_list(f)?),
        (None, ModelKind::Lucid) => {
            eprintln!(
                "error: --model lucid has {LUCID_NUM_CLASSES} outputs in Lucid's own label \
                 order; pass\n{}",
                crate::args::LUCID_OUTPUTS_HELP
            );
            std::process::exit(2);
        }
        (None, ModelKind::Torchvision) => None,
    };
    // the absolute path: the manifest's source and the dataset fingerprint tell folders apart
    let data = data
        .canonicalize()
        .with_context(|| format!("opening the image data {}", data.display()))?;
    let (dataset, classes, transform) = open_data(
        &args.classes_in,
        &data,
        preprocess,
        output_list
            .is_none()
            .then(|| model.description().num_classes),
    )?;
    let model: Box<dyn Summarizable> = match &output_list {
        Some(list) => {
            let ids: Vec<&str> = classes
                .iter()
                .map(|c| c.synset.as_deref().unwrap_or(&c.name))
                .collect();
            Box::new(SelectOutputs::by_name(model, list, &ids).with_context(|| {
                format!(
                    "mapping the classes to the model's outputs ({})",
                    args.output_classes
                        .as_deref()
                        .map_or_else(String::new, |p| p.display().to_string())
                )
            })?)
        }
        None => model,
    };
    let num_classes = model.description().num_classes;
    if classes.len() != num_classes {
        bail!(
            "the class list names {} classes, the model has {num_classes}",
            classes.len()
        );
    }

    let mut config = Config::preset(args.preset);
    if args.preset == Preset::Summit2019 && args.model != ModelKind::Lucid {
        // the preset's exclusions are channels of Lucid's InceptionV1 (the library refuses
        // them for another model): torchvision's GoogLeNet has other channels there
        eprintln!(
            "note: summit2019's excluded channels (mixed3a 67, 190; mixed3b 390, 399, 412) are \
             Lucid InceptionV1's; none are excluded for torchvision's GoogLeNet"
        );
        config.excluded.clear();
    }
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
    config.non_semantic.exclude = args.exclude_non_semantic;
    if args.influences_on_device {
        config.influence_on = summit_core::InfluenceOn::Device;
    }
    let pipeline = Pipeline::new(model.as_ref(), dataset, config, device)?
        .with_stop(super::common::stop_on_signals()?);
    let meta = RunMeta {
        dataset_name: "imagenet".into(),
        dataset_source: data.display().to_string(),
        classes,
    };
    let options = WriteOptions {
        force: args.force,
        ..WriteOptions::default()
    };
    let report = if args.merge.is_empty() {
        pipeline.run(&args.out, &meta, Some(&transform), &options)?
    } else {
        pipeline.merge_shards(&args.merge, &args.out, &meta, Some(&transform), &options)?
    };
    print_run(
        &pipeline,
        &report,
        &meta,
        &args.out,
        total.elapsed().as_secs_f64(),
    );
    Ok(())
}
