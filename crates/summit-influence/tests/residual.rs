//! SPEC §2.1 in the influence crate: grouped, depthwise and dilated hops against a brute
//! force, the device path against the CPU path, identity hops, and the joint selection of
//! paths that sum into one channel (a residual Add), ties included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use summit_activation::Selection;
use summit_influence::{
    AggregateParams, Aggregates, DeviceInfluenceOptions, DeviceKernel, HopGeometry, HopSpec,
    InfluenceGeometry, LayerParams, PathSpec, influence_cpu_grouped, influence_device_host,
};

/// Brute force from the definition: for output channel j of group g and input q of that
/// group, max over output positions of the dilated, strided, zero-padded cross-correlation.
#[allow(clippy::too_many_arguments)]
fn brute(
    x: &[f32],
    [b, c_in, h, w]: [usize; 4],
    k: &[f32],
    [c_out, cin_g, kh, kw]: [usize; 4],
    groups: usize,
    g: &HopGeometry,
) -> Vec<f32> {
    let cout_g = c_out / groups;
    let [ho, wo] = g.output_hw([h, w], [kh, kw]).unwrap();
    let mut out = vec![0.0; b * c_out * cin_g];
    for n in 0..b {
        for j in 0..c_out {
            for q in 0..cin_g {
                let i = (j / cout_g) * cin_g + q;
                let mut best = f32::NEG_INFINITY;
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut s = 0.0f32;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * g.stride[0] + ky * g.dilation[0]) as isize
                                    - g.padding[0] as isize;
                                let ix = (ox * g.stride[1] + kx * g.dilation[1]) as isize
                                    - g.padding[2] as isize;
                                let v =
                                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w
                                    {
                                        x[((n * c_in + i) * h + iy as usize) * w + ix as usize]
                                    } else {
                                        0.0
                                    };
                                s = v.mul_add(k[((j * cin_g + q) * kh + ky) * kw + kx], s);
                            }
                        }
                        if s > best {
                            best = s;
                        }
                    }
                }
                out[(n * c_out + j) * cin_g + q] = best;
            }
        }
    }
    out
}

fn random(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

#[test]
fn grouped_depthwise_and_dilated_hops_match_the_brute_force_and_the_device() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let device = Device::flex();
    // (c_in, c_out, groups, k, stride, padding, dilation)
    let cases = [
        (6, 9, 3, 3, [1, 1], [1, 1, 1, 1], [1, 1]),
        (8, 8, 8, 3, [2, 2], [1, 1, 1, 1], [1, 1]), // depthwise, stride 2
        (8, 16, 8, 5, [1, 2], [2, 1, 0, 3], [1, 1]), // depthwise multiplier 2, asymmetric pad
        (4, 6, 2, 3, [1, 1], [2, 2, 2, 2], [2, 2]), // grouped and dilated
        (5, 7, 1, 3, [1, 1], [0, 1, 2, 0], [2, 1]), // dense, dilated, asymmetric
        (6, 6, 6, 1, [1, 1], [0; 4], [1, 1]),       // depthwise 1×1 (an identity's shape)
    ];
    for (c, &(c_in, c_out, groups, k, stride, pad, dil)) in cases.iter().enumerate() {
        let xd = [2, c_in, 9, 8];
        let kd = [c_out, c_in / groups, k, k];
        let x = random(&mut rng, xd.iter().product());
        let w = random(&mut rng, kd.iter().product());
        let g = HopGeometry::new(stride, pad).with_dilation(dil);
        let want = brute(&x, xd, &w, kd, groups, &g);
        let got = influence_cpu_grouped(&x, xd, &w, kd, groups, &g).unwrap();
        assert_eq!(got, want, "case {c}: CPU vs brute force");
        let dk = DeviceKernel::with_groups(&w, kd, groups, &device).unwrap();
        let xt = Tensor::<4>::from_data(TensorData::new(x.clone(), xd), &device);
        let dev = influence_device_host(xt, &dk, &g, &DeviceInfluenceOptions::default()).unwrap();
        assert_eq!(dev.len(), want.len());
        for (a, b) in dev.iter().zip(&want) {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "case {c}: device {a} vs {b}"
            );
        }
        // chunked over input channels and images on the device: the same values to rounding
        // (the backend may sum the taps in another order for another shape)
        let tiny = DeviceInfluenceOptions {
            max_chunk_bytes: 64,
        };
        let xt = Tensor::<4>::from_data(TensorData::new(x, xd), &device);
        let chunked = influence_device_host(xt, &dk, &g, &tiny).unwrap();
        for (a, b) in chunked.iter().zip(&want) {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "case {c}: chunked {a} vs {b}"
            );
        }
    }
    assert!(
        influence_cpu_grouped(
            &[0.0; 6],
            [1, 6, 1, 1],
            &[0.0; 8],
            [4, 2, 1, 1],
            4,
            &HopGeometry::new([1, 1], [0; 4])
        )
        .is_err()
    );
}

