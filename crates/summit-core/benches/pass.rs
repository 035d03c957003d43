//! Criterion bench of the whole recording + aggregation pass per 224² image for torchvision
//! InceptionV1 (GoogLeNet, 1000 classes) with random weights built in-process (torchvision's
//! `init_weights=True` scheme: convolution and fc weights N(0, 0.01²) truncated at ±2σ, batch
//! norm γ = 1, β = 0, running mean 0, variance 1; nothing is downloaded).
//!
//! Groups (throughput in images, so criterion reports time per image):
//! - `pass/googlenet_224/B8`: [`summit_core::pipeline::aggregate_batch`], exactly the
//!   pipeline's per-batch step under the `paper` preset (record, softmax + prediction
//!   statistics, channel maxima + top-mass 3 % selection + example heaps for the 9 mixed
//!   layers, influences of all 54 hops with top-5 selection into the class counts).
//! - `pass/googlenet_224_influences_on_device/B8`: the same with
//!   [`summit_core::InfluenceOn::Device`] (burn grouped convolutions on the bench's device,
//!   `flex` here: the GPU route, measured on CPU).
//! - `pass/googlenet_224_pipeline/B8`: [`summit_core::Pipeline::aggregate`] over 32 images in
//!   batches of 8 from an in-memory dataset: the same per-batch step as the pipeline runs it,
//!   two batches at once on two workers ([`summit_core::pipeline::BATCH_WORKERS`]), added in
//!   order — the throughput a run gets.
//! - `pass/lucid_224/B8`: the same per-batch step on Lucid InceptionV1 (random weights,
//!   1008 outputs).
//! - `pass_parts/*/B8`: the parts, to see where the time goes: `record` (the recording
//!   forward pass, every tap read back to the host), `activations_device_max` (channel max and
//!   arg-max of the 9 mixed layers with burn, read back, as the pass does),
//!   `activations_host` (the same maxima on the host with `channel_max`, then selection,
//!   counts and example heaps), `influences` (all 54 hops: fused kernel / closed form, top-5,
//!   counts).
//!
//! Compare with `pass_torch.py` beside this file (the same computation in PyTorch).
//! `SUMMIT_PASS_BATCH` overrides the batch size (default 8); `SUMMIT_PASS_DEVICE=vulkan:N`
//! (with `--features vulkan`) or `cuda:N` (`--features cuda`) runs the model on that GPU
//! (`scripts/gpu_check.sh` does).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use summit_core::pipeline::{DeviceKernels, aggregate_batch_with};
use summit_core::{Aggregates, Config, GoogLeNet, GoogLeNetOptions, aggregate_params};
use summit_model::burn::tensor::{Device, Tensor, TensorData};
use summit_model::googlenet::GOOGLENET_MODULES;
use summit_model::{HostTensor, StateDict, Summarizable, to_host};

const CLASSES: usize = 1000;

/// A standard normal sample truncated to ±2 (Box–Muller, redrawn outside).
fn trunc_normal(rng: &mut ChaCha8Rng) -> f32 {
    loop {
        let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
        let u2: f64 = rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        if z.abs() <= 2.0 {
            return z as f32;
        }
    }
}

/// A torchvision-keyed GoogLeNet state dict with `init_weights=True`-style random weights.
fn random_googlenet_state_dict(seed: u64) -> StateDict {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut t = BTreeMap::new();
    let mut conv = |t: &mut BTreeMap<String, HostTensor>, prefix: &str, c_out, c_in, k| {
        let w = (0..c_out * c_in * k * k)
            .map(|_| 0.01 * trunc_normal(&mut rng))
            .collect();
        t.insert(
            format!("{prefix}.conv.weight"),
            HostTensor::new(vec![c_out, c_in, k, k], w),
        );
        for (name, v) in [
            ("weight", 1.0),
            ("bias", 0.0),
            ("running_mean", 0.0),
            ("running_var", 1.0),
        ] {
            t.insert(
                format!("{prefix}.bn.{name}"),
                HostTensor::new(vec![c_out], vec![v; c_out]),
            );
        }
    };
    conv(&mut t, "conv1", 64, 3, 7);
    conv(&mut t, "conv2", 64, 64, 1);
    conv(&mut t, "conv3", 192, 64, 3);
    for (name, _, s) in &GOOGLENET_MODULES {
        conv(&mut t, &format!("{name}.branch1"), s.ch1x1, s.c_in, 1);
        conv(&mut t, &format!("{name}.branch2.0"), s.ch3x3red, s.c_in, 1);
        conv(
            &mut t,
            &format!("{name}.branch2.1"),
            s.ch3x3,
            s.ch3x3red,
            s.k3,
        );
        conv(&mut t, &format!("{name}.branch3.0"), s.ch5x5red, s.c_in, 1);
        conv(
            &mut t,
            &format!("{name}.branch3.1"),
            s.ch5x5,
            s.ch5x5red,
            s.k5,
        );
        conv(&mut t, &format!("{name}.branch4.1"), s.pool_proj, s.c_in, 1);
    }
    let fc = (0..CLASSES * 1024)
        .map(|_| 0.01 * trunc_normal(&mut rng))
        .collect();
    t.insert("fc.weight".into(), HostTensor::new(vec![CLASSES, 1024], fc));
    t.insert(
        "fc.bias".into(),
        HostTensor::new(vec![CLASSES], vec![0.0; CLASSES]),
    );
    StateDict::from_tensors("random googlenet (in-process)", t)
}

