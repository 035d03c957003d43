//! Merges shard outputs (each a run with `--shard i/n`) into one output directory: the
//! aggregates are merged exactly, then graphs, overview, Summit format and web view are
//! written as for a single run (without dataset-example patches, which need the images).
//!
//! ```sh
//! cargo run --release --example merge_shards -- --out out/imagenet out/imagenet-0 out/imagenet-1
//! ```
//!
//! The same as `summit {}` (the `summit` command, `crates/summit-cli`); this example parses its
//! arguments and calls [`summit_cli::commands::merge::run`].

use clap::Parser;
use summit_cli::commands::{exit_with, merge};

fn main() -> std::process::ExitCode {
    exit_with(merge::run(merge::Args::parse()))
}
