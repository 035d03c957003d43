//! Aggregates: invariance to batch size (1, 7, 32), thread count (1 vs 2),
//! image order and shard split; save / load round trip and file errors;
//! merge refusals. Synthetic activations and kernels from a seeded RNG.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use summit_activation::{Selection, channel_max};
use summit_influence::{
    AggregateParams, Aggregates, HopGeometry, InfluenceError, InfluenceGeometry, LayerParams,
    PathSpec, influence_cpu,
};

const CLASSES: usize = 5;
const N: usize = 64;

/// A hop of the synthetic model: input tap channels and spatial size, kernel.
struct Hop {
    c_in: usize,
    c_out: usize,
    hw: usize,
    k: usize,
    geom: HopGeometry,
    kernel: Vec<f32>,
}

/// Summary layer 0 (12 channels at 8×8) fed by a 6-channel stem; summary
/// layer 1 (10 channels at 4×4) fed by layer 0, each with a direct path and
/// a two-hop path; layer 0 also has a pool-like direct path.
struct Model {
    /// per layer, per path, per hop
    hops: Vec<Vec<Vec<Hop>>>,
    layer_hw: [usize; 2],
    layer_c: [usize; 2],
}

fn model() -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let mut hop = |c_in: usize, c_out: usize, hw: usize, k: usize, stride: usize| {
        let kernel = (0..c_out * c_in * k * k)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        Hop {
            c_in,
            c_out,
            hw,
            k,
            geom: HopGeometry::conv([stride, stride], [k / 2, k / 2]),
            kernel,
        }
    };
    Model {
        hops: vec![
            vec![
                vec![hop(6, 4, 8, 1, 1)],
                vec![hop(6, 3, 8, 1, 1), hop(3, 5, 8, 3, 1)],
                vec![hop(6, 3, 8, 1, 1)],
            ],
            vec![
                vec![hop(12, 4, 4, 1, 1)],
                vec![hop(12, 4, 8, 3, 2), hop(4, 6, 4, 5, 1)],
            ],
        ],
        layer_hw: [8, 4],
        layer_c: [12, 10],
    }
}

fn params(m: &Model, geometry: InfluenceGeometry) -> AggregateParams {
    let spec = |paths: &Vec<Vec<Hop>>| -> Vec<PathSpec> {
        let mut off = 0;
        paths
            .iter()
            .map(|p| {
                let s = PathSpec {
                    out_offset: off,
                    hops: p.iter().map(|h| (h.c_in, h.c_out).into()).collect(),
                };
                off += p.last().unwrap().c_out;
                s
            })
            .collect()
    };
    AggregateParams {
        num_classes: CLASSES,
        layers: vec![
            LayerParams {
                name: "mixedA".into(),
                channels: 12,
                excluded: vec![2, 7],
                input_channels: 6,
                paths: spec(&m.hops[0]),
            },
            LayerParams {
                name: "mixedB".into(),
                channels: 10,
                excluded: vec![],
                input_channels: 12,
                paths: spec(&m.hops[1]),
            },
        ],
        activation_selection: Selection::TopMass(0.2),
        influence_selection: Selection::TopK(2),
        influence_geometry: geometry,
        examples_per_channel: 4,
    }
}

/// Everything about one image, generated from its id alone.
struct Image {
    id: u64,
    label: usize,
    probs: Vec<f32>,
    /// per layer: activations [C_l, H, W]
    acts: Vec<Vec<f32>>,
    /// per layer, path, hop: hop input [C_in, H, W]
    inputs: Vec<Vec<Vec<Vec<f32>>>>,
}

