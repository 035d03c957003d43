//! Parity with Captum 0.9 (fixtures written by `tests/fixtures/make_captum.py`): every method on
//! torchvision GoogLeNet (seeded random weights, batch norm calibrated, 32²: see the fixture
//! script on why float32 parity needs inputs where float32 gradients are stable) and on ResNet-18
//! through its ONNX export (64²), relative L2 error ≤ 1e-3.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use burn::tensor::Device;
use summit_attribution::{AttributionParams, Attributor, Method};
use summit_model::{
    GoogLeNet, GoogLeNetOptions, OnnxModel, OnnxOptions, StateDict, Summarizable, burn,
};

/// The Captum results for `name`, or `None` when parity tests are knowingly skipped.
fn captum(name: &str) -> Option<StateDict> {
    common::fixture(
        "Captum",
        &format!("captum/{name}.safetensors"),
        "`python3 crates/summit-attribution/tests/fixtures/make_captum.py` (needs torch, \
         torchvision, captum 0.9 and the GoogLeNet and ONNX fixtures of summit-model)",
    )
}

fn report(test: &str) {
    common::report("captum", test);
}

fn scalar(sd: &StateDict, key: &str) -> usize {
    sd.get(key).unwrap().data[0] as usize
}

/// Runs every method on `model` and compares with the fixture; returns the errors.
fn compare(model: &dyn Summarizable, sd: &StateDict, layers: &[&str]) -> Vec<(String, f64)> {
    let device = Device::flex();
    let x = sd.get("input").unwrap();
    let dims: [usize; 4] = x.shape.clone().try_into().unwrap();
    let targets: Vec<usize> = sd
        .get("targets")
        .unwrap()
        .data
        .iter()
        .map(|&t| t as usize)
        .collect();
    let side = dims[2].min(dims[3]) as f32;
    let window = scalar(sd, "occlusion_window");
    let stride = scalar(sd, "occlusion_stride");
    let params = AttributionParams {
        ig_steps: scalar(sd, "ig_steps"),
        occlusion_window: window as f32 / side,
        occlusion_stride: stride as f32 / window as f32,
        batch_size: 8,
        ..AttributionParams::default()
    };
    let attributor = Attributor::new(model, params.clone(), &device).unwrap();
    assert_eq!(
        attributor.occlusion_geometry(dims[2], dims[3]),
        (window, stride)
    );
    let mut errors = Vec::new();
    let mut check = |key: &str, got: &[f32]| {
        let want = sd.get(key).unwrap();
        let e = common::rel_l2(got, &want.data);
        errors.push((key.to_string(), e));
    };
    // the logits first: the model is the one Captum saw
    let scores = attributor.scores(&x.data, dims, &targets).unwrap();
    let logits = &sd.get("logits").unwrap().data;
    let classes = model.description().num_classes;
    let want: Vec<f32> = targets
        .iter()
        .enumerate()
        .map(|(i, &t)| logits[i * classes + t])
        .collect();
    check_close("target logits", &scores, &want, 1e-4);
    for (method, key) in [
        (Method::Saliency, "saliency"),
        (Method::InputXGradient, "input_x_gradient"),
        (Method::IntegratedGradients, "integrated_gradients"),
        (Method::GuidedBackprop, "guided_backprop"),
        (Method::Occlusion, "occlusion"),
    ] {
        let a = attributor
            .attribute_host(method, &x.data, dims, &targets)
            .unwrap();
        assert_eq!(a.dims, dims, "{key}");
        check(key, &a.values);
    }
    let noise = &sd.get("smoothgrad_noise").unwrap().data;
    let sg = attributor
        .smooth_grad_with_noise(&x.data, dims, &targets, noise)
        .unwrap();
    check("smoothgrad", &sg.values);
    for layer in layers {
        // signed maps (the fixture's relu_attributions=False): the whole map is compared
        let p = AttributionParams {
            layer: Some(layer.to_string()),
            grad_cam_relu: false,
            ..params.clone()
        };
        let a = Attributor::new(model, p, &device)
            .unwrap()
            .attribute_host(Method::GradCam, &x.data, dims, &targets)
            .unwrap();
        let want = sd.get(&format!("grad_cam.{layer}")).unwrap();
        assert_eq!(a.dims.to_vec(), want.shape, "grad-cam {layer} shape");
        check(&format!("grad_cam.{layer}"), &a.values);
    }
    // guided backpropagation really differs from the plain gradient
    let plain = attributor
        .attribute_host(Method::Saliency, &x.data, dims, &targets)
        .unwrap();
    let guided = &sd.get("guided_backprop").unwrap().data;
    let abs: Vec<f32> = guided.iter().map(|v| v.abs()).collect();
    assert!(
        common::rel_l2(&abs, &plain.values) > 0.05,
        "guided backprop equals the plain gradient: the fixture's ReLU hooks did not act"
    );
    errors
}

fn check_close(what: &str, got: &[f32], want: &[f32], tol: f64) {
    let e = common::rel_l2(got, want);
    assert!(e < tol, "{what}: relative L2 error {e}");
}

fn assert_all(model: &str, errors: &[(String, f64)], sd: &StateDict) {
    eprintln!(
        "{model}: the fixture's float32 gradients are within {:.1e} of float64",
        sd.get("conditioning").unwrap().data[0]
    );
    for (k, e) in errors {
        eprintln!("{model} {k}: relative L2 error {e:.2e}");
    }
    let bad: Vec<_> = errors.iter().filter(|(_, e)| *e > 1e-3).collect();
    assert!(bad.is_empty(), "{model}: above 1e-3: {bad:?}");
}

#[test]
fn googlenet_matches_captum() {
    let Some(sd) = captum("googlenet") else {
        return;
    };
    report("googlenet_matches_captum");
    let weights = common::fixtures().join("captum/googlenet.pth");
    let model = GoogLeNet::load(weights, GoogLeNetOptions::default(), &Device::flex()).unwrap();
    let errors = compare(&model, &sd, &["inception5b", "inception4c"]);
    assert_all("googlenet", &errors, &sd);
    assert_eq!(errors.len(), 8);
}

#[test]
fn resnet18_through_onnx_matches_captum() {
    let Some(sd) = captum("resnet18") else {
        return;
    };
    report("resnet18_through_onnx_matches_captum");
    let path = common::fixtures().join("captum/resnet18.onnx");
    let model = OnnxModel::load(&path, &OnnxOptions::default(), &Device::flex()).unwrap();
    let errors = compare(&model, &sd, &["layer4.1", "layer2.0"]);
    assert_all("resnet18", &errors, &sd);
    assert_eq!(errors.len(), 8);
}
