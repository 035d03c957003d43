//! The explorer's API against a live server on loopback, checked against the library's own
//! results (the served heatmap equals `Attributor` + `overlay` on the same image byte for byte,
//! the predictions the model's, the graph `Pipeline::image_graph`'s), every bad request a 4xx
//! naming its parameter with the server still serving, and the access token when one is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use summit_cli::{Explorer, ModelSource, Served, router};
use summit_core::attribution::{AttributionParams, Attributor, Method, heatmap, overlay};
use summit_core::data::{Dataset, FashionMnist, Preprocess};
use summit_core::model::burn::tensor::Device;
use summit_core::model::{FashionInception, OnnxModel, Summarizable};
use summit_core::{ClassInfo, Config, Pipeline, RunMeta, WriteOptions, to_rgb};

fn assets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets/fashion-mnist")
}

fn dataset() -> FashionMnist {
    FashionMnist::open(
        assets().join("t10k-images-idx3-ubyte.gz"),
        assets().join("t10k-labels-idx1-ubyte.gz"),
    )
    .and_then(|d| d.with_preprocess(Preprocess::fashion_mnist()))
    .unwrap()
}

/// The paper preset without the run's optional parts (heatmaps, feature visualization,
/// faithfulness) or its progress bar: what these tests' runs need.
fn quiet_config() -> Config {
    let mut config = Config::paper();
    config.progress = false;
    config.attribution = None;
    config.feature_vis = None;
    config.faithfulness = None;
    config
}

/// A run of the embedded model over the first 300 test images, written to `out`.
fn write_run(out: &Path) {
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
    write_run_of(&model, out);
}

/// A run of `model` over the first 300 test images, written to `out`.
fn write_run_of(model: &dyn Summarizable, out: &Path) {
    let device = Device::flex();
    let data = dataset();
    let transform = data.transform().clone();
    let meta = RunMeta {
        dataset_name: "fashion-mnist-test".into(),
        dataset_source: assets()
            .join("t10k-images-idx3-ubyte.gz")
            .display()
            .to_string(),
        classes: data.class_names().iter().map(ClassInfo::new).collect(),
    };
    let mut config = quiet_config();
    config.limit = Some(300);
    config.batch_size = 64;
    let pipeline = Pipeline::new(model, Arc::new(data), config, device).unwrap();
    pipeline
        .run(out, &meta, Some(&transform), &WriteOptions::default())
        .unwrap();
}

/// Serves `out` on a free loopback port from a background thread; returns its address.
fn serve(out: &Path, token: Option<String>) -> SocketAddr {
    serve_all(&[out], token)
}

/// Serves the outputs `outs` side by side.
fn serve_all(outs: &[&Path], token: Option<String>) -> SocketAddr {
    let explorers = outs
        .iter()
        .map(|o| Explorer::open(o, &ModelSource::Auto).unwrap())
        .collect();
    serve_explorers(explorers, token)
}

/// Serves `explorers` side by side.
fn serve_explorers(explorers: Vec<Explorer>, token: Option<String>) -> SocketAddr {
    let explorer = Arc::new(Served::new(explorers).unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, router(explorer, token))
                .await
                .unwrap();
        });
    });
    rx.recv().unwrap()
}

/// `GET path` with extra headers: (status, content type, body).
fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let body = raw[split + 4..].to_vec();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let kind = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "unexpected chunked answer to {path}"
    );
    (status, kind, body)
}

/// `POST path` with `body`: (status, JSON answer).
fn post(addr: SocketAddr, path: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: \
         application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    // the server may answer (413) before reading it all, and close
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_slice(&raw[split + 4..]).unwrap())
}

fn json(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (status, kind, body) = get(addr, path, &[]);
    assert!(kind.starts_with("application/json"), "{path}: {kind}");
    (status, serde_json::from_slice(&body).unwrap())
}

fn png_bytes(img: &image::RgbImage) -> Vec<u8> {
    png_file(&image::DynamicImage::ImageRgb8(img.clone()))
}

/// A run of the embedded model (`write_run`) served: (its folder, the output, the address).
fn served_run() -> (tempfile::TempDir, PathBuf, SocketAddr) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    write_run(&out);
    let addr = serve(&out, None);
    (tmp, out, addr)
}

