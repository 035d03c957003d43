//! The native models' operator graphs (`Summarizable::graph`, what relevance propagation walks)
//! compute what the models compute: logits and every summary layer's value, for the embedded
//! Fashion-MNIST network, torchvision GoogLeNet (with and without `transform_input`) and Lucid
//! InceptionV1 (LRN, asymmetric padding), and at another input size where the model takes one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use burn::tensor::{Device, Distribution, Tensor};
use common::{fixture_dir, rel_err};
use summit_model::{
    FashionInception, GoogLeNet, GoogLeNetOptions, LucidInceptionV1, RelevanceSeed, Summarizable,
    burn, to_host,
};

/// The graph's logits and each summary layer's value (the graph run up to the value of the
/// layer's name) against the model's own.
fn same_as_model(model: &dyn Summarizable, x: Tensor<4>, tol: f64) {
    let g = model.graph().unwrap();
    assert!(g.outputs.is_none());
    let want = to_host(model.forward(x.clone()).unwrap(), "logits").unwrap();
    let got = to_host(g.model.forward(x.clone()).unwrap(), "graph logits").unwrap();
    let e = rel_err(&got, &want);
    assert!(
        e < tol,
        "{}: logits differ by {e:.2e}",
        model.description().name
    );
    let desc = model.description();
    let rec = model.record(x.clone()).unwrap();
    for layer in &desc.layers {
        let name = g.model.value_name_of_layer(&layer.name).unwrap();
        assert_eq!(
            name, layer.name,
            "the graph names the layer's value after it"
        );
        // relevance seeded at the layer with its own activation, read back through the seed
        let seen = std::cell::RefCell::new(Vec::new());
        let seed = |a: &Tensor<4>| -> summit_model::Result<Tensor<4>> {
            seen.borrow_mut()
                .extend(to_host(a.clone(), "seed").unwrap());
            Ok(a.zeros_like())
        };
        struct NoRule;
        impl summit_model::LinearRelevance for NoRule {
            fn relevance(
                &self,
                _: &summit_model::LinearLayer<'_>,
                x: Tensor<4>,
                _: Tensor<4>,
            ) -> summit_model::Result<Tensor<4>> {
                Ok(x.zeros_like())
            }
        }
        g.model
            .relevance(
                x.clone(),
                &RelevanceSeed::Value { name, seed: &seed },
                &NoRule,
            )
            .unwrap();
        let want = to_host(rec.tap(layer.tap).clone(), "tap").unwrap();
        let e = rel_err(&seen.into_inner(), &want);
        assert!(
            e < tol,
            "{}: layer {} differs by {e:.2e}",
            desc.name,
            layer.name
        );
    }
}

#[test]
fn fashion_inception_graph_computes_the_model() {
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
    let x = Tensor::<4>::random([3, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
    same_as_model(&model, x, 1e-5);
    // the linear layers carry torchvision-style module paths (rule maps name them)
    let names: Vec<String> = model
        .graph()
        .unwrap()
        .model
        .linear_layers()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names.first().map(String::as_str), Some("conv1.conv"));
    assert!(
        names.contains(&"mixed3b.branch2.1.conv".to_string()),
        "{names:?}"
    );
    assert_eq!(names.last().map(String::as_str), Some("fc"));
}

#[test]
fn googlenet_graph_computes_the_model() {
    let device = Device::flex();
    for transform_input in [false, true] {
        let model =
            GoogLeNet::seeded(17, 5, GoogLeNetOptions { transform_input }, &device).unwrap();
        let x = Tensor::<4>::random([2, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
        same_as_model(&model, x, 1e-4);
    }
}

#[test]
fn lucid_graph_computes_the_model() {
    let Some(dir) = fixture_dir("lucent") else {
        return;
    };
    let device = Device::flex();
    let model = LucidInceptionV1::load(dir.join("inceptionv1.pth"), &device).unwrap();
    let x = Tensor::<4>::random([1, 3, 224, 224], Distribution::Normal(0.0, 50.0), &device);
    same_as_model(&model, x, 1e-4);
}
