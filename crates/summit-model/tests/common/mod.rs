//! Shared test helpers: fixture loading and a brute-force channel-by-channel convolution.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use summit_model::{ConvHop, StateDict};

/// Records that the running test compares against fixture `name` in the file named by
/// `SUMMIT_PARITY_REPORT` (scripts/check.sh prints it after the tests, so CI's output says
/// which parity tests ran).
pub fn report_parity(name: &str) {
    if let Some(path) = std::env::var_os("SUMMIT_PARITY_REPORT") {
        use std::io::Write;
        let test = std::thread::current().name().unwrap_or("?").to_string();
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            // one write per line, so that tests running at once do not interleave
            let line = format!("{name}: {} {test}\n", env!("CARGO_PKG_NAME"));
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// The folder of the PyTorch fixtures (the weights are tens of MB: they are generated, not
/// committed). A missing fixture fails the test, saying how to make it, unless
/// `SUMMIT_SKIP_PARITY=1` asks to skip the parity tests knowingly (then `None`).
pub fn fixture_dir(name: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    if dir.join("expected.pth").exists() {
        report_parity(name);
        return Some(dir);
    }
    let msg = format!(
        "PyTorch parity fixture {} missing: run `python3 crates/summit-model/tests/fixtures/make_{name}.py` \
         (needs torch and torchvision; the lucent fixture also torch-lucent), or run the \
         project's test command scripts/check.sh, which makes it; SUMMIT_SKIP_PARITY=1 skips \
         the parity tests instead",
        dir.display()
    );
    if std::env::var("SUMMIT_SKIP_PARITY").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED (SUMMIT_SKIP_PARITY=1): {msg}");
        return None;
    }
    panic!("{msg}");
}

/// Max |a − b| / max |b|.
pub fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let scale = want
        .iter()
        .fold(0f64, |m, &v| m.max(f64::from(v).abs()))
        .max(1e-12);
    let diff = got.iter().zip(want).fold(0f64, |m, (&a, &b)| {
        m.max((f64::from(a) - f64::from(b)).abs())
    });
    diff / scale
}

/// Loads `expected.pth` of a fixture.
pub fn expected(dir: &std::path::Path) -> StateDict {
    StateDict::load(dir.join("expected.pth")).unwrap()
}

/// The pre-activation of output channel `j` of `hop` for image `b`, computed channel by
/// channel: `sum_i X_i ⋆ K'[j, i] + b'_j`, by brute force with zero padding.
/// `x` is the hop's input `[B, C_in, H, W]`. Returns the `[H_out, W_out]` map.
pub fn decomposed_preactivation(
    hop: &ConvHop,
    x: &[f32],
    dims: [usize; 4],
    b: usize,
    j: usize,
) -> (Vec<f64>, [usize; 2]) {
    let [_, c_in, h, w] = dims;
    let [c_out, cin_g, kh, kw] = hop.kernel.dims;
    assert_eq!(c_in, cin_g * hop.groups);
    assert!(j < c_out);
    let g = j / (c_out / hop.groups);
    let [sh, sw] = hop.stride;
    let [pt, pb, pl, pr] = hop.padding;
    let [dh, dw] = hop.dilation;
    let ho = (h + pt + pb - (kh - 1) * dh - 1) / sh + 1;
    let wo = (w + pl + pr - (kw - 1) * dw - 1) / sw + 1;
    let mut sum = vec![f64::from(hop.kernel.bias[j]); ho * wo];
    for q in 0..cin_g {
        // One input channel (of j's group) cross-correlated with one kernel slice.
        let i = g * cin_g + q;
        let xi = &x[(b * c_in + i) * h * w..(b * c_in + i + 1) * h * w];
        let k = &hop.kernel.weight[(j * cin_g + q) * kh * kw..(j * cin_g + q + 1) * kh * kw];
        for oy in 0..ho {
            for ox in 0..wo {
                let mut acc = 0f64;
                for ky in 0..kh {
                    for kx in 0..kw {
                        let iy = (oy * sh + ky * dh) as isize - pt as isize;
                        let ix = (ox * sw + kx * dw) as isize - pl as isize;
                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                            acc += f64::from(xi[iy as usize * w + ix as usize])
                                * f64::from(k[ky * kw + kx]);
                        }
                    }
                }
                sum[oy * wo + ox] += acc;
            }
        }
    }
    (sum, [ho, wo])
}

