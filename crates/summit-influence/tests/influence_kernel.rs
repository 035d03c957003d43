//! The fused kernel and the 1×1 closed form against the brute-force
//! reference, the reference against hand-computed values, and both against
//! PyTorch (tests/fixtures/make_influence_fixture.py).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use summit_influence::{
    HopGeometry, InfluenceError, fold_batch_norm, influence_cpu, influence_reference,
};

fn random(rng: &mut ChaCha8Rng, n: usize, relu: bool) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let v: f32 = rng.random_range(-1.0..1.0);
            if relu { v.max(0.0) } else { v }
        })
        .collect()
}

#[test]
fn reference_matches_hand_computed_values() {
    // X = [[1, 2], [3, 4]], K = [[1, 0, 0], [0, 0, 0], [0, 0, -1]], pad 1, stride 1:
    // out(y, x) = X(y-1, x-1) - X(y+1, x+1): values (0,0): 0-4 = -4, (0,1): 0-0 = 0,
    // (1,0): 0, (1,1): 1-0 = 1 -> max 1
    let k = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0];
    let g = HopGeometry::conv([1, 1], [1, 1]);
    let l = influence_reference(&[1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2], &k, [1, 1, 3, 3], &g).unwrap();
    assert_eq!(l, vec![1.0]);
    // all-negative kernel: padded windows still yield values; the corner window
    // sees only X(0,0)=1 at its centre tap (K centre -1)
    let k = [-1.0; 9];
    let l = influence_reference(&[1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2], &k, [1, 1, 3, 3], &g).unwrap();
    assert_eq!(l, vec![-10.0]); // every window covers all four values
    // stride 2 without padding on 3×3: positions (0,0) only for a 3×3 kernel
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let l = influence_reference(
        &x,
        [1, 1, 3, 3],
        &[1.0; 9],
        [1, 1, 3, 3],
        &HopGeometry::conv([2, 2], [0, 0]),
    )
    .unwrap();
    assert_eq!(l, vec![45.0]);
    // 1×1, stride 2, pad (1,0,1,0) on a 3×3 map: grid rows/cols -1, 1 -> {0 (padding), X(1,1)=5}
    let l = influence_reference(
        &x,
        [1, 1, 3, 3],
        &[-2.0],
        [1, 1, 1, 1],
        &HopGeometry::new([2, 2], [1, 0, 1, 0]),
    )
    .unwrap();
    assert_eq!(l, vec![0.0]);
    let l = influence_cpu(
        &x,
        [1, 1, 3, 3],
        &[-2.0],
        [1, 1, 1, 1],
        &HopGeometry::new([2, 2], [1, 0, 1, 0]),
    )
    .unwrap();
    assert_eq!(l, vec![0.0]);
}