fn batch_size() -> usize {
    std::env::var("SUMMIT_PASS_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&b| b > 0)
        .unwrap_or(8)
}

/// The bench's device: `SUMMIT_PASS_DEVICE` (`vulkan:N`, `cuda:N`) or burn's CPU backend.
fn device() -> Device {
    match std::env::var("SUMMIT_PASS_DEVICE") {
        Ok(spec) => summit_core::gpu_from_spec(&spec).expect("SUMMIT_PASS_DEVICE"),
        Err(_) => Device::flex(),
    }
}

fn bench_pass(c: &mut Criterion) {
    let device = device();
    let mut sd = random_googlenet_state_dict(0);
    let model = GoogLeNet::from_state_dict(&mut sd, GoogLeNetOptions::default(), &device)
        .expect("random GoogLeNet");
    let config = Config::default();
    let params = aggregate_params(model.description(), &config).expect("paper parameters");
    let b = batch_size();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let images: Vec<f32> = (0..b * 3 * 224 * 224)
        .map(|_| trunc_normal(&mut rng))
        .collect();
    let labels: Vec<usize> = (0..b).map(|_| rng.random_range(0..CLASSES)).collect();
    let x = Tensor::<4>::from_data(TensorData::new(images, [b, 3, 224, 224]), &device);

    let mut g = c.benchmark_group("pass");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(30));
    g.throughput(Throughput::Elements(b as u64));
    let mut aggs = Aggregates::new(params.clone()).expect("aggregates");
    let mut next_id = 0u64;
    // the host route (the default), then the influences on the device (burn on flex here; the
    // GPU route)
    let kernels = DeviceKernels::new(model.description(), &device).expect("device kernels");
    for (name, kernels) in [
        ("googlenet_224", None),
        ("googlenet_224_influences_on_device", Some(&kernels)),
    ] {
        bench_step(
            &mut g,
            name,
            &model,
            &config,
            &mut aggs,
            &mut next_id,
            &x,
            &labels,
            kernels,
        );
    }
    g.finish();

    let mut g = c.benchmark_group("pass_parts");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(b as u64));
    bench_record(&mut g, "record", &model, &x);

    // the pass's aggregation parts on one recording
    let rec = model.record(x.clone()).expect("record");
    let desc = model.description();
    g.bench_function(
        BenchmarkId::new("activations_device_max", format!("B{b}")),
        |bch| {
            bch.iter(|| {
                let mut n = 0;
                for layer in &desc.layers {
                    let t = rec.tap(layer.tap).clone();
                    let [tb, c, h, w] = t.dims();
                    let (max, arg) = t.reshape([tb, c, h * w]).max_dim_with_indices(2);
                    n += to_host(max, "max").expect("max").len();
                    n += arg.into_data().num_elements();
                }
                n
            })
        },
    );
    let host: Vec<(Vec<f32>, [usize; 4])> = rec
        .taps
        .iter()
        .map(|t| (to_host(t.clone(), "tap").expect("tap"), t.dims()))
        .collect();
    g.bench_function(
        BenchmarkId::new("activations_host", format!("B{b}")),
        |bch| {
            let mut aggs = Aggregates::new(params.clone()).expect("aggregates");
            let mut next_id = 0u64;
            bch.iter(|| {
                let ids: Vec<u64> = (next_id..next_id + b as u64).collect();
                next_id += b as u64;
                for (l, layer) in desc.layers.iter().enumerate() {
                    let (v, dims) = &host[layer.tap.0];
                    let (max, arg) = summit_core::activation::channel_max(v, *dims).expect("max");
                    aggs.add_activations(l, &ids, &labels, &max, &arg)
                        .expect("activations");
                }
            })
        },
    );
    g.bench_function(BenchmarkId::new("influences", format!("B{b}")), |bch| {
        let mut aggs = Aggregates::new(params.clone()).expect("aggregates");
        bch.iter(|| {
            for (l, paths) in desc.paths.iter().enumerate() {
                for (p, path) in paths.iter().enumerate() {
                    for (h, hop) in path.hops.iter().enumerate() {
                        let tap = if h == 0 {
                            config.hop_input.tap(hop)
                        } else {
                            hop.input
                        };
                        let (v, dims) = &host[tap.0];
                        aggs.add_hop_input(
                            l,
                            p,
                            h,
                            &labels,
                            v,
                            *dims,
                            &hop.kernel.weight,
                            hop.kernel.dims,
                            summit_core::pipeline::hop_geometry(hop),
                        )
                        .expect("influences");
                    }
                }
            }
        })
    });
    g.finish();
}

