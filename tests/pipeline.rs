//! The pipeline end to end on a reduced copy of the embedded default: the first 500 of the
//! embedded Fashion-MNIST test images through the embedded model `FashionInception::embedded`.
//!
//! - the whole run into a temporary directory: manifest, every class's graph against the saved
//!   aggregates, the Summit format (the crate's checker and independent checks here);
//! - a pass interrupted after a checkpoint and resumed equals an uninterrupted pass;
//! - shards 0/2 and 1/2 merged equal one pass (and `merge_outputs` writes a complete output);
//! - re-running into an existing output without `force` is an error naming the directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{Head, config, meta, model};
use summit_core::data::Dataset;
use summit_core::export::{PREDICTIONS_FILE, Predictions};
use summit_core::model::Summarizable;
use summit_core::{
    Aggregates, CheckpointConfig, Device, FashionInception, Pipeline, WriteOptions,
    check_summit_format, merge_aggregate_files, read_manifest,
};

/// Images in the reduced dataset.
const N: usize = 500;
/// Images per batch (`common::config`): 500 = 7 × 64 + 52, so 8 batches.
const BATCH: usize = 64;

/// The first `N` embedded test images.
fn dataset() -> Arc<Head> {
    common::head(N)
}

/// One uninterrupted pass over the reduced dataset.
fn single_pass(model: &FashionInception, device: &Device) -> Aggregates {
    let p = Pipeline::new(model, dataset(), config(), device.clone()).unwrap();
    let r = p.aggregate().unwrap();
    assert!(r.complete);
    assert_eq!((r.images, r.batches, r.processed), (N, 8, N));
    r.aggregates
}

/// Asserts that two aggregates are equal part by part (so a failure says which part), then
/// as a whole.
fn assert_same(a: &Aggregates, b: &Aggregates, what: &str) {
    assert_eq!(a.params(), b.params(), "{what}: parameters");
    assert_eq!(a.activations(), b.activations(), "{what}: A");
    for l in 0..a.params().layers.len() {
        assert_eq!(a.paths(l), b.paths(l), "{what}: I of layer {l}");
    }
    assert_eq!(
        a.class_images(),
        b.class_images(),
        "{what}: images per class"
    );
    assert_eq!(
        a.class_top1_correct(),
        b.class_top1_correct(),
        "{what}: top-1 correct per class"
    );
    let probs = |x: &Aggregates| {
        (0..x.params().num_classes)
            .map(|c| x.probability_histogram(c).map(<[u64]>::to_vec))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        probs(a),
        probs(b),
        "{what}: true-class probability histograms"
    );
    assert_eq!(a.num_images(), b.num_images(), "{what}: image ids");
    assert_eq!(a.examples(), b.examples(), "{what}: example heaps");
    assert_eq!(a.picks(), b.picks(), "{what}: picked images");
    assert!(a == b, "{what}: aggregates");
}

/// Positions of the top-level keys of a JSON object in its text (serde_json's map does not
/// keep the order).
fn key_order(text: &str, keys: &[String]) -> Vec<usize> {
    keys.iter()
        .map(|k| {
            text.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("key {k} missing"))
        })
        .collect()
}

#[test]
fn end_to_end_on_reduced_embedded_default() {
    let (model, device) = model();
    check_end_to_end(&model, device, 3);
}

#[test]
fn end_to_end_on_the_embedded_resnet_with_skip_edges() {
    let device = Device::flex();
    let model = summit_core::OnnxModel::fashion_resnet(&device).unwrap();
    let (_tmp, out, aggs) = check_end_to_end(&model, device, 6);
    // the attribution graphs show skip edges: an edge j -> j counted by an identity path
    let desc = summit_core::Summarizable::description(&model);
    let m = read_manifest(&out).unwrap();
    let mut skip_edges = 0;
    for (c, g) in read_graphs(&out, &m).iter().enumerate() {
        for (l, layer) in g.layers.iter().enumerate() {
            let Some(skip) = desc.paths[l]
                .iter()
                .position(|p| p.hops.last().unwrap().kind == summit_core::model::HopKind::Identity)
            else {
                continue;
            };
            let id = &aggs.paths(l).unwrap()[skip].hops.last().unwrap().clone();
            for v in &layer.vertices {
                for &(p, _) in &v.prev {
                    if p == v.channel
                        && id
                            .get(c, v.channel as usize, v.channel as usize)
                            .unwrap_or(0)
                            > 0
                    {
                        skip_edges += 1;
                    }
                }
            }
        }
    }
    eprintln!("embedded resnet: {skip_edges} skip edges in the attribution graphs");
    assert!(skip_edges > 0, "no skip edge in any attribution graph");
}

