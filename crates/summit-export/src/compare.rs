//! Export of a class comparison (`comparisons/{a}-vs-{b}.json`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use summit_graph::GraphComparison;

use crate::atomic::{create_dir, write_json};
use crate::error::Result;

/// One compared class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComparedClass {
    /// Class index.
    pub index: usize,
    /// Class name.
    pub name: String,
}

/// The content of `comparisons/{a}-vs-{b}.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComparisonFile {
    /// Class A.
    pub a: ComparedClass,
    /// Class B.
    pub b: ComparedClass,
    /// Per layer, the Jaccard index of the two vertex sets.
    pub vertex_jaccard: Vec<f64>,
    /// Per layer: vertices in both, only in A, only in B.
    pub vertex_counts: Vec<[usize; 3]>,
    /// The union of the two graphs with every vertex and edge marked.
    pub comparison: GraphComparison,
    /// The comparison operations (paper Fig. 9): the shared part, and what each class has
    /// that the other has not.
    #[serde(default)]
    pub intersection: Option<summit_graph::ComparisonView>,
    /// A \ B.
    #[serde(default)]
    pub a_minus_b: Option<summit_graph::ComparisonView>,
    /// B \ A.
    #[serde(default)]
    pub b_minus_a: Option<summit_graph::ComparisonView>,
}

/// Writes `dir/comparisons/{a}-vs-{b}.json` (class indices) atomically and
/// returns its path. `dir` is an output directory (or any directory).
pub fn write_comparison(
    dir: &Path,
    class_a: (usize, &str),
    class_b: (usize, &str),
    comparison: &GraphComparison,
) -> Result<PathBuf> {
    let sub = dir.join("comparisons");
    create_dir(&sub)?;
    let path = sub.join(format!("{}-vs-{}.json", class_a.0, class_b.0));
    let counts = comparison
        .layers
        .iter()
        .map(|l| {
            let mut n = [0usize; 3];
            for v in &l.vertices {
                n[match v.membership {
                    summit_graph::Membership::Both => 0,
                    summit_graph::Membership::OnlyA => 1,
                    summit_graph::Membership::OnlyB => 2,
                }] += 1;
            }
            n
        })
        .collect();
    write_json(
        &path,
        &ComparisonFile {
            a: ComparedClass {
                index: class_a.0,
                name: class_a.1.to_string(),
            },
            b: ComparedClass {
                index: class_b.0,
                name: class_b.1.to_string(),
            },
            vertex_jaccard: comparison.vertex_jaccard(),
            vertex_counts: counts,
            comparison: comparison.clone(),
            intersection: Some(comparison.intersection()),
            a_minus_b: Some(comparison.difference(summit_graph::Side::A)),
            b_minus_a: Some(comparison.difference(summit_graph::Side::B)),
        },
    )?;
    Ok(path)
}
