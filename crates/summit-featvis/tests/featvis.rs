//! Bad input, determinism and independence of the batch a channel is optimised in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use burn::tensor::Device;
use summit_featvis::{FeatVisError, FeatureVisParams, InputMap, visualize};
use summit_model::{FashionInception, burn};

#[test]
fn bad_input_gets_clear_errors() {
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
    let map = InputMap::fashion_mnist();
    let p = FeatureVisParams::default();
    let e = visualize(&model, "mixed9z", &[0], &map, &p, &device, |_, _| {}).unwrap_err();
    assert!(matches!(e, FeatVisError::UnknownLayer { .. }), "{e}");
    assert!(e.to_string().contains("mixed3a"), "{e}");
    let e = visualize(&model, "mixed3a", &[100000], &map, &p, &device, |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("channel 100000"), "{e}");
    let zero = FeatureVisParams {
        steps: 0,
        ..FeatureVisParams::default()
    };
    let e = visualize(&model, "mixed3a", &[0], &map, &zero, &device, |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("steps"), "{e}");
    let e = visualize(
        &model,
        "mixed3a",
        &[0],
        &InputMap::imagenet(),
        &p,
        &device,
        |_, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("1 input channels"), "{e}");
}

#[test]
fn seeded_deterministic_and_independent_of_the_batch() {
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
    let map = InputMap::fashion_mnist();
    let p = FeatureVisParams {
        steps: 6,
        diversity: 2,
        ..FeatureVisParams::default()
    };
    let a = visualize(&model, "mixed3b", &[4, 9], &map, &p, &device, |_, _| {}).unwrap();
    let b = visualize(&model, "mixed3b", &[4, 9], &map, &p, &device, |_, _| {}).unwrap();
    assert_eq!(a, b, "same seed, same images");
    let alone = visualize(&model, "mixed3b", &[9], &map, &p, &device, |_, _| {}).unwrap();
    let worst = alone[0].pixels[1]
        .iter()
        .zip(&a[1].pixels[1])
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-4, "channel 9 alone vs with channel 4: {worst}");
    let other = FeatureVisParams {
        seed: 1,
        ..p.clone()
    };
    let c = visualize(&model, "mixed3b", &[9], &map, &other, &device, |_, _| {}).unwrap();
    assert_ne!(c[0].pixels, alone[0].pixels, "another seed, other images");
    // the objective rises
    let long = FeatureVisParams { steps: 64, ..p };
    let d = visualize(&model, "mixed3b", &[9], &map, &long, &device, |_, _| {}).unwrap();
    assert!(
        d[0].objective[0] > 4.0 * alone[0].objective[0].max(0.01),
        "{:?} vs {:?}",
        d[0].objective,
        alone[0].objective
    );
}
