//! Lucid's InceptionV1 through the pipeline's per-batch step under both presets: the
//! `summit2019` shortcut (hop inputs before the stage pools, stride 3 SAME, exclusions) runs on
//! the Lucid description and changes the influence counts. Uses the lucent parity fixture of
//! summit-model (crates/summit-model/tests/fixtures/make_lucent.py); fails when it is absent
//! unless SUMMIT_SKIP_PARITY=1.
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
        if let Some(path) = std::env::var_os("SUMMIT_PARITY_REPORT") {
            use std::io::Write;
            let test = std::thread::current().name().unwrap_or("?").to_string();
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let line = format!("lucent: summit-core {test}\n");
                let _ = f.write_all(line.as_bytes());
            }
        }
        return Some(dir);
    }
    let msg = "PyTorch parity fixture crates/summit-model/tests/fixtures/lucent missing: run \
               `python3 crates/summit-model/tests/fixtures/make_lucent.py` (needs torch and \
               torch-lucent), or scripts/check.sh, which makes it; SUMMIT_SKIP_PARITY=1 skips \
               the parity tests instead";
    if std::env::var("SUMMIT_SKIP_PARITY").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED (SUMMIT_SKIP_PARITY=1): {msg}");
        return None;
    }
    panic!("{msg}");
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
                for (i, _) in e.row(5, j).into_iter().flatten() {
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

/// What `inception_imagenet --model lucid --preset summit2019` does, on random-weight Lucid
/// InceptionV1 and an image folder of three synset-named classes: the 1008 outputs are read
/// through an output list (a dummy first, the classes at shuffled positions), the images are
/// mapped by Lucid's `2·pixel − 372`, and the whole pipeline writes both formats.
#[test]
fn lucid_summit2019_end_to_end() {
    use std::sync::Arc;

    use rand::{Rng, SeedableRng};
    use summit_core::data::Dataset;
    use summit_core::{
        ClassInfo, ImageFolder, Pipeline, RunMeta, SelectOutputs, WriteOptions, read_manifest,
        read_output_list,
    };

    let Some(dir) = fixture() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let synsets = ["n01440764", "n02119789", "n04589890"];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for s in synsets {
        std::fs::create_dir_all(data.join(s)).unwrap();
        for k in 0..2u32 {
            let img = image::RgbImage::from_fn(200 + 20 * k, 240, |_, _| {
                image::Rgb([rng.random(), rng.random(), rng.random()])
            });
            img.save(data.join(s).join(format!("{k}.png"))).unwrap();
        }
    }
    // Output list: dummy, then filler synsets with ours at 700, 3 and 1000 (output order is
    // not class order), then 7 unused entries.
    let mut outputs: Vec<String> = (0..1008).map(|i| format!("x{i}")).collect();
    outputs[0] = "dummy".into();
    for (s, at) in synsets.iter().zip([700usize, 3, 1000]) {
        outputs[at] = (*s).into();
    }
    for o in outputs.iter_mut().skip(1001) {
        *o = String::new();
    }
    let list = tmp.path().join("synsets.txt");
    std::fs::write(&list, outputs.join("\n")).unwrap();
    let outputs = read_output_list(&list).unwrap();
    // Trailing blank lines are unused outputs either way.
    assert!((1001..=1008).contains(&outputs.len()));
    assert_eq!(outputs[1000], "n04589890");

    let device = Device::flex();
    let lucid = LucidInceptionV1::load(dir.join("inceptionv1.pth"), &device).unwrap();
    let folder =
        ImageFolder::open(&data, summit_core::Preset::Summit2019.lucid_preprocess()).unwrap();
    let classes: Vec<ClassInfo> = folder
        .class_names()
        .iter()
        .map(|n| ClassInfo {
            name: n.clone(),
            synset: Some(n.clone()),
        })
        .collect();
    assert_eq!(
        classes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        synsets,
        "classes in sorted-synset order"
    );
    let model = SelectOutputs::by_name(lucid, &outputs, &synsets).unwrap();
    assert_eq!(model.columns(), &[700, 3, 1000]);
    let transform = folder.transform().clone();
    let mut config = Config::summit2019();
    config.batch_size = 4;
    config.feature_vis = None;
    let pipeline = Pipeline::new(&model, Arc::new(folder), config, device).unwrap();
    let out = tmp.path().join("out");
    let meta = RunMeta {
        dataset_name: "imagenet".into(),
        dataset_source: data.display().to_string(),
        classes,
    };
    let report = pipeline
        .run(&out, &meta, Some(&transform), &WriteOptions::default())
        .unwrap();
    assert_eq!(report.pass.as_ref().unwrap().images, 6);
    let m = read_manifest(&out).unwrap();
    assert_eq!(m.preset, "summit2019");
    assert!(m.model.contains("3 of 1008 outputs"), "{}", m.model);
    assert_eq!(m.total_images, 6);
    assert_eq!(m.parameters["aggregation"]["num_classes"], 3);
    // Summit's format: the paper's layer names; the excluded channels are in no graph.
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("data/imagenet.json")).unwrap())
            .unwrap();
    let index = index.as_array().unwrap();
    assert_eq!(index.len(), 3);
    for (c, entry) in index.iter().enumerate() {
        assert_eq!(entry["synset"], synsets[c]);
        assert_eq!(entry["numOfInstances"], 2);
        let ag: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("data/ag/ag-{c}.json"))).unwrap(),
        )
        .unwrap();
        let layers: Vec<&String> = ag.as_object().unwrap().keys().collect();
        for name in ["mixed3a", "mixed3b", "mixed4a", "mixed5b"] {
            assert!(layers.iter().any(|l| *l == name), "no {name} in ag-{c}");
        }
        let channels = |layer: &str| -> Vec<u64> {
            ag[layer]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["channel"].as_u64().unwrap())
                .collect()
        };
        assert!(
            !channels("mixed5b").is_empty(),
            "class {c} has an empty mixed5b"
        );
        for ch in [67, 190] {
            assert!(!channels("mixed3a").contains(&ch), "mixed3a {ch} in ag-{c}");
        }
        for ch in [390, 399, 412] {
            assert!(!channels("mixed3b").contains(&ch), "mixed3b {ch} in ag-{c}");
        }
    }
}
