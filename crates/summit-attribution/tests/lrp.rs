//! Layer-wise relevance propagation: parity with zennit 0.5.1 (and DeconvNet, Guided Grad-CAM
//! with Captum 0.9), fixtures written by `tests/fixtures/make_zennit.py`, relative L2 ≤ 1e-3:
//! a VGG-style network and ResNet-18 (batch norm folded, residual Adds) through ONNX, and
//! torchvision GoogLeNet (Concat branches) through the native model's own graph (batch norm
//! folded by the graph walk). Then the properties that need no reference: conservation on a
//! bias-free network, per layer; `zplus` maps non-negative; the errors of bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::RefCell;

use burn::tensor::{Device, Tensor, TensorData};
use summit_attribution::{
    AttributionError, AttributionParams, Attributor, Composite, LrpRules, Method, Rule,
};
use summit_model::{
    GoogLeNet, GoogLeNetOptions, LinearKind, LinearLayer, LinearRelevance, OnnxModel, OnnxOptions,
    RelevanceSeed, StateDict, Summarizable, burn,
};

/// The zennit results for `name`, or `None` when parity tests are knowingly skipped.
fn zennit(name: &str) -> Option<StateDict> {
    common::fixture(
        "zennit",
        &format!("zennit/{name}.safetensors"),
        "`python3 crates/summit-attribution/tests/fixtures/make_zennit.py` (needs torch, \
         torchvision, onnx, zennit 0.5.1, captum 0.9)",
    )
}

fn report(test: &str) {
    common::report("zennit", test);
}

/// Seeded standard normal values × `scale` as `[n, c, h, w]` (the tests do not depend on the
/// global generator).
fn normal(dims: [usize; 4], scale: f32, seed: u64, device: &Device) -> Tensor<4> {
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            let (a, b) = (uniform(), uniform());
            ((-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()) as f32 * scale
        })
        .collect();
    Tensor::from_data(TensorData::new(v, dims), device)
}

fn onnx(name: &str) -> OnnxModel {
    OnnxModel::load(
        common::fixtures()
            .join("zennit")
            .join(format!("{name}.onnx")),
        &OnnxOptions::default(),
        &Device::flex(),
    )
    .unwrap()
}

