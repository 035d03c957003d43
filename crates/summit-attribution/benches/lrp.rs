//! Cost of every LRP composite per image at 224², batches of 8, on torchvision GoogLeNet (the
//! GoogLeNet fixture's weights, through the native model's graph) and ResNet-50 (the ONNX
//! fixture), beside zennit 0.5.1 on the same networks and the same number of threads in the same
//! run (`benches/lrp_zennit.py`, when Python has torch and zennit).
//!
//! ```sh
//! RAYON_NUM_THREADS=2 cargo bench -p summit-attribution --bench lrp
//! SUMMIT_LRP_IMAGES=8 SUMMIT_LRP_ZENNIT=0 cargo bench -p summit-attribution --bench lrp
//! ```
//!
//! `SUMMIT_LRP_IMAGES` sets the images timed per composite (8), `SUMMIT_LRP_ZENNIT=0` skips
//! zennit, `SUMMIT_LRP_MODELS=googlenet` and `SUMMIT_LRP_COMPOSITES=lrp-z,lrp-epsilon` pick. zennit gets `torch.set_num_threads(RAYON_NUM_THREADS)` (or the machine's threads).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use summit_attribution::{AttributionParams, Attributor, Composite, Method};
use summit_model::burn::tensor::Device;
use summit_model::{GoogLeNet, GoogLeNetOptions, OnnxModel, OnnxOptions, Summarizable};

fn main() {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let fixtures = here.join("../summit-model/tests/fixtures");
    let googlenet = fixtures.join("googlenet/googlenet.pth");
    let resnet50 = fixtures.join("onnx/resnet50.onnx");
    for p in [&googlenet, &resnet50] {
        if !p.exists() {
            eprintln!(
                "{} missing: run the summit-model fixture scripts (scripts/check.sh does)",
                p.display()
            );
            return;
        }
    }
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let n: usize = std::env::var("SUMMIT_LRP_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    // zennit first (a separate process: it has the cores to itself)
    let mut zennit: BTreeMap<(String, String), f64> = BTreeMap::new();
    if std::env::var("SUMMIT_LRP_ZENNIT").as_deref() != Ok("0") {
        let script = here.join("benches/lrp_zennit.py");
        match Command::new("python3")
            .arg(&script)
            .arg(threads.to_string())
            .arg(n.to_string())
            .output()
        {
            Ok(out) if out.status.success() => {
                for line in String::from_utf8_lossy(&out.stdout).lines() {
                    let f: Vec<&str> = line.split(',').collect();
                    if let [_, model, comp, imgs, s] = f.as_slice() {
                        let per = s.parse::<f64>().unwrap() / imgs.parse::<f64>().unwrap();
                        zennit.insert((model.to_string(), comp.to_string()), per);
                    }
                }
            }
            Ok(out) => eprintln!(
                "zennit timing failed: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ),
            Err(e) => eprintln!("zennit timing not run (python3: {e})"),
        }
    }
    let device = Device::flex();
    let models: Vec<(&str, Box<dyn Summarizable>)> = vec![
        (
            "googlenet",
            Box::new(GoogLeNet::load(&googlenet, GoogLeNetOptions::default(), &device).unwrap()),
        ),
        (
            "resnet50",
            Box::new(
                OnnxModel::load(
                    &resnet50,
                    &OnnxOptions {
                        input_hw: Some([224, 224]),
                        ..OnnxOptions::default()
                    },
                    &device,
                )
                .unwrap(),
            ),
        ),
    ];
    let params = AttributionParams {
        batch_size: 8,
        input_bounds: Some((vec![-2.2; 3], vec![2.7; 3])),
        ..AttributionParams::default()
    };
    println!(
        "model, composite, ours ms/image, zennit ms/image, zennit/ours (224², B8, {threads} threads, {n} images)"
    );
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let per = 3 * 224 * 224;
    let pick = |var: &str, name: &str| {
        std::env::var(var).map_or(true, |v| v.split(',').any(|p| p == name))
    };
    for (name, model) in &models {
        if !pick("SUMMIT_LRP_MODELS", name) {
            continue;
        }
        let att = Attributor::new(model.as_ref(), params.clone(), &device).unwrap();
        let x: Vec<f32> = (0..n * per).map(|_| rng.random_range(-2.0..2.0)).collect();
        let targets: Vec<usize> = (0..n).map(|i| (i * 97) % 1000).collect();
        // warm-up: builds the native graph, touches every kernel
        att.attribute_host(
            Method::LrpEpsilon,
            &x[..per],
            [1, 3, 224, 224],
            &targets[..1],
        )
        .unwrap();
        for composite in Composite::ALL {
            if !pick("SUMMIT_LRP_COMPOSITES", composite.name()) {
                continue;
            }
            let t = Instant::now();
            let a = att
                .attribute_host(Method::lrp(composite), &x, [n, 3, 224, 224], &targets)
                .unwrap();
            let ours = 1e3 * t.elapsed().as_secs_f64() / n as f64;
            assert_eq!(a.dims[0], n);
            match zennit.get(&(name.to_string(), composite.name().to_string())) {
                Some(z) => println!(
                    "{name}, {composite}, {ours:.0}, {:.0}, {:.2}",
                    1e3 * z,
                    1e3 * z / ours
                ),
                None => println!("{name}, {composite}, {ours:.0}, -, -"),
            }
        }
    }
}
