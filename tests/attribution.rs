//! Per-image attribution and model comparison end to end (SPEC §4.2–4.3): the images the
//! pass picks equal a brute-force selection over every image's softmax; every picked image and
//! vertex example gets its image, predictions and heatmap; the comparison of the two embedded
//! models has one point per sampled image; bad input is refused before the pass; and the web
//! pages work in headless Chromium (when node, chromium and playwright-core are installed;
//! SUMMIT_REQUIRE_BROWSER=1 makes their absence a failure).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{config, head, meta, model};
use summit_core::attribution::{Method, Metric};
use summit_core::data::Dataset;
use summit_core::{
    AttributionConfig, ClassInfo, ImagesFile, ModelRun, OnnxModel, Pipeline, Summarizable,
    WriteOptions, softmax_rows,
};

const N: usize = 400;

/// Every image's softmax row, computed image by image.
fn all_probs(model: &dyn Summarizable, ds: &dyn Dataset) -> Vec<Vec<f32>> {
    let device = summit_core::Device::flex();
    (0..ds.len())
        .map(|i| {
            let img = ds.load(i).unwrap();
            let x = summit_core::model::burn::tensor::Tensor::<4>::from_data(
                summit_core::model::burn::tensor::TensorData::new(img.data, [1, 1, 28, 28]),
                &device,
            );
            let l = summit_core::model::to_host(model.forward(x).unwrap(), "logits").unwrap();
            softmax_rows(&l, 10)
        })
        .collect()
}

