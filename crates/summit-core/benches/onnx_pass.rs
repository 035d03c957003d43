//! The pass over ONNX models at 224² (SPEC §2.1): for each model of the ONNX fixtures
//! (`crates/summit-model/tests/fixtures/make_onnx_models.py`), the load time (decode, checks,
//! probe run, graph walk) and the whole pipeline step per batch
//! ([`summit_core::pipeline::aggregate_batch`], `paper` preset: record, predictions, activation
//! selection and examples, every hop's influences and selection) on seeded random 224²
//! images, batches of 8.
//!
//! ```sh
//! cargo bench -p summit-core --bench onnx_pass                       # every model
//! SUMMIT_ONNX_MODELS=resnet18 /usr/bin/time -v cargo bench -p summit-core --bench onnx_pass
//! ```
//!
//! `SUMMIT_ONNX_MODELS` (comma-separated) picks models, `SUMMIT_PASS_BATCH` the batch size
//! (8), `SUMMIT_ONNX_BATCHES` the timed batches (3, after one warm-up batch).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use summit_core::pipeline::aggregate_batch;
use summit_core::{Aggregates, Config, OnnxModel, OnnxOptions, Summarizable, aggregate_params};
use summit_model::burn::tensor::{Device, Tensor, TensorData};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../summit-model/tests/fixtures/onnx");
    let models = std::env::var("SUMMIT_ONNX_MODELS").unwrap_or_else(|_| {
        "resnet18,resnet50,vgg16,mobilenet_v2,googlenet,efficientnet_lite0".into()
    });
    let b = env_usize("SUMMIT_PASS_BATCH", 8);
    let batches = env_usize("SUMMIT_ONNX_BATCHES", 3);
    let device = Device::flex();
    println!(
        "model, load s, summary layers, paths, hops, pass ms/image (B{b}, 224², {} threads), images/s",
        rayon::current_num_threads()
    );
    for name in models.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let path = dir.join(format!("{name}.onnx"));
        if !path.exists() {
            eprintln!(
                "{} missing: run python3 crates/summit-model/tests/fixtures/make_onnx_models.py",
                path.display()
            );
            std::process::exit(1);
        }
        let t = Instant::now();
        let options = OnnxOptions {
            layers: None,
            input_hw: Some([224, 224]),
        };
        let model = OnnxModel::load(&path, &options, &device).unwrap();
        let load = t.elapsed().as_secs_f64();
        let desc = model.description();
        let config = Config::paper();
        let mut aggs = Aggregates::new(aggregate_params(desc, &config).unwrap()).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let n = 3 * 224 * 224;
        let mut run = |k: usize, aggs: &mut Aggregates| {
            let data: Vec<f32> = (0..b * n).map(|_| rng.random_range(-2.0f32..2.0)).collect();
            let x = Tensor::<4>::from_data(TensorData::new(data, [b, 3, 224, 224]), &device);
            let ids: Vec<u64> = (0..b).map(|i| (k * b + i) as u64).collect();
            let labels: Vec<usize> = (0..b).map(|i| (k * b + i) % desc.num_classes).collect();
            aggregate_batch(&model, config.hop_input, aggs, x, &ids, &labels, "bench").unwrap();
        };
        run(0, &mut aggs);
        let t = Instant::now();
        for k in 1..=batches {
            run(k, &mut aggs);
        }
        let per_image = t.elapsed().as_secs_f64() / (batches * b) as f64;
        println!(
            "{name}, {load:.2}, {}, {}, {}, {:.1}, {:.2}",
            desc.layers.len(),
            desc.paths.iter().map(Vec::len).sum::<usize>(),
            desc.paths
                .iter()
                .flatten()
                .map(|p| p.hops.len())
                .sum::<usize>(),
            per_image * 1e3,
            1.0 / per_image
        );
    }
}