#[test]
fn the_api_answers_what_the_library_computes() {
    let (_tmp, _out, addr) = served_run();
    let data = dataset();
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();

    // the page and its files
    let (status, kind, body) = get(addr, "/", &[]);
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/html"));
    assert!(String::from_utf8_lossy(&body).contains("summit-data"));
    let (status, kind, _) = get(addr, "/view/class-3.js", &[]);
    assert_eq!((status, kind.starts_with("text/javascript")), (200, true));

    // info and the dataset, paged and filtered (the whole test set, not only the run's 300)
    let (status, info) = json(addr, "/api/info");
    assert_eq!(status, 200);
    assert_eq!(info["images"], 10_000);
    assert_eq!(info["classes"].as_array().unwrap().len(), 10);
    assert!(
        info["methods"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "lrp-epsilon-plus-flat")
    );
    let (status, page) = json(addr, "/api/images?class=3&offset=2&limit=5");
    assert_eq!(status, 200);
    let want: Vec<usize> = (0..data.len()).filter(|&i| data.labels()[i] == 3).collect();
    assert_eq!(page["total"], want.len());
    let got: Vec<usize> = page["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["index"].as_u64().unwrap() as usize)
        .collect();
    assert_eq!(got, want[2..7]);

    // an image the run never saw (index 9000 > its 300)
    let i = 9000usize;
    let img = data.load(i).unwrap();
    let (status, kind, body) = get(addr, &format!("/api/image/{i}/image.png"), &[]);
    assert_eq!((status, kind.as_str()), (200, "image/png"));
    let rgb = to_rgb(&img, data.transform()).unwrap();
    assert_eq!(body, png_bytes(&rgb), "the image as the model sees it");

    // predictions: the model's softmax, top 5
    let (status, p) = json(addr, &format!("/api/image/{i}/predictions"));
    assert_eq!(status, 200);
    assert_eq!(p["label"], data.labels()[i]);
    let x = summit_core::model::burn::tensor::Tensor::<4>::from_data(
        summit_core::model::burn::tensor::TensorData::new(img.data.clone(), [1, 1, 28, 28]),
        &device,
    );
    let logits = summit_core::model::to_host(model.forward(x).unwrap(), "logits").unwrap();
    let probs = summit_core::softmax_rows(&logits, 10);
    let top = p["top"].as_array().unwrap();
    assert_eq!(top.len(), 5);
    let best = probs
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0;
    assert_eq!(top[0][0], best);
    assert_eq!(top[0][1].as_f64().unwrap() as f32, probs[best]);

    // attributions: byte for byte the library's overlay, for a class and for a neuron
    let params = AttributionParams {
        input_bounds: data.value_range(),
        ..AttributionParams::default()
    };
    let att = Attributor::new(&model, params, &device).unwrap();
    let expect = |a: summit_core::attribution::Attribution| {
        png_bytes(&overlay(&rgb, &heatmap(&a, 0, 28, 28)).unwrap())
    };
    for (query, want) in [
        (
            "method=lrp&class=2".to_string(),
            expect(
                att.attribute_host(Method::LrpEpsilonPlusFlat, &img.data, [1, 1, 28, 28], &[2])
                    .unwrap(),
            ),
        ),
        (
            "method=integrated-gradients".to_string(),
            expect(
                att.attribute_host(
                    Method::IntegratedGradients,
                    &img.data,
                    [1, 1, 28, 28],
                    &[best],
                )
                .unwrap(),
            ),
        ),
        (
            "method=grad-cam&layer=mixed3b&channel=7".to_string(),
            expect(
                att.attribute_neuron_host(Method::GradCam, &img.data, [1, 1, 28, 28], "mixed3b", 7)
                    .unwrap(),
            ),
        ),
    ] {
        let path = format!("/api/image/{i}/attribution.png?{query}");
        let (status, kind, body) = get(addr, &path, &[]);
        assert_eq!((status, kind.as_str()), (200, "image/png"), "{query}");
        assert_eq!(
            body, want,
            "{query}: the served heatmap differs from the library's"
        );
        // again: from the cache, the same bytes
        assert_eq!(get(addr, &path, &[]).2, want, "{query} cached");
    }

    // a channel's activation map: the recorded tap's channel over the image
    let desc = model.description();
    let l = desc.layer_index("mixed3b").unwrap();
    let x = summit_core::model::burn::tensor::Tensor::<4>::from_data(
        summit_core::model::burn::tensor::TensorData::new(img.data.clone(), [1, 1, 28, 28]),
        &device,
    );
    let tap = model.record(x).unwrap().tap(desc.layers[l].tap).clone();
    let [_, _, th, tw] = tap.dims();
    let acts = summit_core::model::to_host(tap, "tap").unwrap();
    let ch = 11;
    let map = &acts[ch * th * tw..(ch + 1) * th * tw];
    let want = png_bytes(
        &overlay(
            &rgb,
            &summit_core::attribution::layer_heatmap(map, th, tw, 28, 28),
        )
        .unwrap(),
    );
    let (status, kind, body) = get(
        addr,
        &format!("/api/image/{i}/activation.png?layer=mixed3b&channel={ch}"),
        &[],
    );
    assert_eq!((status, kind.as_str()), (200, "image/png"));
    assert_eq!(
        body, want,
        "the activation map differs from the recorded channel's"
    );

    // the image's attribution graph and its comparison with its classes' graphs
    let (status, g) = json(addr, &format!("/api/image/{i}/graph"));
    assert_eq!(status, 200);
    let data_arc: Arc<dyn Dataset> = Arc::new(dataset());
    let mut config = Config::paper();
    config.attribution = None;
    config.feature_vis = None;
    config.faithfulness = None;
    let pipeline = Pipeline::new(&model, data_arc, config, device.clone()).unwrap();
    let want = pipeline
        .image_graph(&img.data, [1, 28, 28], Some(data.labels()[i]), i as u64)
        .unwrap();
    let channels: Vec<Vec<u64>> = g["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l.as_array()
                .unwrap()
                .iter()
                .map(|v| v["channel"].as_u64().unwrap())
                .collect()
        })
        .collect();
    let want_channels: Vec<Vec<u64>> = want
        .graph
        .layers
        .iter()
        .map(|l| l.vertices.iter().map(|v| u64::from(v.channel)).collect())
        .collect();
    assert_eq!(channels, want_channels);
    let cmp = g["compare"].as_array().unwrap();
    assert!(!cmp.is_empty() && cmp[0]["class"] == data.labels()[i]);
    let j = cmp[0]["jaccard"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&j));
}