/// The pre-activation of output channel `j` of a convolution followed by batch norm, from the
/// raw (unfolded) weights of a state dict: `γ_j (Σ_i X_i ⋆ W[j, i] − μ_j) / √(σ²_j + eps) + β_j`,
/// the full convolution (not channel by channel), by brute force with zero padding. `prefix`
/// names the block (`inception4a.branch2.1`: keys `{prefix}.conv.weight`, `{prefix}.bn.*`).
#[allow(clippy::too_many_arguments)]
pub fn conv_bn_preactivation(
    sd: &StateDict,
    prefix: &str,
    eps: f64,
    stride: [usize; 2],
    padding: [usize; 2],
    x: &[f32],
    dims: [usize; 4],
    b: usize,
    j: usize,
) -> Vec<f64> {
    let get = |k: &str| {
        sd.get(&format!("{prefix}.{k}"))
            .unwrap_or_else(|| panic!("{prefix}.{k} not in the state dict"))
    };
    let w = get("conv.weight");
    let [_, c_in, h, wd] = dims;
    let (kh, kw) = (w.shape[2], w.shape[3]);
    assert_eq!(w.shape[1], c_in);
    let ho = (h + 2 * padding[0] - kh) / stride[0] + 1;
    let wo = (wd + 2 * padding[1] - kw) / stride[1] + 1;
    let mut out = vec![0f64; ho * wo];
    for (o, v) in out.iter_mut().enumerate() {
        let (oy, ox) = (o / wo, o % wo);
        let mut acc = 0f64;
        for i in 0..c_in {
            for ky in 0..kh {
                for kx in 0..kw {
                    let iy = (oy * stride[0] + ky) as isize - padding[0] as isize;
                    let ix = (ox * stride[1] + kx) as isize - padding[1] as isize;
                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                        let xv = x[((b * c_in + i) * h + iy as usize) * wd + ix as usize];
                        let wv = w.data[((j * c_in + i) * kh + ky) * kw + kx];
                        acc += f64::from(xv) * f64::from(wv);
                    }
                }
            }
        }
        *v = acc;
    }
    let (g, be) = (
        f64::from(get("bn.weight").data[j]),
        f64::from(get("bn.bias").data[j]),
    );
    let (m, var) = (
        f64::from(get("bn.running_mean").data[j]),
        f64::from(get("bn.running_var").data[j]),
    );
    let scale = g / (var + eps).sqrt();
    out.iter().map(|&v| (v - m) * scale + be).collect()
}

/// A hop's input and the recorded tensor its output lands in, read back to the host.
pub struct HopData {
    /// The hop's input `[B, C_in, H, W]`.
    pub x: Vec<f32>,
    /// Its dims.
    pub dims: [usize; 4],
    /// The tensor holding the hop's output channels (after ReLU): the inner tap of a first hop
    /// of a two-hop path, else the summary layer output.
    pub target: Vec<f32>,
    /// Its dims.
    pub tdims: [usize; 4],
    /// The channel offset of the hop's output channel 0 in `target`.
    pub offset: usize,
}

/// [`HopData`] of `hop` of `path`, from `rec`; `out` is the path's summary layer output
/// (`[B, C, H, W]` host values and dims).
pub fn hop_data(
    rec: &summit_model::Recording,
    hop: &ConvHop,
    path: &summit_model::ConvPath,
    out: (&[f32], [usize; 4]),
) -> HopData {
    let host = |id: summit_model::TapId, what: &str| {
        let t = rec.tap(id).clone();
        let dims = t.dims();
        (summit_model::to_host(t, what).unwrap(), dims)
    };
    let (x, dims) = host(hop.input, "hop input");
    let (target, tdims, offset) = match hop.output {
        Some(id) => {
            let (t, d) = host(id, "inner");
            (t, d, 0)
        }
        None => (out.0.to_vec(), out.1, path.out_offset),
    };
    HopData {
        x,
        dims,
        target,
        tdims,
        offset,
    }
}