/// Every class's attribution graph of an output, by class.
fn read_graphs(
    out: &Path,
    m: &summit_core::export::Manifest,
) -> Vec<summit_core::graph::AttributionGraph> {
    m.classes
        .iter()
        .map(|cs| {
            summit_core::export::read_graph(&out.join(&cs.graph_file))
                .unwrap()
                .graph
        })
        .collect()
}

/// Every vertex of every graph has its feature visualization, 4 diversity images and dataset
/// examples in the project's format and under the Summit paths; a second run takes every
/// channel from the cache and writes the same images.
fn check_feature_vis(
    report: &summit_core::RunReport,
    out: &std::path::Path,
    aggs: &Aggregates,
    model: &dyn summit_core::Summarizable,
    pipeline: &Pipeline<'_>,
    transform: &summit_core::data::Transform,
    ds: &Arc<Head>,
) {
    let fv = report
        .feature_vis
        .as_ref()
        .expect("feature visualization ran");
    let desc = model.description();
    let mut vertices = std::collections::BTreeSet::new();
    for g in &report.analysis.graphs {
        for (l, layer) in g.layers.iter().enumerate() {
            for v in &layer.vertices {
                vertices.insert((l, v.channel as usize));
            }
        }
    }
    assert!(!vertices.is_empty());
    assert_eq!(
        fv.channels.len(),
        vertices.len(),
        "each vertex channel once"
    );
    assert_eq!(fv.computed, vertices.len());
    assert_eq!(fv.cached, 0);
    for &(l, c) in &vertices {
        let e = &fv.channels[&format!("{l}:{c}")];
        assert_eq!(e.diversity.len(), 4);
        for f in std::iter::once(&e.image).chain(&e.diversity) {
            let img = image::open(out.join(f)).unwrap();
            assert_eq!(img.width() as usize, fv.size, "{f}");
        }
    }
    let names: Vec<String> = report
        .output
        .manifest
        .layers
        .iter()
        .map(|l| l.summit_name().to_string())
        .collect();
    let examples = |layer: &str, c: u32| {
        let l = names.iter().position(|n| n == layer).unwrap();
        aggs.examples().get(l, c as usize).unwrap_or_default().len()
    };
    let missing = summit_core::export::missing_summit_images(out, &examples).unwrap();
    assert!(missing.is_empty(), "missing Summit images: {missing:?}");
    // every vertex has at least one dataset example under the Summit path
    for &(l, c) in &vertices {
        assert!(
            examples(&names[l], c as u32) > 0,
            "{}:{c}",
            desc.layers[l].name
        );
    }
    // the channel budget: the largest summed vertex counts, ties by (layer, channel)
    let counts: Vec<usize> = desc.layers.iter().map(|l| l.channels).collect();
    let mut summed: std::collections::BTreeMap<(usize, usize), u64> = Default::default();
    for g in &report.analysis.graphs {
        for (l, layer) in g.layers.iter().enumerate() {
            for v in &layer.vertices {
                *summed.entry((l, v.channel as usize)).or_default() += u64::from(v.count);
            }
        }
    }
    let mut brute: Vec<((usize, usize), u64)> = summed.into_iter().collect();
    brute.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let budget = summit_core::feature_vis_channels(
        &report.analysis,
        summit_core::FeatureVisMode::Vertices,
        &counts,
        Some(3),
    );
    let got: BTreeSet<(usize, usize)> = budget
        .iter()
        .enumerate()
        .flat_map(|(l, s)| s.iter().map(move |&c| (l, c)))
        .collect();
    let want: BTreeSet<(usize, usize)> = brute.iter().take(3).map(|x| x.0).collect();
    assert_eq!(got, want, "the 3 channels of the budget");
    let all = summit_core::feature_vis_channels(
        &report.analysis,
        summit_core::FeatureVisMode::All,
        &counts,
        None,
    );
    assert_eq!(all.iter().map(BTreeSet::len).collect::<Vec<_>>(), counts);
    let js = std::fs::read_to_string(out.join("view/featvis.js")).unwrap();
    assert!(js.starts_with("summitFeatVisData({"));
    // the web view: vertices are images, hovering across one steps through its diversity
    // images
    common::browser_script("featvis.mjs", &[out]);
    // a re-run: everything from the cache, the same images
    let again = out.with_file_name("again");
    let r2 = pipeline
        .run(&again, &meta(ds), Some(transform), &WriteOptions::default())
        .unwrap();
    let fv2 = r2.feature_vis.unwrap();
    assert_eq!((fv2.computed, fv2.cached), (0, vertices.len()));
    for (k, e) in &fv.channels {
        let e2 = &fv2.channels[k];
        assert!(e2.cached);
        for (a, b) in std::iter::once(&e.image)
            .chain(&e.diversity)
            .zip(std::iter::once(&e2.image).chain(&e2.diversity))
        {
            assert_eq!(
                std::fs::read(out.join(a)).unwrap(),
                std::fs::read(again.join(b)).unwrap(),
                "{a}"
            );
        }
    }
    std::fs::remove_dir_all(&again).unwrap();
}

