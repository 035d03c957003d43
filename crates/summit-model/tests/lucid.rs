//! Parity of the Lucid InceptionV1 port with torch-lucent (tests/fixtures/make_lucent.py), its
//! path description proven by channel-by-channel decomposition, and its loading errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use burn::tensor::{Device, Tensor, TensorData};
use common::{HopData, decomposed_preactivation, expected, fixture_dir, hop_data, rel_err};
use summit_model::{
    LucidInceptionV1, ModelError, PathKind, StateDict, Summarizable, TapId, burn, to_host,
};

const N: usize = 3;

fn input(dir: &std::path::Path, device: &Device) -> Tensor<4> {
    let exp = expected(dir);
    let x = exp.get("input").unwrap();
    assert_eq!(x.shape, [N, 3, 224, 224]);
    Tensor::from_data(TensorData::new(x.data.clone(), [N, 3, 224, 224]), device)
}

fn weights(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("inceptionv1.pth")
}

#[test]
fn lucid_matches_lucent() {
    let Some(dir) = fixture_dir("lucent") else {
        return;
    };
    let device = Device::flex();
    let exp = expected(&dir);
    let model = LucidInceptionV1::load(weights(&dir), &device).unwrap();
    let desc = model.description();
    assert_eq!(desc.num_classes, 1008);
    let rec = model.record(input(&dir, &device)).unwrap();
    let logits = to_host(rec.logits.clone(), "logits").unwrap();
    let err = rel_err(&logits, &exp.get("logits").unwrap().data);
    eprintln!("logits: relative error {err:.2e}");
    assert!(err < 1e-4, "logits relative error {err}");
    let probs = to_host(
        burn::tensor::activation::softmax(rec.logits.clone(), 1),
        "softmax",
    )
    .unwrap();
    let err = rel_err(&probs, &exp.get("softmax").unwrap().data);
    assert!(err < 1e-4, "softmax relative error {err}");
    let mut checked = 0;
    let mut worst = (0f64, String::new());
    for (i, tap) in desc.taps.iter().enumerate() {
        let want = exp
            .get(&format!("max.{}", tap.name))
            .unwrap_or_else(|| panic!("fixture lacks max.{}", tap.name));
        let t = rec.taps[i].clone();
        let [b, c, h, w] = t.dims();
        assert_eq!(c, tap.channels, "{}", tap.name);
        let got = to_host(
            t.reshape([b, c, h * w]).max_dim(2).reshape([b, c]),
            &tap.name,
        )
        .unwrap();
        let err = rel_err(&got, &want.data);
        assert!(err < 1e-4, "{}: spatial max relative error {err}", tap.name);
        if err > worst.0 {
            worst = (err, tap.name.clone());
        }
        checked += 1;
    }
    eprintln!("taps: largest relative error {:.2e} ({})", worst.0, worst.1);
    // conv2d2, maxpool1/4/10, and per mixed layer its 2 bottlenecks, pool and output.
    assert_eq!(checked, 1 + 3 + 9 * 4);
    for name in ["conv2d2", "mixed3a", "mixed4a", "mixed5b"] {
        assert!(desc.tap_index(name).is_some(), "{name}");
    }
}

#[test]
fn lucid_loads_safetensors_too() {
    let Some(dir) = fixture_dir("lucent") else {
        return;
    };
    let device = Device::flex();
    let tensors = StateDict::load(weights(&dir)).unwrap().into_tensors();
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("inceptionv1.safetensors");
    StateDict::save_safetensors(&tensors, &st).unwrap();
    let model = LucidInceptionV1::load(&st, &device).unwrap();
    // One image is enough to prove the same weights were read.
    let x = input(&dir, &device).narrow(0, 0, 1);
    let logits = to_host(model.forward(x).unwrap(), "logits").unwrap();
    let exp = expected(&dir);
    let want = &exp.get("logits").unwrap().data[..1008];
    let err = rel_err(&logits, want);
    assert!(err < 1e-4, "safetensors logits relative error {err}");
}

