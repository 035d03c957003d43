//! Non-semantic channel detection wired into the analysis: the flagged set equals a brute-force
//! recount over `A`, and with exclusion on no attribution graph keeps a flagged channel while
//! the other graphs' structure is otherwise built as usual.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use summit_core::data::Dataset;
use summit_core::{
    Config, Device, FashionInception, FashionMnist, NonSemanticConfig, NonSemanticParams, Pipeline,
    Preprocess, analyze,
};

fn aggregates(n: usize) -> summit_core::Aggregates {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets/fashion-mnist");
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
    let data = FashionMnist::open(
        root.join("t10k-images-idx3-ubyte.gz"),
        root.join("t10k-labels-idx1-ubyte.gz"),
    )
    .unwrap()
    .with_preprocess(Preprocess::fashion_mnist())
    .unwrap();
    let data: Arc<dyn Dataset> = Arc::new(data);
    let mut config = Config::paper();
    config.limit = Some(n);
    config.batch_size = 50;
    config.progress = false;
    let pipeline = Pipeline::new(&model, data, config, device).unwrap();
    let pass = pipeline.aggregate().unwrap();
    assert!(pass.complete);
    pass.aggregates
}

/// Brute force: for each layer, each class with a nonzero row ranks its channels by count
/// (higher channel first on ties, zero counts never ranked); a channel is flagged when at
/// least `share` of those classes have it in their top `k`.
fn brute_force(
    aggs: &summit_core::Aggregates,
    classes: &[usize],
    k: usize,
    share: f64,
) -> BTreeSet<(usize, u32)> {
    let mut out = BTreeSet::new();
    for (l, layer) in aggs.params().layers.iter().enumerate() {
        let mut hits = vec![0usize; layer.channels];
        let mut live = 0usize;
        for &c in classes {
            let row = aggs.activations().row(l, c).unwrap();
            let mut idx: Vec<usize> = (0..row.len()).filter(|&j| row[j] > 0).collect();
            if idx.is_empty() {
                continue;
            }
            live += 1;
            // repeated selection of the maximum: O(k·C), independent of the library's sort
            for _ in 0..k.min(idx.len()) {
                let mut best = 0;
                for (p, &j) in idx.iter().enumerate() {
                    let b = idx[best];
                    if row[j] > row[b] || (row[j] == row[b] && j > b) {
                        best = p;
                    }
                }
                hits[idx.remove(best)] += 1;
            }
        }
        for (j, &h) in hits.iter().enumerate() {
            if live > 0 && h > 0 && h as f64 >= share * live as f64 {
                out.insert((l, j as u32));
            }
        }
    }
    out
}

#[test]
fn detection_matches_brute_force_and_exclusion_removes_channels() {
    let aggs = aggregates(400);
    let classes: Vec<usize> = (0..aggs.params().num_classes).collect();
    let names: Vec<String> = classes.iter().map(|c| format!("class{c}")).collect();
    // Generous parameters so that this small model flags channels in every layer.
    let params = NonSemanticParams {
        min_classes: 1,
        top_k: 8,
        min_class_share: 0.6,
    };
    let expected = brute_force(&aggs, &classes, params.top_k, params.min_class_share);
    assert!(
        !expected.is_empty(),
        "the test needs flagged channels; loosen the parameters"
    );
    let cfg = Config::paper();
    let run = |exclude: bool| {
        analyze(
            &aggs,
            &classes,
            &names,
            &cfg.graph,
            &summit_core::Embedding::Pca,
            0,
            &NonSemanticConfig {
                detect: Some(params),
                exclude,
            },
        )
        .unwrap()
    };

    let kept = run(false);
    let flagged: BTreeSet<(usize, u32)> = kept
        .non_semantic
        .iter()
        .map(|f| (f.layer, f.channel))
        .collect();
    assert_eq!(flagged, expected);
    assert!(!kept.non_semantic_excluded);
    // Without exclusion, flagged channels are common by construction: some graph keeps one.
    let in_graphs = |a: &summit_core::Analysis| {
        a.graphs
            .iter()
            .flat_map(|g| {
                g.layers
                    .iter()
                    .enumerate()
                    .flat_map(|(l, layer)| layer.vertices.iter().map(move |v| (l, v.channel)))
            })
            .filter(|lc| expected.contains(lc))
            .count()
    };
    assert!(in_graphs(&kept) > 0, "no graph keeps a flagged channel");

    let excluded = run(true);
    assert!(excluded.non_semantic_excluded);
    assert_eq!(excluded.non_semantic, kept.non_semantic);
    assert_eq!(
        in_graphs(&excluded),
        0,
        "a flagged channel survived exclusion"
    );
    // Nor does any edge reach one.
    for g in &excluded.graphs {
        for (l, layer) in g.layers.iter().enumerate() {
            for v in &layer.vertices {
                for &(lower, _) in &v.prev {
                    assert!(l > 0 && !expected.contains(&(l - 1, lower)));
                }
            }
        }
    }
    // Detection off: nothing reported, graphs as without exclusion.
    let off = analyze(
        &aggs,
        &classes,
        &names,
        &cfg.graph,
        &summit_core::Embedding::Pca,
        0,
        &NonSemanticConfig {
            detect: None,
            exclude: true,
        },
    )
    .unwrap();
    assert!(off.non_semantic.is_empty());
    assert_eq!(off.graphs, kept.graphs);
}
