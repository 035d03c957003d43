//! The A and I counts of ONNX models (SPEC §2.1) against an independent brute force written
//! from the PyTorch modules in `crates/summit-model/tests/fixtures/make_onnx_models.py`
//! (float64 influences, joint top-k over summed paths, the tie rule), image by image; the
//! designed exact ties between a skip and a branch candidate; and GoogLeNet through ONNX
//! against the native GoogLeNet on the same images and weights.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use summit_core::model::burn::tensor::{Tensor, TensorData};
use summit_core::model::{GoogLeNet, OnnxModel, OnnxOptions, StateDict};
use summit_core::pipeline::aggregate_batch;
use summit_core::{Aggregates, Config, Device, Summarizable, aggregate_params};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crates/summit-model/tests/fixtures")
}

fn report(name: &str) {
    if let Some(path) = std::env::var_os("SUMMIT_PARITY_REPORT") {
        use std::io::Write;
        let test = std::thread::current().name().unwrap_or("?").to_string();
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(format!("{name}: summit-rs {test}\n").as_bytes());
        }
    }
}

/// The model and expected values of ONNX fixture `name` (a missing fixture fails the test
/// unless `SUMMIT_SKIP_PARITY=1`).
fn fixture(name: &str, device: &Device) -> Option<(OnnxModel, StateDict)> {
    let dir = fixtures().join("onnx");
    let onnx = dir.join(format!("{name}.onnx"));
    let exp = dir.join(format!("{name}.expected.safetensors"));
    if !(onnx.exists() && exp.exists()) {
        let msg = format!(
            "ONNX fixture {} missing: run python3 crates/summit-model/tests/fixtures/make_onnx_models.py",
            onnx.display()
        );
        if std::env::var("SUMMIT_SKIP_PARITY").is_ok_and(|v| v == "1") {
            eprintln!("SKIPPED (SUMMIT_SKIP_PARITY=1): {msg}");
            return None;
        }
        panic!("{msg}");
    }
    report("onnx");
    Some((
        OnnxModel::load(&onnx, &OnnxOptions::default(), device).unwrap(),
        StateDict::load(exp).unwrap(),
    ))
}

fn input(exp: &StateDict, device: &Device) -> Tensor<4> {
    let x = exp.get("input").unwrap();
    let d: [usize; 4] = x.shape.clone().try_into().unwrap();
    Tensor::<4>::from_data(TensorData::new(x.data.clone(), d), device)
}

/// Aggregates `x` with image `b` labelled class `b`, so that class `b`'s counts are image
/// `b`'s selections.
fn aggregate(model: &dyn Summarizable, x: Tensor<4>) -> Aggregates {
    let config = Config::paper();
    let b = x.dims()[0];
    let mut aggs =
        Aggregates::new(aggregate_params(model.description(), &config).unwrap()).unwrap();
    let ids: Vec<u64> = (0..b as u64).collect();
    let labels: Vec<usize> = (0..b).collect();
    aggregate_batch(
        model,
        config.hop_input,
        &mut aggs,
        x,
        &ids,
        &labels,
        "fixture batch",
    )
    .unwrap();
    aggs
}

