//! Checks that do not depend on Captum: Integrated Gradients' completeness, a randomisation
//! check of Grad-CAM (Adebayo et al. 2018), invariance to the batch size, and bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use burn::tensor::Device;
use summit_attribution::{AttributionError, AttributionParams, Attributor, Method};
use summit_data::FashionMnist;
use summit_model::train::normalise;
use summit_model::{FashionInception, FashionNet, StateDict, Summarizable, burn};

/// `n` embedded Fashion-MNIST test images (normalised) and their labels.
fn images(n: usize) -> (Vec<f32>, Vec<usize>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets/fashion-mnist");
    let ds = FashionMnist::open(
        dir.join("t10k-images-idx3-ubyte.gz"),
        dir.join("t10k-labels-idx1-ubyte.gz"),
    )
    .unwrap();
    let raw = &ds.raw_images()[..n * 784];
    let labels = summit_data::Dataset::labels(&ds)[..n].to_vec();
    (normalise(raw), labels)
}

#[test]
fn integrated_gradients_are_complete() {
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
    let n = 6;
    let (x, labels) = images(n);
    let dims = [n, 1, 28, 28];
    let params = AttributionParams {
        ig_steps: 64,
        ..AttributionParams::default()
    };
    let att = Attributor::new(&model, params, &device).unwrap();
    let ig = att
        .attribute_host(Method::IntegratedGradients, &x, dims, &labels)
        .unwrap();
    let fx = att.scores(&x, dims, &labels).unwrap();
    let f0 = att.scores(&vec![0.0; x.len()], dims, &labels).unwrap();
    for i in 0..n {
        let sum: f64 = ig.image(i).iter().map(|&v| f64::from(v)).sum();
        let gap = f64::from(fx[i] - f0[i]);
        let rel = (sum - gap).abs() / gap.abs();
        eprintln!("image {i}: Σ IG = {sum:.4}, f(x) − f(0) = {gap:.4}, off by {rel:.2e}");
        assert!(rel < 0.01, "image {i}: completeness off by {rel}");
    }
}

/// Pearson correlation.
fn corr(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let ma = a.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let mb = b.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x) - ma, f64::from(*y) - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    sab / (saa * sbb).sqrt().max(1e-300)
}

#[test]
fn grad_cam_changes_when_the_last_block_is_randomised() {
    let device = Device::flex();
    let trained = FashionInception::embedded(&device).unwrap();
    // the same network with the last inception block (mixed4a) re-initialised at random
    let fresh = FashionNet::init(&device).export().unwrap();
    let mut tensors = trained.net().export().unwrap();
    let mut replaced = 0;
    for (k, v) in tensors.iter_mut() {
        if k.starts_with("mixed4a.") {
            *v = fresh[k].clone();
            replaced += 1;
        }
    }
    assert!(replaced > 10, "{replaced} tensors of mixed4a");
    let mut sd = StateDict::from_tensors("randomised", tensors);
    let random =
        FashionInception::new(FashionNet::from_state_dict(&mut sd, &device).unwrap()).unwrap();
    let n = 16;
    let (x, labels) = images(n);
    let dims = [n, 1, 28, 28];
    let params = AttributionParams {
        layer: Some("mixed3b".into()),
        grad_cam_relu: false,
        ..AttributionParams::default()
    };
    let a = Attributor::new(&trained, params.clone(), &device)
        .unwrap()
        .attribute_host(Method::GradCam, &x, dims, &labels)
        .unwrap();
    let again = Attributor::new(&trained, params.clone(), &device)
        .unwrap()
        .attribute_host(Method::GradCam, &x, dims, &labels)
        .unwrap();
    assert_eq!(a, again, "deterministic");
    let b = Attributor::new(&random, params, &device)
        .unwrap()
        .attribute_host(Method::GradCam, &x, dims, &labels)
        .unwrap();
    let mut mean = 0.0;
    for i in 0..n {
        mean += corr(a.image(i), b.image(i)) / n as f64;
    }
    eprintln!("mean correlation of Grad-CAM maps, trained vs last block randomised: {mean:.3}");
    assert!(mean < 0.5, "Grad-CAM barely changed: correlation {mean}");
}

#[test]
fn results_do_not_depend_on_the_batch_size() {
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
    let n = 5;
    let (x, labels) = images(n);
    let dims = [n, 1, 28, 28];
    for method in Method::ALL {
        let run = |batch_size| {
            let (m, sd) = (summit_model::FASHION_MEAN, summit_model::FASHION_STD);
            let params = AttributionParams {
                batch_size,
                smoothgrad_samples: 4,
                ig_steps: 8,
                input_bounds: Some((vec![-m / sd], vec![(1.0 - m) / sd])),
                ..AttributionParams::default()
            };
            Attributor::new(&model, params, &device)
                .unwrap()
                .attribute_host(method, &x, dims, &labels)
                .unwrap()
        };
        let (a, b) = (run(1), run(7));
        let worst = a
            .values
            .iter()
            .zip(&b.values)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        let scale = a.values.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(
            worst <= 1e-5 * scale.max(1e-12),
            "{method}: batch 1 vs 7 differ by {worst} (scale {scale})"
        );
    }
}

#[test]
fn bad_input_gets_clear_errors() {
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
    let e = "lime".parse::<Method>().unwrap_err().to_string();
    assert!(e.contains("`lime`") && e.contains("grad-cam"), "{e}");
    let e = Attributor::new(
        &model,
        AttributionParams {
            layer: Some("mixed9z".into()),
            ..AttributionParams::default()
        },
        &device,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("mixed9z") && e.contains("mixed3a"), "{e}");
    let att = Attributor::new(&model, AttributionParams::default(), &device).unwrap();
    let x = vec![0.0; 2 * 784];
    let e = att
        .attribute_host(Method::Saliency, &x, [2, 1, 28, 28], &[3, 10])
        .unwrap_err();
    assert!(
        matches!(
            e,
            AttributionError::TargetOutOfRange {
                image: 1,
                class: 10,
                classes: 10
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("10 classes"), "{e}");
    let e = att
        .attribute_host(Method::Saliency, &x, [2, 1, 28, 28], &[3])
        .unwrap_err()
        .to_string();
    assert!(e.contains("1 targets for 2 images"), "{e}");
    let e = Attributor::new(
        &model,
        AttributionParams {
            ig_steps: 0,
            ..AttributionParams::default()
        },
        &device,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("ig_steps"), "{e}");
}

/// A model whose forward pass leaves autodiff (it reads its input back to the host).
struct Detached(FashionInception);

impl Summarizable for Detached {
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
    let att = Attributor::new(&model, AttributionParams::default(), &device).unwrap();
    let x = vec![0.0; 784];
    for method in [Method::Saliency, Method::GradCam] {
        let e = att
            .attribute_host(method, &x, [1, 1, 28, 28], &[0])
            .unwrap_err();
        assert!(
            matches!(e, AttributionError::NoGradients(_)),
            "{method}: {e}"
        );
    }
    // forward-only methods still work
    assert!(
        att.attribute_host(Method::Occlusion, &x, [1, 1, 28, 28], &[0])
            .is_ok()
    );
}
