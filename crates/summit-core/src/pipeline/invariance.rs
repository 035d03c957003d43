//! Invariance of the pipeline's per-batch step ([`aggregate_batch`]) on a real model: the
//! embedded Fashion-MNIST inception network on the first 96 embedded test images gives the
//! same aggregates (A, I, examples, prediction statistics) for batch sizes 1, 7 and 32, for 1
//! and 2 threads, for a shuffled image order, and with influences computed on the device
//! ([`aggregate_batch_with`] and [`DeviceKernels`]) instead of the host, under both presets
//! (with excluded channels). (Shards merged vs one
//! pass and checkpoints through [`Pipeline`](super::Pipeline) are tested in the root
//! `tests/pipeline.rs`; the same invariances on synthetic data in summit-influence.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use summit_data::{Dataset, FashionMnist, Preprocess};
use summit_influence::Aggregates;
use summit_model::burn::tensor::{Device, Tensor, TensorData};
use summit_model::{FashionInception, Summarizable};

use super::{DeviceKernels, aggregate_batch_with, aggregate_params};
use crate::config::{Config, ExcludedChannels};

const N: usize = 96;

struct Data {
    images: Vec<Vec<f32>>,
    labels: Vec<usize>,
    dims: [usize; 3],
}

fn data() -> Data {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/fashion-mnist");
    let ds = FashionMnist::open(
        root.join("t10k-images-idx3-ubyte.gz"),
        root.join("t10k-labels-idx1-ubyte.gz"),
    )
    .and_then(|d| d.with_preprocess(Preprocess::fashion_mnist()))
    .unwrap();
    let mut images = Vec::with_capacity(N);
    let mut dims = [0; 3];
    for i in 0..N {
        let img = ds.load(i).unwrap();
        dims = img.dims();
        images.push(img.data);
    }
    Data {
        images,
        labels: ds.labels()[..N].to_vec(),
        dims,
    }
}

/// One pass over `order` in batches of `batch` on a rayon pool of `threads` threads.
fn pass(
    model: &FashionInception,
    config: &Config,
    d: &Data,
    order: &[usize],
    batch: usize,
    threads: usize,
    kernels: Option<&DeviceKernels>,
) -> Aggregates {
    let device = Device::flex();
    let params = aggregate_params(model.description(), config).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut aggs = Aggregates::new(params).unwrap();
        for chunk in order.chunks(batch) {
            let b = chunk.len();
            let x: Vec<f32> = chunk
                .iter()
                .flat_map(|&n| d.images[n].iter().copied())
                .collect();
            let [c, h, w] = d.dims;
            let x = Tensor::<4>::from_data(TensorData::new(x, [b, c, h, w]), &device);
            let ids: Vec<u64> = chunk.iter().map(|&n| n as u64).collect();
            let labels: Vec<usize> = chunk.iter().map(|&n| d.labels[n]).collect();
            aggregate_batch_with(
                model,
                config.hop_input,
                &mut aggs,
                x,
                &ids,
                &labels,
                "test batch",
                kernels,
            )
            .unwrap();
        }
        aggs
    })
}

fn assert_same(a: &Aggregates, b: &Aggregates, what: &str) {
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
        "{what}: top-1 correct"
    );
    assert_eq!(a.examples(), b.examples(), "{what}: examples");
    assert_eq!(a.picks(), b.picks(), "{what}: picked images");
    // The logits come from the fc layer's matrix product, whose blocking (and so its
    // rounding) may depend on the batch size: the true-class probabilities agree to rounding
    // (1e-5), far finer than the histogram's 1/100 bins, so the binned counts agree.
    assert_eq!(a.num_images(), b.num_images(), "{what}: image ids");
    for c in 0..a.params().num_classes {
        assert_eq!(
            a.probability_histogram(c),
            b.probability_histogram(c),
            "{what}: probability histogram of class {c}"
        );
    }
}

#[test]
fn aggregate_batch_is_invariant_to_batch_size_threads_and_order() {
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
    let d = data();
    let order: Vec<usize> = (0..N).collect();
    let mut shuffled = order.clone();
    shuffled.shuffle(&mut ChaCha8Rng::seed_from_u64(3));
    for mut config in [Config::paper(), Config::summit2019()] {
        config.progress = false;
        // the summit2019 exclusions name InceptionV1 layers: exclude channels of this model
        let layers = &model.description().layers;
        config.excluded = vec![
            ExcludedChannels {
                layer: layers[0].name.clone(),
                channels: vec![1, 5],
                model: None,
            },
            ExcludedChannels {
                layer: layers[1].name.clone(),
                channels: vec![0],
                model: None,
            },
        ];
        let preset = config.preset;
        let reference = pass(&model, &config, &d, &order, 1, 1, None);
        // the reference is not trivial: every layer has counts, every path has edges
        assert_eq!(reference.class_images().iter().sum::<u64>(), N as u64);
        for l in 0..reference.params().layers.len() {
            let a: u64 = reference
                .activations()
                .layer(l)
                .unwrap()
                .iter()
                .map(|&v| u64::from(v))
                .sum();
            assert!(
                a >= N as u64,
                "{preset}: layer {l} has {a} activation counts"
            );
            for pc in reference.paths(l).unwrap() {
                for h in &pc.hops {
                    assert!(h.num_entries() > 0, "{preset}: empty hop in layer {l}");
                }
            }
        }
        for batch in [7, 32] {
            for threads in [1, 2] {
                let got = pass(&model, &config, &d, &order, batch, threads, None);
                assert_same(
                    &got,
                    &reference,
                    &format!("{preset}: batch {batch}, {threads} threads"),
                );
            }
        }
        let got = pass(&model, &config, &d, &shuffled, 7, 2, None);
        assert_same(&got, &reference, &format!("{preset}: shuffled order"));
        // influences on the device (burn's grouped convolution on flex): the same counts
        let kernels = DeviceKernels::new(model.description(), &device).unwrap();
        let got = pass(&model, &config, &d, &shuffled, 32, 2, Some(&kernels));
        assert_same(
            &got,
            &reference,
            &format!("{preset}: influences on the device"),
        );
    }
}
