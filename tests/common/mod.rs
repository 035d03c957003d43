//! Shared by the integration tests: the first `n` embedded Fashion-MNIST test images as a
//! dataset, the embedded model and a quiet configuration.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use summit_core::data::{Dataset, Image};
use summit_core::{ClassInfo, Config, Device, FashionInception, FashionMnist, Preprocess, RunMeta};

/// The first `labels.len()` images of the embedded test set.
pub struct Head {
    inner: FashionMnist,
    labels: Vec<usize>,
}

impl Dataset for Head {
    fn class_names(&self) -> &[String] {
        self.inner.class_names()
    }
    fn labels(&self) -> &[usize] {
        &self.labels
    }
    fn source(&self, index: usize) -> String {
        self.inner.source(index)
    }
    fn load(&self, index: usize) -> summit_core::data::Result<Image> {
        assert!(
            index < self.labels.len(),
            "index {index} outside the reduced dataset"
        );
        self.inner.load(index)
    }
    fn sample_dims(&self) -> Option<[usize; 3]> {
        self.inner.sample_dims()
    }
}

impl Head {
    /// The preprocessing of the images (to turn them back into pixels for patches).
    pub fn transform(&self) -> &summit_core::data::Transform {
        self.inner.transform()
    }
}

/// The embedded assets directory.
pub fn assets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/fashion-mnist")
}

/// The first `n` embedded test images.
pub fn head(n: usize) -> Arc<Head> {
    let root = assets();
    let inner = FashionMnist::open(
        root.join("t10k-images-idx3-ubyte.gz"),
        root.join("t10k-labels-idx1-ubyte.gz"),
    )
    .and_then(|d| d.with_preprocess(Preprocess::fashion_mnist()))
    .unwrap();
    let labels = inner.labels()[..n].to_vec();
    Arc::new(Head { inner, labels })
}

/// The paper preset, batches of 64, no progress bar.
pub fn config() -> Config {
    let mut c = Config::paper();
    c.batch_size = 64;
    c.progress = false;
    // feature visualizations are tested where asked for (tests/pipeline.rs end to end)
    c.feature_vis = None;
    // faithfulness is tested where asked for (tests/faithfulness.rs)
    c.faithfulness = None;
    c
}

/// The embedded model on the CPU.
pub fn model() -> (FashionInception, Device) {
    let device = Device::flex();
    (FashionInception::embedded(&device).unwrap(), device)
}

/// Run metadata of a [`head`] dataset.
pub fn meta(ds: &Head) -> RunMeta {
    RunMeta {
        dataset_name: "fashion-mnist-test-head".into(),
        dataset_source: assets().display().to_string(),
        classes: ds.class_names().iter().map(ClassInfo::new).collect(),
    }
}

/// Some images of a dataset, renumbered from 0.
pub struct Subset {
    inner: Arc<Head>,
    keep: Vec<usize>,
    labels: Vec<usize>,
}

impl Subset {
    /// Images `keep` of `inner`.
    pub fn new(inner: Arc<Head>, keep: Vec<usize>) -> Self {
        let labels = keep.iter().map(|&i| inner.labels()[i]).collect();
        Self {
            inner,
            keep,
            labels,
        }
    }
}

impl Dataset for Subset {
    fn class_names(&self) -> &[String] {
        self.inner.class_names()
    }
    fn labels(&self) -> &[usize] {
        &self.labels
    }
    fn source(&self, index: usize) -> String {
        self.inner.source(self.keep[index])
    }
    fn load(&self, index: usize) -> summit_core::data::Result<Image> {
        self.inner.load(self.keep[index])
    }
    fn sample_dims(&self) -> Option<[usize; 3]> {
        self.inner.sample_dims()
    }
}

/// `n` seeded random 224² RGB images of a 1000-class dataset (labels `i · 37 mod 1000`), for
/// ImageNet-sized models without ImageNet.
pub struct RandomImages {
    names: Vec<String>,
    labels: Vec<usize>,
}

impl Dataset for RandomImages {
    fn class_names(&self) -> &[String] {
        &self.names
    }
    fn labels(&self) -> &[usize] {
        &self.labels
    }
    fn source(&self, index: usize) -> String {
        format!("random#{index}")
    }
    fn load(&self, index: usize) -> summit_core::data::Result<Image> {
        let mut z = index as u64 ^ 0x2545_f491_4f6c_dd1d;
        let data = (0..3 * 224 * 224)
            .map(|_| {
                z ^= z << 13;
                z ^= z >> 7;
                z ^= z << 17;
                (z % 2000) as f32 / 1000.0 - 1.0
            })
            .collect();
        Ok(Image {
            data,
            channels: 3,
            height: 224,
            width: 224,
        })
    }
    fn sample_dims(&self) -> Option<[usize; 3]> {
        Some([3, 224, 224])
    }
}

/// [`RandomImages`] of `n` images.
pub fn imagenet_like(n: usize) -> Arc<RandomImages> {
    Arc::new(RandomImages {
        names: (0..1000).map(|c| format!("c{c}")).collect(),
        labels: (0..n).map(|i| i * 37 % 1000).collect(),
    })
}

#[path = "../../crates/summit-export/tests/browser/run.rs"]
mod run;

/// Runs the headless-Chromium script `script` of `crates/summit-export/tests/browser` with
/// `args` (see `run_browser_script`).
pub fn browser_script(script: &str, args: &[&std::path::Path]) {
    run::run_browser_script(script, args);
}
