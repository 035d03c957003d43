//! Lucid's InceptionV1 through the pipeline's per-batch step under both presets: the
//! `summit2019` shortcut (hop inputs before the stage pools, stride 3 SAME, exclusions) runs on
//! the Lucid description and changes the influence counts. Uses the lucent parity fixture of
//! summit-model (crates/summit-model/tests/fixtures/make_lucent.py); skipped when it is absent
//! unless SUMMIT_REQUIRE_FIXTURES=1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use summit_core::pipeline::aggregate_batch;
use summit_core::{Aggregates, Config, aggregate_params};
use summit_model::burn::tensor::{Device, Tensor, TensorData};
use summit_model::{LucidInceptionV1, StateDict, Summarizable};

fn fixture() -> Option<PathBuf> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../summit-model/tests/fixtures/lucent");
    if dir.join("expected.pth").exists() {
        return Some(dir);
    }
    let msg = "fixture crates/summit-model/tests/fixtures/lucent missing: run \
               `python3 crates/summit-model/tests/fixtures/make_lucent.py` (needs torch and torch-lucent)";
    if std::env::var("SUMMIT_REQUIRE_FIXTURES").is_ok_and(|v| v == "1") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

#[test]
fn lucid_runs_under_both_presets() {
    let Some(dir) = fixture() else {
        return;
    };
    let device = Device::flex();
    let model = LucidInceptionV1::load(dir.join("inceptionv1.pth"), &device).unwrap();
    let exp = StateDict::load(dir.join("expected.pth")).unwrap();
    let x = exp.get("input").unwrap();
    let images = Tensor::<4>::from_data(
        TensorData::new(x.data[..2 * 3 * 224 * 224].to_vec(), [2, 3, 224, 224]),
        &device,
    );
    let mut edges = Vec::new();
    for config in [Config::paper(), Config::summit2019()] {
        let params = aggregate_params(model.description(), &config).unwrap();
        let mut aggs = Aggregates::new(params).unwrap();
        aggregate_batch(
            &model,
            config.hop_input,
            &mut aggs,
            images.clone(),
            &[0, 1],
            &[5, 5],
            "lucid batch",
        )
        .unwrap();
        assert_eq!(aggs.class_images()[5], 2);
        let mut per_layer = Vec::new();
        for l in 0..9 {
            let e = aggs.layer_edges(l).unwrap();
            assert!(
                e.num_entries() > 0,
                "{}: layer {l} has no edges",
                config.preset
            );
            per_layer.push(e);
        }
        if config.preset == summit_core::Preset::Summit2019 {
            // mixed3a 67 and 190 never feed mixed3b.
            let e = &per_layer[1];
            for j in 0..e.c_out() {
                for &(i, _) in e.row(5, j).unwrap_or(&[]) {
                    assert!(
                        i != 67 && i != 190,
                        "excluded mixed3a {i} feeds mixed3b {j}"
                    );
                }
            }
        }
        edges.push(per_layer);
    }
    // The shortcut changes the influences (hop inputs before the pools, stride-3 grid).
    let changed = (0..9).filter(|&l| edges[0][l] != edges[1][l]).count();
    eprintln!("{changed} of 9 layers' influence counts differ between paper and summit2019");
    assert!(
        changed >= 3,
        "only {changed} layers differ between the presets"
    );
}