/// Compares every selection with the brute force; returns (rows compared, rows skipped as
/// nearly tied).
fn compare(name: &str, model: &OnnxModel, exp: &StateDict, aggs: &Aggregates) -> (usize, usize) {
    let d = model.description();
    let b = exp.get("input").unwrap().shape[0];
    let (mut compared, mut skipped) = (0, 0);
    for (l, layer) in d.layers.iter().enumerate() {
        let a = exp
            .get(&format!("A.{}", layer.name))
            .unwrap_or_else(|| panic!("{name}: no brute force for layer {}", layer.name));
        let aamb = &exp.get(&format!("Aamb.{}", layer.name)).unwrap().data;
        let got = aggs.activation_matrix(l).unwrap();
        for n in 0..b {
            if aamb[n] != 0.0 {
                skipped += 1;
                continue;
            }
            for c in 0..layer.channels {
                assert_eq!(
                    f32::from(got[[n, c]] as u8),
                    a.data[n * layer.channels + c],
                    "{name} {}: A of image {n}, channel {c}",
                    layer.name
                );
            }
            compared += 1;
        }
        for (p, path) in d.paths[l].iter().enumerate() {
            let sig: Vec<&str> = path.hops.iter().map(|h| h.name.as_str()).collect();
            let sig = sig.join("+");
            for (h, counts) in aggs.paths(l).unwrap()[p].hops.iter().enumerate() {
                let hk = format!("sel.{}.{sig}#{h}", layer.name);
                let sel = exp
                    .get(&hk)
                    .unwrap_or_else(|| panic!("{name}: the brute force has no hop {hk}"));
                let amb = &exp
                    .get(&format!("amb.{}.{sig}#{h}", layer.name))
                    .unwrap()
                    .data;
                let (c_out, k) = (sel.shape[1], sel.shape[2]);
                assert_eq!(c_out, counts.c_out(), "{name} {hk}: output channels");
                for n in 0..b {
                    for j in 0..c_out {
                        if amb[n * c_out + j] != 0.0 {
                            skipped += 1;
                            continue;
                        }
                        let mut want: Vec<u32> = sel.data[(n * c_out + j) * k..][..k]
                            .iter()
                            .filter(|&&v| v >= 0.0)
                            .map(|&v| v as u32)
                            .collect();
                        want.sort_unstable();
                        let row: Vec<u32> = counts
                            .row(n, j)
                            .map_or(Vec::new(), |r| r.iter().map(|(i, _)| i).collect());
                        assert_eq!(row, want, "{name} {hk}: image {n}, output channel {j}");
                        compared += 1;
                    }
                }
            }
        }
    }
    (compared, skipped)
}

#[test]
fn resnet18_and_mobilenet_v2_counts_equal_the_brute_force() {
    let device = Device::flex();
    for name in [
        "resnet18",
        "mobilenet_v2",
        "tie_branch_first",
        "tie_skip_first",
    ] {
        let Some((model, exp)) = fixture(name, &device) else {
            return;
        };
        let aggs = aggregate(&model, input(&exp, &device));
        let (compared, skipped) = compare(name, &model, &exp, &aggs);
        eprintln!(
            "{name}: {compared} selections equal to the brute force, {skipped} nearly tied rows skipped"
        );
        assert!(
            compared > 0 && skipped * 200 <= compared,
            "{name}: too many skipped ({skipped})"
        );
    }
}

#[test]
fn a_skip_candidate_tied_with_a_branch_candidate_follows_the_add_order() {
    let device = Device::flex();
    for (name, skip_wins) in [("tie_branch_first", true), ("tie_skip_first", false)] {
        let Some((model, exp)) = fixture(name, &device) else {
            return;
        };
        let aggs = aggregate(&model, input(&exp, &device));
        let d = model.description();
        let mut ties = 0;
        for l in 0..d.layers.len() {
            let paths = aggs.paths(l).unwrap();
            let skip = d.paths[l]
                .iter()
                .position(|p| p.hops.last().unwrap().name == "identity")
                .unwrap();
            let branch = 1 - skip;
            let conv2 = paths[branch].hops.last().unwrap();
            let id = &paths[skip].hops[0];
            for n in 0..2 {
                for j in 0..8u32 {
                    let s = id.get(n, j as usize, j as usize).unwrap_or(0) > 0;
                    let c = conv2.get(n, j as usize, j as usize).unwrap_or(0) > 0;
                    // the fifth place: exactly one of the two tied candidates
                    assert!(
                        s != c,
                        "{name} layer {l} image {n} channel {j}: skip {s}, conv {c}"
                    );
                    assert_eq!(s, skip_wins, "{name} layer {l} image {n} channel {j}");
                    ties += 1;
                }
            }
        }
        eprintln!("{name}: {ties} exact ties at the selection boundary, resolved by the Add order");
    }
}

