//! Trains the embedded Fashion-MNIST inception network with burn's autodiff on the 60k
//! training images of Debian's `dataset-fashion-mnist`, prints the test accuracy after every
//! epoch and writes the weights (safetensors).
//!
//! ```text
//! sudo apt-get install dataset-fashion-mnist
//! cargo run --release --example train_fashion_mnist -- --epochs 4
//! ```
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use summit_core::model::burn::tensor::Device;
use summit_core::model::train::{RawImages, TrainConfig, train_fashion};

#[derive(Parser)]
#[command(about = "Train the embedded Fashion-MNIST inception network")]
struct Args {
    /// Folder with the four Fashion-MNIST IDX files (.gz or raw).
    #[arg(long, default_value = "/usr/share/datasets/fashion-mnist")]
    data: PathBuf,
    /// Where to write the weights.
    #[arg(long, default_value = "crates/summit-model/assets/fashion_inception.safetensors")]
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

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let file = |name: &str| args.data.join(name);
    if !file("train-images-idx3-ubyte.gz").exists() && !file("train-images-idx3-ubyte").exists() {
        bail!(
            "Fashion-MNIST training images not found in {}.\n\
             Install Debian's package: `sudo apt-get install dataset-fashion-mnist`\n\
             (or pass --data DIR holding train-images-idx3-ubyte[.gz] and the label files)",
            args.data.display()
        );
    }
    let train = Idx::open(&args.data, "train").context("reading the training set")?;
    let test = Idx::open(&args.data, "t10k").context("reading the test set")?;
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
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let t0 = std::time::Instant::now();
    let net = train_fashion(
        RawImages {
            pixels: &train.pixels()[..n * 784],
            labels: &train.labels()[..n],
        },
        RawImages {
            pixels: test.pixels(),
            labels: test.labels(),
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

/// Interim IDX reader (to be replaced by summit-data's FashionMnist).
struct Idx {
    px: Vec<u8>,
    lb: Vec<u8>,
}

impl Idx {
    fn read(path: PathBuf) -> anyhow::Result<Vec<u8>> {
        use std::io::Read;
        let gz = path.with_extension("gz");
        let gz = PathBuf::from(format!("{}.gz", path.display()));
        let _ = &gz;
        let raw = std::fs::read(&gz).or_else(|_| std::fs::read(&path))?;
        if raw.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out)?;
            Ok(out)
        } else {
            Ok(raw)
        }
    }
    fn open(dir: &std::path::Path, split: &str) -> anyhow::Result<Self> {
        let px = Self::read(dir.join(format!("{split}-images-idx3-ubyte")))?;
        let lb = Self::read(dir.join(format!("{split}-labels-idx1-ubyte")))?;
        Ok(Self { px: px[16..].to_vec(), lb: lb[8..].to_vec() })
    }
    fn len(&self) -> usize { self.lb.len() }
    fn pixels(&self) -> &[u8] { &self.px }
    fn labels(&self) -> &[u8] { &self.lb }
}
