//! Cost of every attribution method per image at 224² on torchvision GoogLeNet (the seeded
//! random weights of the GoogLeNet fixture, `crates/summit-model/tests/fixtures/make_googlenet.py`),
//! batches of 8, the default parameters (SmoothGrad 50 samples, Integrated Gradients 50 steps,
//! Occlusion a 32-px window with stride 16: 169 occluded copies), on the machine's threads.
//!
//! ```sh
//! cargo bench -p summit-attribution --bench attribution
//! SUMMIT_ATTR_METHODS=grad-cam,saliency SUMMIT_ATTR_IMAGES=8 cargo bench -p summit-attribution --bench attribution
//! ```
//!
//! `SUMMIT_ATTR_METHODS` (comma-separated) picks methods, `SUMMIT_ATTR_IMAGES` the images timed
//! per method (8 for the one-pass methods, 2 for SmoothGrad, Integrated Gradients and Occlusion
//! unless set).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use summit_attribution::{AttributionParams, Attributor, Method};
use summit_model::burn::tensor::Device;
use summit_model::{GoogLeNet, GoogLeNetOptions};

fn main() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../summit-model/tests/fixtures/googlenet/googlenet.pth");
    if !path.exists() {
        eprintln!(
            "{} missing: run python3 crates/summit-model/tests/fixtures/make_googlenet.py",
            path.display()
        );
        return;
    }
    let device = Device::flex();
    let model = GoogLeNet::load(&path, GoogLeNetOptions::default(), &device).unwrap();
    let methods: Vec<Method> = match std::env::var("SUMMIT_ATTR_METHODS") {
        Ok(s) => s.split(',').map(|m| m.parse().unwrap()).collect(),
        Err(_) => Method::ALL.to_vec(),
    };
    let images: Option<usize> = std::env::var("SUMMIT_ATTR_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok());
    // ImageNet's preprocessing: pixels 0 and 255 through (x/255 − mean)/std (LRP's zbox)
    let mean = [0.485f32, 0.456, 0.406];
    let std = [0.229f32, 0.224, 0.225];
    let params = AttributionParams {
        batch_size: 8,
        input_bounds: Some((
            (0..3).map(|c| -mean[c] / std[c]).collect(),
            (0..3).map(|c| (1.0 - mean[c]) / std[c]).collect(),
        )),
        ..AttributionParams::default()
    };
    let att = Attributor::new(&model, params, &device).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let per = 3 * 224 * 224;
    println!(
        "method, images, s, ms/image (GoogLeNet 224², B8, {} threads)",
        rayon_threads()
    );
    // warm-up
    let x: Vec<f32> = (0..per).map(|_| rng.random_range(-2.0..2.0)).collect();
    att.attribute_host(Method::Saliency, &x, [1, 3, 224, 224], &[0])
        .unwrap();
    for m in methods {
        let heavy = matches!(
            m,
            Method::SmoothGrad | Method::IntegratedGradients | Method::Occlusion
        );
        let n = images.unwrap_or(if heavy { 2 } else { 8 });
        let x: Vec<f32> = (0..n * per).map(|_| rng.random_range(-2.0..2.0)).collect();
        let targets: Vec<usize> = (0..n).map(|i| (i * 97) % 1000).collect();
        let t = Instant::now();
        let a = att
            .attribute_host(m, &x, [n, 3, 224, 224], &targets)
            .unwrap();
        let s = t.elapsed().as_secs_f64();
        assert_eq!(a.dims[0], n);
        println!("{m}, {n}, {s:.2}, {:.0}", 1e3 * s / n as f64);
    }
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
