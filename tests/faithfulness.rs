//! Faithfulness by ablation (SPEC §3.1), checked against independent computations:
//!
//! - ablating channels through the tap sink equals a forward pass of the model with those
//!   channels' convolution, batch norm scale and shift zeroed in its weights;
//! - every per-class figure of a run equals a brute force over every image of a small dataset
//!   (one image per forward, the ablation done on host values);
//! - reruns, thread counts and shard splits give the same `faithfulness.json`, byte for byte,
//!   and another batch size the same figures within rounding.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::{config, head, meta, model};
use summit_core::data::Dataset;
use summit_core::export::{ClassFaithfulness, FaithfulnessReport};
use summit_core::faithfulness::{FaithfulnessConfig, class_sample, random_draw};
use summit_core::influence::id_hash;
use summit_core::model::burn::tensor::{Tensor, TensorData};
use summit_core::model::{
    AblationFill, ChannelSet, FashionInception, FashionNet, StateDict, Summarizable, TapId,
    forward_ablated, to_host,
};
use summit_core::{Config, Pipeline, RunReport, WriteOptions};

const N: usize = 240;

fn small_faithfulness() -> FaithfulnessConfig {
    FaithfulnessConfig {
        per_class: 9,
        draws: 4,
        neighbours: 3,
        per_neighbour: 4,
        deletion_points: 4,
        ..Default::default()
    }
}

fn faith_config() -> Config {
    let mut c = config();
    c.attribution = None;
    c.faithfulness = Some(small_faithfulness());
    c
}

fn run(c: Config, out: &std::path::Path) -> RunReport {
    let (m, device) = model();
    let data = head(N);
    let p = Pipeline::new(&m, data.clone(), c, device).unwrap();
    p.run(out, &meta(&data), None, &WriteOptions::default())
        .unwrap()
}

fn softmax(logits: &[f32]) -> Vec<f64> {
    let m = logits
        .iter()
        .map(|&v| f64::from(v))
        .fold(f64::MIN, f64::max);
    let e: Vec<f64> = logits.iter().map(|&v| (f64::from(v) - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// One image through the model, the channels of `set` zeroed on host values at each summary
/// layer: `(p(class), predicted == class)`.
fn brute(model: &dyn Summarizable, img: &[f32], set: &[Vec<u32>], class: usize) -> (f64, bool) {
    let desc = model.description();
    let device = summit_core::Device::flex();
    let x = Tensor::<4>::from_data(TensorData::new(img.to_vec(), [1, 1, 28, 28]), &device);
    let mut sink = |id: TapId, t: Tensor<4>| -> Tensor<4> {
        let Some(l) = desc.layers.iter().position(|l| l.tap == id) else {
            return t;
        };
        let Some(chans) = set.get(l).filter(|c| !c.is_empty()) else {
            return t;
        };
        let dims = t.dims();
        let mut v = to_host(t, "tap").unwrap();
        let hw = dims[2] * dims[3];
        for &c in chans {
            v[c as usize * hw..(c as usize + 1) * hw].fill(0.0);
        }
        Tensor::from_data(TensorData::new(v, dims), &device)
    };
    let logits = to_host(model.forward_taps(x, &mut sink).unwrap(), "logits").unwrap();
    let p = softmax(&logits);
    let pred = (0..p.len())
        .max_by(|&a, &b| p[a].total_cmp(&p[b]).then(b.cmp(&a)))
        .unwrap();
    (p[class], pred == class)
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= 1e-5, "{what}: run {a}, brute force {b}");
}

#[test]
fn ablation_through_the_tap_sink_equals_zeroed_weights() {
    let (m, device) = model();
    // channels of mixed3a's 1×1 branch (0..24) and 3×3 branch (24..72), and of mixed4a's
    // 5×5 branch (48 + 64 = 112 ..136); each is a convolution + batch norm + ReLU
    let edits = [
        (0usize, "mixed3a.branch1", 3u32, 3usize),
        (0, "mixed3a.branch2.1", 29, 5),
        (2, "mixed4a.branch3.1", 115, 3),
    ];
    let mut tensors = m.net().export().unwrap();
    for (_, prefix, _, ch) in edits {
        for key in ["bn.weight", "bn.bias"] {
            tensors.get_mut(&format!("{prefix}.{key}")).unwrap().data[ch] = 0.0;
        }
        let w = tensors.get_mut(&format!("{prefix}.conv.weight")).unwrap();
        let per = w.data.len() / w.shape[0];
        w.data[ch * per..(ch + 1) * per].fill(0.0);
    }
    let mut sd = StateDict::from_tensors("<edited>", tensors);
    let edited =
        FashionInception::new(FashionNet::from_state_dict(&mut sd, &device).unwrap()).unwrap();
    let data = head(16);
    let mut x = Vec::new();
    for i in 0..16 {
        x.extend(data.load(i).unwrap().data);
    }
    let x = Tensor::<4>::from_data(TensorData::new(x, [16, 1, 28, 28]), &device);
    let mut set = ChannelSet {
        layers: vec![Vec::new(); 3],
    };
    for (l, _, concat, _) in edits {
        set.layers[l].push(concat);
    }
    let sets = vec![set; 16];
    let ablated = to_host(
        forward_ablated(&m, x.clone(), &sets, &AblationFill::Zero).unwrap(),
        "a",
    )
    .unwrap();
    let want = to_host(edited.forward(x.clone()).unwrap(), "e").unwrap();
    let plain = to_host(m.forward(x).unwrap(), "p").unwrap();
    let max_diff = ablated
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max_diff < 1e-4, "ablated vs edited weights: {max_diff}");
    let moved = plain
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        moved > 1e-2,
        "the edit changed nothing ({moved}): not a test"
    );
    // a channel out of range is an error naming the layer
    let bad = vec![
        ChannelSet {
            layers: vec![vec![104]]
        };
        1
    ];
    let x = Tensor::<4>::zeros([1, 1, 28, 28], &device);
    let e = forward_ablated(&m, x, &bad, &AblationFill::Zero).unwrap_err();
    assert!(
        e.to_string().contains("mixed3a") && e.to_string().contains("104"),
        "{e}"
    );
}

