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
//!
//! The same as `summit {}` (the `summit` command, `crates/summit-cli`); this example parses its
//! arguments and calls [`summit_cli::commands::inception::run`].

use clap::Parser;
use summit_cli::commands::{exit_with, inception};

fn main() -> std::process::ExitCode {
    exit_with(inception::run(inception::Args::parse()))
}
