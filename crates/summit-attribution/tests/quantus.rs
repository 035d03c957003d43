//! Parity with Quantus 0.6.0 (fixture written by `tests/fixtures/make_quantus.py`): every
//! metric of `summit_attribution::evaluate` on make_captum's torchvision ResNet-18 (seeded,
//! batch norm calibrated and folded, run here through its ONNX export), three 64² images and
//! fixed heatmaps, compared with Quantus' values:
//! - curves (PixelFlipping, RegionPerturbation) within 1e-4 relative to the curve's largest
//!   |value|, their AUC within 1e-4 relative to the area of |curve|;
//! - Sparseness and Complexity within 1e-4 relative;
//! - correlations (FaithfulnessCorrelation with Quantus' recorded subsets, MPRT on the heatmaps
//!   of the randomised models that Quantus computed) within 1e-4 absolute.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use burn::tensor::Device;
use summit_attribution::{
    Baseline, Batch, EvaluationParams, Method, Metric, MprtScore, RegionOrder, Sample, complexity,
    evaluate, faithfulness_correlation_with_subsets, mprt, pixel_flipping, region_perturbation,
    sparseness,
};
use summit_model::{FashionInception, OnnxModel, OnnxOptions, StateDict, Summarizable, burn};

const TOL: f64 = 1e-4;

/// The Quantus results, or `None` when parity tests are knowingly skipped; records that
/// `test` ran against them.
fn quantus(test: &str) -> Option<StateDict> {
    let sd = common::fixture(
        "Quantus",
        "quantus/quantus.safetensors",
        "`python3 crates/summit-attribution/tests/fixtures/make_quantus.py` (needs torch, \
         torchvision, onnx, captum 0.9 and quantus 0.6.0: `pip install quantus==0.6.0`)",
    )?;
    common::report("quantus", test);
    Some(sd)
}

fn model() -> OnnxModel {
    let path = common::fixtures().join("quantus/resnet18.onnx");
    OnnxModel::load(&path, &OnnxOptions::default(), &Device::flex()).unwrap()
}

fn get<'a>(sd: &'a StateDict, key: &str) -> &'a [f32] {
    &sd.get(key)
        .unwrap_or_else(|| panic!("fixture key {key}"))
        .data
}

fn scalar(sd: &StateDict, key: &str) -> f32 {
    get(sd, key)[0]
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// The fixture's images, targets and heatmaps.
struct Data {
    images: Vec<f32>,
    targets: Vec<usize>,
    heatmaps: Vec<(Vec<f32>, [usize; 3])>,
}

impl Data {
    fn new(sd: &StateDict) -> Self {
        let x = sd.get("input").unwrap();
        assert_eq!(x.shape, [3, 3, 64, 64]);
        let heatmaps = (0..3)
            .map(|i| {
                let h = sd.get(&format!("heatmap.{i}")).unwrap();
                (h.data.clone(), h.shape.clone().try_into().unwrap())
            })
            .collect();
        Self {
            images: x.data.clone(),
            targets: get(sd, "targets").iter().map(|&t| t as usize).collect(),
            heatmaps,
        }
    }

    fn sample(&self, i: usize) -> Sample<'_> {
        let per = 3 * 64 * 64;
        Sample {
            image: &self.images[i * per..(i + 1) * per],
            dims: [3, 64, 64],
            heatmap: &self.heatmaps[i].0,
            heatmap_dims: self.heatmaps[i].1,
            target: self.targets[i],
        }
    }
}

/// Largest |got − want| / scale.
fn worst(what: &str, got: &[f64], want: &[f64], scale: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let d = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs() / scale)
        .fold(0f64, f64::max);
    eprintln!("{what}: largest difference {d:.2e} (scale {scale:.3e})");
    assert!(
        d <= TOL,
        "{what}: {got:?} vs Quantus {want:?} (difference {d:.2e} × {scale:.3e})"
    );
    d
}

fn curve_scale(want: &[f64]) -> (f64, f64) {
    let max = want.iter().fold(0f64, |m, v| m.max(v.abs()));
    let abs: Vec<f64> = want.iter().map(|v| v.abs()).collect();
    (max, summit_attribution::auc(&abs).max(max))
}