#[test]
fn a_shared_prefix_equals_the_image_repeated() {
    let (m, device) = model();
    let resnet = summit_core::model::OnnxModel::fashion_resnet(&device).unwrap();
    let img = head(4).load(3).unwrap().data;
    for model in [&m as &dyn Summarizable, &resnet] {
        let layers = model.description().layers.len();
        let sets: Vec<ChannelSet> = (0..5u32)
            .map(|k| ChannelSet {
                layers: (0..layers)
                    .map(|l| (0..k).map(|c| c * 3 + l as u32).collect())
                    .collect(),
            })
            .collect();
        let one = Tensor::<4>::from_data(TensorData::new(img.clone(), [1, 1, 28, 28]), &device);
        let shared = to_host(
            summit_core::model::forward_ablated_shared(model, one, &sets, &AblationFill::Zero)
                .unwrap(),
            "s",
        )
        .unwrap();
        let rep: Vec<f32> = (0..sets.len()).flat_map(|_| img.iter().copied()).collect();
        let x = Tensor::<4>::from_data(TensorData::new(rep, [5, 1, 28, 28]), &device);
        let plain = to_host(
            forward_ablated(model, x, &sets, &AblationFill::Zero).unwrap(),
            "p",
        )
        .unwrap();
        assert_eq!(shared.len(), plain.len());
        for (a, b) in shared.iter().zip(&plain) {
            assert!(
                (a - b).abs() < 1e-5,
                "{}: {a} vs {b}",
                model.description().name
            );
        }
        // rows differ: the sets ablate more and more
        assert_ne!(&plain[..10], &plain[40..]);
    }
    let two = Tensor::<4>::zeros([2, 1, 28, 28], &device);
    let e = summit_core::model::forward_ablated_shared(
        &m,
        two,
        &[ChannelSet::none()],
        &AblationFill::Zero,
    )
    .unwrap_err();
    assert!(e.to_string().contains("one image"), "{e}");
}

