//! The main job: an embedded Fashion-MNIST model (the inception network, or with
//! `--model resnet` the residual one) on the embedded 10k test images, the whole Summit
//! pipeline, and the output directory with its web page.
//!
//! ```sh
//! cargo run --release --example fashion_mnist -- --out out/fashion-mnist --force
//! cargo run --release --example fashion_mnist -- --model resnet --out out/fashion-resnet --force
//! ```
//!
//! The same as `summit {}` (the `summit` command, `crates/summit-cli`); this example parses its
//! arguments and calls [`summit_cli::commands::fashion::run`].

use clap::Parser;
use summit_cli::commands::{exit_with, fashion};

fn main() -> std::process::ExitCode {
    exit_with(fashion::run(fashion::Args::parse()))
}
