//! Training the embedded Fashion-MNIST network with burn's autodiff (Adam, cross entropy,
//! seeded initialisation and shuffling).

use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::describe::to_host;
use crate::error::{ModelError, Result};
use crate::fashion::{FASHION_MEAN, FASHION_STD, FashionNet};

/// Raw 28×28 greyscale images and their labels, as in the IDX files.
#[derive(Debug, Clone, Copy)]
pub struct RawImages<'a> {
    /// `n × 784` pixels, row-major, 0..=255.
    pub pixels: &'a [u8],
    /// `n` labels in `0..10`.
    pub labels: &'a [u8],
}

impl RawImages<'_> {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn check(&self, what: &str) -> Result<()> {
        if self.pixels.len() != self.labels.len() * 784 || self.labels.iter().any(|&l| l >= 10) {
            return Err(ModelError::Input {
                got: vec![self.pixels.len(), self.labels.len()],
                expected: format!("{what}: n×784 pixels and n labels in 0..10"),
            });
        }
        Ok(())
    }
}

/// Training settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Peak Adam learning rate (a cosine schedule decays it to 2 % over the run).
    pub learning_rate: f64,
    /// Seed of the initialisation and of the shuffling.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 5,
            batch_size: 128,
            learning_rate: 3e-3,
            seed: 2019,
        }
    }
}

/// What one epoch achieved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochReport {
    /// Epoch number from 1.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Top-1 accuracy on the test images.
    pub test_accuracy: f64,
    /// Seconds the epoch took (training and evaluation).
    pub seconds: f64,
}

/// Converts raw pixels to the network's normalised input.
pub fn normalise(pixels: &[u8]) -> Vec<f32> {
    pixels
        .iter()
        .map(|&p| (f32::from(p) / 255.0 - FASHION_MEAN) / FASHION_STD)
        .collect()
}

/// A small deterministic generator (SplitMix64) for shuffling, so training needs no RNG crate.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn shuffle(&mut self, v: &mut [usize]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// Top-1 accuracy of `net` (inference mode) on `data`.
pub fn evaluate(net: &FashionNet, data: RawImages<'_>, device: &Device) -> Result<f64> {
    data.check("test set")?;
    let net = net.valid();
    let device = device.clone().inner();
    let mut correct = 0usize;
    for start in (0..data.len()).step_by(500) {
        let end = (start + 500).min(data.len());
        let x = Tensor::<4>::from_data(
            TensorData::new(
                normalise(&data.pixels[start * 784..end * 784]),
                [end - start, 1, 28, 28],
            ),
            &device,
        );
        let logits = to_host(net.forward(x), "logits")?;
        for (k, row) in logits.chunks_exact(10).enumerate() {
            if argmax(row) == usize::from(data.labels[start + k]) {
                correct += 1;
            }
        }
    }
    Ok(correct as f64 / data.len().max(1) as f64)
}

/// Index of the largest value (the first on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Trains a fresh [`FashionNet`] on `train`, evaluating on `test` after every epoch;
/// `on_epoch` sees each epoch's report.
pub fn train_fashion(
    train: RawImages<'_>,
    test: RawImages<'_>,
    config: &TrainConfig,
    device: &Device,
    mut on_epoch: impl FnMut(&EpochReport),
) -> Result<FashionNet> {
    train.check("training set")?;
    test.check("test set")?;
    let ad = device.clone().autodiff();
    ad.seed(config.seed);
    let mut net = FashionNet::init(&ad);
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let mut rng = SplitMix(config.seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let bs = config.batch_size.max(1);
    let steps_per_epoch = train.len().div_ceil(bs);
    let total = (steps_per_epoch * config.epochs).max(1);
    let mut step = 0usize;
    let mut batch_px = Vec::with_capacity(bs * 784);
    let mut batch_lb = Vec::with_capacity(bs);
    for epoch in 1..=config.epochs {
        let t0 = Instant::now();
        rng.shuffle(&mut order);
        let mut loss_sum = 0.0;
        for chunk in order.chunks(bs) {
            batch_px.clear();
            batch_lb.clear();
            for &i in chunk {
                batch_px.extend_from_slice(&train.pixels[i * 784..(i + 1) * 784]);
                batch_lb.push(i64::from(train.labels[i]));
            }
            let n = chunk.len();
            let x =
                Tensor::<4>::from_data(TensorData::new(normalise(&batch_px), [n, 1, 28, 28]), &ad);
            let y = Tensor::<1, Int>::from_data(TensorData::new(batch_lb.clone(), [n]), &ad);
            let loss = loss_fn.forward(net.forward(x), y);
            loss_sum += f64::from(
                to_host(loss.clone(), "loss")?
                    .first()
                    .copied()
                    .unwrap_or(0.0),
            );
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            let progress = step as f64 / total as f64;
            let lr = config.learning_rate
                * (0.02 + 0.98 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()));
            net = optim.step(lr, net, grads);
            step += 1;
        }
        let test_accuracy = evaluate(&net, test, device)?;
        on_epoch(&EpochReport {
            epoch,
            loss: loss_sum / steps_per_epoch as f64,
            test_accuracy,
            seconds: t0.elapsed().as_secs_f64(),
        });
    }
    Ok(net.valid())
}