/// Every composite, every rule on every convolution, the neuron targets, DeconvNet and Guided
/// Grad-CAM of `model` against the fixture; returns `(key, relative L2)`.
fn compare(
    model: &dyn Summarizable,
    sd: &StateDict,
    neuron_layer: &str,
    cam_layer: &str,
) -> Vec<(String, f64)> {
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
    let bounds = (
        sd.get("low").unwrap().data.clone(),
        sd.get("high").unwrap().data.clone(),
    );
    let base = AttributionParams {
        batch_size: 8,
        input_bounds: Some(bounds),
        ..AttributionParams::default()
    };
    let errs = RefCell::new(Vec::new());
    let check_values = |key: &str, got: &[f32], want: &[f32]| {
        errs.borrow_mut()
            .push((key.to_string(), common::rel_l2(got, want)));
    };
    let check = |key: &str, got: &[f32]| {
        check_values(key, got, &sd.get(key).unwrap().data);
    };
    let att = Attributor::new(model, base.clone(), &device).unwrap();
    // the logits first: the model is the one zennit saw
    let scores = att.scores(&x.data, dims, &targets).unwrap();
    let logits = &sd.get("logits").unwrap().data;
    let classes = model.description().num_classes;
    let want: Vec<f32> = targets
        .iter()
        .enumerate()
        .map(|(i, &t)| logits[i * classes + t])
        .collect();
    assert!(common::rel_l2(&scores, &want) < 1e-4, "logits differ");
    for composite in Composite::ALL {
        let a = att
            .attribute_host(Method::lrp(composite), &x.data, dims, &targets)
            .unwrap();
        assert_eq!(a.dims, dims);
        check(&format!("composite.{composite}"), &a.values);
    }
    // each rule by a name map: the input-layer rules (flat, wsquare, zbox) on the first
    // convolution, the others on every convolution; dense layers epsilon
    let layers = model.graph().unwrap().model.linear_layers();
    let convs: Vec<String> = layers
        .iter()
        .filter(|(_, k)| *k == LinearKind::Convolution)
        .map(|(n, _)| n.clone())
        .collect();
    for name in [
        "epsilon",
        "zplus",
        "alpha2-beta1",
        "alpha1-beta0",
        "gamma",
        "flat",
        "wsquare",
        "zbox",
    ] {
        let rule: Rule = name.parse().unwrap();
        let map = if matches!(rule, Rule::ZBox | Rule::Flat | Rule::WSquare) {
            vec![(vec![convs[0].clone()], rule)]
        } else {
            vec![(convs.clone(), rule)]
        };
        let p = AttributionParams {
            lrp_name_map: map,
            ..base.clone()
        };
        let a = Attributor::new(model, p, &device)
            .unwrap()
            .attribute_host(Method::LrpEpsilon, &x.data, dims, &targets)
            .unwrap();
        check(&format!("rule.{name}"), &a.values);
    }
    // neuron targets: LRP from one channel of a summary layer, and its saliency
    let channel = sd.get("neuron.channel").unwrap().data[0] as usize;
    for composite in Composite::ALL {
        let a = att
            .attribute_neuron_host(Method::lrp(composite), &x.data, dims, neuron_layer, channel)
            .unwrap();
        assert_eq!(a.neuron_layer.as_deref(), Some(neuron_layer));
        check(&format!("neuron.{composite}"), &a.values);
    }
    let s = att
        .attribute_neuron_host(Method::Saliency, &x.data, dims, neuron_layer, channel)
        .unwrap();
    let want = &sd.get("neuron.saliency").unwrap().data;
    let signed: Vec<f32> = want.iter().map(|v| v.abs()).collect();
    check_values("neuron.saliency", &s.values, &signed);
    let d = att
        .attribute_host(Method::Deconvnet, &x.data, dims, &targets)
        .unwrap();
    check("deconvnet", &d.values);
    let p = AttributionParams {
        layer: Some(cam_layer.into()),
        ..base.clone()
    };
    let g = Attributor::new(model, p, &device)
        .unwrap()
        .attribute_host(Method::GuidedGradCam, &x.data, dims, &targets)
        .unwrap();
    check(&format!("guided_grad_cam.{cam_layer}"), &g.values);
    errs.into_inner()
}

fn assert_all(model: &str, errors: &[(String, f64)], sd: &StateDict) {
    eprintln!(
        "{model}: the fixture's float32 relevance is within {:.1e} of float64",
        sd.get("conditioning").unwrap().data[0]
    );
    for (k, e) in errors {
        eprintln!("{model} {k}: relative L2 error {e:.2e}");
    }
    let bad: Vec<_> = errors.iter().filter(|(_, e)| *e > 1e-3).collect();
    assert!(bad.is_empty(), "{model}: above 1e-3: {bad:?}");
    assert_eq!(errors.len(), 5 + 8 + 5 + 3);
}

#[test]
fn vgg_through_onnx_matches_zennit() {
    let Some(sd) = zennit("vgg") else {
        return;
    };
    report("vgg_through_onnx_matches_zennit");
    let model = onnx("vgg");
    let errors = compare(&model, &sd, "features.7", "features.7");
    assert_all("vgg", &errors, &sd);
}

#[test]
fn resnet18_through_onnx_matches_zennit() {
    let Some(sd) = zennit("resnet18") else {
        return;
    };
    report("resnet18_through_onnx_matches_zennit");
    let model = onnx("resnet18");
    let errors = compare(&model, &sd, "layer2.1", "layer4.1");
    assert_all("resnet18", &errors, &sd);
}

