//! Merges shard outputs (each a run with `--shard i/n`) into one output directory: the
//! aggregates are merged exactly, then graphs, overview, Summit format and web view are
//! written as for a single run (without dataset-example patches, which need the images).
//!
//! ```sh
//! cargo run --release --example merge_shards -- --out out/imagenet out/imagenet-0 out/imagenet-1
//! ```

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use summit_core::{WriteOptions, merge_outputs};

/// Merge shard output directories.
#[derive(Parser, Debug)]
pub struct Args {
    /// The merged output directory.
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing output directory.
    #[arg(long)]
    force: bool,
    /// The shard output directories.
    #[arg(required = true, num_args = 1..)]
    shards: Vec<PathBuf>,
}

/// Runs the command.
pub fn run(args: Args) -> Result<()> {
    let options = WriteOptions {
        force: args.force,
        ..WriteOptions::default()
    };
    let report = merge_outputs(&args.shards, &args.out, &options)?;
    for (phase, s) in &report.phases {
        println!("{phase:>16}: {s:.2} s");
    }
    let m = &report.output.manifest;
    println!(
        "{} shards, {} images, {} classes",
        args.shards.len(),
        m.total_images,
        m.classes.len()
    );
    if let Some(acc) = m.accuracy {
        println!("top-1 accuracy: {acc:.4}");
    }
    println!("open {}", args.out.join("index.html").display());
    Ok(())
}
