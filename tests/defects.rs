//! The defects an audit found (issue "ImageNet scale on one machine, weights identity, and the
//! defects an audit found"), each with its test, on the first images of the embedded default:
//!
//! - the weights are identified by a content hash: in the manifest and the checkpoint key;
//!   resuming or merging runs of other weights is refused, naming both hashes;
//! - excluding non-semantic channels cannot fail the analysis when a class counts only them;
//! - the `summit2019` exclusions (Lucid InceptionV1's channels) are refused for another model;
//! - PageRank non-convergence is reported (manifest, warning lines);
//! - `Config::classes` builds graphs for those classes only;
//! - an output directory that cannot be written is found before the pass;
//! - output files are created with a regular file's mode, not 0600.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::{config, head, meta, model};
use summit_core::activation::Selection;
use summit_core::influence::{AggregateParams, InfluenceGeometry, LayerParams};
use summit_core::model::{FashionNet, ModelIdentity, StateDict, Summarizable};
use summit_core::{
    Aggregates, CheckpointConfig, Config, Embedding, FashionInception, GraphParams,
    NonSemanticConfig, NonSemanticParams, Pipeline, WriteOptions, analyze, read_manifest,
};

/// The embedded model with one weight changed.
fn perturbed(device: &summit_core::Device) -> FashionInception {
    let (m, _) = model();
    let mut tensors: BTreeMap<String, summit_core::model::HostTensor> = m.net().export().unwrap();
    let key = tensors
        .keys()
        .find(|k| k.ends_with("conv.weight"))
        .cloned()
        .unwrap();
    tensors.get_mut(&key).unwrap().data[0] += 0.25;
    let mut sd = StateDict::from_tensors("<perturbed>", tensors);
    FashionInception::new(FashionNet::from_state_dict(&mut sd, device).unwrap()).unwrap()
}

#[test]
fn weights_identity_guards_resume_and_merge() {
    let (a, device) = model();
    let b = perturbed(&device);
    let id_a = ModelIdentity::of(&a).unwrap();
    let id_b = ModelIdentity::of(&b).unwrap();
    assert_eq!(a.description().name, b.description().name, "same name");
    assert_ne!(id_a.weights, id_b.weights, "other weights, other hash");
    // the hash is of the values, not of the file: saved and reloaded, the same
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("w.safetensors");
    a.net().save(&file).unwrap();
    let reloaded = FashionInception::load(&file, &device).unwrap();
    assert_eq!(ModelIdentity::of(&reloaded).unwrap(), id_a);

    // resume: a checkpoint of model A is refused by a run of model B, naming both hashes
    let data = head(192);
    let ck = tmp.path().join("ck.bin");
    let mut c = config();
    c.checkpoint = Some(CheckpointConfig {
        path: ck.clone(),
        every_batches: 1,
    });
    c.max_batches = Some(1);
    let pa = Pipeline::new(&a, data.clone(), c.clone(), device.clone()).unwrap();
    assert_eq!(pa.identity(), &id_a);
    assert!(!pa.aggregate().unwrap().complete);
    let pb = Pipeline::new(&b, data.clone(), c, device.clone()).unwrap();
    let err = pb.aggregate().unwrap_err().to_string();
    assert!(
        err.contains(&id_a.weights) && err.contains(&id_b.weights),
        "{err}"
    );

    // merge: shard 0 by A, shard 1 by B
    let mut dirs = Vec::new();
    for (i, m) in [(0, &a as &dyn Summarizable), (1, &b)] {
        let mut c = config();
        c.shard = Some((i, 2));
        let p = Pipeline::new(m, data.clone(), c, device.clone()).unwrap();
        let dir = tmp.path().join(format!("shard{i}"));
        let opts = WriteOptions {
            patches: false,
            ..WriteOptions::default()
        };
        p.run(&dir, &meta(&data), None, &opts).unwrap();
        let manifest = read_manifest(&dir).unwrap();
        assert_eq!(
            manifest.model_weights_hash.as_deref(),
            Some(p.identity().weights.as_str())
        );
        assert_eq!(
            manifest.model_description_hash.as_deref(),
            Some(p.identity().description.as_str())
        );
        dirs.push(dir);
    }
    let err = summit_core::merge_outputs(&dirs, &tmp.path().join("m"), &WriteOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&id_a.weights) && err.contains(&id_b.weights),
        "{err}"
    );
    assert!(!tmp.path().join("m").join("manifest.json").exists());
    // ... and a pipeline of model B refuses model A's shards
    let pb = Pipeline::new(&b, data.clone(), config(), device.clone()).unwrap();
    let err = pb
        .merge_shards(
            &[&dirs[0]],
            &tmp.path().join("m2"),
            &meta(&data),
            None,
            &WriteOptions::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&id_a.weights) && err.contains(&id_b.weights),
        "{err}"
    );
}

