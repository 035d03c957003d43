//! The burn-tensor influences (`influence_device`, here on the flex CPU
//! backend) against the fused CPU kernel (itself bit-identical to the
//! brute-force reference): values to rounding, selections and counts
//! exactly, for several hop shapes, strides, paddings and chunkings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use summit_activation::{ChannelMask, Selection};
use summit_influence::{
    DeviceInfluenceOptions, DeviceKernel, HopGeometry, InfluenceCounts, InfluenceError,
    influence_cpu, influence_device, influence_device_host, influence_reference, top_influences,
};

fn random(rng: &mut ChaCha8Rng, n: usize, relu: bool) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let v: f32 = rng.random_range(-1.0..1.0);
            if relu { v.max(0.0) } else { v }
        })
        .collect()
}

struct Case {
    b: usize,
    c_in: usize,
    c_out: usize,
    hw: [usize; 2],
    k: [usize; 2],
    geom: HopGeometry,
    relu: bool,
}

/// Runs one case with the given chunk budget; returns how many (image,
/// output channel) rows were compared.
fn check(case: &Case, seed: u64, max_chunk_bytes: usize) -> usize {
    let device = Device::flex();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x_dims = [case.b, case.c_in, case.hw[0], case.hw[1]];
    let k_dims = [case.c_out, case.c_in, case.k[0], case.k[1]];
    let x = random(&mut rng, x_dims.iter().product(), case.relu);
    let k = random(&mut rng, k_dims.iter().product(), false);
    let cpu = influence_cpu(&x, x_dims, &k, k_dims, &case.geom).unwrap();
    let xt = Tensor::<4>::from_data(TensorData::new(x.clone(), x_dims), &device);
    let dk = DeviceKernel::new(&k, k_dims, &device).unwrap();
    let dev = influence_device_host(
        xt,
        &dk,
        &case.geom,
        &DeviceInfluenceOptions { max_chunk_bytes },
    )
    .unwrap();
    assert_eq!(dev.len(), cpu.len());
    // values: to rounding of a kh·kw-term f32 sum
    let scale = k.iter().fold(0.0f32, |a, v| a.max(v.abs())) * (case.k[0] * case.k[1]) as f32;
    for (n, (&a, &b)) in cpu.iter().zip(&dev).enumerate() {
        let tol = 1e-5 * a.abs().max(scale * 1e-2);
        assert!(
            (a - b).abs() <= tol,
            "value {n}: cpu {a} device {b} (tolerance {tol})"
        );
    }
    // selections and counts: exactly
    let mask = ChannelMask::from_channels(&[1]);
    for sel in [
        Selection::TopK(5),
        Selection::TopK(2),
        Selection::TopMass(0.2),
    ] {
        let (b, co, ci) = (case.b, case.c_out, case.c_in);
        let s_cpu = top_influences(&cpu, b, co, ci, &mask, &sel).unwrap();
        let s_dev = top_influences(&dev, b, co, ci, &mask, &sel).unwrap();
        assert_eq!(s_cpu, s_dev, "selection {sel:?}");
        let labels: Vec<usize> = (0..b).map(|n| n % 3).collect();
        let mut i_cpu = InfluenceCounts::new(3, co, ci);
        let mut i_dev = InfluenceCounts::new(3, co, ci);
        i_cpu.add_batch(&cpu, b, &labels, &mask, &sel).unwrap();
        i_dev.add_batch(&dev, b, &labels, &mask, &sel).unwrap();
        assert_eq!(i_cpu, i_dev, "counts {sel:?}");
    }
    case.b * case.c_out
}

