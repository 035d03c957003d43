//! A realistic export input built through the real APIs: aggregates filled
//! by `summit_influence::Aggregates` from synthetic per-image maxima,
//! predictions and influences, attribution graphs by
//! `summit_graph::attribution_graph`, overview by `summit_graph`.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;

use summit_activation::Selection;
use summit_export::{
    ClassInfo, DatasetInfo, ExportInput, LayerDesc, Overview, OverviewLayer, PatchGeometry,
    SkippedInput, Timings,
};
use summit_graph::{
    AttributionGraph, ClassAggregate, Edge, GraphParams, Selection as GraphSelection,
    attribution_graph, cosine_similarity, pca_2d,
};
use summit_influence::{AggregateParams, Aggregates, InfluenceGeometry, LayerParams, PathSpec};

/// xorshift64*: deterministic test data without extra dependencies.
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

pub const CLASSES: [&str; 4] = ["white_wolf", "T-shirt/top", "brown_bear", "black_bear"];
pub const CHANNELS: [usize; 3] = [8, 12, 16];
pub const MAP_HW: [usize; 2] = [4, 4];
pub const IMAGES_PER_CLASS: usize = 10;

pub fn layers() -> Vec<LayerDesc> {
    vec![
        LayerDesc {
            name: "inception3a".into(),
            paper_name: Some("mixed3a".into()),
            channels: 8,
        },
        LayerDesc {
            name: "inception3b".into(),
            paper_name: Some("mixed3b".into()),
            channels: 12,
        },
        LayerDesc {
            name: "inception4a".into(),
            paper_name: Some("mixed4a".into()),
            channels: 16,
        },
    ]
}

/// Aggregates of 40 synthetic images (10 per class).
pub fn aggregates() -> Aggregates {
    aggregates_with_records().0
}

/// [`aggregates`] and each image's (true class, predicted probability of it), by image id.
pub fn aggregates_with_records() -> (Aggregates, Vec<(usize, f32)>) {
    let params = AggregateParams {
        num_classes: 4,
        layers: vec![
            LayerParams {
                name: "inception3a".into(),
                channels: 8,
                excluded: vec![],
                input_channels: 3,
                paths: vec![],
            },
            LayerParams {
                name: "inception3b".into(),
                channels: 12,
                excluded: vec![],
                input_channels: 8,
                paths: vec![PathSpec {
                    out_offset: 0,
                    hops: vec![(8, 12).into()],
                }],
            },
            LayerParams {
                name: "inception4a".into(),
                channels: 16,
                excluded: vec![],
                input_channels: 12,
                paths: vec![
                    PathSpec {
                        out_offset: 0,
                        hops: vec![(12, 8).into()],
                    },
                    PathSpec {
                        out_offset: 8,
                        hops: vec![(12, 6).into(), (6, 8).into()],
                    },
                ],
            },
        ],
        activation_selection: Selection::TopK(3),
        influence_selection: Selection::TopK(2),
        influence_geometry: InfluenceGeometry::LayerOwn,
        examples_per_channel: 5,
    };
    let mut agg = Aggregates::new(params).unwrap();
    let mut rng = Rng::new(7);
    let n = 4 * IMAGES_PER_CLASS;
    let ids: Vec<u64> = (0..n as u64).map(|i| 1000 + i).collect();
    let labels: Vec<usize> = (0..n).map(|i| i % 4).collect();
    // predictions: the true class boosted, class 3 often confused
    let mut probs = Vec::new();
    for &y in &labels {
        let mut row: Vec<f32> = (0..4).map(|_| rng.unit()).collect();
        row[y] += if y == 3 { 0.3 } else { 1.5 };
        let s: f32 = row.iter().sum();
        probs.extend(row.iter().map(|p| p / s));
    }
    agg.add_predictions(&ids, &labels, &probs).unwrap();
    for (l, &c) in CHANNELS.iter().enumerate() {
        let mut maxima = Vec::new();
        let mut argmax = Vec::new();
        for &y in &labels {
            for ch in 0..c {
                let favoured = (ch + 3 * y) % c < 3 + l;
                maxima.push(rng.unit() + if favoured { 2.0 } else { 0.0 });
                argmax.push((rng.next() % 16) as u32);
            }
        }
        agg.add_activations(l, &ids, &labels, &maxima, &argmax)
            .unwrap();
    }
    // influences [B, C_out, C_in] per hop, biased per class
    let hops: [(usize, usize, usize, usize, usize); 4] = [
        (1, 0, 0, 12, 8),
        (2, 0, 0, 8, 12),
        (2, 1, 0, 6, 12),
        (2, 1, 1, 8, 6),
    ];
    for (layer, path, hop, c_out, c_in) in hops {
        let mut l = Vec::new();
        for &y in &labels {
            for j in 0..c_out {
                for i in 0..c_in {
                    let bias = if (i + j + y) % 4 == 0 { 1.0 } else { 0.0 };
                    l.push(rng.unit() + bias);
                }
            }
        }
        agg.add_influences(layer, path, hop, &labels, &l).unwrap();
    }
    let records = labels
        .iter()
        .enumerate()
        .map(|(b, &y)| (y, probs[b * 4 + y]))
        .collect();
    (agg, records)
}

