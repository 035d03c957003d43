//! Several models, one dataset: the embedded inception network and the embedded ResNet on the
//! embedded Fashion-MNIST test set, each model's full Summit output in a subdirectory, and a
//! comparison page (suggestion scatter, per-image predictions and heatmaps side by side, the
//! histograms of 1 − p(true class), the models' attribution graphs of a class side by side).
//!
//! ```sh
//! cargo run --release --example compare_models -- --out out/compare-models --force
//! ```
//!
//! The same as `summit {}` (the `summit` command, `crates/summit-cli`); this example parses its
//! arguments and calls [`summit_cli::commands::compare_models::run`].

use clap::Parser;
use summit_cli::commands::{compare_models, exit_with};

fn main() -> std::process::ExitCode {
    exit_with(compare_models::run(compare_models::Args::parse()))
}