fn cases() -> Vec<Case> {
    vec![
        // 3×3 pad 1 stride 1 (an inception 3×3 branch)
        Case {
            b: 3,
            c_in: 12,
            c_out: 10,
            hw: [9, 9],
            k: [3, 3],
            geom: HopGeometry::conv([1, 1], [1, 1]),
            relu: true,
        },
        // 5×5 pad 2 stride 1 and stride 2
        Case {
            b: 2,
            c_in: 9,
            c_out: 7,
            hw: [11, 10],
            k: [5, 5],
            geom: HopGeometry::conv([1, 1], [2, 2]),
            relu: true,
        },
        Case {
            b: 2,
            c_in: 8,
            c_out: 6,
            hw: [12, 12],
            k: [5, 5],
            geom: HopGeometry::conv([2, 2], [2, 2]),
            relu: false,
        },
        // 1×1 stride 1 unpadded: closed form on the device
        Case {
            b: 4,
            c_in: 20,
            c_out: 9,
            hw: [7, 7],
            k: [1, 1],
            geom: HopGeometry::conv([1, 1], [0, 0]),
            relu: true,
        },
        Case {
            b: 2,
            c_in: 16,
            c_out: 8,
            hw: [5, 6],
            k: [1, 1],
            geom: HopGeometry::conv([1, 1], [0, 0]),
            relu: false,
        },
        // 1×1 with stride 2 and SAME padding: the general path
        Case {
            b: 2,
            c_in: 10,
            c_out: 6,
            hw: [8, 8],
            k: [1, 1],
            geom: HopGeometry::tf_same([8, 8], [1, 1], [2, 2]),
            relu: true,
        },
        Case {
            b: 2,
            c_in: 10,
            c_out: 6,
            hw: [9, 9],
            k: [1, 1],
            geom: HopGeometry::new([3, 3], [1, 0, 1, 0]),
            relu: true,
        },
        // stride 3 SAME (the summit2019 shortcut), symmetric and asymmetric padding
        Case {
            b: 2,
            c_in: 11,
            c_out: 13,
            hw: [28, 28],
            k: [3, 3],
            geom: HopGeometry::tf_same([28, 28], [3, 3], [3, 3]),
            relu: true,
        },
        Case {
            b: 3,
            c_in: 8,
            c_out: 9,
            hw: [14, 14],
            k: [3, 3],
            geom: HopGeometry::tf_same([14, 14], [3, 3], [3, 3]),
            relu: true,
        },
        // stride 2 SAME 3×3, non-square input and kernel
        Case {
            b: 2,
            c_in: 7,
            c_out: 5,
            hw: [10, 13],
            k: [3, 3],
            geom: HopGeometry::tf_same([10, 13], [3, 3], [2, 2]),
            relu: false,
        },
        Case {
            b: 2,
            c_in: 6,
            c_out: 5,
            hw: [9, 8],
            k: [3, 1],
            geom: HopGeometry::new([1, 2], [1, 1, 0, 0]),
            relu: true,
        },
    ]
}

#[test]
fn device_counts_equal_cpu_counts_in_one_chunk() {
    let mut rows = 0;
    for (n, case) in cases().iter().enumerate() {
        rows += check(case, 100 + n as u64, usize::MAX);
    }
    assert!(rows > 100);
}

#[test]
fn device_counts_equal_cpu_counts_in_small_chunks() {
    for (n, case) in cases().iter().enumerate() {
        let [ho, wo] = case.geom.output_hw(case.hw, case.k).unwrap();
        let slab = case.c_out * ho * wo * 4;
        // several input channels per chunk, several images per chunk, one of each,
        // and a budget below one slab
        for budget in [slab * 3, slab * case.c_in * 2, slab, 1] {
            check(case, 200 + n as u64, budget);
        }
    }
}

#[test]
fn device_matches_reference_on_hand_computed_values() {
    // X = [[1, 2], [3, 4]], K = [[1, 0, 0], [0, 0, 0], [0, 0, -1]], pad 1: max 1 (see the
    // reference's own test); the all -1 kernel: every window covers all four values: -10
    let device = Device::flex();
    let x = || {
        Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 2, 2]),
            &device,
        )
    };
    let g = HopGeometry::conv([1, 1], [1, 1]);
    let mut k = vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0];
    k.extend([-1.0; 9]);
    let dk = DeviceKernel::new(&k, [2, 1, 3, 3], &device).unwrap();
    let l = influence_device_host(x(), &dk, &g, &DeviceInfluenceOptions::default()).unwrap();
    assert_eq!(l, vec![1.0, -10.0]);
    let r = influence_reference(&[1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2], &k, [2, 1, 3, 3], &g).unwrap();
    assert_eq!(l, r);
}

#[test]
fn device_result_stays_on_device_with_its_shape() {
    let device = Device::flex();
    let x = Tensor::<4>::zeros([3, 4, 6, 6], &device);
    let dk = DeviceKernel::new(&[0.5; 5 * 4 * 9], [5, 4, 3, 3], &device).unwrap();
    let l = influence_device(
        x,
        &dk,
        &HopGeometry::conv([2, 2], [1, 1]),
        &DeviceInfluenceOptions::default(),
    )
    .unwrap();
    assert_eq!(l.dims(), [3, 5, 4]);
}

#[test]
fn device_errors_name_the_mismatch() {
    let device = Device::flex();
    assert!(matches!(
        DeviceKernel::new(&[1.0; 8], [2, 1, 3, 3], &device),
        Err(InfluenceError::Shape { what: "kernel", .. })
    ));
    assert!(matches!(
        DeviceKernel::new(&[f32::NAN], [1, 1, 1, 1], &device),
        Err(InfluenceError::NonFinite { what: "kernel", .. })
    ));
    let dk = DeviceKernel::new(&[1.0; 18], [1, 2, 3, 3], &device).unwrap();
    let x = Tensor::<4>::zeros([1, 3, 4, 4], &device);
    let err = influence_device(
        x,
        &dk,
        &HopGeometry::conv([1, 1], [0, 0]),
        &DeviceInfluenceOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            InfluenceError::DimensionMismatch {
                expected: 2,
                got: 3,
                ..
            }
        ),
        "{err}"
    );
    let x = Tensor::<4>::zeros([1, 2, 2, 2], &device);
    let err = influence_device(
        x,
        &dk,
        &HopGeometry::conv([1, 1], [0, 0]),
        &DeviceInfluenceOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, InfluenceError::EmptyOutput { .. }), "{err}");
}