#[test]
fn every_figure_equals_a_brute_force_over_the_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let fc = small_faithfulness();
    // SUMMIT_VIEW_OUT keeps the output (and the browser check's screenshots) to look at
    let out = std::env::var_os("SUMMIT_VIEW_OUT")
        .map_or_else(|| tmp.path().join("out"), std::path::PathBuf::from);
    let report = run(faith_config(), &out);
    let f = report.faithfulness.as_ref().expect("faithfulness measured");
    assert!(
        f.shared_prefix,
        "the embedded network shares each image's prefix"
    );
    let written: FaithfulnessReport =
        serde_json::from_slice(&std::fs::read(out.join("faithfulness.json")).unwrap()).unwrap();
    assert_eq!(&written, f);
    let manifest = summit_core::read_manifest(&out).unwrap();
    assert_eq!(manifest.faithfulness.as_ref(), Some(&f.summary));

    let (m, _) = model();
    let data = head(N);
    let labels = data.labels().to_vec();
    let aggs = &report.pass.as_ref().unwrap().aggregates;
    let analysis = &report.analysis;
    let images: Vec<Vec<f32>> = (0..N).map(|i| data.load(i).unwrap().data).collect();
    let all: Vec<usize> = (0..N).collect();
    let channels: Vec<usize> = m.description().layers.iter().map(|l| l.channels).collect();
    let no_ex = vec![Vec::new(); channels.len()];
    let sim = analysis.overview.similarity.last().unwrap();
    assert_eq!(f.classes.len(), 10);
    let mut ablated = 0;
    for cf in &f.classes {
        let c = cf.class;
        // the sample: the class's images by hash of the index, the first `per_class`
        let mut sample: Vec<usize> = all.iter().copied().filter(|&i| labels[i] == c).collect();
        sample.sort_by_key(|&i| (id_hash(i as u64), i));
        sample.truncate(fc.per_class);
        assert_eq!(sample, class_sample(&all, &labels, c, fc.per_class));
        assert_eq!(cf.images, sample.len());
        let measure = |set: &[Vec<u32>], imgs: &[usize], class: usize| -> (f64, f64) {
            let r: Vec<(f64, bool)> = imgs
                .iter()
                .map(|&i| brute(&m, &images[i], set, class))
                .collect();
            let n = r.len() as f64;
            (
                r.iter().map(|x| x.0).sum::<f64>() / n,
                r.iter().filter(|x| x.1).count() as f64 / n,
            )
        };
        let (p0, a0) = measure(&[], &sample, c);
        close(cf.p_before, p0, "p before");
        close(cf.accuracy_before, a0, "accuracy before");
        let g = &analysis.graphs[analysis.classes.iter().position(|&k| k == c).unwrap()];
        let vset: Vec<Vec<u32>> = g
            .layers
            .iter()
            .map(|l| l.vertices.iter().map(|v| v.channel).collect())
            .collect();
        let nv: usize = vset.iter().map(Vec::len).sum();
        assert_eq!(cf.vertices, nv);
        if nv == 0 {
            assert_eq!(cf.note.as_deref(), Some("empty graph"));
            assert!(cf.graph.is_none());
            continue;
        }
        ablated += 1;
        let graph = cf.graph.as_ref().unwrap();
        let (pg, ag) = measure(&vset, &sample, c);
        close(graph.p_after, pg, "graph p after");
        close(graph.drop, p0 - pg, "graph drop");
        close(graph.accuracy_after, ag, "graph accuracy after");
        // random draws: as many channels per layer as the graph, drawn by the library's seeded
        // draw; their drops and p_random recomputed here
        let sizes: Vec<usize> = vset.iter().map(Vec::len).collect();
        let random = cf.random.as_ref().unwrap();
        let mut drops = Vec::new();
        for r in 0..fc.draws {
            let d = random_draw(&sizes, &channels, &no_ex, 0, c, r);
            for (l, ch) in d.layers.iter().enumerate() {
                assert_eq!(ch.len(), sizes[l]);
                assert_eq!(ch.iter().collect::<BTreeSet<_>>().len(), ch.len());
                assert!(ch.iter().all(|&x| (x as usize) < channels[l]));
            }
            drops.push(p0 - measure(&d.layers, &sample, c).0);
        }
        for (a, b) in random.drops.iter().zip(&drops) {
            close(*a, *b, "random drop");
        }
        let beat = drops.iter().filter(|&&d| d >= p0 - pg).count() as f64 / drops.len() as f64;
        close(random.p_random, beat, "p_random");
        // activation baseline: the top counts of the class per layer, ties by higher channel
        let act: Vec<Vec<u32>> = (0..channels.len())
            .map(|l| {
                let row = aggs.activation_matrix(l).unwrap().row(c).to_vec();
                let mut idx: Vec<u32> = (0..row.len() as u32).collect();
                idx.sort_by(|&a, &b| row[b as usize].cmp(&row[a as usize]).then(b.cmp(&a)));
                idx.truncate(sizes[l]);
                idx
            })
            .collect();
        close(
            cf.activation.as_ref().unwrap().drop,
            p0 - measure(&act, &sample, c).0,
            "activation drop",
        );
        // deletion curve: vertices by PageRank, cumulatively, at the reported sizes
        let mut order: Vec<(f64, usize, u32)> = g
            .layers
            .iter()
            .enumerate()
            .flat_map(|(l, layer)| {
                layer
                    .vertices
                    .iter()
                    .map(move |v| (v.pagerank, l, v.channel))
            })
            .collect();
        order.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)));
        let del = cf.deletion.as_ref().unwrap();
        assert_eq!(del.vertices[0], 0);
        assert_eq!(*del.vertices.last().unwrap(), nv);
        assert!(del.vertices.len() <= fc.deletion_points + 1);
        let mut area = 0.0;
        for (j, &k) in del.vertices.iter().enumerate() {
            let mut set = vec![Vec::new(); channels.len()];
            for &(_, l, ch) in &order[..k] {
                set[l].push(ch);
            }
            let p = measure(&set, &sample, c).0;
            close(del.p[j], p, "deletion point");
            if j > 0 {
                area += (k - del.vertices[j - 1]) as f64 / nv as f64 * (del.p[j - 1] + p) / 2.0;
            }
        }
        close(del.area, area, "deletion area");
        // selectivity: the most similar classes at the last layer, their first images
        let row = analysis
            .overview
            .classes
            .iter()
            .position(|&k| k == c)
            .unwrap();
        let mut near: Vec<(usize, f64)> = analysis
            .overview
            .classes
            .iter()
            .enumerate()
            .filter(|&(_, &d)| d != c)
            .map(|(b, &d)| (d, sim[row][b]))
            .collect();
        near.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        near.truncate(fc.neighbours);
        let sel = cf.selectivity.as_ref().unwrap();
        assert_eq!(sel.classes, near.iter().map(|x| x.0).collect::<Vec<_>>());
        let mut drops = Vec::new();
        for &(d, _) in &near {
            for i in class_sample(&all, &labels, d, fc.per_class)
                .into_iter()
                .take(fc.per_neighbour)
            {
                drops.push(brute(&m, &images[i], &[], d).0 - brute(&m, &images[i], &vset, d).0);
            }
        }
        assert_eq!(sel.images, drops.len());
        close(
            sel.drop,
            drops.iter().sum::<f64>() / drops.len() as f64,
            "selectivity",
        );
    }
    assert!(ablated >= 8, "only {ablated} classes ablated: not a test");

    // the view: every class's badge, and the plots of one class
    let select = f.classes.iter().find(|c| c.graph.is_some()).unwrap().class;
    let exp = serde_json::json!({
        "select": select,
        "classes": f.classes.iter().map(|c| serde_json::json!({
            "index": c.class,
            "measured": c.graph.is_some(),
            "pr": c.random.as_ref().map(|r| r.p_random),
            "draws": c.random.as_ref().map_or(0, |r| r.drops.len()),
            "points": c.deletion.as_ref().map_or(0, |d| d.vertices.len()),
        })).collect::<Vec<_>>(),
    });
    let exp_path = tmp.path().join("faith-expected.json");
    std::fs::write(&exp_path, serde_json::to_vec(&exp).unwrap()).unwrap();
    common::browser_script("faith.mjs", &[&out, &exp_path]);
}

