//! Assembly of attribution graphs, full-graph construction and input errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use summit_graph::{
    AttributionGraph, ClassAggregate, Edge, FullGraph, GraphError, GraphParams, LayerInfo,
    PageRankParams, attribution_graph, personalized_pagerank, select_vertices,
};

fn layers() -> Vec<LayerInfo> {
    vec![
        LayerInfo::new("low", 4),
        LayerInfo::new("mid", 3),
        LayerInfo::new("high", 2),
    ]
}

fn class() -> ClassAggregate {
    ClassAggregate {
        counts: vec![vec![9, 4, 0, 7], vec![3, 8, 1], vec![5, 0]],
        edges: vec![
            vec![],
            vec![
                Edge::new(0, 0, 4.0),
                Edge::new(3, 0, 2.0),
                Edge::new(1, 1, 6.0),
                Edge::new(3, 1, 6.0),
                Edge::new(2, 2, 1.0),
            ],
            vec![
                Edge::new(0, 0, 3.0),
                Edge::new(1, 0, 5.0),
                Edge::new(2, 1, 1.0),
            ],
        ],
        raw_influences: vec![
            vec![
                vec![(0, 2.0), (5, 9.0)],
                vec![],
                vec![],
                vec![(1, 3.0), (2, 3.0), (7, 1.0), (9, 3.0)],
            ],
            vec![],
            vec![vec![(0, 1.0), (1, 4.0), (2, 4.0), (3, 2.0)], vec![]],
        ],
    }
}

/// Keep everything: share 2 takes all values, so every vertex is selected and
/// the attribution graph is the full graph, which we can check edge by edge.
fn keep_all() -> GraphParams {
    GraphParams {
        selection: summit_graph::Selection::PerLayer { share: 2.0 },
        ..GraphParams::paper()
    }
}

#[test]
fn full_selection_reproduces_every_edge_and_attr_ordering() {
    let ag = attribution_graph(&layers(), &class(), &[], &keep_all()).unwrap();
    assert_eq!(ag.num_vertices(), 9);
    assert_eq!(ag.num_edges(), 8);
    let mid = ag.layer("mid").unwrap();
    // prev sorted by weight descending, ties by higher channel first
    assert_eq!(mid.vertex(0).unwrap().prev, vec![(0, 4.0), (3, 2.0)]);
    assert_eq!(mid.vertex(1).unwrap().prev, vec![(3, 6.0), (1, 6.0)]);
    assert_eq!(mid.vertex(1).unwrap().count, 8);
    let low = ag.layer("low").unwrap();
    assert!(low.vertices.iter().all(|v| v.prev.is_empty()));
    // attr: top 3, ties by higher channel first
    assert_eq!(low.vertex(0).unwrap().attr, vec![(5, 9.0), (0, 2.0)]);
    assert_eq!(
        low.vertex(3).unwrap().attr,
        vec![(9, 3.0), (2, 3.0), (1, 3.0)]
    );
    assert_eq!(
        ag.layer("high").unwrap().vertex(0).unwrap().attr,
        vec![(2, 4.0), (1, 4.0), (3, 2.0)]
    );
    assert!(
        ag.layer("mid")
            .unwrap()
            .vertices
            .iter()
            .all(|v| v.attr.is_empty())
    );
    // PageRank values are the full graph's
    let g = FullGraph::new(&layers(), &class(), &[]).unwrap();
    let pr = personalized_pagerank(&g, &g.personalization(), &PageRankParams::default()).unwrap();
    for (l, layer) in ag.layers.iter().enumerate() {
        for v in &layer.vertices {
            assert_eq!(Some(v.pagerank), pr.get(&g, l, v.channel));
        }
    }
}

#[test]
fn prev_only_lists_selected_lower_vertices() {
    let g = FullGraph::new(&layers(), &class(), &[]).unwrap();
    let pr = personalized_pagerank(&g, &g.personalization(), &PageRankParams::default()).unwrap();
    let sel = select_vertices(&g, &pr.values, &GraphParams::paper()).unwrap();
    let ag = AttributionGraph::assemble(&g, &class(), &pr, &sel).unwrap();
    for l in 1..ag.layers.len() {
        for v in &ag.layers[l].vertices {
            for &(pc, w) in &v.prev {
                // the lower vertex is in the graph (Summit's prev_channels rule)
                assert!(ag.layers[l - 1].vertex(pc).is_some());
                let (a, b) = (
                    g.vertex(l - 1, pc).unwrap(),
                    g.vertex(l, v.channel).unwrap(),
                );
                assert_eq!(g.edge_weight(a, b), Some(w));
            }
        }
    }
    // and every full-graph edge between two kept vertices is listed
    let kept = |l: usize, c: u32| ag.layers[l].vertex(c).is_some();
    let mut edges = 0;
    for l in 1..3 {
        for e in &class().edges[l] {
            if kept(l - 1, e.from) && kept(l, e.to) {
                edges += 1;
                assert!(
                    ag.layers[l]
                        .vertex(e.to)
                        .unwrap()
                        .prev
                        .contains(&(e.from, e.weight))
                );
            }
        }
    }
    assert_eq!(ag.num_edges(), edges);
}

