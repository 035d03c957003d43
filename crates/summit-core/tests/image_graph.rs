//! The attribution graph of one image (SPEC §3.2) is the graph the pipeline makes for a
//! dataset holding only that image, whatever class it is filed under; its comparison with a
//! class graph partitions the vertices; bad input is refused naming the image.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use summit_core::analysis::{analyze_subset, vertex_set};
use summit_core::data::{Dataset, FashionMnist, Preprocess};
use summit_core::image_graph::compare_graphs;
use summit_core::model::burn::tensor::Device;
use summit_core::model::{FashionInception, Summarizable};
use summit_core::{Config, Pipeline};

fn dataset() -> Arc<dyn Dataset> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/fashion-mnist");
    Arc::new(
        FashionMnist::open(
            root.join("t10k-images-idx3-ubyte.gz"),
            root.join("t10k-labels-idx1-ubyte.gz"),
        )
        .and_then(|d| d.with_preprocess(Preprocess::fashion_mnist()))
        .unwrap(),
    )
}

fn config(limit: Option<usize>) -> Config {
    let mut c = Config::paper();
    c.limit = limit;
    c.attribution = None;
    c.feature_vis = None;
    c.faithfulness = None;
    c
}

#[test]
fn an_images_graph_is_the_pipelines_graph_of_that_image_alone() {
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
    let data = dataset();
    let names = data.class_names().to_vec();
    let full = Pipeline::new(&model, data.clone(), config(None), device.clone()).unwrap();
    for index in [0usize, 17] {
        // the pipeline over a dataset holding only this image (the first `index + 1` images
        // restricted to it by `limit` and a one-image order is what `limit = 1` gives for 0;
        // for another index, the image is moved to the front by a one-image dataset view)
        let one: Arc<dyn Dataset> = Arc::new(OneImage {
            inner: data.clone(),
            index,
        });
        let single = Pipeline::new(&model, one, config(None), device.clone()).unwrap();
        let report = single.aggregate().unwrap();
        assert_eq!(report.processed, 1);
        let label = data.labels()[index];
        let classes: Vec<usize> = (0..names.len()).collect();
        let c = single.config();
        let analysis = analyze_subset(
            &report.aggregates,
            &classes,
            None,
            &names,
            &c.graph,
            &c.embedding.embedding(),
            c.seed,
            &c.non_semantic,
        )
        .unwrap();
        let want = &analysis.graphs[label];
        assert!(
            !want.layers.iter().all(|l| l.vertices.is_empty()),
            "empty graph"
        );
        let img = data.load(index).unwrap();
        let got = full
            .image_graph(&img.data, img.dims(), Some(label), 0)
            .unwrap();
        assert_eq!(got.class, label);
        assert_eq!(&got.graph, want, "image {index}");
        // filed under no class (an upload) or another one: the same graph
        let upload = full
            .image_graph(&img.data, img.dims(), None, 9_999_999)
            .unwrap();
        assert_eq!(upload.class, upload.predicted);
        assert_eq!(upload.graph, got.graph);
        assert!(upload.probability > 0.0 && upload.probability <= 1.0);
        // beside its class's graph over the whole dataset
        let classes_graph = &analysis.graphs[label];
        let cmp = compare_graphs(&got.graph, label, classes_graph);
        assert_eq!(cmp.jaccard, 1.0);
        assert!(cmp.image_only.is_empty() && cmp.class_only.is_empty());
    }
}

#[test]
fn a_comparison_partitions_the_vertices() {
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
    let data = dataset();
    let p = Pipeline::new(&model, data.clone(), config(None), device.clone()).unwrap();
    let a = data.load(0).unwrap();
    let b = data.load(1).unwrap();
    let ga = p.image_graph(&a.data, a.dims(), None, 0).unwrap().graph;
    let gb = p.image_graph(&b.data, b.dims(), None, 1).unwrap().graph;
    let cmp = compare_graphs(&ga, 3, &gb);
    let (va, vb) = (vertex_set(&ga), vertex_set(&gb));
    assert_eq!(cmp.shared.len() + cmp.image_only.len(), va.len());
    assert_eq!(cmp.shared.len() + cmp.class_only.len(), vb.len());
    let union = va.union(&vb).count() as f64;
    assert!((cmp.jaccard - cmp.shared.len() as f64 / union).abs() < 1e-12);
    assert!(
        cmp.jaccard < 1.0,
        "two different images gave the same graph"
    );
}

#[test]
fn bad_images_are_refused_naming_them() {
    let device = Device::flex();
    let model = FashionInception::embedded(&device).unwrap();
    let p = Pipeline::new(&model, dataset(), config(None), device).unwrap();
    let e = p
        .image_graph(&[0.0; 784], [1, 28, 28], Some(10), 42)
        .unwrap_err()
        .to_string();
    assert!(e.contains("image 42") && e.contains("class 10"), "{e}");
    let e = p
        .image_graph(&[0.0; 700], [1, 28, 28], None, 43)
        .unwrap_err()
        .to_string();
    assert!(e.contains("image 43") && e.contains("700"), "{e}");
    let e = p
        .image_graph(&[0.0; 3 * 784], [3, 28, 28], None, 44)
        .unwrap_err()
        .to_string();
    assert!(e.contains("image 44"), "{e}");
    assert_eq!(model.description().num_classes, 10);
}

/// A dataset of one image of another.
struct OneImage {
    inner: Arc<dyn Dataset>,
    index: usize,
}

impl Dataset for OneImage {
    fn len(&self) -> usize {
        1
    }
    fn class_names(&self) -> &[String] {
        self.inner.class_names()
    }
    fn labels(&self) -> &[usize] {
        let l = &self.inner.labels()[self.index];
        std::slice::from_ref(l)
    }
    fn source(&self, _: usize) -> String {
        self.inner.source(self.index)
    }
    fn load(&self, _: usize) -> summit_core::data::Result<summit_core::data::Image> {
        self.inner.load(self.index)
    }
    fn sample_dims(&self) -> Option<[usize; 3]> {
        self.inner.sample_dims()
    }
}