/// Runs the whole pipeline on the reduced dataset and checks the manifest, every graph, the
/// Summit format and the refusal to overwrite; returns the output for more checks.
fn check_end_to_end(
    model: &dyn summit_core::Summarizable,
    device: Device,
    n_layers: usize,
) -> (tempfile::TempDir, std::path::PathBuf, Aggregates) {
    let ds = dataset();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let transform = ds.transform().clone();
    // feature visualizations of every vertex, a tiny step budget, cached under the test's
    // directory
    let cache = tmp.path().join("cache");
    let mut fv_config = summit_core::FeatureVisConfig {
        cache: Some(cache.clone()),
        ..Default::default()
    };
    fv_config.params.steps = 2;
    fv_config.params.batch_size = 64;
    let mut cfg = config();
    cfg.feature_vis = Some(fv_config);
    let pipeline = Pipeline::new(model, ds.clone(), cfg, device).unwrap();
    let report = pipeline
        .run(&out, &meta(&ds), Some(&transform), &WriteOptions::default())
        .unwrap();
    let pass = report.pass.as_ref().unwrap();
    check_feature_vis(
        &report,
        &out,
        &pass.aggregates,
        model,
        &pipeline,
        &transform,
        &ds,
    );
    assert_eq!(pass.images, N);
    assert!(pass.skipped.is_empty());

    // ---- manifest
    let m = read_manifest(&out).unwrap();
    let names = ds.class_names();
    assert_eq!(m.classes.len(), names.len());
    assert_eq!(m.total_images, N as u64);
    assert_eq!(m.dataset.images_seen, N as u64);
    assert!(m.dataset.skipped.is_empty());
    assert_eq!(m.classes.iter().map(|c| c.images).sum::<u64>(), N as u64);
    let correct: u64 = m.classes.iter().map(|c| c.top1_correct).sum();
    for (c, cs) in m.classes.iter().enumerate() {
        // counted independently from the labels of the reduced dataset
        let n = ds.labels().iter().filter(|&&l| l == c).count() as u64;
        assert_eq!(
            (cs.index, cs.name.as_str(), cs.images),
            (c, names[c].as_str(), n)
        );
        assert!(n > 0, "every class has images among the first {N}");
        let acc = cs.accuracy.expect("per-class accuracy");
        assert!((acc - cs.top1_correct as f64 / n as f64).abs() < 1e-12);
        assert_eq!(cs.probability_histogram.iter().sum::<u64>(), n);
    }
    let acc = m.accuracy.expect("overall accuracy");
    assert!((acc - correct as f64 / N as f64).abs() < 1e-12);
    assert!(
        acc > 0.8,
        "the embedded models are over 91 % accurate, got {acc}"
    );
    assert_eq!(m.preset, "paper");
    assert_eq!(m.model, model.description().name);
    assert_eq!(m.parameters["config"]["batch_size"], BATCH);
    assert_eq!(
        m.parameters["config"]["activation_selection"]["TopMass"],
        0.03
    );
    assert_eq!(m.parameters["aggregation"]["num_classes"], 10);
    assert_eq!(m.layers.len(), n_layers);
    assert!(m.summit_format);
    let patches = m.patches.as_ref().expect("patches written");
    assert!(patches.written > 0 && patches.missing_images == 0);
    for f in &m.files {
        assert!(
            out.join(f).is_file(),
            "manifest lists {f}, which is missing"
        );
    }
    assert!(out.join("index.html").is_file());

    // ---- the saved aggregates are the pass's
    let aggs = Aggregates::load(out.join("aggregates.bin")).unwrap();
    assert_same(&aggs, &pass.aggregates, "saved aggregates");
    let layers = &aggs.params().layers;

    // ---- every class's attribution graph
    let edges = summit_core::merged_edges(&aggs).unwrap();
    let mut non_empty = 0;
    for (c, cs) in m.classes.iter().enumerate() {
        let g = summit_core::export::read_graph(&out.join(&cs.graph_file)).unwrap();
        assert_eq!((g.class, g.name.as_str()), (c, names[c].as_str()));
        let g = g.graph;
        assert_eq!(g.layers.len(), layers.len());
        let (mut nv, mut ne) = (0, 0);
        for (l, layer) in g.layers.iter().enumerate() {
            assert_eq!(layer.name, layers[l].name);
            let a_row = aggs.activations().row(l, c).unwrap();
            let mut seen = BTreeSet::new();
            for v in &layer.vertices {
                assert!(
                    seen.insert(v.channel),
                    "class {c} layer {l}: vertex listed twice"
                );
                assert!((v.channel as usize) < layers[l].channels);
                assert_eq!(
                    v.count, a_row[v.channel as usize],
                    "class {c} layer {l} ch {}",
                    v.channel
                );
                // selected by PageRank: a vertex may carry no image of its own (A = 0) when
                // influence edges (a residual block's skips) bring it mass (SPEC §3)
                assert!(v.pagerank > 0.0, "a selected vertex has PageRank mass");
                if l == 0 {
                    assert!(
                        v.prev.is_empty(),
                        "first-layer vertices have no incoming edges"
                    );
                }
                for &(p, w) in &v.prev {
                    // an edge joins selected vertices of adjacent layers ...
                    assert!(
                        g.layers[l - 1].vertex(p).is_some(),
                        "class {c}: edge {p} -> {} into layer {l} starts at an unselected vertex",
                        v.channel
                    );
                    // ... and weighs the merged influence count
                    let row = edges[l].row(c, v.channel as usize).unwrap();
                    let merged = row.iter().find(|&(i, _)| i == p).expect("edge in I");
                    assert_eq!(w, f64::from(merged.1));
                }
                nv += 1;
                ne += v.prev.len();
            }
        }
        assert_eq!(
            (cs.graph_vertices, cs.graph_edges),
            (nv, ne),
            "class {c} in the manifest"
        );
        if g.layers.iter().all(|l| !l.vertices.is_empty()) && ne > 0 {
            non_empty += 1;
        }
    }
    assert_eq!(
        non_empty,
        m.classes.len(),
        "every class has a connected graph"
    );

    // ---- motifs.json: every motif is in exactly the graphs of the classes it lists
    let text = std::fs::read_to_string(out.join("motifs.json")).unwrap();
    let motifs: serde_json::Value = serde_json::from_str(&text).unwrap();
    let set: summit_core::graph::MotifSet = serde_json::from_value(motifs.clone()).unwrap();
    assert_eq!(motifs["layers"].as_array().unwrap().len(), layers.len());
    assert_eq!(set.graphs, m.classes.len());
    let graphs = read_graphs(&out, &m);
    for motif in &set.motifs {
        assert!(motif.support() >= set.min_support);
        for (c, g) in graphs.iter().enumerate() {
            assert_eq!(
                summit_core::graph::graph_contains(g, motif),
                motif.classes.contains(&c),
                "motif {motif:?} in class {c}"
            );
        }
    }
    eprintln!(
        "{}: {} motifs (support >= {})",
        model.description().name,
        set.motifs.len(),
        set.min_support
    );

    // ---- the Summit format (SPEC §5): the crate's checker ...
    check_summit_format(&out).unwrap();
    // ... and independent checks of a few keys
    let summit_names: Vec<String> = m
        .layers
        .iter()
        .map(|l| l.summit_name().to_string())
        .collect();
    let text = std::fs::read_to_string(out.join("data/imagenet.json")).unwrap();
    let classes: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(classes.len(), 10);
    let expected_keys: BTreeSet<&str> = [
        "synset",
        "name",
        "label",
        "target_class",
        "numOfInstances",
        "topOneAcc",
        "accs",
        "topChannels",
        "embed",
    ]
    .into();
    for (c, e) in classes.iter().enumerate() {
        let keys: BTreeSet<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, expected_keys);
        assert_eq!(e["name"], names[c].as_str());
        assert_eq!(e["numOfInstances"], m.classes[c].images);
        assert_eq!(
            e["accs"].as_array().unwrap().len() as u64,
            m.classes[c].images
        );
        let target = e["target_class"].as_u64().unwrap() as usize;
        for (l, ln) in summit_names.iter().enumerate() {
            let top = e["topChannels"][ln].as_array().unwrap();
            let a_row = aggs.activations().row(l, c).unwrap();
            assert_eq!(top.len(), a_row.iter().filter(|&&v| v > 0).count());
            let mut last = u64::MAX;
            for t in top {
                let (ch, cnt) = (t["c"].as_u64().unwrap(), t["i"].as_u64().unwrap());
                assert_eq!(cnt, u64::from(a_row[ch as usize]));
                assert!(cnt <= last, "topChannels sorted by count descending");
                last = cnt;
            }
            assert!(e["embed"][ln]["x"].is_number() && e["embed"][ln]["y"].is_number());
        }
        let ag_path = out.join(format!("data/ag/ag-{target}.json"));
        let ag_text = std::fs::read_to_string(&ag_path).unwrap();
        let ag: serde_json::Value = serde_json::from_str(&ag_text).unwrap();
        let mut rev = summit_names.clone();
        rev.reverse();
        let pos = key_order(&ag_text, &rev);
        assert!(
            pos.windows(2).all(|w| w[0] < w[1]),
            "layer keys from last to first"
        );
        assert_eq!(ag.as_object().unwrap().len(), summit_names.len());
        for (l, ln) in summit_names.iter().enumerate() {
            let vs = ag[ln].as_array().unwrap();
            let a_row = aggs.activations().row(l, c).unwrap();
            for v in vs {
                assert_eq!(v["layer"], ln.as_str());
                let ch = v["channel"].as_u64().unwrap() as usize;
                assert_eq!(v["count"].as_u64().unwrap(), u64::from(a_row[ch]));
                for p in v["prev_channels"].as_array().unwrap() {
                    assert!(l > 0);
                    let below: Vec<u64> = ag[&summit_names[l - 1]]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x["channel"].as_u64().unwrap())
                        .collect();
                    assert!(below.contains(&p["prev_channel"].as_u64().unwrap()));
                }
            }
        }
    }

    // ---- re-running into the existing output without force: an error naming the directory
    let err = pipeline
        .run(&out, &meta(&ds), Some(&transform), &WriteOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains(&out.display().to_string()), "{err}");
    assert!(err.contains("--force"), "{err}");
    // the output is untouched
    assert_eq!(read_manifest(&out).unwrap(), m);
    (tmp, out, aggs)
}