/// 12 classes, 2 layers of 4 channels, top-1 activation selection: every class counts
/// channel 0 (so it is flagged non-semantic), classes 0–10 also count two other channels
/// (one three times, so that PageRank keeps it),
/// class 11 counts only channel 0.
fn flagged_aggregates() -> Aggregates {
    let layer = |name: &str| LayerParams {
        name: name.into(),
        channels: 4,
        excluded: vec![],
        input_channels: 0,
        paths: vec![],
    };
    let mut params = AggregateParams {
        num_classes: 12,
        layers: vec![layer("l0"), layer("l1")],
        activation_selection: Selection::TopK(1),
        influence_selection: Selection::TopK(1),
        influence_geometry: InfluenceGeometry::LayerOwn,
        examples_per_channel: 1,
    };
    params.layers[1].input_channels = 4;
    let mut agg = Aggregates::new(params).unwrap();
    let mut id = 0u64;
    for class in 0..12usize {
        let tops: Vec<usize> = if class == 11 {
            vec![0, 0, 0]
        } else {
            vec![
                0,
                1 + class % 3,
                1 + class % 3,
                1 + class % 3,
                1 + (class + 1) % 3,
            ]
        };
        for top in tops {
            let mut maxima = vec![0.1f32; 4];
            maxima[top] = 1.0;
            for l in 0..2 {
                agg.add_activations(l, &[id], &[class], &maxima, &[0; 4])
                    .unwrap();
            }
            let mut probs = vec![0.0f32; 12];
            probs[class] = 1.0;
            agg.add_predictions(&[id], &[class], &probs).unwrap();
            id += 1;
        }
    }
    agg
}

#[test]
fn excluding_non_semantic_channels_cannot_fail_the_analysis() {
    let agg = flagged_aggregates();
    let classes: Vec<usize> = (0..12).collect();
    let names: Vec<String> = classes.iter().map(|c| format!("class{c}")).collect();
    let ns = NonSemanticConfig {
        detect: Some(NonSemanticParams::default()),
        exclude: true,
    };
    let a = analyze(
        &agg,
        &classes,
        &names,
        &GraphParams::paper(),
        &Embedding::Pca,
        0,
        &ns,
    )
    .unwrap();
    // channel 0 of both layers is flagged ...
    let flagged: Vec<(usize, u32)> = a
        .non_semantic
        .iter()
        .map(|f| (f.layer, f.channel))
        .collect();
    assert_eq!(flagged, vec![(0, 0), (1, 0)]);
    // ... class 11, which counts nothing else, gets an empty graph, the others theirs
    assert_eq!(a.graphs[11].num_vertices(), 0);
    for c in 0..11 {
        assert!(a.graphs[c].num_vertices() > 0, "class {c}");
        for layer in &a.graphs[c].layers {
            assert!(layer.vertices.iter().all(|v| v.channel != 0), "class {c}");
        }
    }
    // without exclusion class 11 has its graph
    let keep = NonSemanticConfig {
        detect: Some(NonSemanticParams::default()),
        exclude: false,
    };
    let a = analyze(
        &agg,
        &classes,
        &names,
        &GraphParams::paper(),
        &Embedding::Pca,
        0,
        &keep,
    )
    .unwrap();
    assert!(a.graphs[11].num_vertices() > 0);
}

