//! The explorer's API against a live server on loopback, checked against the library's own
//! results (the served heatmap equals `Attributor` + `overlay` on the same image byte for byte,
//! the predictions the model's, the graph `Pipeline::image_graph`'s), every bad request a 4xx
//! naming its parameter with the server still serving, and the access token when one is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use summit_cli::{Explorer, ModelSource, router};
use summit_core::attribution::{AttributionParams, Attributor, Method, heatmap, overlay};
use summit_core::data::{Dataset, FashionMnist, Preprocess};
use summit_core::model::burn::tensor::Device;
use summit_core::model::{FashionInception, Summarizable};
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

/// A run of the embedded model over the first 300 test images, written to `out`.
fn write_run(out: &Path) {
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
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
    let mut config = Config::paper();
    config.limit = Some(300);
    config.batch_size = 64;
    config.progress = false;
    config.attribution = None;
    config.feature_vis = None;
    config.faithfulness = None;
    let pipeline = Pipeline::new(&model, Arc::new(data), config, device).unwrap();
    pipeline
        .run(out, &meta, Some(&transform), &WriteOptions::default())
        .unwrap();
}

/// Serves `out` on a free loopback port from a background thread; returns its address.
fn serve(out: &Path, token: Option<String>) -> SocketAddr {
    let explorer = Arc::new(Explorer::open(out, &ModelSource::Auto).unwrap());
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

fn json(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (status, kind, body) = get(addr, path, &[]);
    assert!(kind.starts_with("application/json"), "{path}: {kind}");
    (status, serde_json::from_slice(&body).unwrap())
}

fn png_bytes(img: &image::RgbImage) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png).unwrap();
    buf.into_inner()
}

#[test]
fn the_api_answers_what_the_library_computes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    write_run(&out);
    let addr = serve(&out, None);
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
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    write_run(&out);
    let addr = serve(&out, None);
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

#[test]
fn the_page_is_live_when_served() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    write_run(&out);
    let addr = serve(&out, None);
    let data = dataset();
    let class = 3;
    let of_class: Vec<usize> = (0..data.len())
        .filter(|&i| data.labels()[i] == class)
        .collect();
    // an image of the class the run (the first 300 images) never saw, let alone picked
    let index = *of_class.iter().find(|&&i| i >= 300).unwrap();
    let exp = tmp.path().join("expected.json");
    std::fs::write(
        &exp,
        format!(
            r#"{{"class": {class}, "className": "{}", "total": {}, "index": {index}, "layer": "mixed3b"}}"#,
            data.class_names()[class],
            of_class.len()
        ),
    )
    .unwrap();
    let shots =
        std::env::var("SUMMIT_VIEW_OUT").unwrap_or_else(|_| tmp.path().display().to_string());
    browser_script(
        "live.mjs",
        &[
            &format!("http://{addr}/"),
            &exp.display().to_string(),
            &shots,
        ],
    );
}
