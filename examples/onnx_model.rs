//! Summit on your own CNN classifier, exported to ONNX, over your images: the whole pipeline
//! and one output directory (or one shard of it).
//!
//! ```sh
//! cargo run --release --example onnx_model -- --onnx resnet18.onnx \
//!     --data imagenet/val --labels val.txt --class-list LOC_synset_mapping.txt --out out/resnet18
//! ```
//!
//! Run without arguments to see what to provide.
//!
//! The same as `summit {}` (the `summit` command, `crates/summit-cli`); this example parses its
//! arguments and calls [`summit_cli::commands::onnx::run`].

use clap::Parser;
use summit_cli::commands::{exit_with, onnx};

fn main() -> std::process::ExitCode {
    exit_with(onnx::run(onnx::Args::parse()))
}