#[test]
fn model_matches_pytorch() {
    let Some(sd) = quantus("model_matches_pytorch") else {
        return;
    };
    let m = model();
    let x = sd.get("input").unwrap();
    let t = burn::tensor::Tensor::<4>::from_data(
        burn::tensor::TensorData::new(x.data.clone(), [3, 3, 64, 64]),
        &Device::flex(),
    );
    let got = f64s(&summit_model::to_host(m.forward(t).unwrap(), "logits").unwrap());
    let want = f64s(get(&sd, "logits"));
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
    worst("logits", &got, &want, scale);
}

#[test]
fn sparseness_and_complexity_match_quantus() {
    let Some(sd) = quantus("sparseness_and_complexity_match_quantus") else {
        return;
    };
    let data = Data::new(&sd);
    for (key, f) in [
        ("sparseness", sparseness as fn(&[f32]) -> _),
        ("complexity", complexity),
    ] {
        let want = f64s(get(&sd, key));
        for i in 0..3 {
            let got = f(&data.heatmaps[i].0).unwrap();
            worst(&format!("{key} {i}"), &[got], &want[i..=i], want[i].abs());
        }
    }
}

#[test]
fn pixel_flipping_matches_quantus() {
    let Some(sd) = quantus("pixel_flipping_matches_quantus") else {
        return;
    };
    let data = Data::new(&sd);
    let m = model();
    let device = Device::flex();
    let images: Vec<usize> = get(&sd, "pf_images").iter().map(|&i| i as usize).collect();
    for (name, baseline) in [("black", Baseline::Black), ("mean", Baseline::Mean)] {
        let params = EvaluationParams {
            features_in_step: scalar(&sd, "pf_step") as usize,
            perturb_baseline: baseline,
            batch_size: 6,
            ..EvaluationParams::default()
        };
        let aucs = f64s(get(&sd, &format!("pf.{name}.auc")));
        for (k, &i) in images.iter().enumerate() {
            let curve = pixel_flipping(&m, &device, &data.sample(i), &params).unwrap();
            let want = f64s(get(&sd, &format!("pf.{name}.curve.{i}")));
            let (max, area) = curve_scale(&want);
            worst(
                &format!("pixel flipping {name} {i}"),
                &curve.values,
                &want,
                max,
            );
            worst(
                &format!("pixel flipping {name} {i} AUC"),
                &[curve.auc],
                &aucs[k..=k],
                area,
            );
        }
    }
}

#[test]
fn region_perturbation_matches_quantus() {
    let Some(sd) = quantus("region_perturbation_matches_quantus") else {
        return;
    };
    let data = Data::new(&sd);
    let m = model();
    let device = Device::flex();
    for name in ["default", "padded", "lerf"] {
        let k = |s: &str| format!("rp.{name}.{s}");
        let b = scalar(&sd, &k("baseline"));
        let baseline = if scalar(&sd, &k("baseline_is_value")) == 1.0 {
            Baseline::Value(b)
        } else if b == -1.0 {
            Baseline::Black
        } else {
            Baseline::Mean
        };
        let params = EvaluationParams {
            patch_size: scalar(&sd, &k("patch")) as usize,
            regions_evaluation: scalar(&sd, &k("regions")) as usize,
            region_order: if scalar(&sd, &k("order")) == 0.0 {
                RegionOrder::Morf
            } else {
                RegionOrder::Lerf
            },
            perturb_baseline: baseline,
            batch_size: 6,
            ..EvaluationParams::default()
        };
        let aucs = f64s(get(&sd, &k("auc")));
        for i in 0..3 {
            let curve = region_perturbation(&m, &device, &data.sample(i), &params).unwrap();
            let want = f64s(get(&sd, &k(&format!("curve.{i}"))));
            let (max, area) = curve_scale(&want);
            worst(
                &format!("region perturbation {name} {i}"),
                &curve.values,
                &want,
                max,
            );
            worst(
                &format!("region perturbation {name} {i} AUC"),
                &[curve.auc],
                &aucs[i..=i],
                area,
            );
        }
    }
}

