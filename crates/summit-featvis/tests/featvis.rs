//! Bad input, determinism and independence of the batch a channel is optimised in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use burn::tensor::Device;
use summit_featvis::{FeatVisError, FeatureVisParams, InputMap, gram_similarity, visualize};
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
    // the objective rises: the channel's best image (the diversity penalty may leave one of
    // the two near 0; fed at its own size that is image 0 here, at 28² it was image 1)
    let long = FeatureVisParams { steps: 64, ..p };
    let d = visualize(&model, "mixed3b", &[9], &map, &long, &device, |_, _| {}).unwrap();
    let best = |o: &[f32]| o.iter().copied().fold(f32::MIN, f32::max);
    assert!(
        best(&d[0].objective) > 4.0 * best(&alone[0].objective).max(0.01),
        "{:?} vs {:?}",
        d[0].objective,
        alone[0].objective
    );
}

/// A model whose forward pass leaves autodiff (it drops the input's gradient tracking).
struct Detached(FashionInception);

impl summit_model::Summarizable for Detached {
    fn description(&self) -> &summit_model::ModelDescription {
        self.0.description()
    }
    fn forward(
        &self,
        images: burn::tensor::Tensor<4>,
    ) -> summit_model::Result<burn::tensor::Tensor<2>> {
        self.0.forward(images.inner())
    }
    fn record(
        &self,
        images: burn::tensor::Tensor<4>,
    ) -> summit_model::Result<summit_model::Recording> {
        self.0.record(images.inner())
    }
    fn forward_taps(
        &self,
        images: burn::tensor::Tensor<4>,
        sink: &mut dyn summit_model::TapSink,
    ) -> summit_model::Result<burn::tensor::Tensor<2>> {
        self.0.forward_taps(images.inner(), sink)
    }
    fn weights_hash(&self) -> summit_model::Result<String> {
        self.0.weights_hash()
    }
}

#[test]
fn a_model_without_gradients_is_refused() {
    let device = Device::flex();
    let model = Detached(FashionInception::embedded(&device).unwrap());
    let p = FeatureVisParams {
        steps: 1,
        diversity: 1,
        ..FeatureVisParams::default()
    };
    let e = visualize(
        &model,
        "mixed3a",
        &[0],
        &InputMap::fashion_mnist(),
        &p,
        &device,
        |_, _| {},
    )
    .unwrap_err();
    assert!(matches!(e, FeatVisError::NoGradients(_)), "{e}");
    assert!(e.to_string().contains("mixed3a"), "{e}");
}

/// SPEC §4.1 / issue 10: the 4 images optimised together with the diversity penalty are more
/// diverse (lower mean pairwise cosine similarity of their layer Gram matrices) than 4
/// independently seeded plain visualizations of the same channel.
#[test]
fn diversity_lowers_the_gram_similarity() {
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
    let map = InputMap::fashion_mnist();
    let layer = "mixed4a";
    let steps = 96;
    let mut div_sims = Vec::new();
    let mut plain_sims = Vec::new();
    for channel in [3usize, 40, 97] {
        let div = FeatureVisParams {
            steps,
            diversity: 4,
            ..FeatureVisParams::default()
        };
        let v = visualize(&model, layer, &[channel], &map, &div, &device, |_, _| {}).unwrap();
        let d = gram_similarity(&model, layer, &v[0].pixels, v[0].size, &map, &device)
            .unwrap()
            .unwrap();
        let mut plain = Vec::new();
        for seed in 0..4 {
            let p = FeatureVisParams {
                steps,
                diversity: 1,
                seed,
                ..FeatureVisParams::default()
            };
            let v = visualize(&model, layer, &[channel], &map, &p, &device, |_, _| {}).unwrap();
            plain.push(v[0].pixels[0].clone());
        }
        let s = gram_similarity(&model, layer, &plain, v[0].size, &map, &device)
            .unwrap()
            .unwrap();
        println!("{layer}:{channel}: diversity {d:.4}, independent seeds {s:.4}");
        div_sims.push(d);
        plain_sims.push(s);
    }
    for (d, s) in div_sims.iter().zip(&plain_sims) {
        assert!(d < s, "diversity {d} vs independent seeds {s}");
    }
}

/// The embedded model behind a switch for [`Summarizable::accepts_any_size`], recording the
/// height and width of every image batch the optimisation feeds it.
struct Spy {
    model: FashionInception,
    any_size: bool,
    fed: std::sync::Mutex<Vec<[usize; 2]>>,
}

impl summit_model::Summarizable for Spy {
    fn description(&self) -> &summit_model::ModelDescription {
        self.model.description()
    }
    fn forward(
        &self,
        images: burn::tensor::Tensor<4>,
    ) -> summit_model::Result<burn::tensor::Tensor<2>> {
        self.model.forward(images)
    }
    fn record(
        &self,
        images: burn::tensor::Tensor<4>,
    ) -> summit_model::Result<summit_model::Recording> {
        self.model.record(images)
    }
    fn forward_taps(
        &self,
        images: burn::tensor::Tensor<4>,
        sink: &mut dyn summit_model::TapSink,
    ) -> summit_model::Result<burn::tensor::Tensor<2>> {
        let [_, _, h, w] = images.dims();
        self.fed.lock().unwrap().push([h, w]);
        self.model.forward_taps(images, sink)
    }
    fn weights_hash(&self) -> summit_model::Result<String> {
        self.model.weights_hash()
    }
    fn accepts_any_size(&self) -> bool {
        self.any_size
    }
}

/// SPEC §4.1 as amended: the transformed image is fed at its own size wherever the model
/// accepts other sizes, and resized to the model's input only where it does not; `Feed::
/// ModelSize` always resizes (Lucent's way). Where the image is resized, both modes are the
/// same computation and give the same images.
#[test]
fn fed_at_its_own_size_where_the_model_allows() {
    use summit_featvis::Feed;
    let device = Device::flex();
    let map = InputMap::fashion_mnist();
    let run = |any_size: bool, feed: Feed| {
        let spy = Spy {
            model: FashionInception::embedded(&device).unwrap(),
            any_size,
            fed: Default::default(),
        };
        let p = FeatureVisParams {
            steps: 12,
            diversity: 1,
            feed,
            ..FeatureVisParams::default()
        };
        let v = visualize(&spy, "mixed3b", &[2, 7], &map, &p, &device, |_, _| {}).unwrap();
        let fed = spy.fed.into_inner().unwrap();
        (v, fed)
    };
    let (own, fed) = run(true, Feed::OwnSize);
    assert_eq!(fed.len(), 12);
    // pad 3, jitter 2, scale 0.9–1.1, jitter 1 of a 28² image: 29² to 35², never resized
    assert!(fed.iter().any(|hw| *hw != [28, 28]), "{fed:?}");
    assert!(
        fed.iter().all(|&[h, w]| h == w && (28..=36).contains(&h)),
        "{fed:?}"
    );
    let (resized, fed) = run(true, Feed::ModelSize);
    assert!(fed.iter().all(|hw| *hw == [28, 28]), "{fed:?}");
    assert_ne!(own[0].pixels, resized[0].pixels);
    let (fixed, fed) = run(false, Feed::OwnSize);
    assert!(fed.iter().all(|hw| *hw == [28, 28]), "{fed:?}");
    assert_eq!(fixed[0].pixels, resized[0].pixels);
    assert_eq!(fixed[1].objective, resized[1].objective);
}