fn faith_bytes(dir: &std::path::Path) -> Vec<u8> {
    std::fs::read(dir.join("faithfulness.json")).unwrap()
}

#[test]
fn reruns_threads_and_shards_give_the_same_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    run(faith_config(), &a);
    // a rerun on one thread
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| run(faith_config(), &b));
    assert_eq!(
        faith_bytes(&a),
        faith_bytes(&b),
        "rerun on one thread differs"
    );
    // another batch size: the same figures within rounding
    let mut c7 = faith_config();
    c7.batch_size = 7;
    let r7 = run(c7, &tmp.path().join("b7"));
    let one: FaithfulnessReport = serde_json::from_slice(&faith_bytes(&a)).unwrap();
    let f7 = r7.faithfulness.unwrap();
    for (x, y) in one.classes.iter().zip(&f7.classes) {
        let v = |c: &ClassFaithfulness| {
            let mut v = vec![c.p_before];
            if let Some(g) = &c.graph {
                v.push(g.drop);
            }
            if let Some(r) = &c.random {
                v.extend(&r.drops);
            }
            if let Some(d) = &c.deletion {
                v.extend(&d.p);
            }
            v
        };
        for (p, q) in v(x).iter().zip(v(y)) {
            assert!(
                (p - q).abs() < 1e-6,
                "class {}: {p} vs {q} at batch 7",
                x.class
            );
        }
    }
    // three shards, merged by the pipeline (with the model): the unsharded run's file
    let (m, device) = model();
    let data = head(N);
    let mut dirs = Vec::new();
    for i in 0..3 {
        let mut c = faith_config();
        c.shard = Some((i, 3));
        let d = tmp.path().join(format!("shard{i}"));
        let p = Pipeline::new(&m, data.clone(), c, device.clone()).unwrap();
        let r = p
            .run(&d, &meta(&data), None, &WriteOptions::default())
            .unwrap();
        assert!(
            r.faithfulness.is_none(),
            "a shard run measures its partial graphs"
        );
        assert!(!d.join("faithfulness.json").exists());
        dirs.push(d);
    }
    let merged = tmp.path().join("merged");
    let p = Pipeline::new(&m, data.clone(), faith_config(), device).unwrap();
    p.merge_shards(&dirs, &merged, &meta(&data), None, &WriteOptions::default())
        .unwrap();
    assert_eq!(
        faith_bytes(&a),
        faith_bytes(&merged),
        "merged shards differ"
    );
}