#[test]
fn bad_requests_are_4xx_naming_the_parameter_and_the_server_keeps_serving() {
    let (_tmp, _out, addr) = served_run();
    for (path, status, parameter, says) in [
        (
            "/api/image/7/attribution.png?method=lrp-magic",
            400,
            "method",
            "lrp-magic",
        ),
        (
            "/api/image/7/attribution.png?class=10",
            400,
            "class",
            "10 classes",
        ),
        (
            "/api/image/7/attribution.png?layer=mixed9&channel=0",
            400,
            "layer",
            "mixed3a",
        ),
        (
            "/api/image/7/attribution.png?layer=mixed3a&channel=104",
            400,
            "channel",
            "104 channels",
        ),
        (
            "/api/image/7/attribution.png?layer=mixed3a",
            400,
            "channel",
            "channel",
        ),
        (
            "/api/image/7/attribution.png?channel=-1",
            400,
            "channel",
            "-1",
        ),
        ("/api/image/10000/predictions", 404, "index", "10000 images"),
        ("/api/image/7/activation.png", 400, "layer", "layer"),
        (
            "/api/image/7/activation.png?layer=mixed3a&channel=500",
            400,
            "channel",
            "500",
        ),
        ("/api/image/abc/graph", 400, "index", "abc"),
        ("/api/images?limit=100000", 400, "limit", "500"),
        ("/api/images?class=x", 400, "class", "x"),
        ("/api/nothing", 404, "path", "/api/nothing"),
        ("/../../etc/passwd", 404, "path", "passwd"),
        ("/view/../../../etc/passwd", 404, "path", "passwd"),
        ("/%2e%2e/%2e%2e/etc/passwd", 404, "path", "passwd"),
    ] {
        let (got, e) = json(addr, path);
        assert_eq!(got, status, "{path}: {e}");
        assert_eq!(e["parameter"], parameter, "{path}: {e}");
        let msg = e["error"].as_str().unwrap();
        assert!(msg.contains(says), "{path}: `{msg}` does not say `{says}`");
    }
    // still serving
    let (status, _) = json(addr, "/api/image/7/predictions");
    assert_eq!(status, 200);
}

#[test]
fn a_token_is_required_when_set() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    write_run(&out);
    let addr = serve(&out, Some("s3cret".into()));
    let (status, e) = json(addr, "/api/info");
    assert_eq!(status, 401);
    assert_eq!(e["parameter"], "token");
    assert_eq!(json(addr, "/api/info?token=wrong").0, 401);
    assert_eq!(get(addr, "/", &[("x-summit-token", "nope")]).0, 401);
    assert_eq!(json(addr, "/api/info?token=s3cret").0, 200);
    assert_eq!(get(addr, "/", &[("x-summit-token", "s3cret")]).0, 200);
}

#[test]
fn an_output_of_another_model_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    write_run(&out);
    // the manifest claims other weights
    let path = out.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    m["model_weights_hash"] = serde_json::json!("0".repeat(64));
    std::fs::write(&path, serde_json::to_string(&m).unwrap()).unwrap();
    let e = Explorer::open(&out, &ModelSource::Auto)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--onnx") && e.contains("fashion-mnist inception"),
        "{e}"
    );
    let e = Explorer::open(&tmp.path().join("missing"), &ModelSource::Auto)
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing"), "{e}");
}

#[path = "../../summit-export/tests/browser/run.rs"]
mod run;
use run::run_browser_script as browser_script;

/// Runs `live.mjs` against `outs` served side by side (the first the embedded model's run).
fn browse_live(outs: &[&Path], tmp: &Path, shots_dir: &str) {
    let addr = serve_all(outs, None);
    let data = dataset();
    let class = 3;
    let of_class: Vec<usize> = (0..data.len())
        .filter(|&i| data.labels()[i] == class)
        .collect();
    // an image of the class the run (the first 300 images) never saw, let alone picked
    let index = *of_class.iter().find(|&&i| i >= 300).unwrap();
    // the images the embedded model gets wrong among the run's, computed here
    let model = FashionInception::embedded(&Device::flex()).unwrap();
    let wrong = (0..300)
        .filter(|&i| {
            let p = probs_of(&model, &data.load(i).unwrap());
            summit_core::export::top_k(&p, 1)[0].0 != data.labels()[i]
        })
        .count();
    // an image to upload: dataset image 9001 as a grey PNG
    let img = data.load(9001).unwrap();
    let pixels = grey_pixels(&img);
    let upload = tmp.join("upload.png");
    image::GrayImage::from_raw(28, 28, pixels)
        .unwrap()
        .save(&upload)
        .unwrap();
    let exp = tmp.join("expected.json");
    let expected = serde_json::json!({
        "class": class,
        "className": data.class_names()[class],
        "total": of_class.len(),
        "index": index,
        "layer": "mixed3b",
        "wrong": wrong,
        "predictedImages": 300,
        "models": outs.len(),
        "upload": upload.display().to_string(),
    });
    std::fs::write(&exp, expected.to_string()).unwrap();
    let shots = std::env::var("SUMMIT_VIEW_OUT")
        .map(|d| Path::new(&d).join(shots_dir))
        .unwrap_or_else(|_| tmp.join(shots_dir));
    std::fs::create_dir_all(&shots).unwrap();
    browser_script(
        "live.mjs",
        &[
            &format!("http://{addr}/"),
            &exp.display().to_string(),
            &shots.display().to_string(),
        ],
    );
}