#[test]
fn interrupted_pass_resumes_to_the_same_aggregates() {
    let (model, device) = model();
    let reference = single_pass(&model, &device);
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("ck/run.ckpt");
    let mut c = config();
    c.checkpoint = Some(CheckpointConfig {
        path: ck.clone(),
        every_batches: 2,
    });
    // stop after 3 batches (checkpoints after batch 2 and, on stopping, after batch 3)
    c.max_batches = Some(3);
    let p = Pipeline::new(&model, dataset(), c.clone(), device.clone()).unwrap();
    let first = p.aggregate().unwrap();
    assert!(!first.complete);
    assert_eq!(
        (first.batches, first.processed, first.resumed_from),
        (3, 3 * BATCH, 0)
    );
    assert!(ck.is_file());
    assert_ne!(
        first.aggregates, reference,
        "a partial pass is not the whole"
    );
    // resume with a new pipeline (as after a restart) and run to the end
    c.max_batches = None;
    let p = Pipeline::new(&model, dataset(), c.clone(), device.clone()).unwrap();
    let second = p.aggregate().unwrap();
    assert!(second.complete);
    assert_eq!(second.resumed_from, 3 * BATCH);
    assert_eq!(
        (second.batches, second.images, second.processed),
        (5, N - 3 * BATCH, N)
    );
    assert_same(&second.aggregates, &reference, "resumed pass");
    // a pass over a finished checkpoint does nothing more and gives the same
    let p = Pipeline::new(&model, dataset(), c.clone(), device.clone()).unwrap();
    let third = p.aggregate().unwrap();
    assert_eq!((third.batches, third.resumed_from), (0, N));
    assert_same(&third.aggregates, &reference, "finished checkpoint");
    // the predictions log beside the checkpoint, resumed, is an uninterrupted pass's
    let whole = Pipeline::new(&model, dataset(), config(), device.clone())
        .unwrap()
        .aggregate()
        .unwrap();
    let whole_log = tmp.path().join("whole.predictions");
    whole
        .predictions
        .as_ref()
        .unwrap()
        .copy_to(&whole_log)
        .unwrap();
    let log = summit_core::predictions_log_path(&ck);
    assert_eq!(
        std::fs::read(&log).unwrap(),
        std::fs::read(&whole_log).unwrap()
    );
    // a checkpoint whose log is gone is refused, naming the checkpoint
    std::fs::remove_file(&log).unwrap();
    let p = Pipeline::new(&model, dataset(), c, device).unwrap();
    let err = p.aggregate().unwrap_err().to_string();
    assert!(
        err.contains("run.ckpt") && err.contains("predictions log"),
        "{err}"
    );
}

