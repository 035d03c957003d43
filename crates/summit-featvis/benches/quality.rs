//! The quality measures of SPEC §4.1 on the embedded model's summary layers, and the cost: for
//! each channel, its activation (the mean over positions, the statistic the `channel`
//! objective maximises) on its plain visualization divided by its largest activation over the
//! 10k embedded test images, and its rank in its layer on its visualization (each channel's
//! activation divided by its dataset maximum; 1 = first), with the seconds per channel. Issue
//! 10 asks for a median ratio ≥ 2 and rank 1 for ≥ 90 % of the channels; this prints where the
//! implementation stands (`SUMMIT_FEATVIS_VERBOSE=1`: which channel beat each one that is not
//! first).
//!
//! ```sh
//! cargo bench -p summit-featvis --bench quality
//! SUMMIT_FEATVIS_STEPS=128 SUMMIT_FEATVIS_CHANNELS=16 SUMMIT_FEATVIS_LAYERS=mixed4a cargo bench -p summit-featvis --bench quality
//! ```
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use summit_data::{Dataset, FashionMnist, Preprocess};
use summit_featvis::{FeatureVisParams, InputMap, layer_means, quality, to_input, visualize};
use summit_model::{FashionInception, Summarizable, burn};

/// Every channel's maximum over the 10k embedded test images, per summary layer.
fn dataset_maxima(model: &FashionInception, device: &Device) -> Vec<Vec<f32>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets/fashion-mnist");
    let ds = FashionMnist::open(
        dir.join("t10k-images-idx3-ubyte.gz"),
        dir.join("t10k-labels-idx1-ubyte.gz"),
    )
    .and_then(|d| d.with_preprocess(Preprocess::fashion_mnist()))
    .unwrap();
    let layers: Vec<String> = model
        .description()
        .layers
        .iter()
        .map(|l| l.name.clone())
        .collect();
    let mut best: Vec<Vec<f32>> = model
        .description()
        .layers
        .iter()
        .map(|l| vec![f32::NEG_INFINITY; l.channels])
        .collect();
    let n = ds.len();
    for start in (0..n).step_by(500) {
        let end = (start + 500).min(n);
        let mut data = Vec::new();
        for i in start..end {
            data.extend(ds.load(i).unwrap().data);
        }
        let x = Tensor::<4>::from_data(TensorData::new(data, [end - start, 1, 28, 28]), device);
        let rec = model.record(x).unwrap();
        for (l, name) in layers.iter().enumerate() {
            let tap = model.description().layers[l].tap;
            let t = rec.tap(tap).clone();
            let [b, c, h, w] = t.dims();
            let m =
                summit_model::to_host(t.reshape([b, c, h * w]).mean_dim(2).reshape([b, c]), name)
                    .unwrap();
            for row in m.chunks(c) {
                for (k, v) in row.iter().enumerate() {
                    best[l][k] = best[l][k].max(*v);
                }
            }
        }
    }
    best
}

fn main() {
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
    let ds_max = dataset_maxima(&model, &device);
    let map = InputMap::fashion_mnist();
    let steps: usize = std::env::var("SUMMIT_FEATVIS_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let params = FeatureVisParams {
        diversity: 1,
        steps,
        batch_size: 128,
        ..FeatureVisParams::default()
    };
    let mut ratios = Vec::new();
    let mut first = 0usize;
    let mut total = 0usize;
    let only: Option<Vec<String>> = std::env::var("SUMMIT_FEATVIS_LAYERS")
        .ok()
        .map(|v| v.split(',').map(str::to_string).collect());
    for (l, layer) in model.description().layers.iter().enumerate() {
        if only.as_ref().is_some_and(|o| !o.contains(&layer.name)) {
            continue;
        }
        let channels: Vec<usize> = match std::env::var("SUMMIT_FEATVIS_CHANNELS") {
            Ok(k) => (0..k.parse::<usize>().unwrap().min(layer.channels)).collect(),
            Err(_) => (0..layer.channels).collect(),
        };
        let t = std::time::Instant::now();
        let vis = visualize(
            &model,
            &layer.name,
            &channels,
            &map,
            &params,
            &device,
            |_, _| {},
        )
        .unwrap();
        let secs = t.elapsed().as_secs_f64();
        let pixels: Vec<Vec<f32>> = vis.iter().map(|v| v.pixels[0].clone()).collect();
        let x = to_input(&model, &pixels, vis[0].size, &map, &device);
        let maxima = layer_means(&model, &layer.name, x).unwrap();
        let mut layer_ratios = Vec::new();
        let mut layer_first = 0;
        for (v, m) in vis.iter().zip(&maxima) {
            let (r, rank) = quality(m, &ds_max[l], v.channel);
            layer_ratios.push(r);
            if rank == 1 {
                layer_first += 1;
            } else if std::env::var("SUMMIT_FEATVIS_VERBOSE").is_ok() {
                // who beat it, and how large that channel's dataset maximum is
                let rel: Vec<f32> = m
                    .iter()
                    .zip(&ds_max[l])
                    .map(|(a, d)| a / d.max(1e-12))
                    .collect();
                let w = (0..rel.len())
                    .max_by(|&a, &b| rel[a].total_cmp(&rel[b]))
                    .unwrap();
                let mut sorted = ds_max[l].clone();
                sorted.sort_by(f32::total_cmp);
                println!(
                    "  {}:{} ratio {r:.2} rank {rank}: beaten by {w} ratio {:.2} \
                     (dataset max {:.3}, layer median {:.3})",
                    layer.name,
                    v.channel,
                    rel[w],
                    ds_max[l][w],
                    sorted[sorted.len() / 2]
                );
            }
        }
        layer_ratios.sort_by(f32::total_cmp);
        println!(
            "{}: {} channels in {secs:.1} s ({:.3} s/channel): median ratio {:.2} (min {:.2}), \
             first in its layer {}/{}",
            layer.name,
            vis.len(),
            secs / vis.len() as f64,
            layer_ratios[layer_ratios.len() / 2],
            layer_ratios[0],
            layer_first,
            vis.len()
        );
        first += layer_first;
        total += vis.len();
        ratios.extend(layer_ratios);
    }
    ratios.sort_by(f32::total_cmp);
    let median = ratios[ratios.len() / 2];
    let share = first as f64 / total as f64;
    println!(
        "all {total} channels: median ratio {median:.2}, first in its layer {:.1} %",
        100.0 * share
    );
}
