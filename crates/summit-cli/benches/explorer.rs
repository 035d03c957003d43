//! Latency of the explorer's uncached answers (SPEC §5.1) on the machine's threads: a Grad-CAM
//! heatmap (the PNG the page shows) and a per-image attribution graph (SPEC §3.2),
//!
//! - for the embedded Fashion-MNIST model (28²), through `Explorer` and through a live
//!   `summit serve` on loopback (HTTP included), each image asked once (never cached);
//! - for torchvision GoogLeNet at 224² (the seeded random weights of the fixture,
//!   `crates/summit-model/tests/fixtures/make_googlenet.py`): what `Explorer::attribution_png`
//!   and `Explorer::image_graph` compute for an uncached image (attribution, heatmap, overlay,
//!   PNG; the graph of one image).
//!
//! ```sh
//! cargo bench -p summit-cli --bench explorer
//! ```
//!
//! - the first page load of a served 1000-class output (GoogLeNet through ONNX over a folder
//!   holding 3 of its classes), over HTTP and in headless Chromium;
//! - `predictions.bin` at ImageNet's scale (1.28M images, 1000 classes): written as a pass
//!   writes it, read as the explorer reads it, and one filter's scan.
//!
//! Targets (issue: the live explorer): Grad-CAM ≤ 300 ms at 224², ≤ 30 ms for the embedded
//! model.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use summit_cli::{Explorer, ModelSource, Served, Subject, Target, router};
use summit_core::attribution::{AttributionParams, Attributor, Method, heatmap, overlay};
use summit_core::data::{Dataset, FashionMnist, Image, ImageFolder, Preprocess};
use summit_core::model::{FashionInception, GoogLeNet, GoogLeNetOptions, OnnxModel, OnnxOptions};
use summit_core::{ClassInfo, Config, Device, Pipeline, Relabeled, RunMeta, WriteOptions};

fn median_ms(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (1e3 * v[v.len() / 2], 1e3 * v[v.len() - 1])
}

fn quiet(mut c: Config) -> Config {
    c.progress = false;
    c.attribution = None;
    c.feature_vis = None;
    c.faithfulness = None;
    c
}

/// A run of the embedded model over the first 300 test images.
fn embedded_output(out: &Path) {
    let root = PathBuf::from(summit_cli::commands::EMBEDDED_DATA);
    let images = root.join("t10k-images-idx3-ubyte.gz");
    let data = FashionMnist::open(&images, root.join("t10k-labels-idx1-ubyte.gz"))
        .and_then(|d| d.with_preprocess(Preprocess::fashion_mnist()))
        .unwrap();
    let transform = data.transform().clone();
    let meta = RunMeta {
        dataset_name: "fashion-mnist-test".into(),
        dataset_source: images.display().to_string(),
        classes: data.class_names().iter().map(ClassInfo::new).collect(),
    };
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
    let mut config = quiet(Config::paper());
    config.limit = Some(300);
    Pipeline::new(&model, Arc::new(data), config, device)
        .unwrap()
        .run(out, &meta, Some(&transform), &WriteOptions::default())
        .unwrap();
}

fn http_get(addr: std::net::SocketAddr, path: &str) -> usize {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    assert!(raw.starts_with(b"HTTP/1.1 200"), "{path}");
    raw.len()
}

fn embedded() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    embedded_output(&out);
    let e = Explorer::open(&out, &ModelSource::Auto).unwrap();
    let n = 20;
    let mut heat = Vec::new();
    let mut graph = Vec::new();
    for i in 0..n {
        let s = Subject::Image(1000 + i);
        let t = Instant::now();
        e.attribution_png(&s, Method::GradCam, &Target::Class(None))
            .unwrap();
        heat.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        e.image_graph(&s).unwrap();
        graph.push(t.elapsed().as_secs_f64());
    }
    let (h, hm) = median_ms(heat);
    let (g, gm) = median_ms(graph);
    println!(
        "embedded model (28²), Explorer: Grad-CAM {h:.1} ms (max {hm:.1}), image graph {g:.1} ms (max {gm:.1}), {n} uncached images"
    );
    // through the server
    let addr = serve_explorers(vec![Explorer::open(&out, &ModelSource::Auto).unwrap()]);
    let mut heat = Vec::new();
    let mut graph = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        http_get(
            addr,
            &format!("/api/image/{}/attribution.png?method=grad-cam", 2000 + i),
        );
        heat.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        http_get(addr, &format!("/api/image/{}/graph", 2000 + i));
        graph.push(t.elapsed().as_secs_f64());
    }
    let (h, hm) = median_ms(heat);
    let (g, gm) = median_ms(graph);
    println!(
        "embedded model (28²), HTTP: Grad-CAM {h:.1} ms (max {hm:.1}), image graph {g:.1} ms (max {gm:.1}), {n} uncached images"
    );
}