/// `n` fixed 3 × 224² images (truncated normal values, as the per-batch groups feed).
struct Images {
    names: Vec<String>,
    labels: Vec<usize>,
    data: Vec<Vec<f32>>,
}

impl summit_core::data::Dataset for Images {
    fn class_names(&self) -> &[String] {
        &self.names
    }
    fn labels(&self) -> &[usize] {
        &self.labels
    }
    fn source(&self, index: usize) -> String {
        format!("bench:{index}")
    }
    fn load(&self, index: usize) -> summit_core::data::Result<summit_core::data::Image> {
        Ok(summit_core::data::Image {
            data: self.data[index].clone(),
            channels: 3,
            height: 224,
            width: 224,
        })
    }
    fn sample_dims(&self) -> Option<[usize; 3]> {
        Some([3, 224, 224])
    }
}

fn bench_pipeline(c: &mut Criterion) {
    let device = device();
    let mut sd = random_googlenet_state_dict(0);
    let model = GoogLeNet::from_state_dict(&mut sd, GoogLeNetOptions::default(), &device)
        .expect("random GoogLeNet");
    let b = batch_size();
    let n = 4 * b;
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let data = Images {
        names: (0..CLASSES).map(|c| format!("class {c}")).collect(),
        labels: (0..n).map(|_| rng.random_range(0..CLASSES)).collect(),
        data: (0..n)
            .map(|_| (0..3 * 224 * 224).map(|_| trunc_normal(&mut rng)).collect())
            .collect(),
    };
    let config = Config {
        batch_size: b,
        progress: false,
        feature_vis: None,
        ..Config::default()
    };
    let pipeline =
        summit_core::Pipeline::new(&model, std::sync::Arc::new(data), config, device.clone())
            .expect("pipeline");
    let mut g = c.benchmark_group("pass");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(30));
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(
        BenchmarkId::new("googlenet_224_pipeline", format!("B{b}")),
        |bch| bch.iter(|| black_box(pipeline.aggregate().expect("pass"))),
    );
    g.finish();
}

/// `pass/{name}/B{b}`: the pipeline's per-batch step on `x`, fresh image ids each iteration
/// (an id may be aggregated only once).
#[allow(clippy::too_many_arguments)]
fn bench_step(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    model: &dyn Summarizable,
    config: &Config,
    aggs: &mut Aggregates,
    next_id: &mut u64,
    x: &Tensor<4>,
    labels: &[usize],
    kernels: Option<&DeviceKernels>,
) {
    let b = labels.len();
    g.bench_function(BenchmarkId::new(name, format!("B{b}")), |bch| {
        bch.iter(|| {
            let ids: Vec<u64> = (*next_id..*next_id + b as u64).collect();
            *next_id += b as u64;
            aggregate_batch_with(
                model,
                config.hop_input,
                aggs,
                black_box(x.clone()),
                &ids,
                labels,
                "bench batch",
                kernels,
            )
            .expect("pass")
        })
    });
}