#[test]
fn faithfulness_correlation_matches_quantus() {
    let Some(sd) = quantus("faithfulness_correlation_matches_quantus") else {
        return;
    };
    let data = Data::new(&sd);
    let m = model();
    let device = Device::flex();
    let runs = scalar(&sd, "fc_runs") as usize;
    let size = scalar(&sd, "fc_subset") as usize;
    let params = EvaluationParams {
        nr_runs: runs,
        subset_size: size,
        batch_size: 10,
        ..EvaluationParams::default()
    };
    let subsets = get(&sd, "fc.subsets");
    let want = f64s(get(&sd, "fc"));
    for i in 0..3 {
        let s: Vec<Vec<usize>> = (0..runs)
            .map(|r| {
                let start = (i * runs + r) * size;
                subsets[start..start + size]
                    .iter()
                    .map(|&v| v as usize)
                    .collect()
            })
            .collect();
        let got = faithfulness_correlation_with_subsets(&m, &device, &data.sample(i), &s, &params)
            .unwrap();
        worst(
            &format!("faithfulness correlation {i}"),
            &[got],
            &want[i..=i],
            1.0,
        );
    }
}

#[test]
fn mprt_matches_quantus() {
    let Some(sd) = quantus("mprt_matches_quantus") else {
        return;
    };
    let original = sd.get("mprt.original").unwrap();
    let randomised = sd.get("mprt.randomised").unwrap();
    let [layers, n, c, h, w]: [usize; 5] = randomised.shape.clone().try_into().unwrap();
    let per = c * h * w;
    let scores = f64s(get(&sd, "mprt.scores"));
    let average = f64s(get(&sd, "mprt.average"));
    let last = f64s(get(&sd, "mprt.last"));
    let own = f64s(get(&sd, "mprt.self"));
    for i in 0..n {
        let rs: Vec<Vec<f32>> = (0..layers)
            .map(|l| randomised.data[(l * n + i) * per..(l * n + i + 1) * per].to_vec())
            .collect();
        let r = mprt(&original.data[i * per..(i + 1) * per], &rs).unwrap();
        let want: Vec<f64> = (0..layers).map(|l| scores[l * n + i]).collect();
        worst(&format!("mprt {i} per layer"), &r.layers, &want, 1.0);
        worst(
            &format!("mprt {i} original"),
            &[r.original],
            &own[i..=i],
            1.0,
        );
        worst(
            &format!("mprt {i} average"),
            &[r.average],
            &average[i..=i],
            1.0,
        );
        worst(&format!("mprt {i} last"), &[r.last], &last[i..=i], 1.0);
    }
    // through evaluate(): the batch's mean of the per-image averages
    let hm = &original.data;
    let rand: Vec<Vec<f32>> = (0..layers)
        .map(|l| randomised.data[l * n * per..(l + 1) * n * per].to_vec())
        .collect();
    let images = vec![0f32; n * per];
    let targets = vec![0usize; n];
    let batch = Batch {
        method: Method::InputXGradient,
        images: &images,
        dims: [n, c, h, w],
        heatmaps: hm,
        heatmap_dims: [n, c, h, w],
        targets: &targets,
        randomised: Some(&rand),
    };
    // MPRT runs no model: any model will do for evaluate()'s signature
    let m = FashionInception::embedded(&Device::flex()).unwrap();
    for (score, want) in [(MprtScore::Average, &average), (MprtScore::Last, &last)] {
        let params = EvaluationParams {
            mprt_score: score,
            ..EvaluationParams::default()
        };
        let rows = evaluate(&m, &Device::flex(), &batch, &[Metric::Mprt], &params).unwrap();
        let mean = want.iter().sum::<f64>() / n as f64;
        worst(
            &format!("mprt {score:?} mean"),
            &[rows[0].mean],
            &[mean],
            1.0,
        );
        assert_eq!(rows[0].n, n);
    }
}