/// Noise images of 1000 classes: the pipeline's dataset for GoogLeNet's per-image graphs.
struct Noise {
    classes: Vec<String>,
    labels: Vec<usize>,
}

impl Dataset for Noise {
    fn class_names(&self) -> &[String] {
        &self.classes
    }
    fn labels(&self) -> &[usize] {
        &self.labels
    }
    fn source(&self, i: usize) -> String {
        format!("noise {i}")
    }
    fn load(&self, i: usize) -> summit_core::data::Result<Image> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i as u64);
        Ok(Image {
            data: (0..3 * 224 * 224)
                .map(|_| rng.random_range(-2.0..2.0))
                .collect(),
            channels: 3,
            height: 224,
            width: 224,
        })
    }
    fn sample_dims(&self) -> Option<[usize; 3]> {
        Some([3, 224, 224])
    }
}

fn googlenet() {
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
    let data = Noise {
        classes: (0..1000).map(|c| format!("class {c}")).collect(),
        labels: vec![0; 16],
    };
    let mean = [0.485f32, 0.456, 0.406];
    let std = [0.229f32, 0.224, 0.225];
    let params = AttributionParams {
        input_bounds: Some((
            (0..3).map(|c| -mean[c] / std[c]).collect(),
            (0..3).map(|c| (1.0 - mean[c]) / std[c]).collect(),
        )),
        ..AttributionParams::default()
    };
    let rgb = image::RgbImage::from_fn(224, 224, |x, y| image::Rgb([x as u8, y as u8, 99]));
    let n = 6;
    let mut heat = Vec::new();
    for i in 0..=n {
        let img = data.load(i).unwrap();
        let t = Instant::now();
        let att = Attributor::new(&model, params.clone(), &device).unwrap();
        let a = att
            .attribute_host(
                Method::GradCam,
                &img.data,
                [1, 3, 224, 224],
                &[(i * 97) % 1000],
            )
            .unwrap();
        let over = overlay(&rgb, &heatmap(&a, 0, 224, 224)).unwrap();
        let mut png = std::io::Cursor::new(Vec::new());
        over.write_to(&mut png, image::ImageFormat::Png).unwrap();
        if i > 0 {
            // the first is a warm-up
            heat.push(t.elapsed().as_secs_f64());
        }
    }
    let pipeline = Pipeline::new(&model, Arc::new(data), quiet(Config::paper()), device).unwrap();
    let noise = Noise {
        classes: Vec::new(),
        labels: Vec::new(),
    };
    let mut graph = Vec::new();
    for i in 0..=3 {
        let img = noise.load(100 + i).unwrap();
        let t = Instant::now();
        pipeline
            .image_graph(&img.data, [3, 224, 224], None, i as u64)
            .unwrap();
        if i > 0 {
            graph.push(t.elapsed().as_secs_f64());
        }
    }
    let (h, hm) = median_ms(heat);
    let (g, gm) = median_ms(graph);
    println!(
        "GoogLeNet 224²: Grad-CAM heatmap PNG {h:.0} ms (max {hm:.0}, {n} images), image graph {g:.0} ms (max {gm:.0}, 3 images)"
    );
}

/// `predictions.bin` at ImageNet's scale: 1.28M images of 1000 classes written as a pass
/// writes them (batches of 64), read whole as the explorer does, and scanned as a filter by
/// predicted class and confidence scans it.
fn imagenet_scale_predictions() {
    let (images, classes) = (1_281_167usize, 1000usize);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("predictions.bin");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let t = Instant::now();
    let mut log =
        summit_core::export::PredictionLog::create(&path, classes, images as u64).unwrap();
    let mut probs = vec![0f32; 64 * classes];
    let mut written = 0;
    while written < images {
        let b = 64.min(images - written);
        for p in probs.iter_mut().take(b * classes) {
            *p = rng.random_range(0.0..1.0);
        }
        let ids: Vec<u64> = (written as u64..(written + b) as u64).collect();
        log.record(&ids, &probs[..b * classes]).unwrap();
        written += b;
    }
    log.sync().unwrap();
    let write_s = t.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&path).unwrap().len();
    let t = Instant::now();
    let p = summit_core::export::Predictions::read(&path).unwrap();
    let read_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let n = (0..p.len())
        .filter(|&i| p.top1(i).is_some_and(|(c, conf)| c == 417 && conf > 0.5))
        .count();
    let scan_s = t.elapsed().as_secs_f64();
    println!(
        "predictions.bin, {images} images × {classes} classes: {:.1} MB; written in batches of 64 in {write_s:.1} s (top-5 of random probabilities included), read in {:.0} ms, one filter scan {:.0} ms ({n} matches)",
        bytes as f64 / 1e6,
        read_s * 1e3,
        scan_s * 1e3
    );
}

