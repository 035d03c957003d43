//! Parity of the torchvision GoogLeNet port with PyTorch, and the path description proven by
//! channel-by-channel decomposition.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use burn::tensor::{Device, Tensor, TensorData};
use common::{
    HopData, conv_bn_preactivation, decomposed_preactivation, expected, fixture_dir, hop_data,
    rel_err,
};
use summit_model::{
    GOOGLENET_BN_EPS, GoogLeNet, GoogLeNetOptions, ModelError, StateDict, Summarizable, burn,
    to_host,
};

fn input(dir: &std::path::Path, device: &Device) -> Tensor<4> {
    let exp = expected(dir);
    let x = exp.get("input").unwrap();
    Tensor::from_data(TensorData::new(x.data.clone(), [2, 3, 224, 224]), device)
}

#[test]
fn googlenet_matches_pytorch() {
    let Some(dir) = fixture_dir("googlenet") else {
        return;
    };
    let device = Device::flex();
    let exp = expected(&dir);
    let model = GoogLeNet::load(
        dir.join("googlenet.pth"),
        GoogLeNetOptions::default(),
        &device,
    )
    .unwrap();
    let desc = model.description();
    assert_eq!(desc.num_classes, 1000);
    let rec = model.record(input(&dir, &device)).unwrap();
    let logits = to_host(rec.logits.clone(), "logits").unwrap();
    let err = rel_err(&logits, &exp.get("logits").unwrap().data);
    assert!(err < 1e-4, "logits relative error {err}");
    let mut checked = 0;
    for (i, tap) in desc.taps.iter().enumerate() {
        let Some(want) = exp.get(&format!("max.{}", tap.name)) else {
            continue;
        };
        let t = rec.taps[i].clone();
        let [b, c, h, w] = t.dims();
        let got = to_host(
            t.reshape([b, c, h * w]).max_dim(2).reshape([b, c]),
            &tap.name,
        )
        .unwrap();
        let err = rel_err(&got, &want.data);
        assert!(err < 1e-4, "{}: spatial max relative error {err}", tap.name);
        checked += 1;
    }
    // 9 summary layers, their 18 reduce layers, and conv3.
    assert_eq!(checked, 28);
    for layer in &desc.layers {
        assert!(exp.get(&format!("max.{}", layer.name)).is_some());
    }

    let model_t = GoogLeNet::load(
        dir.join("googlenet.pth"),
        GoogLeNetOptions {
            transform_input: true,
        },
        &device,
    )
    .unwrap();
    let logits_t = to_host(model_t.forward(input(&dir, &device)).unwrap(), "logits").unwrap();
    let err = rel_err(&logits_t, &exp.get("logits_transform").unwrap().data);
    assert!(err < 1e-4, "transform_input logits relative error {err}");
}

#[test]
fn googlenet_description() {
    let Some(dir) = fixture_dir("googlenet") else {
        return;
    };
    let model = GoogLeNet::load(
        dir.join("googlenet.pth"),
        GoogLeNetOptions::default(),
        &Device::flex(),
    )
    .unwrap();
    let d = model.description();
    let names: Vec<_> = d.layers.iter().map(|l| l.alias.clone().unwrap()).collect();
    assert_eq!(
        names,
        [
            "mixed3a", "mixed3b", "mixed4a", "mixed4b", "mixed4c", "mixed4d", "mixed4e", "mixed5a",
            "mixed5b"
        ]
    );
    let channels: Vec<_> = d.layers.iter().map(|l| l.channels).collect();
    assert_eq!(channels, [256, 480, 512, 512, 512, 528, 832, 832, 1024]);
    assert_eq!(d.layer_index("mixed4c"), d.layer_index("inception4c"));
    for (l, paths) in d.paths.iter().enumerate() {
        // Paths tile the layer's channels in concatenation order.
        let mut next = 0;
        for p in paths {
            assert_eq!(p.out_offset, next, "layer {l} path {}", p.name);
            assert_eq!(p.hops.last().unwrap().kernel.dims[0], p.out_channels);
            next += p.out_channels;
        }
        assert_eq!(next, d.layers[l].channels);
        // torchvision's "5×5" branch has 3×3 kernels.
        assert_eq!(paths[2].hops[1].kernel.dims[2..], [3, 3]);
    }
    let tap = |id: summit_model::TapId| d.taps[id.0].name.as_str();
    // Inputs: the tensor each conv receives (paper) and the original code's shortcut.
    assert_eq!(tap(d.paths[0][0].hops[0].input), "maxpool2");
    assert_eq!(tap(d.paths[0][0].hops[0].original_input), "conv3");
    assert_eq!(tap(d.paths[2][1].hops[0].input), "maxpool3");
    assert_eq!(tap(d.paths[2][1].hops[0].original_input), "inception3b");
    assert_eq!(tap(d.paths[7][3].hops[0].input), "inception5a.branch4.0");
    assert_eq!(tap(d.paths[7][3].hops[0].original_input), "inception4e");
    assert_eq!(tap(d.paths[1][2].hops[1].input), "inception3b.branch3.0");
}