/// One summary layer of 4 channels fed by a 4-channel layer through a basic residual block:
/// path 0 = conv1 (4 → 3) then conv2 (3 → 4), path 1 = the identity skip.
fn residual_params(k: usize) -> AggregateParams {
    AggregateParams {
        num_classes: 2,
        layers: vec![
            LayerParams {
                name: "stem".into(),
                channels: 4,
                excluded: vec![],
                input_channels: 0,
                paths: vec![],
            },
            LayerParams {
                name: "block".into(),
                channels: 4,
                excluded: vec![],
                input_channels: 4,
                paths: vec![
                    PathSpec::dense(0, &[(4, 3), (3, 4)]),
                    PathSpec {
                        out_offset: 0,
                        hops: vec![HopSpec::identity(4)],
                    },
                ],
            },
        ],
        activation_selection: Selection::TopK(1),
        influence_selection: Selection::TopK(k),
        influence_geometry: InfluenceGeometry::LayerOwn,
        examples_per_channel: 1,
    }
}

#[test]
fn summed_paths_compete_in_one_selection_and_ties_go_to_the_skip() {
    let mut aggs = Aggregates::new(residual_params(2)).unwrap();
    // one image; conv1's influences [1, 3, 4], conv2's [1, 4, 3], the skip's [1, 4, 1]
    let conv1: Vec<f32> = (0..12).map(|v| v as f32).collect();
    let conv2 = vec![
        5.0, 1.0, 2.0, // j0: r0 = 5 beats the skip's 4, r2 = 2 loses to it
        1.0, 1.0, 1.0, // j1: all 1, the skip's 1 ties: the later candidate (the skip) wins
        9.0, 8.0, 0.0, // j2: both conv candidates beat the skip
        -1.0, -2.0, -3.0, // j3: the skip (0.5) first, then r0
    ];
    let skip = vec![4.0, 1.0, 3.0, 0.5];
    aggs.add_layer_influences(1, &[1], &[vec![&conv1, &conv2], vec![&skip]])
        .unwrap();
    let paths = aggs.paths(1).unwrap();
    let c2 = &paths[0].hops[1];
    let id = &paths[1].hops[0];
    assert_eq!(c2.row(1, 0).unwrap().to_vec(), vec![(0, 1)]);
    assert_eq!(id.row(1, 0).unwrap().to_vec(), vec![(0, 1)]);
    // j1: candidates r0, r1, r2 (1 each) and the skip (1): the two latest win: skip and r2
    assert_eq!(c2.row(1, 1).unwrap().to_vec(), vec![(2, 1)]);
    assert_eq!(id.row(1, 1).unwrap().to_vec(), vec![(1, 1)]);
    assert_eq!(c2.row(1, 2).unwrap().to_vec(), vec![(0, 1), (1, 1)]);
    assert!(id.row(1, 2).unwrap().is_empty());
    assert_eq!(c2.row(1, 3).unwrap().to_vec(), vec![(0, 1)]);
    assert_eq!(id.row(1, 3).unwrap().to_vec(), vec![(3, 1)]);
    // conv1 (not summed) selects alone: top 2 of each row = the two highest inputs
    for r in 0..3 {
        assert_eq!(
            paths[0].hops[0].row(1, r).unwrap().to_vec(),
            vec![(2, 1), (3, 1)]
        );
    }
    // recording the competing last hop alone is refused
    let e = aggs.add_influences(1, 1, 0, &[0], &skip).unwrap_err();
    assert!(e.to_string().contains("add_layer_influences"), "{e}");
    // wrong shapes are refused before anything changes
    let before = aggs.clone();
    assert!(
        aggs.add_layer_influences(1, &[0], &[vec![&conv1, &conv2], vec![&skip[..3]]])
            .is_err()
    );
    assert_eq!(aggs, before);
}

#[test]
fn identity_hop_influence_is_the_channel_maximum() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let xd = [3, 5, 4, 6];
    let x = random(&mut rng, xd.iter().product());
    let ones = vec![1.0; 5];
    let l = influence_cpu_grouped(
        &x,
        xd,
        &ones,
        [5, 1, 1, 1],
        5,
        &HopGeometry::new([1, 1], [0; 4]),
    )
    .unwrap();
    for n in 0..3 {
        for c in 0..5 {
            let m = x[(n * 5 + c) * 24..][..24]
                .iter()
                .copied()
                .fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(l[n * 5 + c], m);
        }
    }
}