#[test]
fn two_shards_merged_equal_one_pass() {
    let (model, device) = model();
    let ds = dataset();
    let reference = single_pass(&model, &device);
    let tmp = tempfile::tempdir().unwrap();
    let transform = ds.transform().clone();
    let mut dirs = Vec::new();
    for i in 0..2 {
        let mut c = config();
        c.shard = Some((i, 2));
        let p = Pipeline::new(&model, ds.clone(), c, device.clone()).unwrap();
        let idx = p.indices().unwrap();
        assert_eq!(idx, (i * N / 2..(i + 1) * N / 2).collect::<Vec<_>>());
        let dir = tmp.path().join(format!("shard{i}"));
        p.run(&dir, &meta(&ds), Some(&transform), &WriteOptions::default())
            .unwrap();
        dirs.push(dir);
    }
    let files: Vec<PathBuf> = dirs.iter().map(|d| d.join("aggregates.bin")).collect();
    let merged = merge_aggregate_files(&files).unwrap();
    assert_same(&merged, &reference, "merged shards");
    // in the other order too
    let merged_rev = merge_aggregate_files(&[&files[1], &files[0]]).unwrap();
    assert_same(&merged_rev, &reference, "merged shards, reverse order");
    // a shard twice is refused
    assert!(merge_aggregate_files(&[&files[0], &files[0]]).is_err());

    // the merged output directory: aggregates, graphs of every class, Summit format
    let out = tmp.path().join("merged");
    let report = summit_core::merge_outputs(&dirs, &out, &WriteOptions::default()).unwrap();
    assert_eq!(report.phases.first().map(|p| p.0.as_str()), Some("merge"));
    let saved = Aggregates::load(out.join("aggregates.bin")).unwrap();
    assert_same(&saved, &reference, "merged output");
    let m = read_manifest(&out).unwrap();
    assert_eq!(m.total_images, N as u64);
    check_summit_format(&out).unwrap();
    // the merged graphs are those of a single run's analysis
    let single = tmp.path().join("single");
    let p = Pipeline::new(&model, ds.clone(), config(), device.clone()).unwrap();
    p.finish(
        &reference,
        &[],
        None,
        &mut Vec::new(),
        &single,
        &meta(&ds),
        None,
        &WriteOptions::default(),
    )
    .unwrap();
    let ms = read_manifest(&single).unwrap();
    for (a, b) in m.classes.iter().zip(&ms.classes) {
        let ga = summit_core::export::read_graph(&out.join(&a.graph_file)).unwrap();
        let gb = summit_core::export::read_graph(&single.join(&b.graph_file)).unwrap();
        assert_eq!(ga, gb, "graph of class {}", a.name);
    }
    // merged through the pipeline of the same model and dataset: with the patches of the
    // merged examples, the same files as a single run writes
    let p = Pipeline::new(&model, ds.clone(), config(), device.clone()).unwrap();
    let with_patches = tmp.path().join("merged-patches");
    p.merge_shards(
        &dirs,
        &with_patches,
        &meta(&ds),
        Some(&transform),
        &WriteOptions::default(),
    )
    .unwrap();
    let single_run = tmp.path().join("single-run");
    p.run(
        &single_run,
        &meta(&ds),
        Some(&transform),
        &WriteOptions::default(),
    )
    .unwrap();
    let mp = read_manifest(&with_patches).unwrap();
    let sp = read_manifest(&single_run).unwrap();
    // every image's top 5 (SPEC §5.1): the shards' files overlaid, by either merge, are the
    // single run's byte for byte, and the single run's are the model's own, image by image
    let preds = |d: &Path| std::fs::read(d.join(PREDICTIONS_FILE)).unwrap();
    assert_eq!(preds(&with_patches), preds(&single_run));
    assert_eq!(preds(&out), preds(&single_run));
    assert!(sp.files.iter().any(|f| f == PREDICTIONS_FILE));
    let top5 = Predictions::read(&single_run.join(PREDICTIONS_FILE)).unwrap();
    assert_eq!((top5.len(), top5.processed()), (N, N));
    for i in (0..N).step_by(7) {
        let img = ds.load(i).unwrap();
        let [c, h, w] = img.dims();
        let x = summit_core::model::burn::tensor::Tensor::<4>::from_data(
            summit_core::model::burn::tensor::TensorData::new(img.data, [1, c, h, w]),
            &device,
        );
        let logits = summit_core::model::to_host(model.forward(x).unwrap(), "logits").unwrap();
        let probs = summit_core::softmax_rows(&logits, logits.len());
        let want = summit_core::export::top_k(&probs, 5);
        let got = top5.get(i).unwrap();
        for ((wc, wp), (gc, gp)) in want.iter().zip(&got) {
            assert_eq!(wc, gc, "image {i}: {want:?} vs {got:?}");
            assert!(
                (wp - gp).abs() <= 1.0 / 65535.0,
                "image {i}: {want:?} vs {got:?}"
            );
        }
    }
    let (pm, ps) = (mp.patches.as_ref().unwrap(), sp.patches.as_ref().unwrap());
    assert!(pm.written > 0);
    assert_eq!(
        (pm.written, pm.missing_images),
        (ps.written, ps.missing_images)
    );
    let listing = |d: &std::path::Path| {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(d.join("patches"))
            .unwrap()
            .flat_map(|e| {
                let e = e.unwrap();
                if e.path().is_dir() {
                    std::fs::read_dir(e.path())
                        .unwrap()
                        .map(|f| f.unwrap().path())
                        .collect::<Vec<_>>()
                } else {
                    vec![e.path()]
                }
            })
            .map(|f| {
                (
                    f.strip_prefix(d).unwrap().display().to_string(),
                    std::fs::read(&f).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        listing(&with_patches),
        listing(&single_run),
        "patch files differ"
    );
    assert_same(
        &Aggregates::load(with_patches.join("aggregates.bin")).unwrap(),
        &reference,
        "merged output with patches",
    );
    // a pipeline with other parameters refuses the shards
    let mut other_cfg = config();
    other_cfg.activation_selection = summit_core::activation::Selection::TopMass(0.05);
    let other_p = Pipeline::new(&model, ds.clone(), other_cfg, device.clone()).unwrap();
    let err = other_p
        .merge_shards(
            &dirs,
            &tmp.path().join("refused"),
            &meta(&ds),
            None,
            &WriteOptions::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("aggregation parameters"), "{err}");

    // merging into one of the shards, or into an existing output without force, is refused
    let err = summit_core::merge_outputs(&dirs, &dirs[0], &WriteOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains(&dirs[0].display().to_string()), "{err}");
    let err = summit_core::merge_outputs(&dirs, &out, &WriteOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains(&out.display().to_string()), "{err}");

    // a shard of another model is refused, naming it
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    for f in ["aggregates.bin", "manifest.json"] {
        std::fs::copy(dirs[1].join(f), other.join(f)).unwrap();
    }
    let mut om: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(other.join("manifest.json")).unwrap())
            .unwrap();
    om["model"] = "another-model".into();
    std::fs::write(other.join("manifest.json"), om.to_string()).unwrap();
    let err = summit_core::merge_outputs(
        &[&dirs[0], &other],
        &tmp.path().join("m2"),
        &WriteOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(&other.display().to_string()) && err.contains("model"),
        "{err}"
    );

    // comparison of two classes of the merged output, by name
    let cmp = summit_core::compare_output_classes(&out, "Trouser", "sandal").unwrap();
    assert_eq!((cmp.a.0, cmp.b.0), (1, 5));
    assert!(cmp.path.ends_with(Path::new("comparisons/1-vs-5.json")));
    assert!(cmp.path.is_file());
    let err = summit_core::compare_output_classes(&out, "Trouser", "Socks")
        .unwrap_err()
        .to_string();
    assert!(err.contains("Socks") && err.contains("Ankle boot"), "{err}");
}

#[test]
fn stability_equals_the_jaccard_of_two_separately_aggregated_halves() {
    let (model, device) = model();
    let ds = dataset();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut cfg = config();
    cfg.stability = true;
    let pipeline = Pipeline::new(&model, ds.clone(), cfg.clone(), device.clone()).unwrap();
    let report = pipeline
        .run(&out, &meta(&ds), None, &WriteOptions::default())
        .unwrap();
    // the whole is the one-pass aggregates, whatever the split
    assert_same(
        &report.pass.as_ref().unwrap().aggregates,
        &single_pass(&model, &device),
        "merged halves",
    );
    let m = read_manifest(&out).unwrap();
    // independently: each half as its own dataset, aggregated by its own pipeline, graphs
    // built from its aggregates
    let names: Vec<String> = ds.class_names().to_vec();
    let whole_graphs = read_graphs(&out, &m);
    let mut half_graphs = Vec::new();
    let mut half_images = Vec::new();
    for h in 0..2 {
        let keep: Vec<usize> = (0..N)
            .filter(|&i| summit_core::stability_half(i) == h)
            .collect();
        let sub = Arc::new(common::Subset::new(ds.clone(), keep));
        let mut c = config();
        c.stability = false;
        let p = Pipeline::new(&model, sub, c.clone(), device.clone()).unwrap();
        let pass = p.aggregate().unwrap();
        let classes: Vec<usize> = (0..names.len()).collect();
        half_images.push(pass.aggregates.class_images().to_vec());
        half_graphs.push(
            summit_core::analysis::class_graphs(&pass.aggregates, &classes, &names, &c.graph, &[])
                .unwrap(),
        );
    }
    let mut seen_unstable = false;
    for (c, cs) in m.classes.iter().enumerate() {
        let st = cs.stability.as_ref().expect("stability of every class");
        let (a, b, w) = (
            summit_core::analysis::vertex_set(&half_graphs[0][c]),
            summit_core::analysis::vertex_set(&half_graphs[1][c]),
            summit_core::analysis::vertex_set(&whole_graphs[c]),
        );
        let j = |x: &BTreeSet<(usize, u32)>, y: &BTreeSet<(usize, u32)>| {
            x.intersection(y).count() as f64 / x.union(y).count().max(1) as f64
        };
        assert_eq!(
            st.images,
            [half_images[0][c], half_images[1][c]],
            "class {c}"
        );
        assert_eq!(st.images[0] + st.images[1], cs.images);
        assert!(
            (st.halves - j(&a, &b)).abs() < 1e-12,
            "class {c}: {} vs {}",
            st.halves,
            j(&a, &b)
        );
        assert!((st.whole_vs_half[0] - j(&w, &a)).abs() < 1e-12);
        assert!((st.whole_vs_half[1] - j(&w, &b)).abs() < 1e-12);
        seen_unstable |= st.halves < 1.0;
    }
    assert!(
        seen_unstable,
        "with 250 images per half some graph differs between the halves"
    );
    // refused with checkpoints
    let mut bad = cfg;
    bad.checkpoint = Some(CheckpointConfig {
        path: tmp.path().join("ck.bin"),
        every_batches: 1,
    });
    let e = Pipeline::new(&model, ds, bad, device)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("--stability"), "{e}");
}

/// A run whose dataset leaves most classes without a single image (issue 29: a 1000-class run
/// over a folder of 3 classes): those classes get no per-class view script, do not count
/// towards a motif's support, and the page lists them only behind a toggle.
#[test]
fn classes_without_images_stay_out_of_the_output_and_the_sidebar() {
    let ds = common::head(6);
    let mut with_images: Vec<usize> = ds.labels().to_vec();
    with_images.sort_unstable();
    with_images.dedup();
    let classes = ds.class_names().len();
    assert!(
        with_images.len() < classes,
        "the test needs classes without images"
    );
    let (model, device) = model();
    let mut c = config();
    c.attribution = None;
    let transform = ds.transform().clone();
    let pipeline = Pipeline::new(&model, ds.clone(), c, device).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let report = pipeline
        .run(&out, &meta(&ds), Some(&transform), &WriteOptions::default())
        .unwrap();
    for k in 0..classes {
        let script = out.join(format!("view/class-{k}.js"));
        assert_eq!(
            script.exists(),
            with_images.contains(&k),
            "class {k}: a view script exactly when it has images"
        );
    }
    assert_eq!(
        report.analysis.motifs.graphs,
        with_images.len(),
        "motif support counts the classes with images"
    );
    let exp = tmp.path().join("expected.json");
    std::fs::write(
        &exp,
        format!(
            r#"{{"withImages": {}, "classes": {classes}, "empty": {}}}"#,
            with_images.len(),
            (0..classes).find(|k| !with_images.contains(k)).unwrap()
        ),
    )
    .unwrap();
    common::browser_script("empty_classes.mjs", &[&out, &exp]);
}