#[test]
fn native_googlenet_matches_zennit() {
    let Some(sd) = zennit("googlenet") else {
        return;
    };
    report("native_googlenet_matches_zennit");
    let model = GoogLeNet::load(
        common::fixtures().join("zennit/googlenet.pth"),
        GoogLeNetOptions::default(),
        &Device::flex(),
    )
    .unwrap();
    let errors = compare(&model, &sd, "inception3b", "inception4c");
    assert_all("googlenet", &errors, &sd);
}

/// Records the relevance entering and leaving every linear layer.
struct Recorder<'r> {
    inner: &'r LrpRules,
    sums: RefCell<Vec<(String, f64, f64)>>,
}

fn total(t: &Tensor<4>) -> f64 {
    t.clone()
        .into_data()
        .try_into_vec::<f32>()
        .unwrap()
        .iter()
        .map(|v| f64::from(*v))
        .sum()
}

impl LinearRelevance for Recorder<'_> {
    fn relevance(
        &self,
        layer: &LinearLayer<'_>,
        x: Tensor<4>,
        r: Tensor<4>,
    ) -> summit_model::Result<Tensor<4>> {
        let out = total(&r);
        let rin = self.inner.relevance(layer, x, r)?;
        self.sums
            .borrow_mut()
            .push((layer.name().to_string(), out, total(&rin)));
        Ok(rin)
    }
}

#[test]
fn relevance_is_conserved_layer_by_layer_without_biases() {
    let path = common::fixtures().join("zennit/vgg_nobias.onnx");
    if !path.exists() && zennit("vgg").is_none() {
        return;
    }
    let model = OnnxModel::load(&path, &OnnxOptions::default(), &Device::flex()).unwrap();
    let device = Device::flex();
    // a bias-free ReLU network is positively homogeneous: inputs ×1000 scale every z by 1000,
    // so that ε = 1e-6 is far below the smallest |z| and the sums hold to 1e-4
    let x = normal([3, 3, 32, 32], 1000.0, 11, &device);
    for composite in [Composite::LrpEpsilon, Composite::LrpZ] {
        let rules = LrpRules::new(composite, &Vec::new(), &model.linear_layers(), None).unwrap();
        let rec = Recorder {
            inner: &rules,
            sums: RefCell::new(Vec::new()),
        };
        let hot = |logits: &Tensor<2>| -> summit_model::Result<Tensor<2>> {
            let [n, k] = logits.dims();
            let mut m = vec![0f32; n * k];
            for i in 0..n {
                m[i * k + (i % k)] = 1.0;
            }
            Ok(Tensor::from_data(TensorData::new(m, [n, k]), &device))
        };
        let r = model
            .relevance(x.clone(), &RelevanceSeed::Logits(&hot), &rec)
            .unwrap();
        let sums = rec.sums.into_inner();
        assert_eq!(sums.len(), 7, "five convolutions and two dense layers");
        for (name, out, rin) in &sums {
            assert!(
                ((out - rin) / out.abs().max(1e-12)).abs() < 1e-4,
                "{composite}: layer {name}: {out} in, {rin} out"
            );
        }
        // and overall: the input holds what was put at the output (3 images × 1.0), to 1e-4
        // per layer (ε = 1e-6 takes its share at each) or to rounding with ε = 0
        let input = total(&r);
        let tol = if composite == Composite::LrpZ {
            1e-5
        } else {
            7e-4
        };
        assert!(
            ((input - 3.0) / 3.0).abs() < tol,
            "{composite}: input relevance {input}"
        );
    }
}

