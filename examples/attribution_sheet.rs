//! One image of the embedded Fashion-MNIST test set under every attribution method (rows), for
//! both embedded models (columns: the image, the inception network's heatmap, the ResNet's),
//! as one contact sheet; prints each method's time and how much of its signed map is negative.
//!
//! ```sh
//! cargo run --release --example attribution_sheet -- --index 0 --out docs/attribution-methods.png
//! ```
#![allow(missing_docs)]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use image::{Rgb, RgbImage};
use summit_core::attribution::{
    AttributionParams, Attributor, Method, grid, heatmap, heatmap_image, write_png,
};
use summit_core::data::{Dataset, FashionMnist, Preprocess};
use summit_core::model::burn::tensor::Device;
use summit_core::model::{FashionInception, OnnxModel, Summarizable};

#[derive(Parser, Debug)]
struct Args {
    /// The test image (0–9999).
    #[arg(long, default_value_t = 0)]
    index: usize,
    /// The contact sheet to write (PNG).
    #[arg(long, default_value = "attribution-methods.png")]
    out: PathBuf,
    /// Pixels per cell.
    #[arg(long, default_value_t = 112)]
    cell: u32,
}

fn main() -> std::process::ExitCode {
    summit_cli::commands::exit_with(run())
}

fn run() -> Result<()> {
    let args = Args::parse();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/fashion-mnist");
    let images = root.join("t10k-images-idx3-ubyte.gz");
    let data = FashionMnist::open(&images, root.join("t10k-labels-idx1-ubyte.gz"))
        .and_then(|d| d.with_preprocess(Preprocess::fashion_mnist()))
        .with_context(|| format!("opening {}", images.display()))?;
    let raw = data
        .raw_image(args.index)
        .with_context(|| format!("no test image {}", args.index))?;
    let picture = RgbImage::from_fn(28, 28, |x, y| {
        let v = raw[(y * 28 + x) as usize];
        Rgb([v, v, v])
    });
    let x = data.load(args.index)?;
    let label = data.labels()[args.index];
    let device = Device::flex();
    let models: Vec<Box<dyn Summarizable>> = vec![
        Box::new(FashionInception::embedded(&device)?),
        Box::new(OnnxModel::fashion_resnet(&device)?),
    ];
    let params = AttributionParams {
        input_bounds: data.value_range(),
        ..AttributionParams::default()
    };
    println!(
        "image {} ({}), target: its label; rows, top to bottom:",
        args.index,
        data.class_names()[label]
    );
    let mut rows = Vec::new();
    for method in Method::ALL {
        let mut row = vec![picture.clone()];
        let mut line = format!("{:<30}", method.name());
        for model in &models {
            let att = Attributor::new(model.as_ref(), params.clone(), &device)?;
            let t = Instant::now();
            let a = att.attribute_host(method, &x.data, [1, 1, 28, 28], &[label])?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let neg: f64 = a.values.iter().map(|v| f64::from(v.min(0.0)).abs()).sum();
            let all: f64 = a.values.iter().map(|v| f64::from(v.abs())).sum();
            line += &format!(
                "  {:>7.1} ms, {:>5.1} % negative",
                ms,
                100.0 * neg / all.max(1e-30)
            );
            row.push(heatmap_image(&heatmap(&a, 0, 28, 28), 28, 28)?);
        }
        println!("{line}");
        rows.push(row);
    }
    write_png(&grid(&rows, args.cell), &args.out)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
