//! The embedded weights reach at least 90 % top-1 accuracy on the committed 10k Fashion-MNIST
//! test images, read and normalised through summit-data as the pipeline does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use summit_data::{Dataset, FashionMnist, Preprocess, load_batch};
use summit_model::train::{RawImages, argmax, evaluate};
use summit_model::{FashionInception, Summarizable, burn, to_host};

fn test_set() -> FashionMnist {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets/fashion-mnist");
    FashionMnist::open(
        dir.join("t10k-images-idx3-ubyte.gz"),
        dir.join("t10k-labels-idx1-ubyte.gz"),
    )
    .unwrap()
    .with_preprocess(Preprocess::fashion_mnist())
    .unwrap()
}

/// Top-1 accuracy of `model` on `data`, batches of 500 read through summit-data.
fn top1(model: &dyn Summarizable, data: &FashionMnist, device: &Device) -> f64 {
    let mut correct = 0;
    let mut shape = None;
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(500) {
        let batch = load_batch(data, chunk, &mut shape);
        assert!(batch.skipped.is_empty());
        let x = Tensor::<4>::from_data(TensorData::new(batch.images, batch.dims), device);
        let logits = to_host(model.forward(x).unwrap(), "logits").unwrap();
        for (row, &label) in logits.chunks_exact(10).zip(&batch.labels) {
            correct += usize::from(argmax(row) == label);
        }
    }
    correct as f64 / data.len() as f64
}

#[test]
fn embedded_model_reaches_90_percent() {
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
    let data = test_set();
    assert_eq!(data.len(), 10_000);
    let accuracy = top1(&model, &data, &device);
    eprintln!("embedded model: top-1 accuracy {:.2} %", 100.0 * accuracy);
    assert!(accuracy >= 0.90, "accuracy {accuracy}");

    // The training code's own evaluation (raw pixels, its normalisation) agrees exactly.
    let labels: Vec<u8> = data.labels().iter().map(|&l| l as u8).collect();
    let raw = RawImages {
        pixels: data.raw_images(),
        labels: &labels,
    };
    let acc2 = evaluate(model.net(), raw, &device).unwrap();
    assert!((acc2 - accuracy).abs() < 1e-9, "{acc2} vs {accuracy}");
}

#[test]
fn embedded_resnet_reaches_91_percent() {
    let device = Device::flex();
    let model = summit_model::OnnxModel::fashion_resnet(&device).unwrap();
    let data = test_set();
    let accuracy = top1(&model, &data, &device);
    eprintln!("embedded resnet: top-1 accuracy {:.2} %", 100.0 * accuracy);
    assert!(accuracy >= 0.91, "accuracy {accuracy}");
    let d = model.description();
    let names: Vec<&str> = d.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1"
        ]
    );
}
