//! Host and GPU give the same aggregates: the embedded model and torchvision GoogLeNet (the
//! seeded fixture) aggregated on burn's CPU backend and on the GPU named by `SUMMIT_GPU`
//! (`vulkan:N` with `--features vulkan`, `cuda:N` with `--features cuda`), with influences
//! computed on the host from the GPU's taps and on the GPU itself. A GPU's convolutions round
//! differently, so a selection between candidates within rounding can differ: the check
//! counts differing activation cells and influence paths and bounds them.
//!
//! It needs a GPU, so it is ignored by `cargo test`; `scripts/gpu_check.sh` runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use summit_core::{
    Aggregates, Device, FashionInception, GoogLeNet, GoogLeNetOptions, InfluenceOn, Pipeline,
    Summarizable, gpu_from_spec,
};

fn gpu() -> Device {
    let spec = std::env::var("SUMMIT_GPU")
        .expect("set SUMMIT_GPU=vulkan:N or cuda:N (scripts/gpu_check.sh does)");
    gpu_from_spec(&spec).unwrap()
}

/// Differing (class, channel) cells of A and differing influence paths of two aggregates.
fn differences(a: &Aggregates, b: &Aggregates) -> (usize, usize, usize, usize) {
    let (mut cells, mut diff_cells, mut paths, mut diff_paths) = (0, 0, 0, 0);
    for l in 0..a.params().layers.len() {
        let (x, y) = (
            a.activation_matrix(l).unwrap(),
            b.activation_matrix(l).unwrap(),
        );
        cells += x.len();
        diff_cells += x.iter().zip(y.iter()).filter(|(p, q)| p != q).count();
        let (pa, pb) = (
            a.paths(l).unwrap_or_default(),
            b.paths(l).unwrap_or_default(),
        );
        paths += pa.len();
        diff_paths += pa.iter().zip(pb).filter(|(p, q)| p != q).count();
    }
    (cells, diff_cells, paths, diff_paths)
}

fn compare(name: &str, host: &Aggregates, other: &Aggregates, what: &str) {
    let (cells, dc, paths, dp) = differences(host, other);
    println!(
        "{name}, {what}: {dc} of {cells} activation cells and {dp} of {paths} influence paths differ"
    );
    assert_eq!(
        host.class_images(),
        other.class_images(),
        "{name} {what}: images"
    );
    assert!(
        dc * 1000 <= cells,
        "{name} {what}: {dc} of {cells} activation cells differ"
    );
}

fn pass(model: &dyn Summarizable, device: &Device, on: InfluenceOn, n: usize) -> Aggregates {
    let mut cfg = common::config();
    cfg.influence_on = on;
    cfg.attribution = None;
    let p = Pipeline::new(model, common::head(n), cfg, device.clone()).unwrap();
    p.aggregate().unwrap().aggregates
}

#[test]
#[ignore = "needs a GPU: scripts/gpu_check.sh runs it with SUMMIT_GPU set"]
fn gpu_aggregates_match_the_host() {
    let gpu = gpu();
    let host = Device::flex();
    let n = 512;
    let m_host = FashionInception::embedded(&host).unwrap();
    let m_gpu = FashionInception::embedded(&gpu).unwrap();
    let reference = pass(&m_host, &host, InfluenceOn::Host, n);
    compare(
        "embedded",
        &reference,
        &pass(&m_gpu, &gpu, InfluenceOn::Host, n),
        "GPU taps, host influences",
    );
    compare(
        "embedded",
        &reference,
        &pass(&m_gpu, &gpu, InfluenceOn::Device, n),
        "GPU influences",
    );

    let weights = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("crates/summit-model/tests/fixtures/googlenet/googlenet.pth");
    let g_host = GoogLeNet::load(&weights, GoogLeNetOptions::default(), &host).unwrap();
    let g_gpu = GoogLeNet::load(&weights, GoogLeNetOptions::default(), &gpu).unwrap();
    let imgs = common::imagenet_like(16);
    let run = |m: &dyn Summarizable, d: &Device, on| {
        let mut cfg = common::config();
        cfg.influence_on = on;
        cfg.attribution = None;
        cfg.batch_size = 8;
        let p = Pipeline::new(m, imgs.clone(), cfg, d.clone()).unwrap();
        p.aggregate().unwrap().aggregates
    };
    let reference = run(&g_host, &host, InfluenceOn::Host);
    compare(
        "googlenet",
        &reference,
        &run(&g_gpu, &gpu, InfluenceOn::Host),
        "GPU taps, host influences",
    );
    compare(
        "googlenet",
        &reference,
        &run(&g_gpu, &gpu, InfluenceOn::Device),
        "GPU influences",
    );
}