#[test]
fn summit2019_exclusions_are_refused_for_another_model() {
    let (m, device) = model();
    let mut c = Config::summit2019();
    c.progress = false;
    let err = Pipeline::new(&m, head(64), c.clone(), device.clone())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("inceptionv1 (lucid)") && err.contains(&m.description().name),
        "{err}"
    );
    // without them the preset runs on this model
    c.excluded.clear();
    assert!(Pipeline::new(&m, head(64), c, device).is_ok());
}

#[test]
fn graph_classes_pagerank_reports_and_file_modes() {
    let (m, device) = model();
    let data = head(192);
    let mut c = config();
    c.classes = Some(vec![5, 2]);
    // one iteration: PageRank cannot converge
    c.graph.max_iter = 1;
    let p = Pipeline::new(&m, data.clone(), c, device).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let r = p
        .run(&out, &meta(&data), None, &WriteOptions::default())
        .unwrap();
    // graphs for classes 2 and 5 only
    assert_eq!(r.analysis.graph_classes, vec![2, 5]);
    for (c, g) in r.analysis.graphs.iter().enumerate() {
        assert_eq!(g.num_vertices() > 0, c == 2 || c == 5, "class {c}");
    }
    let manifest = read_manifest(&out).unwrap();
    assert_eq!(
        manifest.parameters["graph_classes"],
        serde_json::json!([2, 5])
    );
    for s in &manifest.classes {
        assert_eq!(s.graph_vertices > 0, s.index == 2 || s.index == 5);
    }
    // non-convergence: in the analysis, the manifest and the warning lines
    let unconverged: Vec<usize> = r.analysis.unconverged().iter().map(|u| u.class).collect();
    assert_eq!(unconverged, vec![2, 5]);
    let listed = manifest.parameters["pagerank_not_converged"]
        .as_array()
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["class"], 2);
    assert_eq!(listed[0]["iterations"], 1);
    let names: Vec<&str> = manifest.classes.iter().map(|c| c.name.as_str()).collect();
    let lines = r.analysis.warning_lines(&names);
    assert_eq!(lines.len(), 2);
    assert!(lines[0].contains("Pullover") && lines[0].contains("did not converge"));

    // files: a regular file's mode (0666 less the umask), readable by the group and others
    // under the usual umask, not tempfile's 0600
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let umask = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .and_then(|u| u32::from_str_radix(u.trim(), 8).ok());
    if let Some(umask) = umask {
        use std::os::unix::fs::PermissionsExt;
        for f in [
            "manifest.json",
            "aggregates.bin",
            "index.html",
            "overview.json",
        ] {
            let mode = std::fs::metadata(out.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o666 & !umask, "{f}: mode {mode:o}, umask {umask:o}");
        }
    }
}

#[test]
fn unwritable_output_is_found_before_the_pass() {
    let (m, device) = model();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let ck = tmp.path().join("ck.bin");
    let mut c = config();
    c.checkpoint = Some(CheckpointConfig {
        path: ck.clone(),
        every_batches: 1,
    });
    let data = head(128);
    let p = Pipeline::new(&m, data.clone(), c, device).unwrap();
    // below a regular file (root may write anywhere else, so no permission-based case here)
    let out = file.join("out");
    let err = p
        .run(&out, &meta(&data), None, &WriteOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&out.display().to_string()) && err.contains("not a directory"),
        "{err}"
    );
    assert!(!ck.exists(), "the pass must not have started");
    // a directory nobody can create files in, root included
    if std::path::Path::new("/proc/1").is_dir() {
        let out = std::path::Path::new("/proc/1/summit-out");
        let err = p
            .run(out, &meta(&data), None, &WriteOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("/proc/1/summit-out"), "{err}");
        assert!(!ck.exists(), "the pass must not have started");
    }
}
