//! A synthetic ImageNet-sized run (1000 classes, InceptionV1's 9 summary layers and channel
//! counts) for the export bench and the web view's load-time test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use summit_activation::Selection;
use summit_export::{
    ClassInfo, DatasetInfo, ExportInput, LayerDesc, Overview, OverviewLayer, Timings,
};
use summit_graph::{
    ClassAggregate, Edge, GraphParams, LayerInfo, attribution_graph, cosine_similarity, pca_2d,
};
use summit_influence::{AggregateParams, Aggregates, InfluenceGeometry, LayerParams, PathSpec};

pub const NAMES: [&str; 9] = [
    "mixed3a", "mixed3b", "mixed4a", "mixed4b", "mixed4c", "mixed4d", "mixed4e", "mixed5a",
    "mixed5b",
];
pub const CHANNELS: [usize; 9] = [256, 480, 508, 512, 512, 528, 832, 832, 1024];
pub const CLASSES: usize = 1000;
pub const IMAGES_PER_CLASS: usize = 2;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// The aggregates, graphs and overview of the synthetic run.
pub fn build() -> (Aggregates, Vec<summit_graph::AttributionGraph>, Overview) {
    let layers = (0..9)
        .map(|l| LayerParams {
            name: NAMES[l].into(),
            channels: CHANNELS[l],
            excluded: vec![],
            input_channels: if l == 0 { 192 } else { CHANNELS[l - 1] },
            paths: if l == 0 {
                vec![]
            } else {
                vec![PathSpec {
                    out_offset: 0,
                    hops: vec![(CHANNELS[l - 1], CHANNELS[l]).into()],
                }]
            },
        })
        .collect();
    let mut agg = Aggregates::new(AggregateParams {
        num_classes: CLASSES,
        layers,
        activation_selection: Selection::TopMass(0.03),
        influence_selection: Selection::TopK(5),
        influence_geometry: InfluenceGeometry::LayerOwn,
        examples_per_channel: 10,
    })
    .unwrap();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let n = CLASSES * IMAGES_PER_CLASS;
    let ids: Vec<u64> = (0..n as u64).collect();
    let labels: Vec<usize> = (0..n).map(|i| i % CLASSES).collect();
    let mut probs = vec![0.0f32; n * CLASSES];
    for (i, &y) in labels.iter().enumerate() {
        let p = 0.2 + 0.8 * rng.unit();
        probs[i * CLASSES + y] = p;
        probs[i * CLASSES + (y + 1) % CLASSES] = 1.0 - p;
    }
    agg.add_predictions(&ids, &labels, &probs).unwrap();
    for l in 0..9 {
        let c = CHANNELS[l];
        let mut maxima = vec![0.0f32; n * c];
        for (i, &y) in labels.iter().enumerate() {
            for ch in 0..c {
                let favoured = (ch * 7 + y * 13) % c < 24;
                maxima[i * c + ch] =
                    rng.unit() * 0.1 + if favoured { 1.0 + rng.unit() } else { 0.0 };
            }
        }
        let argmax: Vec<u32> = (0..n * c).map(|_| (rng.next() % 49) as u32).collect();
        agg.add_activations(l, &ids, &labels, &maxima, &argmax)
            .unwrap();
        if l > 0 {
            let prev = CHANNELS[l - 1];
            let mut sel = Vec::with_capacity(n * c * 5);
            for &y in &labels {
                for j in 0..c {
                    for k in 0..5 {
                        sel.push(((j * 3 + y * 11 + k * 17) % prev) as u32);
                    }
                }
            }
            agg.add_selected_influences(l, 0, 0, &labels, &sel, 5)
                .unwrap();
        }
    }
    let infos: Vec<LayerInfo> = (0..9)
        .map(|l| LayerInfo::new(NAMES[l], CHANNELS[l]))
        .collect();
    let edges: Vec<_> = (1..9).map(|l| agg.layer_edges(l).unwrap()).collect();
    let graphs = (0..CLASSES)
        .map(|c| {
            let counts = (0..9)
                .map(|l| agg.activations().row(l, c).unwrap().to_vec())
                .collect();
            let mut e = vec![vec![]];
            for ic in &edges {
                let mut v = Vec::new();
                for j in 0..ic.c_out() {
                    for (i, w) in ic.row(c, j).unwrap() {
                        v.push(Edge::new(i, j as u32, f64::from(w)));
                    }
                }
                e.push(v);
            }
            let ca = ClassAggregate {
                counts,
                edges: e,
                raw_influences: vec![],
            };
            attribution_graph(&infos, &ca, &[], &GraphParams::paper()).unwrap()
        })
        .collect();
    let overview = Overview {
        method: "pca".into(),
        layers: (0..9)
            .map(|l| {
                let rows: Vec<Vec<u32>> = (0..CLASSES)
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
    };
    (agg, graphs, overview)
}

/// The export input of the synthetic run.
pub fn input<'a>(
    agg: &'a Aggregates,
    graphs: &'a [summit_graph::AttributionGraph],
    overview: &Overview,
    motifs: &'a summit_graph::MotifSet,
) -> ExportInput<'a> {
    ExportInput {
        motifs,
        stability: None,
        faithfulness: None,
        model: "inception_v1 (synthetic bench data)".into(),
        weights_hash: None,
        description_hash: None,
        dataset: DatasetInfo {
            fingerprint: None,
            name: "synthetic-imagenet".into(),
            source: "bench".into(),
            images_seen: (CLASSES * IMAGES_PER_CLASS) as u64,
            skipped: vec![],
        },
        classes: (0..CLASSES)
            .map(|i| ClassInfo {
                name: format!("class_{i}"),
                synset: Some(format!("n{i:08}")),
            })
            .collect(),
        layers: (0..9)
            .map(|l| LayerDesc::new(NAMES[l], CHANNELS[l]))
            .collect(),
        aggregates: agg,
        graphs,
        overview: overview.clone(),
        preset: "paper".into(),
        parameters: serde_json::json!({}),
        versions: BTreeMap::new(),
        timings: Timings::default(),
        patches: None,
    }
}
