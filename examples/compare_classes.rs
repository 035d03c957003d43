//! Writes the comparison of two classes' attribution graphs from an existing output directory
//! (`comparisons/{a}-vs-{b}.json`: the union with every vertex and edge marked in both graphs,
//! only in A, only in B, and the intersection and both differences as their own views; the
//! web view shows the same operations live).
//!
//! ```sh
//! cargo run --release --example compare_classes -- --out out/fashion-mnist Sneaker "Ankle boot"
//! ```
//!
//! The same as `summit {}` (the `summit` command, `crates/summit-cli`); this example parses its
//! arguments and calls [`summit_cli::commands::compare_classes::run`].

use clap::Parser;
use summit_cli::commands::{compare_classes, exit_with};

fn main() -> std::process::ExitCode {
    exit_with(compare_classes::run(compare_classes::Args::parse()))
}