#[test]
fn lucid_description() {
    let Some(dir) = fixture_dir("lucent") else {
        return;
    };
    let path = weights(&dir);
    let model = LucidInceptionV1::load(&path, &Device::flex()).unwrap();
    let d = model.description();
    let names: Vec<_> = d.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "mixed3a", "mixed3b", "mixed4a", "mixed4b", "mixed4c", "mixed4d", "mixed4e", "mixed5a",
            "mixed5b"
        ]
    );
    let channels: Vec<_> = d.layers.iter().map(|l| l.channels).collect();
    assert_eq!(channels, [256, 480, 508, 512, 512, 528, 832, 832, 1024]);
    let sd = StateDict::load(&path).unwrap();
    for (l, paths) in d.paths.iter().enumerate() {
        let layer = &d.layers[l].name;
        assert_eq!(paths.len(), 4);
        let kinds: Vec<_> = paths.iter().map(|p| p.kind).collect();
        assert_eq!(
            kinds,
            [
                PathKind::Direct,
                PathKind::TwoHop,
                PathKind::TwoHop,
                PathKind::Pool
            ]
        );
        // Paths tile the layer's channels in concatenation order.
        let mut next = 0;
        for p in paths {
            assert_eq!(p.out_offset, next, "{layer} path {}", p.name);
            assert_eq!(p.hops.last().unwrap().kernel.dims[0], p.out_channels);
            next += p.out_channels;
        }
        assert_eq!(next, d.layers[l].channels);
        // Real 5×5 kernels with padding 2, 3×3 with padding 1, 1×1 unpadded.
        assert_eq!(paths[2].hops[1].kernel.dims[2..], [5, 5]);
        assert_eq!(paths[2].hops[1].padding, [2, 2, 2, 2]);
        assert_eq!(paths[1].hops[1].kernel.dims[2..], [3, 3]);
        assert_eq!(paths[1].hops[1].padding, [1, 1, 1, 1]);
        assert_eq!(paths[0].hops[0].padding, [0, 0, 0, 0]);
        // No batch norm: the "folded" kernel and bias are the file's.
        let hop = &paths[2].hops[1];
        let w = sd
            .get(&format!("{layer}_5x5_pre_relu_conv.weight"))
            .unwrap();
        let b = sd.get(&format!("{layer}_5x5_pre_relu_conv.bias")).unwrap();
        assert_eq!(hop.kernel.weight, w.data);
        assert_eq!(hop.kernel.bias, b.data);
        let hop = &paths[3].hops[0];
        let b = sd
            .get(&format!("{layer}_pool_reduce_pre_relu_conv.bias"))
            .unwrap();
        assert_eq!(hop.kernel.bias, b.data);
    }
    let tap = |id: TapId| d.taps[id.0].name.as_str();
    // Inputs: the tensor each conv receives (paper) and the original code's shortcut.
    assert_eq!(tap(d.paths[0][0].hops[0].input), "maxpool1");
    assert_eq!(tap(d.paths[0][0].hops[0].original_input), "conv2d2");
    assert_eq!(tap(d.paths[0][3].hops[0].input), "mixed3a_pool");
    assert_eq!(tap(d.paths[0][3].hops[0].original_input), "conv2d2");
    assert_eq!(tap(d.paths[2][1].hops[0].input), "maxpool4");
    assert_eq!(tap(d.paths[2][1].hops[0].original_input), "mixed3b");
    assert_eq!(
        tap(d.paths[2][1].hops[0].output.unwrap()),
        "mixed4a_3x3_bottleneck"
    );
    assert_eq!(tap(d.paths[7][2].hops[0].input), "maxpool10");
    assert_eq!(tap(d.paths[7][2].hops[0].original_input), "mixed4e");
    assert_eq!(tap(d.paths[7][3].hops[0].input), "mixed5a_pool");
    assert_eq!(tap(d.paths[7][3].hops[0].original_input), "mixed4e");
    assert_eq!(tap(d.paths[4][3].hops[0].input), "mixed4c_pool");
    assert_eq!(tap(d.paths[4][3].hops[0].original_input), "mixed4b");
    assert_eq!(tap(d.paths[1][2].hops[1].input), "mixed3b_5x5_bottleneck");
    assert_eq!(
        tap(d.paths[1][2].hops[1].original_input),
        "mixed3b_5x5_bottleneck"
    );
    assert_eq!(d.taps[d.tap_index("conv2d2").unwrap().0].channels, 192);
    assert_eq!(d.taps[d.tap_index("mixed4b_pool").unwrap().0].channels, 508);
}

