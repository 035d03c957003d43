//! The Quantus metrics on the embedded Fashion-MNIST network: bad input is a clear error, the
//! batch evaluation agrees with the per-image functions, and the MPRT randomisation helper.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use burn::tensor::Device;
use summit_attribution::{
    AttributionError, AttributionParams, Attributor, Baseline, Batch, EvaluationParams, Method,
    Metric, Sample, evaluate, faithfulness_correlation, faithfulness_correlation_with_subsets,
    fashion_modules, pixel_flipping, randomised_fashion_heatmaps, region_perturbation, scores,
    sparseness,
};
use summit_model::{FashionInception, burn};

fn images(n: usize) -> Vec<f32> {
    // smooth seeded patterns in the normalised input range
    (0..n * 784)
        .map(|k| {
            let (i, p) = (k / 784, k % 784);
            let (y, x) = ((p / 28) as f32, (p % 28) as f32);
            ((x * 0.3 + i as f32).sin() * (y * 0.2).cos()) * 1.5
        })
        .collect()
}

fn small() -> EvaluationParams {
    EvaluationParams {
        features_in_step: 98,
        patch_size: 7,
        regions_evaluation: 5,
        nr_runs: 6,
        subset_size: 100,
        batch_size: 4,
        ..EvaluationParams::default()
    }
}

struct Setup {
    device: Device,
    model: FashionInception,
    x: Vec<f32>,
    targets: Vec<usize>,
}

fn setup() -> Setup {
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
    Setup {
        device,
        model,
        x: images(2),
        targets: vec![0, 7],
    }
}

fn sample<'a>(x: &'a [f32], h: &'a [f32], target: usize) -> Sample<'a> {
    Sample {
        image: &x[..784],
        dims: [1, 28, 28],
        heatmap: h,
        heatmap_dims: [1, 28, 28],
        target,
    }
}

#[test]
fn batch_evaluation_agrees_with_the_per_image_functions() {
    let s = setup();
    let att = Attributor::new(&s.model, AttributionParams::default(), &s.device).unwrap();
    let attr = att
        .attribute_host(Method::InputXGradient, &s.x, [2, 1, 28, 28], &s.targets)
        .unwrap();
    let batch = Batch::new(&s.x, [2, 1, 28, 28], &attr);
    let p = small();
    let rows = evaluate(
        &s.model,
        &s.device,
        &batch,
        &[
            Metric::PixelFlipping,
            Metric::RegionPerturbation,
            Metric::FaithfulnessCorrelation,
            Metric::Sparseness,
        ],
        &p,
    )
    .unwrap();
    let per: Vec<[f64; 4]> = (0..2)
        .map(|i| {
            let smp = batch.sample(i).unwrap();
            [
                pixel_flipping(&s.model, &s.device, &smp, &p).unwrap().auc,
                region_perturbation(&s.model, &s.device, &smp, &p)
                    .unwrap()
                    .auc,
                faithfulness_correlation(&s.model, &s.device, &smp, &p).unwrap(),
                sparseness(smp.heatmap).unwrap(),
            ]
        })
        .collect();
    for (k, r) in rows.iter().enumerate() {
        let mean = (per[0][k] + per[1][k]) / 2.0;
        assert!(
            (r.mean - mean).abs() < 1e-12,
            "{:?}: {} vs {mean}",
            r.metric,
            r.mean
        );
        assert!((r.std - (per[0][k] - per[1][k]).abs() / 2.0).abs() < 1e-12);
        assert_eq!((r.n, r.undefined, r.method), (2, 0, Method::InputXGradient));
    }
    // pixel flipping: 784 / 98 = 8 steps, probabilities; the batch size changes nothing
    let smp = batch.sample(0).unwrap();
    let c = pixel_flipping(&s.model, &s.device, &smp, &p).unwrap();
    assert_eq!(c.values.len(), 8);
    assert!(c.values.iter().all(|v| (0.0..=1.0).contains(v)));
    let one = EvaluationParams {
        batch_size: 1,
        ..small()
    };
    let c1 = pixel_flipping(&s.model, &s.device, &smp, &one).unwrap();
    for (a, b) in c.values.iter().zip(&c1.values) {
        assert!((a - b).abs() < 1e-6);
    }
    // region perturbation: 28 = 4 × 7 patches per side, 5 evaluated
    let r = region_perturbation(&s.model, &s.device, &smp, &p).unwrap();
    assert_eq!(r.values.len(), 5);
    // explicit subsets: the seeded ones give the seeded value
    let subsets = summit_attribution::faithfulness_subsets(smp.image, &p);
    let a = faithfulness_correlation_with_subsets(&s.model, &s.device, &smp, &subsets, &p).unwrap();
    let b = faithfulness_correlation(&s.model, &s.device, &smp, &p).unwrap();
    assert_eq!(a, b);
    assert!((-1.0..=1.0).contains(&a));
}

