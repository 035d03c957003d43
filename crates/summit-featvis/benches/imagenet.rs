//! Feature visualization on ImageNet-size models (SPEC §4.1, issue 10): the cost per channel
//! (plain and diversity) on the embedded model and on Lucid InceptionV1 at 128² upsampled to
//! 224², and the quality measures (ratio to the dataset maximum, rank in the layer) for 32
//! channels of Lucid InceptionV1 `mixed4a` with random weights (the lucent fixture) and of the
//! real pretrained EfficientNet-Lite0's middle block `_blocks.9` (the ONNX fixture); optionally
//! a contact sheet of 16 EfficientNet-Lite0 channels with their 4 diversity images.
//!
//! The fixtures come from `scripts/check.sh` (`make_lucent.py`, `make_onnx_models.py`). No
//! ImageNet images are at hand offline, so the "dataset" of the ratio is 64 seeded random
//! crops (and flips) of the two photos matplotlib ships (`grace_hopper.jpg`,
//! `Minduka_Present_Blue_Pack.png`): its maxima are lower than ImageNet's would be.
//!
//! ```sh
//! SUMMIT_FEATVIS_STEPS=64 SUMMIT_FEATVIS_SHEET=/tmp/sheet.png \
//!     cargo bench -p summit-featvis --bench imagenet
//! ```
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use summit_featvis::{
    FeatureVisParams, InputMap, Visualization, contact_sheet, layer_means, quality, to_input,
    visualize,
};
use summit_model::{
    FashionInception, LucidInceptionV1, OnnxModel, OnnxOptions, Summarizable, burn,
};

fn env_usize(k: &str, default: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../summit-model/tests/fixtures")
}

fn require(p: &Path) -> &Path {
    if !p.is_file() {
        eprintln!(
            "missing {}: run scripts/check.sh (it generates the fixtures)",
            p.display()
        );
        std::process::exit(1);
    }
    p
}

/// 64 seeded random square crops (35–100 % of the shorter side), half of them flipped, of the
/// photos matplotlib ships, as `[3, side, side]` values in `[0, 1]`.
fn photo_crops(n: usize, side: u32) -> Vec<Vec<f32>> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import matplotlib, os; print(os.path.join(os.path.dirname(matplotlib.__file__), 'mpl-data', 'sample_data'))",
        ])
        .output()
        .expect("python3 with matplotlib");
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let photos: Vec<image::RgbImage> = ["grace_hopper.jpg", "Minduka_Present_Blue_Pack.png"]
        .iter()
        .map(|f| image::open(require(&dir.join(f))).unwrap().to_rgb8())
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    (0..n)
        .map(|i| {
            let p = &photos[i % photos.len()];
            let (w, h) = p.dimensions();
            let s = (f64::from(w.min(h)) * rng.random_range(0.35..1.0)) as u32;
            let (x, y) = (rng.random_range(0..=w - s), rng.random_range(0..=h - s));
            let mut c = image::imageops::crop_imm(p, x, y, s, s).to_image();
            if rng.random::<bool>() {
                c = image::imageops::flip_horizontal(&c);
            }
            let c = image::imageops::resize(&c, side, side, image::imageops::FilterType::Triangle);
            let mut v = vec![0f32; 3 * (side * side) as usize];
            for (px, py, rgb) in c.enumerate_pixels() {
                for ch in 0..3 {
                    v[(ch * side as usize + py as usize) * side as usize + px as usize] =
                        f32::from(rgb[ch]) / 255.0;
                }
            }
            v
        })
        .collect()
}

/// Each channel's largest mean activation over `images`.
fn dataset_max(
    model: &dyn Summarizable,
    layer: &str,
    images: &[Vec<f32>],
    side: usize,
    map: &InputMap,
    device: &Device,
) -> Vec<f32> {
    let mut best: Vec<f32> = Vec::new();
    for chunk in images.chunks(8) {
        let m = layer_means(model, layer, to_input(model, chunk, side, map, device)).unwrap();
        for row in m {
            if best.is_empty() {
                best = row;
            } else {
                for (b, v) in best.iter_mut().zip(row) {
                    *b = b.max(v);
                }
            }
        }
    }
    best
}

