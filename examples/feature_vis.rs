//! Feature visualizations of some channels of one summary layer, as a contact sheet (one row
//! per channel: its plain visualization, then its diversity images), with SPEC §4.1's cost.
//!
//! ```sh
//! cargo run --release --example feature_vis -- --layer mixed4a --channels 0-7 --sheet sheet.png
//! cargo run --release --example feature_vis -- --onnx efficientnet_lite0.onnx \
//!     --layer _blocks.9 --channels 0-15 --steps 64 --sheet sheet.png
//! ```
#![allow(missing_docs)]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use summit_core::featvis::{
    FeatureVisParams, Feed, InputMap, Visualization, contact_sheet, visualize,
};
use summit_core::model::{FashionInception, OnnxModel, OnnxOptions, Summarizable};

#[derive(Parser, Debug)]
struct Args {
    /// An ONNX classifier with ImageNet preprocessing (default: the embedded Fashion-MNIST
    /// model).
    #[arg(long)]
    onnx: Option<PathBuf>,
    /// The summary layer (name or alias).
    #[arg(long)]
    layer: String,
    /// Channels: `a-b` (inclusive) or a comma-separated list.
    #[arg(long, default_value = "0-7")]
    channels: String,
    /// Optimisation steps (Lucid: 512).
    #[arg(long, default_value_t = 512)]
    steps: usize,
    /// Diversity images per channel besides the plain one (0: none).
    #[arg(long, default_value_t = 4)]
    diversity: usize,
    /// Weight of Lucid's diversity penalty (see `FeatureVisParams::diversity_weight`).
    #[arg(long, default_value_t = 10.0)]
    diversity_weight: f32,
    /// Side of the optimised image (Lucid: 128).
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// The contact sheet to write (PNG).
    #[arg(long, default_value = "featvis.png")]
    sheet: PathBuf,
    /// Pixels per image on the sheet.
    #[arg(long, default_value_t = 128)]
    cell: u32,
    /// How the transformed image reaches the model: `own-size` (SPEC §4.1: wherever the model
    /// accepts other sizes) or `model-size` (resized to the model's input, as Lucent does).
    #[arg(long, default_value = "own-size")]
    feed: String,
    /// Lucid's redirected ReLU gradient (Lucent has none: `--redirect-relu false` is its
    /// computation).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    redirect_relu: bool,
    /// Also write each channel's plain visualization as `DIR/{channel}.png`.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn parse_channels(s: &str) -> Result<Vec<usize>> {
    let number = |t: &str| -> Result<usize> {
        t.trim()
            .parse()
            .with_context(|| format!("--channels {s}: `{}` is not a channel number", t.trim()))
    };
    if let Some((a, b)) = s.split_once('-') {
        let (a, b) = (number(a)?, number(b)?);
        if a > b {
            anyhow::bail!(
                "--channels {s}: the range is empty (write the lower channel first, e.g. {b}-{a})"
            );
        }
        return Ok((a..=b).collect());
    }
    s.split(',').map(number).collect()
}

fn main() -> std::process::ExitCode {
    summit_cli::commands::exit_with(run())
}

fn run() -> Result<()> {
    let args = Args::parse();
    let device = summit_core::model::burn::tensor::Device::flex();
    let (model, map): (Box<dyn Summarizable>, InputMap) = match &args.onnx {
        Some(path) => (
            Box::new(
                OnnxModel::load(path, &OnnxOptions::default(), &device)
                    .with_context(|| format!("loading {}", path.display()))?,
            ),
            InputMap::imagenet(),
        ),
        None => (
            Box::new(FashionInception::embedded(&device)?),
            InputMap::fashion_mnist(),
        ),
    };
    let channels = parse_channels(&args.channels)?;
    let feed: Feed = args
        .feed
        .parse()
        .map_err(|e| anyhow::anyhow!("--feed: {e}"))?;
    let base = FeatureVisParams {
        steps: args.steps,
        size: args.size,
        diversity_weight: args.diversity_weight,
        feed,
        redirect_relu: args.redirect_relu,
        ..FeatureVisParams::default()
    };
    let run = |diversity: usize| -> Result<(Vec<Visualization>, f64)> {
        let t = Instant::now();
        let p = FeatureVisParams {
            diversity,
            ..base.clone()
        };
        let v = visualize(
            model.as_ref(),
            &args.layer,
            &channels,
            &map,
            &p,
            &device,
            |_, _| {},
        )?;
        Ok((v, t.elapsed().as_secs_f64()))
    };
    let (mut plain, t_plain) = run(1)?;
    println!(
        "plain: {} channels in {t_plain:.1} s ({:.2} s per channel)",
        channels.len(),
        t_plain / channels.len() as f64
    );
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for v in &plain {
            let path = dir.join(format!("{}.png", v.channel));
            v.images[0]
                .save(&path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        println!("wrote {} images to {}", plain.len(), dir.display());
    }
    if args.diversity > 0 {
        let (div, t_div) = run(args.diversity)?;
        println!(
            "diversity ({} images): {:.2} s per channel",
            args.diversity,
            t_div / channels.len() as f64
        );
        for (p, d) in plain.iter_mut().zip(div) {
            p.images.extend(d.images);
        }
    }
    let sheet = contact_sheet(&plain, args.cell);
    sheet
        .save(&args.sheet)
        .with_context(|| format!("writing {}", args.sheet.display()))?;
    println!("wrote {}", args.sheet.display());
    Ok(())
}