#[test]
fn fused_kernel_equals_brute_force_exactly() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut cases = 0;
    for (kh, kw) in [(3, 3), (5, 5), (1, 3), (3, 1), (2, 2)] {
        for s in 1..=3 {
            for pad in [
                [0, 0, 0, 0],
                [1, 1, 1, 1],
                [2, 2, 2, 2],
                [0, 1, 0, 1],
                [1, 0, 2, 1],
            ] {
                let b = rng.random_range(1..3);
                let c_in = rng.random_range(1..6);
                // C_out crosses the 16-wide tiles and the 64-wide task blocks
                let c_out = [1, 7, 16, 17, 70][cases % 5];
                let h = rng.random_range(kh..kh + 8);
                let w = rng.random_range(kw..kw + 8);
                let stride = [s, 1 + (s + cases) % 3];
                let g = HopGeometry::new(stride, pad);
                let x = random(&mut rng, b * c_in * h * w, cases % 2 == 0);
                let k = random(&mut rng, c_out * c_in * kh * kw, false);
                let xd = [b, c_in, h, w];
                let kd = [c_out, c_in, kh, kw];
                let want = influence_reference(&x, xd, &k, kd, &g).unwrap();
                let got = influence_cpu(&x, xd, &k, kd, &g).unwrap();
                assert_eq!(
                    got, want,
                    "kernel {kh}x{kw} stride {stride:?} pad {pad:?} x {xd:?} k {kd:?}"
                );
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 75);
}

#[test]
fn closed_form_1x1_equals_brute_force_for_all_strides_and_paddings() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for s in 1..=3 {
        for pad in [
            [0, 0, 0, 0],
            [1, 1, 1, 1],
            [0, 1, 0, 1],
            [2, 0, 0, 3],
            [3, 3, 3, 3],
        ] {
            for relu in [true, false] {
                let (b, c_in, c_out, h, w) =
                    (3, 6, 11, rng.random_range(1..9), rng.random_range(1..9));
                let x = random(&mut rng, b * c_in * h * w, relu);
                let k = random(&mut rng, c_out * c_in, false);
                let g = HopGeometry::new([s, 4 - s], pad);
                let xd = [b, c_in, h, w];
                let kd = [c_out, c_in, 1, 1];
                let want = influence_reference(&x, xd, &k, kd, &g).unwrap();
                assert_eq!(
                    influence_cpu(&x, xd, &k, kd, &g).unwrap(),
                    want,
                    "stride {s} pad {pad:?}"
                );
            }
        }
    }
    // the plain closed form max(K max X, K min X)
    let x = random(&mut rng, 2 * 3 * 4 * 5, false);
    let k = random(&mut rng, 4 * 3, false);
    let l = influence_cpu(
        &x,
        [2, 3, 4, 5],
        &k,
        [4, 3, 1, 1],
        &HopGeometry::conv([1, 1], [0, 0]),
    )
    .unwrap();
    for b in 0..2 {
        for j in 0..4 {
            for i in 0..3 {
                let map = &x[(b * 3 + i) * 20..][..20];
                let mx = map.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mn = map.iter().copied().fold(f32::INFINITY, f32::min);
                let kk = k[j * 3 + i];
                assert_eq!(l[(b * 4 + j) * 3 + i], (kk * mx).max(kk * mn));
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let (b, c_in, c_out, h, w) = (3, 9, 150, 10, 9);
    let x = random(&mut rng, b * c_in * h * w, true);
    let k = random(&mut rng, c_out * c_in * 9, false);
    let g = HopGeometry::conv([1, 1], [1, 1]);
    let run = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| influence_cpu(&x, [b, c_in, h, w], &k, [c_out, c_in, 3, 3], &g).unwrap())
    };
    assert_eq!(run(1), run(2));
    assert_eq!(run(1), run(3));
}

#[test]
fn bad_inputs_are_clear_errors() {
    let g = HopGeometry::conv([1, 1], [0, 0]);
    assert!(matches!(
        influence_cpu(&[0.0; 7], [1, 2, 2, 2], &[0.0; 2], [1, 2, 1, 1], &g),
        Err(InfluenceError::Shape {
            what: "hop input",
            expected: 8,
            got: 7,
            ..
        })
    ));
    assert!(matches!(
        influence_cpu(&[0.0; 8], [1, 2, 2, 2], &[0.0; 3], [1, 3, 1, 1], &g),
        Err(InfluenceError::DimensionMismatch {
            expected: 3,
            got: 2,
            ..
        })
    ));
    assert!(matches!(
        influence_cpu(&[0.0; 8], [1, 2, 2, 2], &[0.0; 18], [1, 2, 3, 3], &g),
        Err(InfluenceError::EmptyOutput { .. })
    ));
    assert!(matches!(
        influence_cpu(
            &[0.0; 8],
            [1, 2, 2, 2],
            &[0.0; 2],
            [1, 2, 1, 1],
            &HopGeometry::conv([0, 1], [0, 0])
        ),
        Err(InfluenceError::InvalidHop { .. })
    ));
    let mut x = [0.0; 8];
    x[5] = f32::NAN;
    assert!(matches!(
        influence_cpu(&x, [1, 2, 2, 2], &[0.0; 2], [1, 2, 1, 1], &g),
        Err(InfluenceError::NonFinite {
            what: "hop input",
            index: 5,
            ..
        })
    ));
    // maps wide enough for the SIMD scan of the 1×1 closed form, and a 3×3 kernel
    for (k, bad) in [
        (1usize, f32::INFINITY),
        (1, f32::NAN),
        (3, f32::NEG_INFINITY),
    ] {
        let mut x = vec![0.5f32; 2 * 3 * 8 * 8];
        x[200] = bad;
        let kernel = vec![1.0f32; 2 * 3 * k * k];
        assert!(
            matches!(
                influence_cpu(&x, [2, 3, 8, 8], &kernel, [2, 3, k, k], &g),
                Err(InfluenceError::NonFinite {
                    what: "hop input",
                    index: 200,
                    ..
                })
            ),
            "{k}×{k} kernel, {bad} at 200"
        );
    }
}

#[test]
fn tf_same_padding_matches_tensorflow_formula() {
    // (in, k, stride) -> (out, pad_before, pad_after), from TensorFlow's rule
    for (n, k, s, out, a, b) in [
        (7, 1, 3, 3, 0, 0),
        (56, 3, 3, 19, 0, 1),
        (28, 3, 3, 10, 1, 1),
        (14, 5, 3, 5, 1, 2),
        (7, 3, 1, 7, 1, 1),
        (2, 5, 3, 1, 1, 2),
    ] {
        let g = HopGeometry::tf_same([n, n], [k, k], [s, s]);
        assert_eq!(g.padding, [a, b, a, b], "in {n} k {k} s {s}");
        assert_eq!(g.output_hw([n, n], [k, k]).unwrap(), [out, out]);
    }
}

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    x_dims: [usize; 4],
    k_dims: [usize; 4],
    stride: [usize; 2],
    padding: [usize; 4],
    x: Vec<f32>,
    kernel: Vec<f32>,
    gamma: Vec<f32>,
    running_var: Vec<f32>,
    eps: f32,
    folded: Vec<f32>,
    l: Vec<f32>,
}

#[derive(serde::Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[test]
fn folding_and_influences_match_pytorch() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/influence_torch.json"
    ))
    .unwrap();
    let fx: Fixture = serde_json::from_str(&text).unwrap();
    assert_eq!(fx.cases.len(), 6);
    for c in &fx.cases {
        let folded = fold_batch_norm(&c.kernel, c.k_dims, &c.gamma, &c.running_var, c.eps).unwrap();
        for (a, b) in folded.iter().zip(&c.folded) {
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                "{}: folded {a} vs torch {b}",
                c.name
            );
        }
        let g = HopGeometry::new(c.stride, c.padding);
        if c.name.contains("same") {
            let hw = [c.x_dims[2], c.x_dims[3]];
            let k = [c.k_dims[2], c.k_dims[3]];
            assert_eq!(HopGeometry::tf_same(hw, k, c.stride), g, "{}", c.name);
        }
        let l = influence_cpu(&c.x, c.x_dims, &folded, c.k_dims, &g).unwrap();
        assert_eq!(l.len(), c.l.len());
        for (idx, (a, b)) in l.iter().zip(&c.l).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "{}: L[{idx}] {a} vs torch {b}",
                c.name
            );
        }
    }
}