#[test]
fn the_page_is_live_when_served() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    write_run(&out);
    browse_live(&[&out], tmp.path(), "live-one-model");
}

#[test]
fn the_page_shows_two_models_side_by_side() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let (a, b) = (tmp.path().join("inception"), tmp.path().join("resnet"));
    write_run(&a);
    write_run_of(&OnnxModel::fashion_resnet(&device).unwrap(), &b);
    browse_live(&[&a, &b], tmp.path(), "live-two-models");
}
/// A Fashion-MNIST image's 8-bit pixels (its preprocessing undone).
fn grey_pixels(img: &summit_core::data::Image) -> Vec<u8> {
    img.data
        .iter()
        .map(|v| ((v * 0.3530 + 0.2860) * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect()
}

/// The model's class probabilities of dataset image `i`, computed here.
fn probs_of(model: &dyn Summarizable, img: &summit_core::data::Image) -> Vec<f32> {
    let [c, h, w] = img.dims();
    let x = summit_core::model::burn::tensor::Tensor::<4>::from_data(
        summit_core::model::burn::tensor::TensorData::new(img.data.clone(), [1, c, h, w]),
        &Device::flex(),
    );
    let logits = summit_core::model::to_host(model.forward(x).unwrap(), "logits").unwrap();
    summit_core::softmax_rows(&logits, logits.len())
}

fn indices(page: &serde_json::Value) -> Vec<usize> {
    page["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["index"].as_u64().unwrap() as usize)
        .collect()
}

#[test]
fn two_models_side_by_side_and_every_image_filtered_by_the_passs_predictions() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let inception = FashionInception::embedded(&device).unwrap();
    let resnet = OnnxModel::fashion_resnet(&device).unwrap();
    let (a, b) = (tmp.path().join("inception"), tmp.path().join("resnet"));
    write_run_of(&inception, &a);
    write_run_of(&resnet, &b);
    let addr = serve_all(&[&a, &b], None);
    let data = dataset();
    let (status, info) = json(addr, "/api/info");
    assert_eq!(status, 200);
    let models = info["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(models[1]["name"], resnet.description().name);
    assert_eq!(models[1]["predictions"], true);

    // every image the runs processed (the first 300), each model's own predictions
    let n = 300;
    let probs: Vec<[Vec<f32>; 2]> = (0..n)
        .map(|i| {
            let img = data.load(i).unwrap();
            [probs_of(&inception, &img), probs_of(&resnet, &img)]
        })
        .collect();
    let top1 = |i: usize, m: usize| {
        let t = summit_core::export::top_k(&probs[i][m], 1)[0];
        (t.0, t.1)
    };
    for m in 0..2 {
        for c in [0, 3, 6] {
            let want: Vec<usize> = (0..n).filter(|&i| top1(i, m).0 == c).collect();
            let (status, page) = json(
                addr,
                &format!("/api/images?model={m}&predicted={c}&limit=500"),
            );
            assert_eq!(status, 200, "{page}");
            assert_eq!(indices(&page), want, "model {m}, predicted {c}");
            assert_eq!(page["without_predictions"], 10_000 - n);
        }
        // misclassified images of class 6, and confident correct ones
        let labels = data.labels();
        let want: Vec<usize> = (0..n)
            .filter(|&i| labels[i] == 6 && top1(i, m).0 != 6)
            .collect();
        let (_, page) = json(
            addr,
            &format!("/api/images?model={m}&class=6&correct=false&limit=500"),
        );
        assert_eq!(indices(&page), want, "model {m}: class 6 misclassified");
        let want: Vec<usize> = (0..n)
            .filter(|&i| top1(i, m).0 == labels[i] && (0.5..=0.9).contains(&top1(i, m).1))
            .collect();
        let (_, page) = json(
            addr,
            &format!(
                "/api/images?model={m}&correct=true&min_confidence=0.5&max_confidence=0.9&limit=500"
            ),
        );
        assert_eq!(indices(&page), want, "model {m}: correct at 50–90 %");
    }
    // every page lists both models' top-1
    let (_, page) = json(addr, "/api/images?limit=3");
    let first = &page["images"][0]["predicted"];
    assert_eq!(first[0][0], top1(0, 0).0);
    assert_eq!(first[1][0], top1(0, 1).0);

    // the predictions of an image, side by side: the pass's for one the runs processed,
    // computed for one they did not
    for (i, origin) in [(17usize, "pass"), (9000, "computed")] {
        let (status, p) = json(addr, &format!("/api/image/{i}/predictions"));
        assert_eq!(status, 200);
        let img = data.load(i).unwrap();
        for (m, model) in [&inception as &dyn Summarizable, &resnet]
            .into_iter()
            .enumerate()
        {
            let want = summit_core::export::top_k(&probs_of(model, &img), 5);
            let got = p["models"][m]["top"].as_array().unwrap();
            assert_eq!(p["models"][m]["origin"], origin);
            for ((wc, wp), g) in want.iter().zip(got) {
                assert_eq!(g[0], *wc, "image {i}, model {m}");
                assert!((g[1].as_f64().unwrap() as f32 - wp).abs() <= 1.0 / 65535.0);
            }
        }
    }
    // the second model's heatmap is its own attribution's
    let img = data.load(9000).unwrap();
    let rgb = to_rgb(&img, data.transform()).unwrap();
    let params = AttributionParams {
        input_bounds: data.value_range(),
        ..AttributionParams::default()
    };
    let att = Attributor::new(&resnet, params, &device).unwrap();
    let a = att
        .attribute_host(Method::IntegratedGradients, &img.data, [1, 1, 28, 28], &[4])
        .unwrap();
    let want = png_bytes(&overlay(&rgb, &heatmap(&a, 0, 28, 28)).unwrap());
    let (status, _, body) = get(
        addr,
        "/api/image/9000/attribution.png?model=1&method=integrated-gradients&class=4",
        &[],
    );
    assert_eq!(status, 200);
    assert_eq!(body, want, "model 1's heatmap");
    let (status, g) = json(addr, "/api/image/9000/graph?model=1");
    assert_eq!((status, g["model"].as_u64()), (200, Some(1)));
    // bad model and filter parameters
    for (path, parameter, says) in [
        ("/api/image/3/predictions?model=x", "", ""),
        ("/api/image/3/attribution.png?model=2", "model", "2 models"),
        ("/api/images?model=2", "model", "model 2"),
        ("/api/images?correct=maybe", "correct", "maybe"),
        (
            "/api/images?min_confidence=2",
            "min_confidence",
            "from 0 to 1",
        ),
        ("/api/images?predicted=10", "predicted", "10 classes"),
    ] {
        if parameter.is_empty() {
            // predictions answer for every model: `model` is not one of its parameters
            assert_eq!(json(addr, path).0, 200);
            continue;
        }
        let (status, e) = json(addr, path);
        assert_eq!(
            (status, e["parameter"].as_str()),
            (400, Some(parameter)),
            "{path}: {e}"
        );
        assert!(e["error"].as_str().unwrap().contains(says), "{path}: {e}");
    }
}

/// `img` as a PNG file of its own kind (grey or RGB).
fn png_file(img: &image::DynamicImage) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png).unwrap();
    buf.into_inner()
}

#[test]
fn uploads_are_explained_like_dataset_images_and_bad_ones_refused() {
    let (_tmp, _out, addr) = served_run();
    let data = dataset();
    // dataset image 9000 as a grey PNG file: the upload is the same input, so the same answers
    let i = 9000;
    let img = data.load(i).unwrap();
    let pixels = grey_pixels(&img);
    let grey = image::GrayImage::from_raw(28, 28, pixels).unwrap();
    let file = png_file(&image::DynamicImage::ImageLuma8(grey));
    let (status, up) = post(addr, "/api/upload", &file);
    assert_eq!(status, 201, "{up}");
    let id = up["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("u-"));
    // the same file again is the same upload
    assert_eq!(post(addr, "/api/upload", &file).1["id"], id.as_str());
    for q in [
        "attribution.png?method=grad-cam",
        "attribution.png?method=lrp&class=7",
        "image.png",
    ] {
        let (s1, _, mine) = get(addr, &format!("/api/image/{id}/{q}"), &[]);
        let (s2, _, theirs) = get(addr, &format!("/api/image/{i}/{q}"), &[]);
        assert_eq!((s1, s2), (200, 200), "{q}");
        assert_eq!(
            mine, theirs,
            "{q}: the upload's answer is not the dataset image's"
        );
    }
    let (_, p) = json(addr, &format!("/api/image/{id}/predictions"));
    let (_, q) = json(addr, &format!("/api/image/{i}/predictions"));
    assert_eq!(p["top"], q["top"]);
    assert_eq!(
        (p["label"].is_null(), p["origin"].as_str()),
        (true, Some("computed"))
    );
    let (status, g) = json(addr, &format!("/api/image/{id}/graph"));
    assert_eq!(status, 200, "{g}");

    // a photo of another size and kind (RGB JPEG, 90×70) is resized to the model's input
    let photo = image::RgbImage::from_fn(90, 70, |x, y| {
        image::Rgb([(x * 2) as u8, (y * 3) as u8, 128])
    });
    let mut jpeg = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(photo)
        .write_to(&mut jpeg, image::ImageFormat::Jpeg)
        .unwrap();
    let (status, up) = post(addr, "/api/upload", jpeg.get_ref());
    assert_eq!(status, 201, "{up}");
    assert_eq!(
        (up["width"].as_u64(), up["height"].as_u64()),
        (Some(90), Some(70))
    );
    let (status, p) = json(
        addr,
        &format!("/api/image/{}/predictions", up["id"].as_str().unwrap()),
    );
    assert_eq!((status, p["top"].as_array().map(Vec::len)), (200, Some(5)));

    // a decompression bomb: a small PNG of 8192×8192 pixels (64 MiB decoded)
    let bomb = png_file(&image::DynamicImage::ImageLuma8(image::GrayImage::new(
        8192, 8192,
    )));
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let big = vec![0u8; summit_cli::UPLOAD_MAX_BYTES + 1];
    for (body, status, says) in [
        (&bomb[..], 422, "8192×8192"),
        (&b"GIF89a not an image we take"[..], 422, "format"),
        (&file[..file.len() / 2], 422, "upload"),
        (&[][..], 400, "empty"),
        (&big[..], 413, "limit"),
    ] {
        let (got, e) = post(addr, "/api/upload", body);
        assert_eq!(got, status, "{e}");
        assert_eq!(e["parameter"], "upload", "{e}");
        assert!(e["error"].as_str().unwrap().contains(says), "{e}");
    }
    let (status, e) = json(addr, "/api/image/u-0123456789abcdef/predictions");
    assert_eq!((status, e["parameter"].as_str()), (404, Some("index")));
    // still serving, the upload still there
    assert_eq!(json(addr, &format!("/api/image/{id}/predictions")).0, 200);
    let (_, st) = json(addr, "/api/status");
    assert_eq!(
        (st["running"].as_u64(), st["queued"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(st["uploads"], 2);
}

/// This process's peak and current resident set, in MB (`/proc/self/status`).
fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[test]
fn a_load_of_500_requests_from_16_clients_loses_none_and_the_cache_stays_in_its_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    write_run(&out);
    // a small cache (128 KiB, ~60 heatmaps of 28×28) so that it fills and evicts under the load
    let budget = 128 << 10;
    let explorer = Explorer::open(&out, &ModelSource::Auto)
        .unwrap()
        .with_cache_budget(budget);
    let addr = serve_explorers(vec![explorer], None);
    let (clients, per_client) = (16usize, 500 / 16 + 1);
    let total = 500usize;
    let methods = ["grad-cam", "saliency", "input-x-gradient", "lrp"];
    let (_, rss_before) = rss_mb();
    let started = std::time::Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                for k in 0..per_client {
                    let n = c * per_client + k;
                    if n >= total {
                        break;
                    }
                    // half the requests ask for one of 8 answers (4 images × 2 methods:
                    // cached after the first), the rest each for an image of its own
                    // (uncached), every fifth of those its predictions
                    let path = if n % 2 == 0 {
                        format!(
                            "/api/image/{}/attribution.png?method={}",
                            (n / 2) % 4,
                            methods[(n / 8) % 2]
                        )
                    } else if n % 5 == 1 {
                        format!("/api/image/{}/predictions", 100 + n)
                    } else {
                        format!(
                            "/api/image/{}/attribution.png?method={}",
                            100 + n,
                            methods[n % methods.len()]
                        )
                    };
                    let t = std::time::Instant::now();
                    let (status, kind, body) = get(addr, &path, &[]);
                    answers.push((path, status, kind, body.len(), t.elapsed().as_secs_f64()));
                }
                answers
            })
        })
        .collect();
    let mut answers: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(answers.len(), total, "every request answered");
    for (path, status, kind, len, _) in &answers {
        assert_eq!(*status, 200, "{path}");
        assert!(*len > 0, "{path}: empty answer");
        assert!(
            kind == "image/png" || kind.starts_with("application/json"),
            "{path}: {kind}"
        );
    }
    answers.sort_by(|a, b| a.4.total_cmp(&b.4));
    let p = |q: f64| answers[((answers.len() - 1) as f64 * q).round() as usize].4 * 1e3;
    let (peak, rss_after) = rss_mb();
    let (_, st) = json(addr, "/api/status");
    let cache = &st["cache"][0];
    println!(
        "load: {total} requests from {clients} clients in {wall:.1} s: p50 {:.1} ms, p95 {:.1} ms, \
         max {:.1} ms; RSS {rss_before:.0} → {rss_after:.0} MB (peak {peak:.0} MB); cache {cache}",
        p(0.5),
        p(0.95),
        p(1.0)
    );
    // the cache filled, evicted and stayed within its budget; nothing queued or running
    assert!(cache["bytes"].as_u64().unwrap() <= budget as u64, "{cache}");
    assert!(cache["evictions"].as_u64().unwrap() > 0, "{cache}");
    assert!(cache["hits"].as_u64().unwrap() > 0, "{cache}");
    assert_eq!(
        (st["running"].as_u64(), st["queued"].as_u64()),
        (Some(0), Some(0))
    );
}

