//! Trains the embedded Fashion-MNIST inception network with burn's autodiff on the 60k
//! training images of Debian's `dataset-fashion-mnist`, prints the test accuracy after every
//! epoch and writes the weights (safetensors).
//!
//! ```text
//! sudo apt-get install dataset-fashion-mnist
//! cargo run --release --example train_fashion_mnist -- --epochs 5
//! ```

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use summit_core::data::{Dataset, FashionMnist};
use summit_core::model::burn::tensor::Device;
use summit_core::model::train::{RawImages, TrainConfig, train_fashion};

#[derive(Parser)]
#[command(about = "Train the embedded Fashion-MNIST inception network")]
struct Args {
    /// Folder with the four Fashion-MNIST IDX files (.gz or raw).
    #[arg(long, default_value = "/usr/share/datasets/fashion-mnist")]
    data: PathBuf,
    /// Where to write the weights.
    #[arg(
        long,
        default_value = "crates/summit-model/assets/fashion_inception.safetensors"
    )]
    out: PathBuf,
    /// Passes over the training set.
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    epochs: usize,
    /// Images per step.
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = TrainConfig::default().learning_rate)]
    lr: f64,
    /// Seed of initialisation and shuffling.
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    seed: u64,
    /// Use only the first N training images (for a quick try).
    #[arg(long)]
    limit: Option<usize>,
}

fn main() -> std::process::ExitCode {
    summit_cli::commands::exit_with(run())
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let file = |name: &str| {
        let gz = args.data.join(format!("{name}.gz"));
        if gz.exists() {
            gz
        } else {
            args.data.join(name)
        }
    };
    if !file("train-images-idx3-ubyte").exists() {
        bail!(
            "Fashion-MNIST training images not found in {}.\n\
             Install Debian's package: `sudo apt-get install dataset-fashion-mnist`\n\
             (or pass --data DIR holding train-images-idx3-ubyte[.gz] and the label files)",
            args.data.display()
        );
    }
    let train = FashionMnist::open(
        file("train-images-idx3-ubyte"),
        file("train-labels-idx1-ubyte"),
    )
    .context("reading the training set")?;
    let test = FashionMnist::open(
        file("t10k-images-idx3-ubyte"),
        file("t10k-labels-idx1-ubyte"),
    )
    .context("reading the test set")?;
    let labels = |d: &FashionMnist| d.labels().iter().map(|&l| l as u8).collect::<Vec<u8>>();
    let (train_labels, test_labels) = (labels(&train), labels(&test));
    let n = args.limit.unwrap_or(train.len()).min(train.len());
    let config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        seed: args.seed,
    };
    println!(
        "training on {n} images, testing on {} ({config:?}), {} threads",
        test.len(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let t0 = std::time::Instant::now();
    let net = train_fashion(
        RawImages {
            pixels: &train.raw_images()[..n * 784],
            labels: &train_labels[..n],
        },
        RawImages {
            pixels: test.raw_images(),
            labels: &test_labels,
        },
        &config,
        &Device::flex(),
        |r| {
            println!(
                "epoch {}: loss {:.4}, test accuracy {:.2} % ({:.0} s)",
                r.epoch,
                r.loss,
                100.0 * r.test_accuracy,
                r.seconds
            )
        },
    )?;
    net.save(&args.out)?;
    println!(
        "wrote {} after {:.0} s of training",
        args.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
