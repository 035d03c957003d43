//! Writes the comparison of two classes' attribution graphs from an existing output directory
//! (`comparisons/{a}-vs-{b}.json`: the union with every vertex and edge marked in both graphs,
//! only in A, only in B, and the intersection and both differences as their own views; the
//! web view shows the same operations live).
//!
//! ```sh
//! cargo run --release --example compare_classes -- --out out/fashion-mnist Sneaker "Ankle boot"
//! ```

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use summit_core::compare_output_classes;

/// Compare two classes of an output directory.
#[derive(Parser, Debug)]
pub struct Args {
    /// The output directory of a run.
    #[arg(long, default_value = "out/fashion-mnist")]
    out: PathBuf,
    /// Class A: name, synset or index.
    a: String,
    /// Class B: name, synset or index.
    b: String,
}

/// Runs the command.
pub fn run(args: Args) -> Result<()> {
    let w = compare_output_classes(&args.out, &args.a, &args.b)?;
    println!("{} ({}) vs {} ({})", w.a.1, w.a.0, w.b.1, w.b.0);
    let counts = w.comparison.layers.iter().map(|l| {
        let mut n = [0usize; 3];
        for v in &l.vertices {
            n[match v.membership {
                summit_core::graph::Membership::Both => 0,
                summit_core::graph::Membership::OnlyA => 1,
                summit_core::graph::Membership::OnlyB => 2,
            }] += 1;
        }
        (l.name.clone(), n)
    });
    for ((name, [both, a, b]), j) in counts.zip(w.comparison.vertex_jaccard()) {
        println!("{name:>12}: {both} shared, {a} only in A, {b} only in B (Jaccard {j:.2})");
    }
    let size = |v: &summit_core::graph::ComparisonView| {
        v.layers
            .iter()
            .map(|l| (l.vertices.len(), l.edges.len()))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    };
    for (op, view) in [
        ("union", w.comparison.union()),
        ("intersection", w.comparison.intersection()),
        (
            "A \\ B",
            w.comparison.difference(summit_core::graph::Side::A),
        ),
        (
            "B \\ A",
            w.comparison.difference(summit_core::graph::Side::B),
        ),
    ] {
        let (v, e) = size(&view);
        println!("{op:>12}: {v} vertices, {e} edges");
    }
    println!("wrote {}", w.path.display());
    Ok(())
}