#[test]
fn picks_attribution_and_comparison_end_to_end() {
    let (m, device) = model();
    let ds = head(N);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cmp");
    let mut cfg = config();
    cfg.picks.per_class = 4;
    cfg.picks.sample = 50;
    cfg.attribution = Some(AttributionConfig {
        methods: vec![Method::GradCam, Method::Saliency],
        evaluate: Some(summit_core::EvaluationConfig {
            metrics: Some(vec![
                Metric::PixelFlipping,
                Metric::FaithfulnessCorrelation,
                Metric::Sparseness,
            ]),
            per_class: 1,
            params: None,
        }),
        ..AttributionConfig::default()
    });
    let pipeline = Pipeline::new(&m, ds.clone(), cfg.clone(), device.clone()).unwrap();
    let run = pipeline
        .run(
            &out.join("inception"),
            &meta(&ds),
            Some(ds.transform()),
            &WriteOptions::default(),
        )
        .unwrap();
    let aggs = &run.pass.as_ref().unwrap().aggregates;

    // the heatmap metrics: each class's most confident pick, explained for its predicted
    // class, evaluated by the library directly (Grad-CAM upsampled bilinearly to 28²)
    let ev = run.images.as_ref().unwrap().evaluation.as_ref().unwrap();
    let ids: Vec<u64> = (0..10)
        .filter_map(|c| aggs.picks().confident(c).first().map(|p| p.id))
        .collect();
    assert_eq!(ev.images, ids);
    assert_eq!(ev.rows.len(), 2 * 3);
    let mut x = Vec::new();
    for &id in &ids {
        x.extend(ds.load(id as usize).unwrap().data);
    }
    let dims = [ids.len(), 1, 28, 28];
    let probs_all = all_probs(&m, ds.as_ref());
    let argmax = |r: &[f32]| (0..r.len()).fold(0, |b, c| if r[c] > r[b] { c } else { b });
    let targets: Vec<usize> = ids
        .iter()
        .map(|&i| argmax(&probs_all[i as usize]))
        .collect();
    let att =
        summit_core::attribution::Attributor::new(&m, AttributionConfig::default().params, &device)
            .unwrap();
    let params = summit_core::evaluation::cpu_params(28, 28);
    for method in [Method::GradCam, Method::Saliency] {
        let mut a = att.attribute_host(method, &x, dims, &targets).unwrap();
        if method == Method::GradCam {
            let [n, _, h, w] = a.dims;
            a.values = (0..n)
                .flat_map(|i| {
                    summit_core::attribution::upsample(
                        &a.values[i * h * w..(i + 1) * h * w],
                        h,
                        w,
                        28,
                        28,
                    )
                })
                .collect();
            a.dims = [n, 1, 28, 28];
        }
        let batch = summit_core::attribution::Batch::new(&x, dims, &a);
        let want = summit_core::attribution::evaluate(
            &m,
            &device,
            &batch,
            &[
                Metric::PixelFlipping,
                Metric::FaithfulnessCorrelation,
                Metric::Sparseness,
            ],
            &params,
        )
        .unwrap();
        for w in want {
            let got = ev
                .rows
                .iter()
                .find(|r| r.method == method && r.metric == w.metric)
                .unwrap();
            assert_eq!(got, &w, "{method} {}", w.metric.name());
        }
    }

    // brute force: per class, the 4 most confident and the 4 most confidently misclassified
    // (probability descending, id ascending on ties), and the 50 smallest id hashes
    let probs = all_probs(&m, ds.as_ref());
    let labels = ds.labels();
    let argmax = |r: &[f32]| (0..r.len()).fold(0, |b, c| if r[c] > r[b] { c } else { b });
    for c in 0..10 {
        let mut conf: Vec<(f32, usize)> = (0..N)
            .filter(|&i| labels[i] == c)
            .map(|i| (probs[i][c], i))
            .collect();
        conf.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let want: Vec<u64> = conf.iter().take(4).map(|x| x.1 as u64).collect();
        let got: Vec<u64> = aggs.picks().confident(c).iter().map(|p| p.id).collect();
        assert_eq!(got, want, "class {c}: most confident");
        let mut wrong: Vec<(f32, usize)> = (0..N)
            .filter(|&i| labels[i] == c && argmax(&probs[i]) != c)
            .map(|i| (probs[i][argmax(&probs[i])], i))
            .collect();
        wrong.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let want: Vec<u64> = wrong.iter().take(4).map(|x| x.1 as u64).collect();
        let got: Vec<u64> = aggs.picks().misclassified(c).iter().map(|p| p.id).collect();
        assert_eq!(got, want, "class {c}: most confidently misclassified");
    }
    let mut by_hash: Vec<u64> = (0..N as u64).collect();
    by_hash.sort_by_key(|&i| (summit_core::influence::id_hash(i), i));
    let got: Vec<u64> = aggs.picks().sample().iter().map(|p| p.id).collect();
    assert_eq!(got, by_hash[..50].to_vec(), "the sample");

    // the picks do not depend on the batch size
    let mut cfg7 = cfg.clone();
    cfg7.batch_size = 7;
    let p7 = Pipeline::new(&m, ds.clone(), cfg7, device.clone()).unwrap();
    assert_eq!(p7.aggregate().unwrap().aggregates.picks(), aggs.picks());

    // every picked image and every vertex example has its image and both heatmaps
    let dir = out.join("inception");
    let images: ImagesFile =
        serde_json::from_slice(&std::fs::read(dir.join("images.json")).unwrap()).unwrap();
    assert_eq!(images.methods, ["grad-cam", "saliency"]);
    assert!(dir.join("view/images.js").exists());
    for c in 0..10 {
        let ci = &images.classes[&c];
        let want: Vec<u64> = aggs.picks().confident(c).iter().map(|p| p.id).collect();
        assert_eq!(ci.confident, want);
    }
    let analysis = &run.analysis;
    let mut vertex_examples = 0;
    for &k in &analysis.graph_classes {
        for (l, layer) in analysis.graphs[k].layers.iter().enumerate() {
            for v in &layer.vertices {
                for e in aggs.examples().get(l, v.channel as usize).unwrap() {
                    assert!(
                        images.images.contains_key(&e.image_id),
                        "example {} of {l}:{} not attributed",
                        e.image_id,
                        v.channel
                    );
                    vertex_examples += 1;
                }
                assert!(images.examples.contains_key(&format!("{l}:{}", v.channel)));
            }
        }
    }
    assert!(vertex_examples > 50, "{vertex_examples} vertex examples");
    for (id, e) in &images.images {
        assert!(dir.join(&e.file).exists(), "image {id}");
        for m in ["grad-cam", "saliency"] {
            let f = dir.join(&e.heat[m]);
            let img = image::open(&f).unwrap();
            assert_eq!((img.width(), img.height()), (28, 28), "{}", f.display());
        }
        // the predictions are the model's
        let p = &probs[*id as usize];
        assert_eq!(e.top[0].0, argmax(p), "image {id}: top prediction");
        assert!((e.top[0].1 - p[e.top[0].0]).abs() < 1e-5);
        assert_eq!(e.label, labels[*id as usize]);
    }

    // two models, one dataset
    let resnet = OnnxModel::fashion_resnet(&device).unwrap();
    let p2 = Pipeline::new(&resnet, ds.clone(), cfg.clone(), device.clone()).unwrap();
    let run2 = p2
        .run(
            &out.join("resnet"),
            &meta(&ds),
            Some(ds.transform()),
            &WriteOptions::default(),
        )
        .unwrap();
    let classes: Vec<ClassInfo> = ds.class_names().iter().map(ClassInfo::new).collect();
    let a2 = &run2.pass.as_ref().unwrap().aggregates;
    let runs = [
        ModelRun {
            pipeline: &pipeline,
            aggregates: aggs,
            classes: &classes,
            dir: "inception",
            evaluation: run.images.as_ref().and_then(|i| i.evaluation.as_ref()),
        },
        ModelRun {
            pipeline: &p2,
            aggregates: a2,
            classes: &classes,
            dir: "resnet",
            evaluation: run2.images.as_ref().and_then(|i| i.evaluation.as_ref()),
        },
    ];
    let params = AttributionConfig::default().params;
    let cmp = summit_core::write_model_comparison(
        &out,
        "head",
        &runs,
        Method::GradCam,
        &params,
        ds.transform(),
    )
    .unwrap();
    let mut union: Vec<u64> = [aggs, a2]
        .iter()
        .flat_map(|a| {
            a.picks()
                .sample()
                .iter()
                .chain(a.picks().misclassified_sample())
                .map(|p| p.id)
        })
        .collect();
    union.sort_unstable();
    union.dedup();
    assert_eq!(cmp.points, union.len());
    assert!(cmp.disagreements > 0);
    let data: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("models.json")).unwrap()).unwrap();
    let hist: u64 = data["models"][0]["hist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(hist, N as u64, "the histogram counts every image");
    for p in data["points"].as_array().unwrap() {
        let id = p["id"].as_u64().unwrap() as usize;
        let pred0 = p["preds"][0][0][0].as_u64().unwrap() as usize;
        assert_eq!(
            pred0,
            argmax(&probs[id]),
            "image {id}: the inception's prediction"
        );
        for h in p["heat"].as_array().unwrap() {
            assert!(out.join(h.as_str().unwrap()).exists());
        }
    }

    // models whose class lists differ
    let mut other = classes.clone();
    other[3].name = "Frock".into();
    let bad = [
        runs[0],
        ModelRun {
            classes: &other,
            ..runs[1]
        },
    ];
    let e = summit_core::write_model_comparison(
        &tmp.path().join("bad"),
        "head",
        &bad,
        Method::GradCam,
        &params,
        ds.transform(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("class 3") && e.contains("Frock") && e.contains("Dress"),
        "{e}"
    );

    browser_check(&dir, &out, cmp.points);
}

#[test]
fn bad_attribution_settings_are_refused_before_the_pass() {
    let (m, device) = model();
    let ds = head(64);
    let mut cfg = config();
    let mut att = AttributionConfig::default();
    att.params.layer = Some("mixed9z".into());
    cfg.attribution = Some(att);
    let e = Pipeline::new(&m, ds.clone(), cfg, device.clone())
        .unwrap_err()
        .to_string();
    assert!(e.contains("mixed9z") && e.contains("mixed4a"), "{e}");
    let e = summit_core::images::parse_methods("grad-cam,lime").unwrap_err();
    assert!(e.contains("lime") && e.contains("occlusion"), "{e}");
    let mut cfg = config();
    cfg.attribution = Some(AttributionConfig {
        methods: vec![],
        ..AttributionConfig::default()
    });
    assert!(Pipeline::new(&m, ds.clone(), cfg, device.clone()).is_err());
    // MPRT asked of a model without re-initialised copies: refused before the pass
    let mut cfg = config();
    cfg.attribution = Some(AttributionConfig {
        evaluate: Some(summit_core::EvaluationConfig {
            metrics: Some(vec![Metric::Mprt]),
            ..Default::default()
        }),
        ..AttributionConfig::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let p = Pipeline::new(&m, ds.clone(), cfg, device.clone()).unwrap();
    let e = p
        .run(
            &tmp.path().join("out"),
            &meta(&ds),
            Some(ds.transform()),
            &WriteOptions::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("MPRT") && e.contains("re-initialised"), "{e}");
    assert!(!tmp.path().join("out").exists(), "nothing written");
    let e = "pixel-flipping,lime"
        .split(',')
        .map(|s| s.parse::<Metric>())
        .collect::<Result<Vec<_>, _>>()
        .unwrap_err()
        .to_string();
    assert!(e.contains("lime") && e.contains("sparseness"), "{e}");
}

fn browser_check(model_dir: &Path, cmp_dir: &Path, points: usize) {
    let exp = cmp_dir.join("expected.json");
    std::fs::write(
        &exp,
        format!("{{\"points\": {points}, \"models\": 2, \"evalMethods\": 2, \"evalMetrics\": 3}}"),
    )
    .unwrap();
    common::browser_script("images.mjs", &[model_dir, cmp_dir, &exp]);
}
