//! Edge cases of vertex selection (SPEC §3.4, §3.5) on hand-built PageRank
//! vectors whose expected selections are worked out by hand in the comments.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use summit_graph::{
    ClassAggregate, Edge, FullGraph, GraphParams, LayerInfo, Selection, attribution_graph,
    personalized_pagerank, select_vertices, share_threshold,
};

/// A graph with the given layer sizes and edges (counts all 1), to carry
/// hand-chosen PageRank vectors.
fn graph(channels: &[usize], edges: Vec<Vec<(u32, u32)>>) -> FullGraph {
    let layers: Vec<LayerInfo> = channels
        .iter()
        .enumerate()
        .map(|(i, &c)| LayerInfo::new(format!("l{i}"), c))
        .collect();
    let class = ClassAggregate {
        counts: channels.iter().map(|&c| vec![1; c]).collect(),
        edges: edges
            .into_iter()
            .map(|l| l.into_iter().map(|(a, b)| Edge::new(a, b, 1.0)).collect())
            .collect(),
        raw_influences: vec![],
    };
    FullGraph::new(&layers, &class, &[]).unwrap()
}

#[test]
fn threshold_rule_by_hand() {
    // total 20: take 10 (share 0.5 >= 0.075, stop); threshold = next value 3
    assert_eq!(
        share_threshold(&[10.0, 3.0, 3.0, 3.0, 1.0], 0.075),
        Some(3.0)
    );
    // share 0.6: take 10 (0.5 < 0.6), take 3 (0.65), stop; threshold = 3
    assert_eq!(share_threshold(&[10.0, 3.0, 3.0, 3.0, 1.0], 0.6), Some(3.0));
    // share 1.5: everything taken, no threshold
    assert_eq!(share_threshold(&[10.0, 3.0, 1.0], 1.5), None);
    // all zero: threshold is the max, nothing is strictly greater
    assert_eq!(share_threshold(&[0.0, 0.0], 0.075), Some(0.0));
    // one value: taken, nothing left
    assert_eq!(share_threshold(&[0.3], 0.075), None);
    // share 0: nothing taken, threshold = the largest value
    assert_eq!(share_threshold(&[4.0, 2.0], 0.0), Some(4.0));
    assert_eq!(share_threshold(&[], 0.075), None);
}

#[test]
fn ties_at_the_threshold_are_not_kept() {
    let g = graph(&[4, 5, 3], vec![vec![], vec![], vec![]]);
    let pr = [
        // layer 0: four equal values: take one (25 %), threshold = 5, none > 5
        5.0, 5.0, 5.0, 5.0, //
        // layer 1: 10 then ties at 3: threshold 3, keep only channel 2 (the 10)
        3.0, 3.0, 10.0, 3.0, 1.0, //
        // layer 2: two tied leaders: take one (47.6 %), threshold = 10: none kept
        10.0, 1.0, 10.0,
    ];
    let sel = select_vertices(&g, &pr, &GraphParams::paper()).unwrap();
    assert_eq!(sel.kept, vec![vec![], vec![2], vec![]]);
    assert_eq!(sel.thresholds, vec![Some(5.0), Some(3.0), Some(10.0)]);
    // global: total 69, take 10 (14.5 %), threshold 10: nothing above 10 anywhere
    let global = GraphParams {
        selection: Selection::Global { share: 0.075 },
        ..GraphParams::paper()
    };
    let sel = select_vertices(&g, &pr, &global).unwrap();
    assert_eq!(sel.kept, vec![Vec::<u32>::new(); 3]);
}

#[test]
fn all_zero_layer_keeps_nothing_and_single_vertex_layer_keeps_it() {
    let g = graph(&[3, 1, 2], vec![vec![], vec![(0, 0)], vec![(0, 1)]]);
    let pr = [0.0, 0.0, 0.0, 0.7, 0.2, 0.1];
    let sel = select_vertices(&g, &pr, &GraphParams::paper()).unwrap();
    assert_eq!(sel.kept, vec![vec![], vec![0], vec![0]]);
    assert_eq!(sel.thresholds, vec![Some(0.0), None, Some(0.1)]);
    // layer 1's kept channel 0 links to layer 0's channel 0 (not kept); layer
    // 2 keeps channel 0 (0.2 of 0.3), which has no edge at all (the only edge
    // into layer 2 ends at its channel 1)
    assert_eq!(sel.unconnected_layers, vec![1, 2]);
}

