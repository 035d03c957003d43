//! A 1000-class output (synthetic, InceptionV1's layers) opens in headless Chromium to an
//! interactive first graph (load time printed: 1.3 s on a normal day; a 10 s guard), and the sidebar's similarity sort covers every class.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/scale.rs"]
mod scale;

use std::path::Path;
use std::process::Command;

use summit_export::{WriteOptions, write_output};

/// The page of a 1000-class output opens, draws its first graph and sorts every class by
/// similarity. Its load time is printed (1.3 s on a normal day); the limit is only a guard
/// against pathological slow-downs (a timed test must not fail on a slow machine: 3.4 s on
/// 2026-12-03), `SUMMIT_WEB_LOAD_LIMIT_MS` sets it.
#[test]
fn a_1000_class_output_opens_and_sorts_every_class() {
    let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing = Command::new("node").arg("--version").output().is_err()
        || !Path::new(&chromium).exists()
        || !browser.join("node_modules/playwright-core").exists();
    if missing {
        assert!(
            std::env::var("SUMMIT_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "browser test required but node, chromium or playwright-core is missing"
        );
        eprintln!("SKIPPED a_1000_class_output_opens_and_sorts_every_class: no browser tools");
        return;
    }
    let (agg, graphs, overview) = scale::build();
    let motifs = summit_graph::MotifSet::mine(
        &graphs.iter().enumerate().collect::<Vec<_>>(),
        &summit_graph::MotifParams::default(),
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let options = WriteOptions {
        force: true,
        summit_format: false,
        patches: false,
    };
    write_output(
        &dir,
        &scale::input(&agg, &graphs, &overview, &motifs),
        &options,
    )
    .unwrap();
    let html = std::fs::metadata(dir.join("index.html")).unwrap().len();
    let out = Command::new("node")
        .arg(browser.join("load.mjs"))
        .arg(&dir)
        .arg(std::env::var("SUMMIT_WEB_LOAD_LIMIT_MS").unwrap_or_else(|_| "10000".into()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("index.html {:.2} MB\n{stdout}", html as f64 / 1e6);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