#[test]
fn classes_smaller_than_the_sample_and_empty_graphs_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = faith_config();
    c.faithfulness = Some(FaithfulnessConfig {
        per_class: 1000,
        draws: 2,
        ..small_faithfulness()
    });
    // a graph with no vertices: a selection share of 0 keeps nothing
    c.graph.selection = summit_core::graph::Selection::PerLayer { share: 0.0 };
    let r = run(c, &tmp.path().join("out"));
    let f = r.faithfulness.unwrap();
    for cf in &f.classes {
        assert_eq!(
            cf.note.as_deref(),
            Some("empty graph"),
            "class {}",
            cf.class
        );
        assert!(cf.graph.is_none() && cf.drop_ratio.is_none());
        assert_eq!(cf.images, cf.class_images, "the whole class is the sample");
        assert!(cf.images < 1000 && cf.images > 0);
    }
    assert_eq!(f.summary.classes, 0);
    assert_eq!(f.summary.share_beating_random, None);
    let names: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    let lines = summit_core::faithfulness_lines(&f, &names);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("fewer images than the 1000")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("10 classes not ablated (empty graph)") && l.contains("c3")),
        "{lines:?}"
    );
    // a budget that allows the minimum sample on a few classes only: the others say so
    let mut c = faith_config();
    c.faithfulness = Some(FaithfulnessConfig {
        budget: Some(784 * 400),
        ..small_faithfulness()
    });
    let f = run(c, &tmp.path().join("budget")).faithfulness.unwrap();
    let measured: Vec<&ClassFaithfulness> = f.classes.iter().filter(|c| c.images > 0).collect();
    let outside = f
        .classes
        .iter()
        .filter(|c| c.note.as_deref() == Some("outside the budget"))
        .count();
    assert!(!measured.is_empty() && outside > 0, "{measured:?}");
    assert_eq!(measured.len() + outside, 10);
    assert!(
        f.forward_images <= 400,
        "{} forward images",
        f.forward_images
    );
    let lines = summit_core::faithfulness_lines(&f, &names);
    assert!(
        lines.iter().any(|l| l.contains("the budget of")),
        "{lines:?}"
    );
    // bad parameters fail before the pass
    let mut c = faith_config();
    c.faithfulness = Some(FaithfulnessConfig {
        per_class: 0,
        ..Default::default()
    });
    let (m, device) = model();
    let e = Pipeline::new(&m, head(N), c, device).unwrap_err();
    assert!(e.to_string().contains("faithfulness"), "{e}");
}

