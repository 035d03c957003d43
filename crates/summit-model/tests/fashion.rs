//! The embedded Fashion-MNIST network: description, recording, weight round trip, and its
//! paths proven by channel-by-channel decomposition.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use burn::tensor::{Device, Distribution, Tensor};
use common::{HopData, decomposed_preactivation, hop_data, rel_err};
use summit_model::{FashionInception, PathKind, Summarizable, burn, to_host};

fn images(device: &Device) -> Tensor<4> {
    device.seed(3);
    Tensor::random([3, 1, 28, 28], Distribution::Normal(0.0, 1.0), device)
}

#[test]
fn description_covers_every_path_kind() {
    let model = FashionInception::embedded(&Device::flex()).unwrap();
    let d = model.description();
    assert_eq!(
        d.layers.iter().map(|l| l.channels).collect::<Vec<_>>(),
        [104, 112, 160]
    );
    for paths in &d.paths {
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
        assert_eq!(paths[1].hops[1].kernel.dims[2..], [3, 3]);
        assert_eq!(paths[2].hops[1].kernel.dims[2..], [5, 5]);
        assert_eq!(paths[2].hops[1].padding, [2, 2, 2, 2]);
    }
}

#[test]
fn every_path_reproduces_its_branch_output() {
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
    let d = model.description().clone();
    let rec = model.record(images(&device)).unwrap();
    let mut checked = 0;
    for (l, paths) in d.paths.iter().enumerate() {
        let out_t = rec.tap(d.layers[l].tap).clone();
        let out_dims = out_t.dims();
        let out = to_host(out_t, "out").unwrap();
        for path in paths {
            for hop in &path.hops {
                let HopData {
                    x,
                    dims,
                    target,
                    tdims,
                    offset,
                } = hop_data(&rec, hop, path, (&out, out_dims));
                for j in 0..hop.kernel.dims[0] {
                    for b in 0..3 {
                        let (pre, [ho, wo]) = decomposed_preactivation(hop, &x, dims, b, j);
                        let c = tdims[1];
                        let base = (b * c + offset + j) * ho * wo;
                        let plane = &target[base..base + ho * wo];
                        let want: Vec<f32> = pre.iter().map(|&v| v.max(0.0) as f32).collect();
                        let err = rel_err(plane, &want);
                        assert!(err < 1e-4, "{} ch {j} image {b}: error {err}", path.name);
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 1000);
}

#[test]
fn export_and_reload_round_trip() {
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("w.safetensors");
    model.net().save(&path).unwrap();
    let again = FashionInception::load(&path, &device).unwrap();
    let a = to_host(model.forward(images(&device)).unwrap(), "a").unwrap();
    let b = to_host(again.forward(images(&device)).unwrap(), "b").unwrap();
    assert_eq!(a, b);
    assert_eq!(model.description(), again.description());
}

#[test]
fn wrong_input_shape_is_an_error() {
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
    let err = model
        .record(Tensor::zeros([1, 3, 28, 28], &device))
        .unwrap_err();
    assert!(err.to_string().contains("[1, 3, 28, 28]"), "{err}");
}

/// `forward_to` (feature visualization's pass) stops at the tap: at 28² it gives exactly the
/// recorded summary layers, other sizes run with the maps the strides give, and a wrong
/// channel count or a map too small is a clear error.
#[test]
fn forward_to_stops_at_the_tap_and_takes_other_sizes() {
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
    assert!(model.accepts_any_size());
    let x = images(&device);
    let rec = model.record(x.clone()).unwrap();
    for layer in &model.description().layers {
        let got = to_host(model.forward_to(x.clone(), layer.tap).unwrap(), "got").unwrap();
        let want = to_host(rec.tap(layer.tap).clone(), "want").unwrap();
        assert_eq!(got, want, "{}", layer.name);
    }
    let layers = &model.description().layers;
    let big = Tensor::<4>::zeros([2, 1, 36, 32], &device);
    assert_eq!(
        model.forward_to(big.clone(), layers[0].tap).unwrap().dims(),
        [2, layers[0].channels, 18, 16]
    );
    assert_eq!(
        model.forward_to(big, layers[2].tap).unwrap().dims(),
        [2, layers[2].channels, 9, 8]
    );
    for dims in [[1, 3, 28, 28], [1, 1, 6, 28]] {
        let e = model
            .forward_to(Tensor::zeros(dims, &device), layers[0].tap)
            .unwrap_err();
        assert!(
            matches!(e, summit_model::ModelError::Input { .. }),
            "{dims:?}: {e}"
        );
    }
}