#[allow(clippy::too_many_arguments)]
fn measure(
    name: &str,
    model: &dyn Summarizable,
    layer: &str,
    channels: &[usize],
    map: &InputMap,
    params: &FeatureVisParams,
    ds_max: &[f32],
    device: &Device,
) -> Vec<Visualization> {
    let t = Instant::now();
    let plain = FeatureVisParams {
        diversity: 1,
        ..params.clone()
    };
    let vis = visualize(model, layer, channels, map, &plain, device, |_, _| {}).unwrap();
    let secs = t.elapsed().as_secs_f64() / channels.len() as f64;
    let pixels: Vec<Vec<f32>> = vis.iter().map(|v| v.pixels[0].clone()).collect();
    let mut ratios = Vec::new();
    let mut first = 0;
    for chunk in pixels.chunks(8).zip(vis.chunks(8)) {
        let means = layer_means(
            model,
            layer,
            to_input(model, chunk.0, vis[0].size, map, device),
        )
        .unwrap();
        for (m, v) in means.iter().zip(chunk.1) {
            let (r, rank) = quality(m, ds_max, v.channel);
            ratios.push(r);
            first += usize::from(rank == 1);
        }
    }
    ratios.sort_by(f32::total_cmp);
    println!(
        "{name} {layer}: {} channels, {} steps, {secs:.1} s per channel (plain); median ratio \
         {:.2} (min {:.2}), first in its layer {first}/{}",
        channels.len(),
        params.steps,
        ratios[ratios.len() / 2],
        ratios[0],
        channels.len()
    );
    vis
}

fn main() {
    let device = Device::flex();
    let steps = env_usize("SUMMIT_FEATVIS_STEPS", 512);
    let per_512 = 512.0 / steps as f64;

    // ---- cost on the embedded model (28², 8 channels of mixed4a)
    let emb = FashionInception::embedded(&device).unwrap();
    let fm = InputMap::fashion_mnist();
    let chans: Vec<usize> = (0..8).collect();
    for d in [1, 4] {
        let p = FeatureVisParams {
            steps: steps.min(64),
            diversity: d,
            ..FeatureVisParams::default()
        };
        let t = Instant::now();
        visualize(&emb, "mixed4a", &chans, &fm, &p, &device, |_, _| {}).unwrap();
        let s = t.elapsed().as_secs_f64() / chans.len() as f64 * 512.0 / p.steps as f64;
        println!(
            "embedded mixed4a 28², {d} image(s) per channel: {s:.2} s per channel per 512 steps"
        );
    }

    let crops = photo_crops(64, 224);
    let params = FeatureVisParams {
        steps,
        ..FeatureVisParams::default()
    };
    let n = env_usize("SUMMIT_FEATVIS_CHANNELS", 32);

    // ---- Lucid InceptionV1, random weights (the lucent fixture), mixed4a
    let lucid =
        LucidInceptionV1::load(require(&fixtures().join("lucent/inceptionv1.pth")), &device)
            .unwrap();
    let t = summit_data::Preprocess::lucid().transform();
    let lmap = InputMap {
        scale: t.scale.clone(),
        offset: t.offset.clone(),
    };
    let ds = dataset_max(&lucid, "mixed4a", &crops, 224, &lmap, &device);
    let channels: Vec<usize> = (0..n).collect();
    let t0 = Instant::now();
    measure(
        "lucid inceptionv1 (random)",
        &lucid,
        "mixed4a",
        &channels,
        &lmap,
        &params,
        &ds,
        &device,
    );
    let plain_s = t0.elapsed().as_secs_f64() / n as f64;
    let t0 = Instant::now();
    let div = FeatureVisParams {
        diversity: 4,
        ..params.clone()
    };
    visualize(
        &lucid,
        "mixed4a",
        &channels[..2],
        &lmap,
        &div,
        &device,
        |_, _| {},
    )
    .unwrap();
    let div_s = t0.elapsed().as_secs_f64() / 2.0;
    println!(
        "lucid inceptionv1 128² → 224²: {:.1} s per channel plain, {:.1} s per channel with 4 \
         diversity images, per 512 steps",
        plain_s * per_512,
        div_s * per_512
    );

    // ---- EfficientNet-Lite0 (pretrained, ONNX), middle block
    let onnx = fixtures().join("onnx/efficientnet_lite0.onnx");
    let eff = OnnxModel::load(require(&onnx), &OnnxOptions::default(), &device).unwrap();
    let emap = InputMap::imagenet();
    let layer = "_blocks.9";
    let ds = dataset_max(&eff, layer, &crops, 224, &emap, &device);
    let vis = measure(
        "efficientnet-lite0",
        &eff,
        layer,
        &channels,
        &emap,
        &params,
        &ds,
        &device,
    );
    if let Ok(sheet) = std::env::var("SUMMIT_FEATVIS_SHEET") {
        let k = 16.min(n);
        let t0 = Instant::now();
        let div = visualize(&eff, layer, &channels[..k], &emap, &div, &device, |_, _| {}).unwrap();
        println!(
            "efficientnet-lite0: {:.1} s per channel with 4 diversity images ({} steps)",
            t0.elapsed().as_secs_f64() / k as f64,
            steps
        );
        let mut rows: Vec<Visualization> = vis[..k].to_vec();
        for (r, d) in rows.iter_mut().zip(div) {
            r.images.extend(d.images);
        }
        contact_sheet(&rows, 96).save(&sheet).unwrap();
        println!("wrote {sheet}");
    }
}