#[test]
fn googlenet_paths_reproduce_branch_outputs() {
    let Some(dir) = fixture_dir("googlenet") else {
        return;
    };
    let device = Device::flex();
    let model = GoogLeNet::load(
        dir.join("googlenet.pth"),
        GoogLeNetOptions::default(),
        &device,
    )
    .unwrap();
    let d = model.description().clone();
    let rec = model.record(input(&dir, &device)).unwrap();
    let sd = StateDict::load(dir.join("googlenet.pth")).unwrap();
    // inception4a: its input is the max-pooled inception3b output; every branch, hop by hop,
    // every output channel of image 1.
    let l = 2;
    let out_tap = rec.tap(d.layers[l].tap).clone();
    let out_dims = out_tap.dims();
    let out = to_host(out_tap, "out").unwrap();
    let mut negative = 0usize;
    for path in &d.paths[l] {
        for (h, hop) in path.hops.iter().enumerate() {
            let HopData {
                x,
                dims,
                target,
                tdims,
                offset,
            } = hop_data(&rec, hop, path, (&out, out_dims));
            // torchvision's block of this hop: branch1 is one conv, branch4 a pool then conv
            let prefix = if path.name.ends_with("branch1") {
                path.name.clone()
            } else if path.name.ends_with("branch4") {
                format!("{}.1", path.name)
            } else {
                format!("{}.{h}", path.name)
            };
            for j in 0..hop.kernel.dims[0] {
                let (pre, [ho, wo]) = decomposed_preactivation(hop, &x, dims, 1, j);
                assert_eq!([ho, wo], [tdims[2], tdims[3]]);
                // the pre-activation itself, negative values included, against the raw
                // convolution + batch norm of the weights file (no folding)
                let raw = conv_bn_preactivation(
                    &sd,
                    &prefix,
                    GOOGLENET_BN_EPS,
                    hop.stride,
                    [hop.padding[0], hop.padding[2]],
                    &x,
                    dims,
                    1,
                    j,
                );
                let as_f32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
                let err = rel_err(&as_f32(&pre), &as_f32(&raw));
                assert!(
                    err < 1e-5,
                    "{prefix} channel {j}: pre-activation error {err}"
                );
                negative += raw.iter().filter(|&&v| v < 0.0).count();
                // and the recorded activation is its ReLU, at the path's concat offset
                let c = tdims[1];
                let plane = &target[(c + offset + j) * ho * wo..(c + offset + j + 1) * ho * wo];
                let want: Vec<f32> = pre.iter().map(|&v| v.max(0.0) as f32).collect();
                let err = rel_err(plane, &want);
                assert!(err < 1e-4, "{} channel {j}: error {err}", path.name);
            }
        }
    }
    assert!(
        negative > 1000,
        "too few negative pre-activations checked: {negative}"
    );
}

#[test]
fn wrong_files_give_clear_errors() {
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("model.onnx");
    std::fs::write(&bad, b"x").unwrap();
    let err = GoogLeNet::load(&bad, GoogLeNetOptions::default(), &device).unwrap_err();
    assert!(matches!(err, ModelError::UnsupportedFormat { .. }), "{err}");

    let garbage = tmp.path().join("model.pth");
    std::fs::write(&garbage, b"not a pickle").unwrap();
    let err = GoogLeNet::load(&garbage, GoogLeNetOptions::default(), &device).unwrap_err();
    assert!(matches!(err, ModelError::Read { .. }), "{err}");

    // The embedded Fashion-MNIST weights are a valid file of another architecture.
    let other = tmp.path().join("fashion.safetensors");
    std::fs::write(&other, summit_model::fashion::EMBEDDED_WEIGHTS).unwrap();
    let err = GoogLeNet::load(&other, GoogLeNetOptions::default(), &device).unwrap_err();
    match &err {
        ModelError::Shape { key, .. } => assert_eq!(key, "conv1.conv.weight"),
        other => panic!("expected a shape error, got {other}"),
    }
    assert!(err.to_string().contains("conv1.conv.weight"));
}

#[test]
fn missing_and_unexpected_keys_are_named() {
    let Some(dir) = fixture_dir("googlenet") else {
        return;
    };
    let device = Device::flex();
    let path = dir.join("googlenet.pth");
    let tensors = summit_model::StateDict::load(&path).unwrap().into_tensors();

    let mut missing = tensors.clone();
    missing.remove("inception4b.branch3.1.bn.running_var");
    let mut sd = summit_model::StateDict::from_tensors(&path, missing);
    let err =
        GoogLeNet::from_state_dict(&mut sd, GoogLeNetOptions::default(), &device).unwrap_err();
    match &err {
        ModelError::MissingKey { key, .. } => {
            assert_eq!(key, "inception4b.branch3.1.bn.running_var")
        }
        other => panic!("expected a missing key, got {other}"),
    }

    let mut extra = tensors.clone();
    let t = extra["fc.bias"].clone();
    extra.insert("aux1.fc2.bias".into(), t.clone());
    let mut sd = summit_model::StateDict::from_tensors(&path, extra.clone());
    GoogLeNet::from_state_dict(&mut sd, GoogLeNetOptions::default(), &device).unwrap();
    extra.insert("head.bias".into(), t);
    let mut sd = summit_model::StateDict::from_tensors(&path, extra);
    let err =
        GoogLeNet::from_state_dict(&mut sd, GoogLeNetOptions::default(), &device).unwrap_err();
    match &err {
        ModelError::UnexpectedKeys { keys, .. } => assert_eq!(keys, &["head.bias".to_string()]),
        other => panic!("expected unexpected keys, got {other}"),
    }

    let mut wrong = tensors;
    let w = wrong.get_mut("inception3a.branch2.1.conv.weight").unwrap();
    w.shape = vec![128, 96, 1, 9];
    let mut sd = summit_model::StateDict::from_tensors(&path, wrong);
    let err =
        GoogLeNet::from_state_dict(&mut sd, GoogLeNetOptions::default(), &device).unwrap_err();
    match &err {
        ModelError::Shape {
            key, expected, got, ..
        } => {
            assert_eq!(key, "inception3a.branch2.1.conv.weight");
            assert_eq!(expected, &[128, 96, 3, 3]);
            assert_eq!(got, &[128, 96, 1, 9]);
        }
        other => panic!("expected a shape error, got {other}"),
    }
}