#[test]
fn all_zero_count_layer_gets_zero_personalization_but_pagerank_from_edges() {
    let layers = [LayerInfo::new("a", 2), LayerInfo::new("b", 2)];
    let class = ClassAggregate {
        counts: vec![vec![0, 0], vec![3, 6]],
        edges: vec![vec![], vec![Edge::new(0, 0, 2.0), Edge::new(1, 1, 1.0)]],
        raw_influences: vec![],
    };
    let g = FullGraph::new(&layers, &class, &[]).unwrap();
    assert_eq!(g.personalization(), vec![0.0, 0.0, 0.5, 1.0]);
    let pr = personalized_pagerank(&g, &g.personalization(), &Default::default()).unwrap();
    assert!(pr.values[0] > 0.0 && pr.values[1] > 0.0);
    let ag = attribution_graph(&layers, &class, &[], &GraphParams::paper()).unwrap();
    assert_eq!(ag.layers.len(), 2);
}

#[test]
fn layer_without_vertices_is_empty_and_unconnected() {
    let layers = [LayerInfo::new("a", 2), LayerInfo::new("b", 1)];
    let class = ClassAggregate {
        counts: vec![vec![1, 2], vec![5]],
        edges: vec![vec![], vec![Edge::new(0, 0, 1.0)]],
        raw_influences: vec![],
    };
    let g = FullGraph::new(&layers, &class, &[vec![], vec![0]]).unwrap();
    assert_eq!(g.num_vertices(), 2);
    assert_eq!(g.num_edges(), 0);
    let ag = attribution_graph(
        &layers,
        &class,
        &[vec![], vec![0]],
        &GraphParams::summit2019(),
    )
    .unwrap();
    assert!(ag.layers[1].vertices.is_empty());
    assert_eq!(ag.unconnected_layers, vec![1]);
}

#[test]
fn relaxation_triggers_and_connects() {
    // layer 0 (a0, a1, a2) = (0.513, 0.3, 0.187); layer 1 (b0, b1) = (0.6, 0.4)
    // edges a0-b1 and a1-b0. At 7.5 %: keep {a0} and {b0}: not connected.
    // Layer 0 keeps a1 too once its share exceeds 0.513: after k rounds the
    // share is 0.075 + 0.005 k, first above 0.513 at k = 88 (0.515). Layer 1
    // needs > 0.6 to keep b1, which it never reaches by then: keeps {b0},
    // now connected through a1-b0.
    let g = graph(&[3, 2], vec![vec![], vec![(0, 1), (1, 0)]]);
    let pr = [0.513, 0.3, 0.187, 0.6, 0.4];
    let plain = select_vertices(&g, &pr, &GraphParams::paper()).unwrap();
    assert_eq!(plain.kept, vec![vec![0], vec![0]]);
    assert_eq!(plain.unconnected_layers, vec![1]);
    let sel = select_vertices(&g, &pr, &GraphParams::summit2019()).unwrap();
    assert_eq!(sel.relaxation_rounds, 88);
    assert_eq!(sel.kept, vec![vec![0, 1], vec![0]]);
    assert!(sel.unconnected_layers.is_empty());
    assert!((sel.shares[0] - 0.515).abs() < 1e-9 && (sel.shares[1] - 0.515).abs() < 1e-9);
}

#[test]
fn relaxation_raises_only_the_unconnected_pair() {
    // three layers; layer 1 connected to layer 0, layer 2 not to layer 1 until
    // layer 1 keeps c1 (pagerank 0.447 of layer 1's 1.0 after the 0.553 leader):
    // needs share > 0.553 in layer 1: 0.075 + 0.005 k > 0.553 -> k = 96 (0.555).
    // Layer 0 is never raised, so it keeps its single leader throughout.
    let g = graph(&[2, 2, 1], vec![vec![], vec![(0, 0)], vec![(1, 0)]]);
    let pr = [0.9, 0.1, 0.553, 0.447, 1.0];
    let sel = select_vertices(&g, &pr, &GraphParams::summit2019()).unwrap();
    assert_eq!(sel.relaxation_rounds, 96);
    assert_eq!(sel.kept, vec![vec![0], vec![0, 1], vec![0]]);
    assert_eq!(sel.shares[0], 0.075);
    assert!((sel.shares[1] - 0.555).abs() < 1e-9);
}

#[test]
fn selection_rejects_bad_input() {
    let g = graph(&[2], vec![vec![]]);
    assert!(select_vertices(&g, &[0.5], &GraphParams::paper()).is_err());
    assert!(select_vertices(&g, &[0.5, f64::NAN], &GraphParams::paper()).is_err());
    assert!(select_vertices(&g, &[0.5, -1.0], &GraphParams::paper()).is_err());
    let bad = GraphParams {
        relax: true,
        relax_step: 0.0,
        ..GraphParams::paper()
    };
    assert!(select_vertices(&g, &[0.5, 0.5], &bad).is_err());
}
