//! InceptionV1 results must not change when the model description grows (SPEC §2.1): the A and
//! I counts, examples and prediction statistics of torchvision GoogLeNet (seeded weights), Lucid
//! InceptionV1 (the lucent parity fixture) and the embedded model, under both presets, hashed
//! and compared with digests committed in `tests/fixtures/inception_digests.txt`.
//! `SUMMIT_WRITE_DIGESTS=1` rewrites that file.
//!
//! The digests were first committed before the general description landed. They were rewritten
//! once, in December 2026, when convolutions on the CPU moved to the host convolution
//! (`summit-model`'s `conv` module, docs/performance.md "Third round"): its FMA chain rounds
//! differently from burn's convolution in the last bits, so a few near-tie selections move.
//! The host convolution gives the same bits on every instruction set, thread count and batch
//! size (its own tests), and the counts stay checked against PyTorch by the parity tests.
//! The two GoogLeNet digests were rewritten again when its strided 7×7 stem moved from
//! burn-flex's small-channel convolution to host columns times burn's matmul
//! (`summit-model`'s `im2col` module): a different summation order in the last bits.
//! When the native models became builders of the one model graph (`OnnxModel`, December 6),
//! the embedded and GoogLeNet digests stayed equal bit for bit (the graph runs the same host
//! kernels with the same epilogues, and folds batch norm with the network's own epsilon); the
//! two Lucid digests were rewritten: Lucid InceptionV1 ran plain burn convolutions before and
//! now gets the host convolution (stride 1) and host columns (its strided stem), whose sums
//! round differently in the last bits. Its taps and logits stay checked against lucent
//! (`crates/summit-model/tests/lucid.rs`, relative error below 1e-4), its paths against the
//! branch outputs they reproduce, and the host kernels against f64 references (their own
//! tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use summit_core::model::burn::tensor::{Tensor, TensorData};
use summit_core::pipeline::aggregate_batch;
use summit_core::{Aggregates, Config, Device, Summarizable, aggregate_params};

fn digest(aggs: &Aggregates) -> String {
    let mut h = blake3::Hasher::new();
    let p = aggs.params();
    for l in 0..p.layers.len() {
        let a = aggs.activation_matrix(l).unwrap();
        h.update(format!("A{l}{:?}", a.dim()).as_bytes());
        for v in a.iter() {
            h.update(&v.to_le_bytes());
        }
        for (pi, path) in aggs.paths(l).unwrap().iter().enumerate() {
            for (hi, hop) in path.hops.iter().enumerate() {
                h.update(format!("I{l}.{pi}.{hi}[{},{}]", hop.c_out(), hop.c_in()).as_bytes());
                for class in 0..hop.num_classes() {
                    for j in 0..hop.c_out() {
                        if let Some(row) = hop.row(class, j) {
                            for (i, c) in row.iter() {
                                h.update(
                                    &[class as u32, j as u32, i, c]
                                        .map(u32::to_le_bytes)
                                        .concat(),
                                );
                            }
                        }
                    }
                }
            }
        }
        for c in 0..aggs.examples().channels()[l] {
            for e in aggs.examples().get(l, c).unwrap() {
                h.update(format!("E{l}.{c}:{e:?}").as_bytes());
            }
        }
    }
    for c in 0..p.num_classes {
        h.update(
            format!(
                "C{c}:{}:{}",
                aggs.class_images()[c],
                aggs.class_top1_correct()[c]
            )
            .as_bytes(),
        );
        for v in aggs.probability_histogram(c).unwrap() {
            h.update(&v.to_le_bytes());
        }
    }
    h.finalize().to_hex().to_string()
}

fn run(model: &dyn Summarizable, config: &Config, images: usize, seed: u64) -> String {
    let desc = model.description();
    let mut aggs = Aggregates::new(aggregate_params(desc, config).unwrap()).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let [c, hh, ww] = [desc.input.channels, desc.input.height, desc.input.width];
    let n = c * hh * ww;
    let device = Device::flex();
    for b0 in (0..images).step_by(4) {
        let b = 4.min(images - b0);
        let data: Vec<f32> = (0..b * n)
            .map(|_| rng.random::<f32>() * 2.0 - 1.0)
            .collect();
        let labels: Vec<usize> = (0..b)
            .map(|_| rng.random_range(0..desc.num_classes))
            .collect();
        let ids: Vec<u64> = (b0..b0 + b).map(|i| i as u64).collect();
        let x = Tensor::<4>::from_data(TensorData::new(data, [b, c, hh, ww]), &device);
        aggregate_batch(
            model,
            config.hop_input,
            &mut aggs,
            x,
            &ids,
            &labels,
            "digest batch",
        )
        .unwrap();
    }
    digest(&aggs)
}

fn configs() -> [(&'static str, Config); 2] {
    let paper = Config::paper();
    let mut s2019 = Config::summit2019();
    s2019.excluded.clear();
    [("paper", paper), ("summit2019", s2019)]
}

fn fixture_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inception_digests.txt")
}

#[test]
fn inception_aggregates_match_the_committed_digests() {
    let device = Device::flex();
    let mut got = BTreeMap::new();
    let fashion = summit_core::FashionInception::embedded(&device).unwrap();
    let googlenet =
        summit_core::model::GoogLeNet::seeded(12, 3, Default::default(), &device).unwrap();
    let lucid_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("crates/summit-model/tests/fixtures/lucent/inceptionv1.pth");
    let lucid = if lucid_path.exists() {
        Some(summit_core::model::LucidInceptionV1::load(&lucid_path, &device).unwrap())
    } else if std::env::var_os("SUMMIT_SKIP_PARITY").is_some() {
        None
    } else {
        panic!(
            "{} is missing: run crates/summit-model/tests/fixtures/make_lucent.py (or set SUMMIT_SKIP_PARITY=1)",
            lucid_path.display()
        );
    };
    for (preset, config) in configs() {
        got.insert(format!("fashion/{preset}"), run(&fashion, &config, 24, 1));
        got.insert(
            format!("googlenet/{preset}"),
            run(&googlenet, &config, 4, 2),
        );
        if let Some(lucid) = &lucid {
            got.insert(format!("lucid/{preset}"), run(lucid, &config, 4, 3));
        }
    }
    let text: String = got.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
    if std::env::var_os("SUMMIT_WRITE_DIGESTS").is_some() {
        std::fs::write(fixture_file(), &text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(fixture_file()).unwrap();
    let want: BTreeMap<&str, &str> = want.lines().filter_map(|l| l.split_once(' ')).collect();
    for (k, v) in &got {
        assert_eq!(
            want.get(k.as_str()),
            Some(&v.as_str()),
            "digest of {k} changed"
        );
    }
    if lucid.is_some() {
        assert_eq!(want.len(), got.len(), "every committed digest was checked");
    }
}