/// `pass_parts/{name}/B{b}`: the recording forward pass, every tap read back to the host.
fn bench_record(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    model: &dyn Summarizable,
    x: &Tensor<4>,
) {
    let b = x.dims()[0];
    g.bench_function(BenchmarkId::new(name, format!("B{b}")), |bch| {
        bch.iter(|| {
            let rec = model.record(black_box(x.clone())).expect("record");
            let mut n = to_host(rec.logits, "logits").expect("logits").len();
            for t in rec.taps {
                n += to_host(t, "tap").expect("tap").len();
            }
            n
        })
    });
}

/// Lucid InceptionV1 (lucent's keys) with random weights: convolutions N(0, 0.01²) truncated,
/// biases 0.
fn random_lucid_state_dict(seed: u64) -> StateDict {
    use summit_model::lucid::LUCID_MODULES;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut t = BTreeMap::new();
    let mut conv = |t: &mut BTreeMap<String, HostTensor>, key: &str, c_out, c_in, k| {
        let w = (0..c_out * c_in * k * k)
            .map(|_| 0.01 * trunc_normal(&mut rng))
            .collect();
        t.insert(
            format!("{key}.weight"),
            HostTensor::new(vec![c_out, c_in, k, k], w),
        );
        t.insert(
            format!("{key}.bias"),
            HostTensor::new(vec![c_out], vec![0.0; c_out]),
        );
    };
    conv(&mut t, "conv2d0_pre_relu_conv", 64, 3, 7);
    conv(&mut t, "conv2d1_pre_relu_conv", 64, 64, 1);
    conv(&mut t, "conv2d2_pre_relu_conv", 192, 64, 3);
    for (name, s) in &LUCID_MODULES {
        let k = |b: &str| format!("{name}_{b}_pre_relu_conv");
        conv(&mut t, &k("1x1"), s.ch1x1, s.c_in, 1);
        conv(&mut t, &k("3x3_bottleneck"), s.ch3x3red, s.c_in, 1);
        conv(&mut t, &k("3x3"), s.ch3x3, s.ch3x3red, s.k3);
        conv(&mut t, &k("5x5_bottleneck"), s.ch5x5red, s.c_in, 1);
        conv(&mut t, &k("5x5"), s.ch5x5, s.ch5x5red, s.k5);
        conv(&mut t, &k("pool_reduce"), s.pool_proj, s.c_in, 1);
    }
    let n = 1008;
    let fc = (0..n * 1024)
        .map(|_| 0.01 * trunc_normal(&mut rng))
        .collect();
    t.insert(
        "softmax2_pre_activation_matmul.weight".into(),
        HostTensor::new(vec![n, 1024], fc),
    );
    t.insert(
        "softmax2_pre_activation_matmul.bias".into(),
        HostTensor::new(vec![n], vec![0.0; n]),
    );
    StateDict::from_tensors("random lucid inceptionv1 (in-process)", t)
}

/// `pass/lucid_224/B8`: the same per-batch step on Lucid InceptionV1 (1008 outputs, random
/// weights), whose native route had none of GoogLeNet's host fast paths.
fn bench_lucid(c: &mut Criterion) {
    let device = device();
    let mut sd = random_lucid_state_dict(0);
    let model = summit_model::LucidInceptionV1::from_state_dict(&mut sd, &device)
        .expect("random Lucid InceptionV1");
    let config = Config::default();
    let params = aggregate_params(model.description(), &config).expect("paper parameters");
    let b = batch_size();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let images: Vec<f32> = (0..b * 3 * 224 * 224)
        .map(|_| 50.0 * trunc_normal(&mut rng))
        .collect();
    let labels: Vec<usize> = (0..b).map(|_| rng.random_range(0..1008)).collect();
    let x = Tensor::<4>::from_data(TensorData::new(images, [b, 3, 224, 224]), &device);
    let mut g = c.benchmark_group("pass");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(30));
    g.throughput(Throughput::Elements(b as u64));
    let mut aggs = Aggregates::new(params).expect("aggregates");
    let mut next_id = 0u64;
    bench_step(
        &mut g,
        "lucid_224",
        &model,
        &config,
        &mut aggs,
        &mut next_id,
        &x,
        &labels,
        None,
    );
    g.finish();
    let mut g = c.benchmark_group("pass_parts");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(b as u64));
    bench_record(&mut g, "lucid_record", &model, &x);
    g.finish();
}

criterion_group!(benches, bench_pass, bench_pipeline, bench_lucid);
criterion_main!(benches);