/// One class's inputs to summit-graph from the aggregates.
pub fn class_aggregate(agg: &Aggregates, class: usize) -> ClassAggregate {
    let counts = (0..3)
        .map(|l| agg.activations().row(l, class).unwrap().to_vec())
        .collect();
    let mut edges = vec![vec![]];
    for l in 1..3 {
        let ic = agg.layer_edges(l).unwrap();
        let mut e = Vec::new();
        for j in 0..ic.c_out() {
            for (i, n) in ic.row(class, j).unwrap() {
                e.push(Edge::new(i, j as u32, f64::from(n)));
            }
        }
        edges.push(e);
    }
    ClassAggregate {
        counts,
        edges,
        raw_influences: vec![],
    }
}

pub fn graphs(agg: &Aggregates) -> Vec<AttributionGraph> {
    let infos: Vec<_> = layers()
        .iter()
        .map(|l| summit_graph::LayerInfo::new(&l.name, l.channels))
        .collect();
    let p = GraphParams {
        selection: GraphSelection::PerLayer { share: 0.5 },
        ..GraphParams::paper()
    };
    (0..4)
        .map(|c| attribution_graph(&infos, &class_aggregate(agg, c), &[], &p).unwrap())
        .collect()
}

pub fn overview(agg: &Aggregates) -> Overview {
    Overview {
        method: "pca".into(),
        layers: (0..3)
            .map(|l| {
                let rows: Vec<Vec<u32>> = (0..4)
                    .map(|c| agg.activations().row(l, c).unwrap().to_vec())
                    .collect();
                let f: Vec<Vec<f64>> = rows
                    .iter()
                    .map(|r| r.iter().map(|&x| f64::from(x)).collect())
                    .collect();
                OverviewLayer {
                    similarity: cosine_similarity(&rows).unwrap(),
                    embedding: pca_2d(&f).unwrap(),
                }
            })
            .collect(),
    }
}

/// A synthetic 32×32 model-input image whose pixels encode their position
/// (`r = x * 8`, `g = y * 8`, `b = image id`).
pub fn image_of(id: u64) -> Option<image::RgbImage> {
    if id == 1039 {
        return None; // one unloadable image
    }
    Some(image::RgbImage::from_fn(32, 32, |x, y| {
        image::Rgb([(x * 8) as u8, (y * 8) as u8, (id % 251) as u8])
    }))
}

pub fn geometry() -> Vec<PatchGeometry> {
    vec![
        PatchGeometry {
            layer_hw: MAP_HW,
            input_hw: [32, 32],
            receptive_field: 16
        };
        3
    ]
}

pub struct Fixture {
    pub agg: Aggregates,
    /// Per image, by id: (true class, predicted probability of it).
    pub records: Vec<(usize, f32)>,
    pub graphs: Vec<AttributionGraph>,
    pub motifs: summit_graph::MotifSet,
    pub stability: Vec<Option<summit_export::ClassStability>>,
}

impl Fixture {
    pub fn new() -> Self {
        let (agg, records) = aggregates_with_records();
        let graphs = graphs(&agg);
        let pairs: Vec<(usize, &AttributionGraph)> = graphs.iter().enumerate().collect();
        let motifs = summit_graph::MotifSet::mine(&pairs, &summit_graph::MotifParams::default());
        // per class: the stability badge of the web view (values made up for the view test)
        let stability = (0..graphs.len())
            .map(|c| {
                Some(summit_export::ClassStability {
                    images: [5, 5],
                    halves: 0.25 * c as f64,
                    whole_vs_half: [0.5, 0.5],
                })
            })
            .collect();
        Self {
            agg,
            records,
            graphs,
            motifs,
            stability,
        }
    }

    pub fn input<'a>(
        &'a self,
        image: &'a dyn Fn(u64) -> Option<image::RgbImage>,
    ) -> ExportInput<'a> {
        let mut versions = BTreeMap::new();
        versions.insert("summit-rs".to_string(), "0.1.0".to_string());
        versions.insert("burn".to_string(), "0.22.1".to_string());
        ExportInput {
            motifs: &self.motifs,
            stability: Some(&self.stability),
            faithfulness: None,
            model: "test-inception".into(),
            weights_hash: None,
            description_hash: None,
            dataset: DatasetInfo {
                fingerprint: None,
                name: "synthetic".into(),
                source: "/data/synthetic".into(),
                images_seen: 40,
                skipped: vec![SkippedInput {
                    index: 41,
                    source: "/data/synthetic/bad.jpg".into(),
                    reason: "truncated JPEG".into(),
                }],
            },
            classes: CLASSES
                .iter()
                .enumerate()
                .map(|(i, n)| ClassInfo {
                    name: (*n).into(),
                    synset: (i == 0).then(|| "n02114548".to_string()),
                })
                .collect(),
            layers: layers(),
            aggregates: &self.agg,
            graphs: &self.graphs,
            overview: overview(&self.agg),
            preset: "paper".into(),
            parameters: serde_json::json!({"k_m2": 0.03, "share": 0.5}),
            versions,
            timings: Timings {
                phases: vec![("aggregate".into(), 1.5), ("graphs".into(), 0.25)],
                images_per_second: Some(26.7),
            },
            patches: Some(summit_export::PatchSource {
                image,
                geometry: geometry(),
                size: 16,
                per_channel: 3,
            }),
        }
    }
}