#[test]
fn googlenet_through_onnx_counts_as_the_native_googlenet() {
    let device = Device::flex();
    let Some((onnx, exp)) = fixture("googlenet", &device) else {
        return;
    };
    let native = GoogLeNet::load(
        fixtures().join("googlenet/googlenet.pth"),
        Default::default(),
        &device,
    )
    .unwrap();
    let x = input(&exp, &device);
    let a = aggregate(&onnx, x.clone());
    let b = aggregate(&native, x);
    let (da, db) = (onnx.description(), native.description());
    assert_eq!(da.layers.len(), db.layers.len());
    let (mut same, mut differ) = (0usize, 0usize);
    for l in 0..da.layers.len() {
        assert_eq!(da.layers[l].name, db.layers[l].name);
        assert_eq!(
            a.activation_matrix(l).unwrap(),
            b.activation_matrix(l).unwrap(),
            "A of {}",
            da.layers[l].name
        );
        let (pa, pb) = (a.paths(l).unwrap(), b.paths(l).unwrap());
        assert_eq!(pa.len(), pb.len(), "paths of {}", da.layers[l].name);
        for (p, (x, y)) in pa.iter().zip(pb).enumerate() {
            assert_eq!(x.out_offset, y.out_offset);
            assert_eq!(x.hops.len(), y.hops.len());
            for (h, (u, v)) in x.hops.iter().zip(&y.hops).enumerate() {
                for class in 0..2 {
                    for j in 0..u.c_out() {
                        let (r, s) = (
                            u.row(class, j).map(|r| r.to_vec()),
                            v.row(class, j).map(|r| r.to_vec()),
                        );
                        if r == s {
                            same += 1;
                        } else {
                            differ += 1;
                            eprintln!(
                                "{} path {p} hop {h} class {class} channel {j}: onnx {r:?} native {s:?}",
                                da.layers[l].name
                            );
                        }
                    }
                }
            }
        }
    }
    eprintln!("googlenet: {same} influence rows equal between ONNX and native, {differ} differ");
    assert_eq!(differ, 0);
}

#[test]
fn a_class_count_that_differs_from_the_dataset_is_refused_before_the_pass() {
    let device = Device::flex();
    // the embedded ResNet (10 classes) is fine on Fashion-MNIST ...
    let resnet = summit_core::OnnxModel::fashion_resnet(&device).unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/fashion-mnist");
    let data = summit_core::FashionMnist::open(
        root.join("t10k-images-idx3-ubyte.gz"),
        root.join("t10k-labels-idx1-ubyte.gz"),
    )
    .and_then(|d| d.with_preprocess(summit_core::Preprocess::fashion_mnist()))
    .unwrap();
    let data: std::sync::Arc<dyn summit_core::data::Dataset> = std::sync::Arc::new(data);
    assert!(
        summit_core::Pipeline::new(&resnet, data.clone(), Config::paper(), device.clone()).is_ok()
    );
    // ... a 4-class model is refused, naming both counts, and nothing is written
    let Some((tie, _)) = fixture("tie_branch_first", &device) else {
        return;
    };
    let e = summit_core::Pipeline::new(&tie, data, Config::paper(), device)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("10 classes") && e.contains("classifies 4"),
        "{e}"
    );
}

#[test]
fn influences_on_the_device_count_as_on_the_host_for_depthwise_and_residual_models() {
    let device = Device::flex();
    for name in ["mobilenet_v2", "resnet18"] {
        let Some((model, exp)) = fixture(name, &device) else {
            return;
        };
        let x = input(&exp, &device);
        let host = aggregate(&model, x.clone());
        let config = Config::paper();
        let b = x.dims()[0];
        let mut dev =
            Aggregates::new(aggregate_params(model.description(), &config).unwrap()).unwrap();
        let kernels = summit_core::DeviceKernels::new(model.description(), &device).unwrap();
        let ids: Vec<u64> = (0..b as u64).collect();
        let labels: Vec<usize> = (0..b).collect();
        summit_core::aggregate_batch_with(
            &model,
            config.hop_input,
            &mut dev,
            x,
            &ids,
            &labels,
            "device batch",
            Some(&kernels),
        )
        .unwrap();
        let (mut same, mut differ) = (0, 0);
        for l in 0..model.description().layers.len() {
            for (p, q) in host.paths(l).unwrap().iter().zip(dev.paths(l).unwrap()) {
                for (u, v) in p.hops.iter().zip(&q.hops) {
                    for class in 0..b {
                        for j in 0..u.c_out() {
                            if u.row(class, j).map(|r| r.to_vec())
                                == v.row(class, j).map(|r| r.to_vec())
                            {
                                same += 1;
                            } else {
                                differ += 1;
                            }
                        }
                    }
                }
            }
        }
        eprintln!(
            "{name}: {same} influence rows equal on the device and the host, {differ} differ"
        );
        // device convolutions round differently: only rows nearly tied may differ
        assert!(differ * 1000 <= same, "{name}: {differ} rows differ");
    }
}