/// `GET path` read as JSON lines (a streamed answer).
fn lines(addr: SocketAddr, path: &str) -> (u16, Vec<serde_json::Value>) {
    let (status, _, body) = get_streamed(addr, path);
    let text = String::from_utf8(body).unwrap();
    (
        status,
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    )
}

/// `GET path` whose answer may be chunked: (status, content type, de-chunked body).
fn get_streamed(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let kind = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: ").map(str::to_string))
        .unwrap_or_default();
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 2 + n + 2..];
        }
        body = out;
    }
    (status, kind, body)
}

#[test]
fn an_ablation_of_chosen_vertices_streams_its_progress_and_stops_when_the_client_goes() {
    let (_tmp, out, addr) = served_run();
    let data = dataset();
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
    let class = 3;
    let set = summit_core::model::ChannelSet {
        layers: vec![vec![1, 5, 9], vec![2], vec![0, 40]],
    };
    let (status, got) = lines(
        addr,
        &format!("/api/ablate?class={class}&vertices=0:1,0:5,0:9,1:2,2:0,2:40,0:5&images=40"),
    );
    assert_eq!(status, 200);
    // progress after every batch of 64 (one here), then the result: the library's
    let progress: Vec<(u64, u64)> = got
        .iter()
        .filter(|v| v.get("done").is_some())
        .map(|v| (v["done"].as_u64().unwrap(), v["total"].as_u64().unwrap()))
        .collect();
    assert_eq!(progress, vec![(0, 40), (40, 40)]);
    let result = &got.last().unwrap()["result"];
    let all: Vec<usize> = (0..data.len()).collect();
    let sample = summit_core::faithfulness::class_sample(&all, data.labels(), class, 40);
    let want = summit_core::Ablator::new(&model, &device, &data, 64)
        .ablate_set(
            class,
            &set,
            &sample,
            summit_core::AblationMode::Zero,
            &mut |_, _| {},
        )
        .unwrap();
    assert_eq!(result["channels"], 6);
    assert_eq!(result["images"], 40);
    assert_eq!(result["p_before"].as_f64().unwrap(), want.p_before);
    assert_eq!(result["p_after"].as_f64().unwrap(), want.p_after);
    assert_eq!(result["correct_after"], want.correct_after);
    // without vertices: the class's graph
    let (_, got) = lines(
        addr,
        &format!("/api/ablate?class={class}&images=5&mode=mean"),
    );
    let m = summit_core::export::read_manifest(&out).unwrap();
    let g = summit_core::export::read_graph(&out.join(&m.classes[class].graph_file)).unwrap();
    let n: usize = g.graph.layers.iter().map(|l| l.vertices.len()).sum();
    let r = &got.last().unwrap()["result"];
    assert_eq!(
        (r["images"].as_u64(), r["channels"].as_u64()),
        (Some(5), Some(n as u64)),
        "{got:?}"
    );
    // bad requests
    for (path, parameter) in [
        ("/api/ablate?images=5", "class"),
        ("/api/ablate?class=3&vertices=9:0", "vertices"),
        ("/api/ablate?class=3&vertices=0:900", "vertices"),
        ("/api/ablate?class=3&vertices=zero", "vertices"),
        ("/api/ablate?class=3&images=0", "images"),
        ("/api/ablate?class=3&mode=halfway", "mode"),
    ] {
        let (status, e) = json(addr, path);
        assert_eq!(
            (status, e["parameter"].as_str()),
            (400, Some(parameter)),
            "{path}: {e}"
        );
    }
    // a client that goes away after the first line stops the ablation
    {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET /api/ablate?class={class}&images=1000&mode=mean HTTP/1.1\r\nHost: l\r\n\r\n"
        )
        .unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).contains("200"));
    }
    let mut st = serde_json::Value::Null;
    for _ in 0..200 {
        st = json(addr, "/api/status").1;
        if st["running"] == 0 && st["queued"] == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert_eq!(st["cancelled"], 1, "{st}");
    assert_eq!(st["running"], 0, "{st}");
}