#[test]
fn bad_input_is_a_clear_error() {
    let s = setup();
    let h = vec![0.5f32; 784];
    let p = small();
    let smp = sample(&s.x, &h, 3);
    // Grad-CAM's maps: refused by input-space metrics, naming metric and method
    let att = Attributor::new(&s.model, AttributionParams::default(), &s.device).unwrap();
    let cam = att
        .attribute_host(Method::GradCam, &s.x, [2, 1, 28, 28], &s.targets)
        .unwrap();
    let batch = Batch::new(&s.x, [2, 1, 28, 28], &cam);
    for m in [
        Metric::PixelFlipping,
        Metric::RegionPerturbation,
        Metric::FaithfulnessCorrelation,
    ] {
        let e = evaluate(&s.model, &s.device, &batch, &[m], &p).unwrap_err();
        assert!(matches!(e, AttributionError::Unsupported { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains(m.name()) && msg.contains("grad-cam"), "{msg}");
        assert!(msg.contains("upsample"), "{msg}");
    }
    // ... but heatmap-only metrics take them
    let rows = evaluate(
        &s.model,
        &s.device,
        &batch,
        &[Metric::Sparseness, Metric::Complexity],
        &p,
    )
    .unwrap();
    assert_eq!(rows[0].n, 2);
    // MPRT without the randomised models' heatmaps
    let e = evaluate(&s.model, &s.device, &batch, &[Metric::Mprt], &p).unwrap_err();
    assert!(e.to_string().contains("randomised"), "{e}");
    // a per-image heatmap of the wrong size
    let small_h = vec![0.5f32; 49];
    let bad = Sample {
        heatmap: &small_h,
        heatmap_dims: [1, 7, 7],
        ..smp
    };
    let e = pixel_flipping(&s.model, &s.device, &bad, &p).unwrap_err();
    assert!(e.to_string().contains("[1, 28, 28]"), "{e}");
    // values that do not match the shape
    let e = pixel_flipping(
        &s.model,
        &s.device,
        &Sample {
            heatmap_dims: [1, 28, 27],
            ..smp
        },
        &p,
    )
    .unwrap_err();
    assert!(matches!(e, AttributionError::Input(_)), "{e}");
    // a non-finite heatmap
    let mut nan = h.clone();
    nan[5] = f32::NAN;
    let e = region_perturbation(&s.model, &s.device, &sample(&s.x, &nan, 3), &p).unwrap_err();
    assert!(e.to_string().contains("NaN"), "{e}");
    // features_in_step must divide h·w (Quantus' assert)
    let e = pixel_flipping(
        &s.model,
        &s.device,
        &smp,
        &EvaluationParams {
            features_in_step: 100,
            ..small()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("features_in_step 100"), "{e}");
    // subset_size must be smaller than h·w (Quantus' assert)
    let e = faithfulness_correlation(
        &s.model,
        &s.device,
        &smp,
        &EvaluationParams {
            subset_size: 784,
            ..small()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("subset_size 784"), "{e}");
    // explicit subsets out of range, or too few
    let e = faithfulness_correlation_with_subsets(
        &s.model,
        &s.device,
        &smp,
        &[vec![1, 2], vec![784]],
        &p,
    )
    .unwrap_err();
    assert!(e.to_string().contains("784"), "{e}");
    assert!(
        faithfulness_correlation_with_subsets(&s.model, &s.device, &smp, &[vec![1]], &p).is_err()
    );
    // a target the model does not have
    let e = pixel_flipping(&s.model, &s.device, &sample(&s.x, &h, 10), &p).unwrap_err();
    assert!(
        matches!(e, AttributionError::TargetOutOfRange { class: 10, .. }),
        "{e}"
    );
    // a batch whose parts disagree
    let e = scores(
        &s.model,
        &s.device,
        &Batch {
            targets: &[0],
            ..batch
        },
        Metric::Sparseness,
        &p,
    )
    .unwrap_err();
    assert!(e.to_string().contains("1 targets"), "{e}");
    // bad parameters
    let e = evaluate(
        &s.model,
        &s.device,
        &batch,
        &[Metric::Sparseness],
        &EvaluationParams {
            regions_evaluation: 0,
            ..small()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("regions_evaluation"), "{e}");
}

#[test]
fn baselines_replace_with_the_images_values() {
    let s = setup();
    // a heatmap that ranks pixel 0 first: flipping one feature per step for 784 / 392 = 2
    // steps; Black, White and a value give three different first points
    let mut h = vec![0f32; 784];
    for (i, v) in h.iter_mut().enumerate() {
        *v = 1.0 - i as f32 / 784.0;
    }
    let smp = sample(&s.x, &h, 2);
    let first = |b: Baseline| {
        let p = EvaluationParams {
            features_in_step: 392,
            perturb_baseline: b,
            ..small()
        };
        pixel_flipping(&s.model, &s.device, &smp, &p)
            .unwrap()
            .values
    };
    let black = first(Baseline::Black);
    let white = first(Baseline::White);
    let mean = first(Baseline::Mean);
    assert_eq!(black.len(), 2);
    assert_ne!(black[0], white[0]);
    assert_ne!(black[0], mean[0]);
    // all features replaced by one value: the last point does not depend on the order
    let lo = s.x[..784].iter().copied().fold(f32::INFINITY, f32::min);
    let v = first(Baseline::Value(lo));
    assert!((v[1] - black[1]).abs() < 1e-9);
}

#[test]
fn mprt_on_the_embedded_model_through_its_randomisations() {
    let s = setup();
    let ap = AttributionParams::default();
    let attr = Attributor::new(&s.model, ap.clone(), &s.device)
        .unwrap()
        .attribute_host(Method::Saliency, &s.x, [2, 1, 28, 28], &s.targets)
        .unwrap();
    let p = EvaluationParams::default();
    let (names, rand) = randomised_fashion_heatmaps(
        &s.model,
        Method::Saliency,
        &ap,
        &s.x,
        [2, 1, 28, 28],
        &s.targets,
        p.mprt_seed,
        &s.device,
    )
    .unwrap();
    let mut top_down = fashion_modules();
    top_down.reverse();
    assert_eq!(names, top_down);
    assert_eq!(names[0], "fc");
    assert_eq!(rand.len(), 41);
    assert!(rand.iter().all(|r| r.len() == attr.values.len()));
    // the first randomisation already changes the heatmaps; the cascade decorrelates them
    assert_ne!(rand[0], attr.values);
    let batch = Batch::new(&s.x, [2, 1, 28, 28], &attr).with_randomised(&rand);
    let per_layer: Vec<Vec<f64>> = (0..2)
        .map(|i| {
            let hs: Vec<Vec<f32>> = rand
                .iter()
                .map(|r| r[i * 784..(i + 1) * 784].to_vec())
                .collect();
            summit_attribution::mprt(batch.sample(i).unwrap().heatmap, &hs)
                .unwrap()
                .layers
        })
        .collect();
    for l in &per_layer {
        assert!(l.iter().all(|v| (-1.0..=1.0).contains(v)));
        assert!(l[40] < 0.9, "fully randomised: {}", l[40]);
    }
    let rows = evaluate(&s.model, &s.device, &batch, &[Metric::Mprt], &p).unwrap();
    assert_eq!(rows[0].n, 2);
    assert!(rows[0].mean < 1.0);
    // the same seed gives the same cascade
    let (_, again) = randomised_fashion_heatmaps(
        &s.model,
        Method::Saliency,
        &ap,
        &s.x,
        [2, 1, 28, 28],
        &s.targets,
        p.mprt_seed,
        &s.device,
    )
    .unwrap();
    assert_eq!(again[40], rand[40]);
}
