//! Runs a headless-Chromium script of this folder (shared by the test trees that check pages in
//! a browser: `tests/common/mod.rs`, `crates/summit-cli/tests/serve.rs`, included with
//! `#[path]`).

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

/// Runs `script` of this folder with `args` and asserts that it succeeds; without node,
/// Chromium or playwright-core it says it skipped, and fails when `SUMMIT_REQUIRE_BROWSER=1`
/// (as `.ci/run` sets).
#[allow(clippy::unwrap_used)]
pub fn run_browser_script<A: AsRef<OsStr>>(script: &str, args: &[A]) {
    // this folder, from the root package or from a crate beside summit-export
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let browser = [
        "crates/summit-export/tests/browser",
        "../summit-export/tests/browser",
    ]
    .map(|p| root.join(p))
    .into_iter()
    .find(|p| p.exists())
    .unwrap_or_else(|| root.join("crates/summit-export/tests/browser"));
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing = if Command::new("node").arg("--version").output().is_err() {
        Some("node not found".to_string())
    } else if !Path::new(&chromium).exists() {
        Some(format!("{chromium} not found"))
    } else if !browser.join("node_modules/playwright-core").exists() {
        Some("playwright-core not installed".into())
    } else {
        None
    };
    if let Some(why) = missing {
        assert!(
            std::env::var("SUMMIT_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "browser check {script} required but {why}"
        );
        eprintln!("SKIPPED browser check {script}: {why}");
        return;
    }
    let out = Command::new("node")
        .arg(browser.join(script))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "browser check {script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