#[test]
fn zplus_everywhere_gives_non_negative_maps() {
    let Some(_) = zennit("resnet18") else {
        return;
    };
    let model = onnx("resnet18");
    let device = Device::flex();
    let names: Vec<String> = model.linear_layers().into_iter().map(|(n, _)| n).collect();
    let params = AttributionParams {
        lrp_name_map: vec![(names, Rule::ZPlus)],
        ..AttributionParams::default()
    };
    let att = Attributor::new(&model, params, &device).unwrap();
    let x = normal([2, 3, 64, 64], 1.0, 12, &device);
    let a = att.attribute(Method::LrpEpsilon, &x, &[1, 420]).unwrap();
    let min = a.values.iter().fold(f32::INFINITY, |m, v| m.min(*v));
    let sum: f64 = a.values.iter().map(|v| f64::from(*v)).sum();
    assert!(min >= 0.0, "a zplus map has a negative value {min}");
    assert!(sum > 0.5, "the zplus maps hold almost nothing: {sum}");
}

#[test]
fn bad_input_gets_clear_errors() {
    let device = Device::flex();
    let model = summit_model::FashionInception::embedded(&device).unwrap();
    let x = Tensor::<4>::zeros([1, 1, 28, 28], &device);
    // an unknown rule, composite or method name
    let e = "epsilon-ish".parse::<Rule>().unwrap_err();
    assert!(matches!(e, AttributionError::UnknownRule { .. }), "{e}");
    assert!(e.to_string().contains("epsilon-ish"), "{e}");
    let e = "alpha3-beta1".parse::<Rule>().unwrap_err();
    assert!(e.to_string().contains("α − β = 1"), "{e}");
    let e = "epsilon-plus".parse::<Composite>().unwrap_err();
    assert!(e.to_string().contains("epsilon-plus-flat"), "{e}");
    assert_eq!(
        "epsilon_gamma_box".parse::<Method>().unwrap(),
        Method::LrpEpsilonGammaBox
    );
    assert_eq!("LRP".parse::<Method>().unwrap(), Method::LrpEpsilonPlusFlat);
    // a layer in the name map the model does not have
    let p = AttributionParams {
        lrp_name_map: vec![(vec!["mixed9z.branch1.conv".into()], Rule::ZPlus)],
        ..AttributionParams::default()
    };
    let e = Attributor::new(&model, p, &device)
        .unwrap()
        .attribute(Method::LrpEpsilon, &x, &[0])
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("mixed9z.branch1.conv") && msg.contains("mixed3a.branch1.conv"),
        "{msg}"
    );
    // zbox without the input bounds
    let e = Attributor::new(&model, AttributionParams::default(), &device)
        .unwrap()
        .attribute(Method::LrpEpsilonGammaBox, &x, &[0])
        .unwrap_err();
    assert!(e.to_string().contains("input_bounds"), "{e}");
    // a neuron channel out of range, an unknown neuron layer
    let att = Attributor::new(&model, AttributionParams::default(), &device).unwrap();
    let e = att
        .attribute_neuron(Method::LrpEpsilon, &x, "mixed3a", 104)
        .unwrap_err();
    assert!(
        matches!(e, AttributionError::NeuronOutOfRange { channels: 104, .. }),
        "{e}"
    );
    let e = att
        .attribute_neuron(Method::Saliency, &x, "mixed9", 0)
        .unwrap_err();
    assert!(e.to_string().contains("mixed3a"), "{e}");
}