#[test]
fn a_chosen_set_ablated_equals_the_brute_force_with_progress_and_a_stop() {
    let (m, device) = model();
    let data = head(N);
    let labels = data.labels().to_vec();
    let class = 3;
    let sample: Vec<usize> = (0..N).filter(|&i| labels[i] == class).take(10).collect();
    assert_eq!(sample.len(), 10);
    let layers = vec![vec![1u32, 5, 9], vec![2], vec![0, 40]];
    let set = ChannelSet {
        layers: layers.clone(),
    };
    let mut seen = Vec::new();
    let r = summit_core::Ablator::new(&m, &device, data.as_ref(), 4)
        .ablate_set(
            class,
            &set,
            &sample,
            summit_core::AblationMode::Zero,
            &mut |d, t| seen.push((d, t)),
        )
        .unwrap();
    assert_eq!(seen, vec![(0, 10), (4, 10), (8, 10), (10, 10)]);
    let before: Vec<(f64, bool)> = sample
        .iter()
        .map(|&i| brute(&m, &data.load(i).unwrap().data, &[], class))
        .collect();
    let after: Vec<(f64, bool)> = sample
        .iter()
        .map(|&i| brute(&m, &data.load(i).unwrap().data, &layers, class))
        .collect();
    let mean = |v: &[(f64, bool)]| v.iter().map(|x| x.0).sum::<f64>() / v.len() as f64;
    let count = |v: &[(f64, bool)]| v.iter().filter(|x| x.1).count();
    close(r.p_before, mean(&before), "p before");
    close(r.p_after, mean(&after), "p after");
    close(r.drop, mean(&before) - mean(&after), "drop");
    assert_eq!(
        (r.correct_before, r.correct_after),
        (count(&before), count(&after))
    );
    assert_eq!(
        (r.images, r.skipped, r.channels, r.class),
        (10, 0, 6, class)
    );
    assert!(r.drop > 0.0, "{r:?}");
    // a raised stop flag ends it between batches
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let err = summit_core::Ablator::new(&m, &device, data.as_ref(), 4)
        .with_stop(stop)
        .ablate_set(
            class,
            &set,
            &sample,
            summit_core::AblationMode::Zero,
            &mut |d, _| {
                if d >= 4 {
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            },
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            summit_core::CoreError::Interrupted {
                processed: 4,
                total: 10,
                ..
            }
        ),
        "{err}"
    );
    // an unknown class is refused naming it
    let e = summit_core::Ablator::new(&m, &device, data.as_ref(), 4)
        .ablate_set(
            10,
            &set,
            &sample,
            summit_core::AblationMode::Zero,
            &mut |_, _| {},
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("class 10"), "{e}");
}
