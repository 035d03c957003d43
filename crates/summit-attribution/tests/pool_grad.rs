//! burn's max-pool gradient as the models use it (ceil mode, padding), against brute force.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_arguments)]

use burn::tensor::{Device, Distribution, Tensor};
use summit_model::blocks::max_pool;
use summit_model::{burn, to_host};

fn brute(
    x: &[f32],
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    p: usize,
    ceil: bool,
    wts: &[f32],
) -> Vec<f32> {
    let out = |n: usize| {
        let span = n + 2 * p - k;
        let mut o = if ceil {
            span.div_ceil(s) + 1
        } else {
            span / s + 1
        };
        if ceil && (o - 1) * s >= n + p {
            o -= 1;
        }
        o
    };
    let (oh, ow) = (out(h), out(w));
    assert_eq!(wts.len(), oh * ow);
    let mut g = vec![0f32; h * w];
    for oy in 0..oh {
        for ox in 0..ow {
            let mut best = (f32::NEG_INFINITY, usize::MAX);
            for dy in 0..k {
                for dx in 0..k {
                    let (y, xx) = (
                        (oy * s + dy) as isize - p as isize,
                        (ox * s + dx) as isize - p as isize,
                    );
                    if y < 0 || xx < 0 || y >= h as isize || xx >= w as isize {
                        continue;
                    }
                    let i = y as usize * w + xx as usize;
                    if x[i] > best.0 {
                        best = (x[i], i);
                    }
                }
            }
            g[best.1] += wts[oy * ow + ox];
        }
    }
    g
}

#[test]
fn max_pool_gradient_routes_to_the_maximum() {
    let device = Device::flex().autodiff();
    for &(h, k, s, p, ceil) in &[
        (9, 3, 2, 0, true),
        (8, 3, 1, 1, true),
        (7, 2, 2, 0, true),
        (9, 3, 2, 0, false),
    ] {
        let x = Tensor::<4>::random([1, 1, h, h], Distribution::Normal(0.0, 1.0), &device)
            .require_grad();
        let y = max_pool(x.clone(), k, s, p, ceil);
        let [_, _, oh, ow] = y.dims();
        let wts = Tensor::<4>::random([1, 1, oh, ow], Distribution::Normal(0.0, 1.0), &device);
        let grads = y.mul(wts.clone()).sum().backward();
        let got = to_host(x.grad(&grads).unwrap(), "g").unwrap();
        let xv = to_host(x.inner(), "x").unwrap();
        let want = brute(
            &xv,
            h,
            h,
            k,
            s,
            p,
            ceil,
            &to_host(wts.inner(), "w").unwrap(),
        );
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            err < 1e-5,
            "h={h} k={k} s={s} p={p} ceil={ceil}: max |Δ| {err}\n{got:?}\n{want:?}"
        );
    }
}