#[test]
fn an_operator_without_a_rule_is_an_error_naming_it() {
    use summit_model::HostTensor;
    use summit_model::onnx::build::GraphBuilder;
    // a graph whose feature map goes through a product of two maps (no rule)
    let device = Device::flex();
    let mut g = GraphBuilder::new(1, [4, 4]);
    let x = g.input();
    let w = HostTensor::new(vec![2, 1, 3, 3], (0..18).map(|i| i as f32 / 10.0).collect());
    let a = g.conv("a", &x, &w, None, 1, 1, 1).unwrap();
    let b = g.conv("b", &x, &w, None, 1, 1, 1).unwrap();
    let m = g.product("mul", &a, &b);
    let p = g.global_average_pool("pool", &m);
    let f = g.flatten("flatten", &p);
    let fc = g
        .gemm("fc", &f, &HostTensor::new(vec![3, 2], vec![1.0; 6]), None)
        .unwrap();
    let model = g.finish(&fc, "product", &device).unwrap();
    let att = Attributor::new(&model, AttributionParams::default(), &device);
    // the model has no summary layers: build the rules directly
    assert!(att.is_err());
    let rules = LrpRules::new(
        Composite::LrpEpsilon,
        &Vec::new(),
        &model.linear_layers(),
        None,
    )
    .unwrap();
    let hot = |l: &Tensor<2>| -> summit_model::Result<Tensor<2>> { Ok(l.ones_like()) };
    let e = model
        .relevance(
            Tensor::ones([1, 1, 4, 4], &device),
            &RelevanceSeed::Logits(&hot),
            &rules,
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("mul") && e.contains("Mul") && e.contains("no relevance rule"),
        "{e}"
    );
}

/// LRP-0 (`lrp-z`) on a ReLU network, started at the target's logit instead of 1.0, is gradient
/// × input, exactly (every ratio `aₖ / zₖ` is the ReLU's derivative; the residual Add's and the
/// average pool's shares sum to their gradient): with the one-hot start (SPEC §4.2) every map is
/// gradient × input divided by the logit. An identity with no reference, through the native
/// graph (batch norm folded, Concat) and the ONNX ResNet (residual Adds); for a neuron target
/// the start is the channel's sum.
#[test]
fn lrp_z_is_gradient_times_input_on_relu_networks() {
    let device = Device::flex();
    let models: Vec<Box<dyn Summarizable>> = vec![
        Box::new(summit_model::FashionInception::embedded(&device).unwrap()),
        Box::new(OnnxModel::fashion_resnet(&device).unwrap()),
    ];
    let x = normal([3, 1, 28, 28], 1.0, 13, &device);
    let data = x.clone().into_data().try_into_vec::<f32>().unwrap();
    let targets = [0, 4, 9];
    let per = 28 * 28;
    for model in &models {
        let name = &model.description().name;
        let att = Attributor::new(model.as_ref(), AttributionParams::default(), &device).unwrap();
        let z = att.attribute(Method::LrpZ, &x, &targets).unwrap();
        let ixg = att.attribute(Method::InputXGradient, &x, &targets).unwrap();
        let logits = att.scores(&data, [3, 1, 28, 28], &targets).unwrap();
        let scaled: Vec<f32> = z
            .values
            .iter()
            .enumerate()
            .map(|(k, v)| v * logits[k / per])
            .collect();
        let e = common::rel_l2(&scaled, &ixg.values);
        // (the residual Add and the pool keep zennit's Norm stabiliser 1e-6: 2e-4 on the ResNet)
        assert!(
            e < 1e-3,
            "{name}: lrp-z × logit vs input × gradient {e:.2e}"
        );
        // a neuron target: the start is 1.0 spread as a / Σa over the channel
        let layer = model.description().layers[1].clone();
        let z = att
            .attribute_neuron(Method::LrpZ, &x, &layer.name, 3)
            .unwrap();
        let ixg = att
            .attribute_neuron(Method::InputXGradient, &x, &layer.name, 3)
            .unwrap();
        let a = model.forward_to(x.clone(), layer.tap).unwrap();
        let [n, _, h, w] = a.dims();
        let sums = a
            .slice([0..n, 3..4, 0..h, 0..w])
            .reshape([n, h * w])
            .sum_dim(1)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let scaled: Vec<f32> = z
            .values
            .iter()
            .enumerate()
            .map(|(k, v)| v * sums[k / per])
            .collect();
        let e = common::rel_l2(&scaled, &ixg.values);
        assert!(e < 1e-3, "{name}, neuron {} 3: {e:.2e}", layer.name);
    }
}