#[test]
fn lucid_paths_reproduce_branch_outputs() {
    let Some(dir) = fixture_dir("lucent") else {
        return;
    };
    let device = Device::flex();
    let model = LucidInceptionV1::load(weights(&dir), &device).unwrap();
    let d = model.description().clone();
    // The third (smooth) image.
    let rec = model.record(input(&dir, &device).narrow(0, 2, 1)).unwrap();
    // mixed3a (input: the LRN'd, max-pooled stem), mixed4a (after maxpool4, 508 channels) and
    // mixed5a (after maxpool10): every branch, hop by hop, first/middle/last channel.
    let mut checked = 0;
    for l in [0, 2, 7] {
        let out_tap = rec.tap(d.layers[l].tap).clone();
        let out_dims = out_tap.dims();
        let out = to_host(out_tap, "out").unwrap();
        for path in &d.paths[l] {
            for hop in &path.hops {
                let HopData {
                    x,
                    dims,
                    target,
                    tdims,
                    offset,
                } = hop_data(&rec, hop, path, (&out, out_dims));
                for &j in &[0, hop.kernel.dims[0] / 2, hop.kernel.dims[0] - 1] {
                    let (pre, [ho, wo]) = decomposed_preactivation(hop, &x, dims, 0, j);
                    assert_eq!([ho, wo], [tdims[2], tdims[3]]);
                    let plane = &target[(offset + j) * ho * wo..(offset + j + 1) * ho * wo];
                    let want: Vec<f32> = pre.iter().map(|&v| v.max(0.0) as f32).collect();
                    let err = rel_err(plane, &want);
                    assert!(err < 1e-4, "{} channel {j}: error {err}", path.name);
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 3 * 6 * 3);
}

#[test]
fn bad_files_and_inputs_give_clear_errors() {
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let garbage = tmp.path().join("inceptionv1.pth");
    std::fs::write(&garbage, b"not a pickle").unwrap();
    let err = LucidInceptionV1::load(&garbage, &device).unwrap_err();
    assert!(matches!(err, ModelError::Read { .. }), "{err}");

    // A valid file of another architecture (the embedded Fashion-MNIST net).
    let other = tmp.path().join("fashion.safetensors");
    std::fs::write(&other, summit_model::fashion::EMBEDDED_WEIGHTS).unwrap();
    let err = LucidInceptionV1::load(&other, &device).unwrap_err();
    match &err {
        ModelError::MissingKey { key, .. } => assert_eq!(key, "conv2d0_pre_relu_conv.weight"),
        other => panic!("expected a missing key, got {other}"),
    }
    assert!(err.to_string().contains("conv2d0_pre_relu_conv.weight"));

    let Some(dir) = fixture_dir("lucent") else {
        return;
    };
    let path = weights(&dir);
    let tensors = StateDict::load(&path).unwrap().into_tensors();

    let mut missing = tensors.clone();
    missing.remove("mixed4b_5x5_pre_relu_conv.bias");
    let err =
        LucidInceptionV1::from_state_dict(&mut StateDict::from_tensors(&path, missing), &device)
            .unwrap_err();
    match &err {
        ModelError::MissingKey { key, .. } => assert_eq!(key, "mixed4b_5x5_pre_relu_conv.bias"),
        other => panic!("expected a missing key, got {other}"),
    }
    assert!(err.to_string().contains("inceptionv1.pth"), "{err}");

    let mut extra = tensors.clone();
    let t = extra["conv2d0_pre_relu_conv.bias"].clone();
    extra.insert("localresponsenorm0.bias".into(), t);
    let err =
        LucidInceptionV1::from_state_dict(&mut StateDict::from_tensors(&path, extra), &device)
            .unwrap_err();
    match &err {
        ModelError::UnexpectedKeys { keys, .. } => {
            assert_eq!(keys, &["localresponsenorm0.bias".to_string()])
        }
        other => panic!("expected unexpected keys, got {other}"),
    }

    // torchvision's width of inception4a's 3×3 branch (208) instead of the Caffe model's 204.
    let mut wrong = tensors.clone();
    let w = wrong.get_mut("mixed4a_3x3_pre_relu_conv.weight").unwrap();
    w.shape = vec![208, 96, 3, 3];
    w.data.resize(208 * 96 * 9, 0.0);
    let err =
        LucidInceptionV1::from_state_dict(&mut StateDict::from_tensors(&path, wrong), &device)
            .unwrap_err();
    match &err {
        ModelError::Shape {
            key, expected, got, ..
        } => {
            assert_eq!(key, "mixed4a_3x3_pre_relu_conv.weight");
            assert_eq!(expected, &[204, 96, 3, 3]);
            assert_eq!(got, &[208, 96, 3, 3]);
        }
        other => panic!("expected a shape error, got {other}"),
    }
    assert!(err.to_string().contains("[208, 96, 3, 3]"), "{err}");

    // A torchvision-style head shape.
    let mut head = tensors;
    head.get_mut("softmax2_pre_activation_matmul.weight")
        .unwrap()
        .shape = vec![1008, 1000];
    let err = LucidInceptionV1::from_state_dict(&mut StateDict::from_tensors(&path, head), &device)
        .unwrap_err();
    assert!(
        matches!(&err, ModelError::Shape { key, .. } if key == "softmax2_pre_activation_matmul.weight"),
        "{err}"
    );

    // Inputs must give a 7×7 mixed5b.
    let model = LucidInceptionV1::load(&path, &device).unwrap();
    for dims in [[1, 3, 112, 112], [1, 1, 224, 224], [1, 3, 224, 256]] {
        let err = model.forward(Tensor::zeros(dims, &device)).unwrap_err();
        assert!(matches!(err, ModelError::Input { .. }), "{dims:?}: {err}");
    }
    let ok = model
        .forward(Tensor::zeros([1, 3, 255, 230], &device))
        .unwrap();
    assert_eq!(ok.dims(), [1, 1008]);
    // forward_to stops at the tap: other sizes run, a wrong channel count does not
    assert!(model.accepts_any_size());
    let desc = model.description();
    let tap = desc.layers[desc.layer_index("mixed4a").unwrap()].tap;
    let at = model
        .forward_to(Tensor::zeros([1, 3, 112, 144], &device), tap)
        .unwrap();
    assert_eq!(at.dims(), [1, 508, 7, 9]);
    let err = model
        .forward_to(Tensor::zeros([1, 1, 224, 224], &device), tap)
        .unwrap_err();
    assert!(matches!(err, ModelError::Input { .. }), "{err}");
}

/// `forward_to` at the model's size gives exactly the recorded summary layers.
#[test]
fn lucid_forward_to_equals_the_recorded_tap() {
    let Some(dir) = fixture_dir("lucent") else {
        return;
    };
    let device = Device::flex();
    let model = LucidInceptionV1::load(weights(&dir), &device).unwrap();
    let x = input(&dir, &device);
    let rec = model.record(x.clone()).unwrap();
    for layer in &model.description().layers {
        let got = to_host(model.forward_to(x.clone(), layer.tap).unwrap(), "got").unwrap();
        let want = to_host(rec.tap(layer.tap).clone(), "want").unwrap();
        assert_eq!(got, want, "{}", layer.name);
    }
}