#[test]
fn an_image_folder_holding_three_of_the_classes_is_served_as_the_run_read_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset();
    // a folder of 3 of the 10 classes, 12 images each, as grey PNG files
    let folder = tmp.path().join("images");
    let classes = [1usize, 7, 9];
    for &c in &classes {
        let dir = folder.join(&data.class_names()[c]);
        std::fs::create_dir_all(&dir).unwrap();
        for (k, i) in (0..data.len())
            .filter(|&i| data.labels()[i] == c)
            .take(12)
            .enumerate()
        {
            let img = data.load(i).unwrap();
            let px = grey_pixels(&img);
            image::GrayImage::from_raw(28, 28, px)
                .unwrap()
                .save(dir.join(format!("{k:02}.png")))
                .unwrap();
        }
    }
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
    let images =
        summit_core::data::ImageFolder::open(&folder, Preprocess::fashion_mnist()).unwrap();
    let transform = images.transform().clone();
    let relabeled: Arc<dyn Dataset> = Arc::new(
        summit_core::Relabeled::new(Arc::new(images), data.class_names(), "test").unwrap(),
    );
    let meta = RunMeta {
        dataset_name: "three classes".into(),
        dataset_source: folder.display().to_string(),
        classes: data.class_names().iter().map(ClassInfo::new).collect(),
    };
    let mut config = quiet_config();
    config.batch_size = 16;
    let out = tmp.path().join("run");
    Pipeline::new(&model, relabeled.clone(), config, device.clone())
        .unwrap()
        .run(&out, &meta, Some(&transform), &WriteOptions::default())
        .unwrap();
    let addr = serve(&out, None);
    let (status, info) = json(addr, "/api/info");
    assert_eq!((status, info["images"].as_u64()), (200, Some(36)));
    assert_eq!(info["classes"].as_array().unwrap().len(), 10);
    // every image of a class the folder holds, none of one it lacks
    let (_, page) = json(addr, "/api/images?class=7&limit=500");
    let want: Vec<usize> = (0..36).filter(|&i| relabeled.labels()[i] == 7).collect();
    assert_eq!(indices(&page), want);
    assert_eq!(json(addr, "/api/images?class=0").1["total"], 0);
    // an image's answers are those of the run's preprocessing
    let i = want[3];
    let img = relabeled.load(i).unwrap();
    let (_, p) = json(addr, &format!("/api/image/{i}/predictions"));
    assert_eq!(p["origin"], "pass");
    let top = summit_core::export::top_k(&probs_of(&model, &img), 5);
    assert_eq!(p["top"][0][0], top[0].0);
    let rgb = to_rgb(&img, &transform).unwrap();
    let att = Attributor::new(
        &model,
        AttributionParams {
            input_bounds: relabeled.value_range(),
            ..AttributionParams::default()
        },
        &device,
    )
    .unwrap();
    let a = att
        .attribute_host(Method::Saliency, &img.data, [1, 1, 28, 28], &[top[0].0])
        .unwrap();
    let (status, _, body) = get(
        addr,
        &format!("/api/image/{i}/attribution.png?method=saliency"),
        &[],
    );
    assert_eq!(status, 200);
    assert_eq!(
        body,
        png_bytes(&overlay(&rgb, &heatmap(&a, 0, 28, 28)).unwrap())
    );
    // moved: --data names where it is now; an output that cannot find it says so
    let moved = tmp.path().join("moved");
    std::fs::rename(&folder, &moved).unwrap();
    let e = Explorer::open(&out, &ModelSource::Auto)
        .unwrap_err()
        .to_string();
    assert!(e.contains("images") && e.contains("--data"), "{e}");
    let e = Explorer::open_with(&out, &ModelSource::Auto, Some(&moved)).unwrap();
    assert_eq!(e.data().len(), 36);
}