/// Serves `explorers` on a free loopback port from a background thread.
fn serve_explorers(explorers: Vec<Explorer>) -> std::net::SocketAddr {
    let served = Arc::new(Served::new(explorers).unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            axum::serve(l, router(served, None)).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

/// The first page load of a served 1000-class output: torchvision GoogLeNet through ONNX (the
/// fixture's seeded random weights, `make_onnx_models.py`) over an image folder holding 3 of
/// its 1000 classes (12 random images). Timed over HTTP (the page, then the requests its live
/// part makes first) and, where node, Chromium and playwright-core are installed, in headless
/// Chromium (`crates/summit-export/tests/browser/pageload.mjs`: until the page is drawn and
/// until the dataset browser shows its first thumbnails).
fn thousand_classes() {
    let onnx = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../summit-model/tests/fixtures/onnx/googlenet.onnx");
    if !onnx.exists() {
        eprintln!(
            "{} missing: run python3 crates/summit-model/tests/fixtures/make_onnx_models.py",
            onnx.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("images");
    let names: Vec<String> = (0..1000).map(|c| format!("class-{c:04}")).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    for c in [7usize, 420, 999] {
        let dir = folder.join(&names[c]);
        std::fs::create_dir_all(&dir).unwrap();
        for k in 0..4 {
            image::RgbImage::from_fn(256, 256, |_, _| {
                image::Rgb([rng.random(), rng.random(), rng.random()])
            })
            .save(dir.join(format!("{k}.png")))
            .unwrap();
        }
    }
    let device = Device::flex();
    let model = OnnxModel::load(&onnx, &OnnxOptions::default(), &device).unwrap();
    let images = ImageFolder::open(&folder, Preprocess::Torchvision).unwrap();
    let transform = images.transform().clone();
    let data: Arc<dyn Dataset> =
        Arc::new(Relabeled::new(Arc::new(images), &names, "the bench's classes").unwrap());
    let meta = RunMeta {
        dataset_name: "three of 1000 classes".into(),
        dataset_source: folder.display().to_string(),
        classes: names.iter().map(ClassInfo::new).collect(),
    };
    let out = tmp.path().join("run");
    let mut config = quiet(Config::paper());
    config.batch_size = 4;
    Pipeline::new(&model, data, config, device)
        .unwrap()
        .run(&out, &meta, Some(&transform), &WriteOptions::default())
        .unwrap();
    let explorer = Explorer::open(&out, &ModelSource::Onnx(onnx.clone())).unwrap();
    let addr = serve_explorers(vec![explorer]);
    let t = Instant::now();
    let page = http_get(addr, "/");
    let page_ms = 1e3 * t.elapsed().as_secs_f64();
    let mut bytes = page;
    for p in [
        "/api/info",
        "/api/images?offset=0&limit=48",
        "/api/suggestions",
    ] {
        bytes += http_get(addr, p);
    }
    let all_ms = 1e3 * t.elapsed().as_secs_f64();
    println!(
        "1000-class output (3 classes with images), HTTP: the page {page_ms:.0} ms ({} KB), with the live part's first requests {all_ms:.0} ms ({} KB)",
        page / 1000,
        bytes / 1000
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../summit-export/tests/browser/pageload.mjs");
    let out = std::process::Command::new("node")
        .arg(&script)
        .arg(format!("http://{addr}/"))
        .arg("3")
        .output();
    match out {
        Ok(o) if o.status.success() => println!(
            "1000-class output, headless Chromium (3 fresh loads): {}",
            String::from_utf8_lossy(&o.stdout).trim()
        ),
        Ok(o) => println!(
            "1000-class output, headless Chromium: failed ({})",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => println!("1000-class output, headless Chromium: not run (node: {e})"),
    }
}

fn main() {
    println!("{} threads", rayon::current_num_threads());
    embedded();
    googlenet();
    imagenet_scale_predictions();
    thousand_classes();
}