#[test]
fn petgraph_dot_and_serde() {
    let ag = attribution_graph(&layers(), &class(), &[], &keep_all()).unwrap();
    let pg = ag.to_petgraph();
    assert_eq!(pg.node_count(), ag.num_vertices());
    assert_eq!(pg.edge_count(), ag.num_edges());
    // edges point upwards
    for e in pg.edge_indices() {
        let (a, b) = pg.edge_endpoints(e).unwrap();
        assert_eq!(pg[a].layer + 1, pg[b].layer);
    }
    let dot = ag.to_dot();
    assert!(dot.starts_with("digraph"));
    assert!(dot.contains("mid:1") && dot.contains("high:0"));
    let json = serde_json::to_string(&ag).unwrap();
    let back: AttributionGraph = serde_json::from_str(&json).unwrap();
    assert_eq!(back, ag);
}

#[test]
fn excluded_channels_have_no_vertex_and_no_edges() {
    let ex = vec![vec![3], vec![], vec![1]];
    let g = FullGraph::new(&layers(), &class(), &ex).unwrap();
    assert_eq!(g.num_vertices(), 7);
    // edges through low:3 (two) and into high:1 (one) are gone
    assert_eq!(g.num_edges(), 5);
    assert_eq!(g.vertex(0, 3), None);
    let ag = attribution_graph(&layers(), &class(), &ex, &keep_all()).unwrap();
    assert!(ag.layers[0].vertex(3).is_none());
    assert_eq!(ag.layers[1].vertex(1).unwrap().prev, vec![(1, 6.0)]);
}

#[test]
fn duplicate_edges_are_summed() {
    let mut dup = class();
    dup.edges[1].push(Edge::new(0, 0, 1.5));
    let g = FullGraph::new(&layers(), &dup, &[]).unwrap();
    let mut summed = class();
    summed.edges[1][0].weight = 5.5;
    let h = FullGraph::new(&layers(), &summed, &[]).unwrap();
    assert_eq!(g.num_edges(), h.num_edges());
    let a = personalized_pagerank(&g, &g.personalization(), &PageRankParams::default()).unwrap();
    let b = personalized_pagerank(&h, &h.personalization(), &PageRankParams::default()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn errors_name_what_is_wrong() {
    let mut c = class();
    c.edges[2].push(Edge::new(0, 7, 1.0));
    let e = FullGraph::new(&layers(), &c, &[]).unwrap_err();
    assert!(matches!(
        e,
        GraphError::ChannelOutOfRange {
            layer: 2,
            channel: 7,
            ..
        }
    ));
    assert!(e.to_string().contains("high"));

    let mut c = class();
    c.edges[1][0].weight = -1.0;
    assert!(matches!(
        FullGraph::new(&layers(), &c, &[]),
        Err(GraphError::InvalidWeight { layer: 1, .. })
    ));

    let mut c = class();
    c.edges[0].push(Edge::new(0, 0, 1.0));
    assert!(matches!(
        FullGraph::new(&layers(), &c, &[]),
        Err(GraphError::EdgesIntoFirstLayer { .. })
    ));

    let mut c = class();
    c.counts[1].pop();
    assert!(matches!(
        FullGraph::new(&layers(), &c, &[]),
        Err(GraphError::ChannelCount {
            layer: 1,
            expected: 3,
            got: 2,
            ..
        })
    ));

    assert!(matches!(
        FullGraph::new(&layers(), &class(), &[vec![9], vec![], vec![]]),
        Err(GraphError::ChannelOutOfRange {
            what: "excluded",
            ..
        })
    ));
    assert!(matches!(
        FullGraph::new(&[], &class(), &[]),
        Err(GraphError::NoLayers)
    ));

    let mut c = class();
    c.counts = vec![vec![0; 4], vec![0; 3], vec![0; 2]];
    let e = attribution_graph(&layers(), &c, &[], &GraphParams::paper())
        .map_err(|e| e.in_class("294 (brown_bear)"))
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("class 294 (brown_bear): the personalization is zero")
    );
}