fn image(m: &Model, id: u64) -> Image {
    let mut rng = ChaCha8Rng::seed_from_u64(1000 + id);
    let label = rng.random_range(0..CLASSES);
    let logits: Vec<f32> = (0..CLASSES)
        .map(|c| rng.random_range(-2.0..2.0) + if c == label { 1.0 } else { 0.0 })
        .collect();
    let z: f32 = logits.iter().map(|v| v.exp()).sum();
    let probs = logits.iter().map(|v| v.exp() / z).collect();
    // activations quantised to a few levels: ties between channels and images
    let acts = (0..2)
        .map(|l| {
            let n = m.layer_c[l] * m.layer_hw[l] * m.layer_hw[l];
            (0..n)
                .map(|_| (rng.random_range(-3i32..6).max(0) as f32) * 0.5)
                .collect()
        })
        .collect();
    let inputs = m
        .hops
        .iter()
        .map(|paths| {
            paths
                .iter()
                .map(|hops| {
                    hops.iter()
                        .map(|h| {
                            (0..h.c_in * h.hw * h.hw)
                                .map(|_| rng.random_range(-1.0f32..2.0).max(0.0))
                                .collect()
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    Image {
        id,
        label,
        probs,
        acts,
        inputs,
    }
}

/// One pass over `order` in batches of `batch`, as a pipeline would do it.
fn run(
    m: &Model,
    p: &AggregateParams,
    images: &[Image],
    order: &[usize],
    batch: usize,
) -> Aggregates {
    let mut agg = Aggregates::new(p.clone()).unwrap();
    for chunk in order.chunks(batch) {
        let imgs: Vec<&Image> = chunk.iter().map(|&n| &images[n]).collect();
        let b = imgs.len();
        let ids: Vec<u64> = imgs.iter().map(|i| i.id).collect();
        let labels: Vec<usize> = imgs.iter().map(|i| i.label).collect();
        let probs: Vec<f32> = imgs.iter().flat_map(|i| i.probs.clone()).collect();
        agg.add_predictions(&ids, &labels, &probs).unwrap();
        for l in 0..2 {
            let act: Vec<f32> = imgs.iter().flat_map(|i| i.acts[l].clone()).collect();
            let hw = m.layer_hw[l];
            let (maxima, argmax) = channel_max(&act, [b, m.layer_c[l], hw, hw]).unwrap();
            agg.add_activations(l, &ids, &labels, &maxima, &argmax)
                .unwrap();
            for (pi, hops) in m.hops[l].iter().enumerate() {
                for (hi, h) in hops.iter().enumerate() {
                    let x: Vec<f32> = imgs
                        .iter()
                        .flat_map(|i| i.inputs[l][pi][hi].clone())
                        .collect();
                    agg.add_hop_input(
                        l,
                        pi,
                        hi,
                        &labels,
                        &x,
                        [b, h.c_in, h.hw, h.hw],
                        &h.kernel,
                        [h.c_out, h.c_in, h.k, h.k],
                        h.geom,
                    )
                    .unwrap();
                }
            }
        }
    }
    agg
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn aggregates_are_invariant_to_batching_threads_order_and_shards() {
    let m = model();
    let p = params(&m, InfluenceGeometry::LayerOwn);
    let images: Vec<Image> = (0..N as u64).map(|id| image(&m, id * 7 + 3)).collect();
    let order: Vec<usize> = (0..N).collect();
    let reference = in_pool(1, || run(&m, &p, &images, &order, 1));

    // the reference is not trivial
    assert_eq!(reference.class_images().iter().sum::<u64>(), N as u64);
    let a_total: u64 = (0..2)
        .map(|l| {
            reference
                .activations()
                .layer(l)
                .unwrap()
                .iter()
                .map(|&v| u64::from(v))
                .sum::<u64>()
        })
        .sum();
    assert!(a_total > N as u64);
    let i_entries: usize = (0..2)
        .flat_map(|l| reference.paths(l).unwrap().iter())
        .flat_map(|pc| pc.hops.iter())
        .map(|h| h.num_entries())
        .sum();
    assert!(i_entries > 100);
    // excluded channels of layer 0: never counted in A, never an input of layer 1's first hops
    for k in 0..CLASSES {
        for &e in &[2usize, 7] {
            assert_eq!(reference.activations().get(0, k, e), Some(0));
            for pc in reference.paths(1).unwrap() {
                for j in 0..pc.hops[0].c_out() {
                    assert_eq!(pc.hops[0].get(k, j, e), Some(0));
                }
            }
        }
    }

    for batch in [7, 32] {
        for threads in [1, 2] {
            let got = in_pool(threads, || run(&m, &p, &images, &order, batch));
            assert!(got == reference, "batch {batch}, {threads} threads");
        }
    }
    let mut shuffled = order.clone();
    shuffled.shuffle(&mut ChaCha8Rng::seed_from_u64(5));
    assert!(
        in_pool(2, || run(&m, &p, &images, &shuffled, 7)) == reference,
        "shuffled order"
    );

    // shards: an uneven split of the shuffled order, merged both ways
    let mut a = run(&m, &p, &images, &shuffled[..23], 32);
    let b = run(&m, &p, &images, &shuffled[23..], 7);
    let mut b2 = b.clone();
    a.merge(&b).unwrap();
    assert!(a == reference, "merged shards");
    b2.merge(&run(&m, &p, &images, &shuffled[..23], 1)).unwrap();
    assert!(b2 == reference, "merged shards, other order");

    // merged edges are available per layer and offset by the concat order
    let e1 = reference.layer_edges(1).unwrap();
    assert_eq!((e1.c_out(), e1.c_in()), (10, 12));
    let direct = &reference.paths(1).unwrap()[0].hops[0];
    for k in 0..CLASSES {
        for j in 0..4 {
            assert_eq!(
                e1.row(k, j).unwrap().to_vec(),
                direct.row(k, j).unwrap().to_vec()
            );
        }
    }
    // one class at a time, and as ndarray matrices, the same edges and counts
    for l in 0..2 {
        let all = reference.layer_edges(l).unwrap();
        let a = reference.activation_matrix(l).unwrap();
        for k in 0..CLASSES {
            let rows = reference.class_layer_edges(l, k).unwrap();
            let m = reference.class_edge_matrix(l, k).unwrap();
            assert_eq!(m.shape(), &[all.c_out(), all.c_in()]);
            for (j, row) in rows.iter().enumerate() {
                assert_eq!(row, &all.row(k, j).unwrap().to_vec());
                for i in 0..all.c_in() {
                    assert_eq!(m[[j, i]], all.get(k, j, i).unwrap());
                }
            }
            assert_eq!(
                a.row(k).to_vec(),
                reference.activations().row(l, k).unwrap().to_vec()
            );
        }
        for (p, path) in reference.paths(l).unwrap().iter().enumerate() {
            for (h, hop) in path.hops.iter().enumerate() {
                for k in 0..CLASSES {
                    let m = hop.class_matrix(k).unwrap();
                    for j in 0..hop.c_out() {
                        for i in 0..hop.c_in() {
                            assert_eq!(m[[j, i]], hop.get(k, j, i).unwrap(), "{l} {p} {h}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn summit2019_geometry_is_applied_per_hop() {
    let m = model();
    let p = params(&m, InfluenceGeometry::TfSame { stride: [3, 3] });
    let images: Vec<Image> = (0..8u64).map(|id| image(&m, id)).collect();
    let order: Vec<usize> = (0..8).collect();
    let agg = run(&m, &p, &images, &order, 3);
    // recompute layer 0's two-hop second hop by hand with SAME stride 3 geometry
    let h = &m.hops[0][1][1];
    let mut manual = Aggregates::new(p.clone()).unwrap();
    let geom = HopGeometry::tf_same([8, 8], [3, 3], [3, 3]);
    for img in &images {
        let l = influence_cpu(
            &img.inputs[0][1][1],
            [1, h.c_in, 8, 8],
            &h.kernel,
            [h.c_out, h.c_in, 3, 3],
            &geom,
        )
        .unwrap();
        manual.add_influences(0, 1, 1, &[img.label], &l).unwrap();
    }
    assert_eq!(
        agg.paths(0).unwrap()[1].hops[1],
        manual.paths(0).unwrap()[1].hops[1]
    );
    // and it differs from the layer's own geometry on this data
    let own = run(
        &m,
        &params(&m, InfluenceGeometry::LayerOwn),
        &images,
        &order,
        3,
    );
    assert_ne!(
        own.paths(0).unwrap()[1].hops[1],
        agg.paths(0).unwrap()[1].hops[1]
    );
}

#[test]
fn predictions_statistics_by_hand() {
    let m = model();
    let mut agg = Aggregates::new(params(&m, InfluenceGeometry::LayerOwn)).unwrap();
    let probs = [
        0.1, 0.6, 0.1, 0.1, 0.1, // label 1, correct
        0.3, 0.3, 0.2, 0.1, 0.1, // label 1, tie 0/1 -> first max is 0: wrong
        0.0, 0.0, 0.0, 0.0, 1.0, // label 4, correct, p = 1 -> last bin
    ];
    agg.add_predictions(&[10, 11, 5], &[1, 1, 4], &probs)
        .unwrap();
    assert_eq!(agg.class_images(), &[0, 2, 0, 0, 1]);
    assert_eq!(agg.class_top1_correct(), &[0, 1, 0, 0, 1]);
    assert_eq!(agg.num_images(), 3);
    assert!([5, 10, 11].iter().all(|&id| agg.contains_image(id)));
    assert!(!agg.contains_image(12));
    // fine bins: 0.6 -> 60, 0.3 -> 30, 1.0 -> the last (99)
    let fine = agg.probability_histogram(1).unwrap();
    assert_eq!(fine.iter().sum::<u64>(), 2);
    assert_eq!((fine[30], fine[60]), (1, 1));
    assert_eq!(agg.probability_histogram(4).unwrap()[99], 1);
    assert_eq!(
        agg.true_class_histogram(1, 10),
        Some(vec![0, 0, 0, 1, 0, 0, 1, 0, 0, 0])
    );
    assert_eq!(agg.true_class_histogram(4, 4), Some(vec![0, 0, 0, 1]));
    // bins must divide the fine bins
    assert_eq!(agg.true_class_histogram(1, 3), None);
    assert_eq!(agg.true_class_histogram(9, 10), None);
    // an image id seen before is refused, and nothing changes
    let before = agg.clone();
    assert!(matches!(
        agg.add_predictions(&[12, 10], &[0, 0], &probs[..10]),
        Err(InfluenceError::DuplicateImage { image_id: 10 })
    ));
    assert!(agg == before);
}

#[test]
fn merge_refuses_mismatched_parameters_and_overlapping_shards() {
    let m = model();
    let p = params(&m, InfluenceGeometry::LayerOwn);
    let images: Vec<Image> = (0..4u64).map(|id| image(&m, id)).collect();
    let mut a = run(&m, &p, &images, &[0, 1], 2);
    let overlap = run(&m, &p, &images, &[1, 2], 2);
    assert!(matches!(
        a.merge(&overlap),
        Err(InfluenceError::DuplicateImage { image_id: 1 })
    ));
    let mut q = p.clone();
    q.activation_selection = Selection::TopMass(0.03);
    let err = a.merge(&Aggregates::new(q).unwrap()).unwrap_err();
    assert!(err.to_string().contains("activation selection"), "{err}");
    let mut q = p.clone();
    q.layers[1].excluded = vec![3];
    let err = a.merge(&Aggregates::new(q).unwrap()).unwrap_err();
    assert!(err.to_string().contains("mixedB"), "{err}");
    let mut q = p.clone();
    q.influence_geometry = InfluenceGeometry::TfSame { stride: [3, 3] };
    assert!(a.merge(&Aggregates::new(q).unwrap()).is_err());
    // invalid parameters are refused at construction
    let mut q = p.clone();
    q.layers[1].input_channels = 11;
    assert!(Aggregates::new(q).is_err());
    let mut q = p;
    q.layers[0].paths[1].hops[1].c_in = 4;
    assert!(Aggregates::new(q).is_err());
}

#[test]
fn save_and_load_round_trip_and_file_errors() {
    let m = model();
    let p = params(&m, InfluenceGeometry::LayerOwn);
    let images: Vec<Image> = (0..12u64).map(|id| image(&m, id)).collect();
    let order: Vec<usize> = (0..12).collect();
    let agg = run(&m, &p, &images, &order, 5);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shard.summit");
    agg.save(&path).unwrap();
    let back = Aggregates::load(&path).unwrap();
    assert!(back == agg);
    // overwriting in place is atomic and leaves no temporary files
    agg.save(&path).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let bytes = std::fs::read(&path).unwrap();
    let write = |name: &str, data: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    };
    let check = |p: std::path::PathBuf, needle: &str| {
        let err = Aggregates::load(&p).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, InfluenceError::Format { .. }), "{msg}");
        assert!(msg.contains(needle), "{msg} should mention {needle}");
        assert!(
            msg.contains(p.file_name().unwrap().to_str().unwrap()),
            "{msg} should name the file"
        );
    };
    let mut v9 = bytes.clone();
    v9[8] = 9;
    check(write("v9.summit", &v9), "format version 9");
    let mut magic = bytes.clone();
    magic[0] = b'X';
    check(write("magic.summit", &magic), "magic");
    check(
        write("trunc.summit", &bytes[..bytes.len() - 10]),
        "truncated",
    );
    check(write("header.summit", &bytes[..15]), "truncated");
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0, 0, 0]);
    check(write("long.summit", &longer), "unexpected bytes");
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x55;
    check(write("flip.summit", &flipped), "checksum");
    assert!(matches!(
        Aggregates::load(dir.path().join("missing.summit")),
        Err(InfluenceError::Io { .. })
    ));
}