#[test]
fn an_output_of_inception_weights_is_served_with_weights() {
    let pth = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../summit-model/tests/fixtures/googlenet/googlenet.pth");
    if !pth.exists() {
        let msg = format!(
            "{} missing: run python3 crates/summit-model/tests/fixtures/make_googlenet.py (or the \
             project's test command scripts/check.sh, which makes it); SUMMIT_SKIP_PARITY=1 \
             skips this knowingly",
            pth.display()
        );
        assert!(
            std::env::var("SUMMIT_SKIP_PARITY").is_ok_and(|v| v == "1"),
            "{msg}"
        );
        eprintln!("SKIPPED (SUMMIT_SKIP_PARITY=1): {msg}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // 3 of GoogLeNet's 1000 classes, 2 random images each
    let folder = tmp.path().join("images");
    let names: Vec<String> = (0..1000).map(|c| format!("c{c:04}")).collect();
    let mut seed = 7u32;
    for c in [3usize, 500, 998] {
        let dir = folder.join(&names[c]);
        std::fs::create_dir_all(&dir).unwrap();
        for k in 0..2 {
            image::RgbImage::from_fn(240, 260, |x, y| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                image::Rgb([(x + k) as u8, (y * 3) as u8, (seed >> 24) as u8])
            })
            .save(dir.join(format!("{k}.png")))
            .unwrap();
        }
    }
    let device = Device::flex();
    let options = summit_core::model::GoogLeNetOptions {
        transform_input: true,
    };
    let model = summit_core::model::GoogLeNet::load(&pth, options, &device).unwrap();
    let images = summit_core::data::ImageFolder::open(&folder, Preprocess::Torchvision).unwrap();
    let transform = images.transform().clone();
    let data: Arc<dyn Dataset> =
        Arc::new(summit_core::Relabeled::new(Arc::new(images), &names, "test").unwrap());
    let meta = RunMeta {
        dataset_name: "three of 1000".into(),
        dataset_source: folder.display().to_string(),
        classes: names.iter().map(ClassInfo::new).collect(),
    };
    let mut config = quiet_config();
    config.batch_size = 3;
    let out = tmp.path().join("run");
    Pipeline::new(&model, data.clone(), config, device.clone())
        .unwrap()
        .run(&out, &meta, Some(&transform), &WriteOptions::default())
        .unwrap();
    // found from the manifest it is not: the error says which flags name it
    let e = Explorer::open(&out, &ModelSource::Auto)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--weights"), "{e}");
    let explorer = Explorer::open(&out, &ModelSource::GoogLeNet(pth.clone())).unwrap();
    assert_eq!(explorer.data().len(), 6);
    // the pass's predictions of every image are the model's own
    let p = explorer.predictions_file().unwrap();
    for i in 0..6 {
        let want = summit_core::export::top_k(&probs_of(&model, &data.load(i).unwrap()), 5);
        let got = p.get(i).unwrap();
        assert_eq!(
            got.iter().map(|t| t.0).collect::<Vec<_>>(),
            want.iter().map(|t| t.0).collect::<Vec<_>>()
        );
    }
    let addr = serve_explorers(vec![explorer], None);
    let (status, _, body) = get(addr, "/api/image/4/attribution.png?method=grad-cam", &[]);
    assert_eq!((status, body.starts_with(b"\x89PNG")), (200, true));
    // the wrong loader (Lucid's, for torchvision's file) is refused
    let lucid = Explorer::open(&out, &ModelSource::Lucid(pth));
    assert!(lucid.is_err());
}
