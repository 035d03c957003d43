//! Shared by the parity tests: the fixtures directory, loading a reference's fixture (or
//! skipping knowingly with `SUMMIT_SKIP_PARITY=1`), recording in `SUMMIT_PARITY_REPORT` that a
//! test ran against it, and the relative L2 error.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use summit_model::StateDict;

/// `crates/summit-attribution/tests/fixtures`.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Records in `SUMMIT_PARITY_REPORT` that `test` ran against `reference`'s fixture
/// (`scripts/check.sh` counts these lines).
pub fn report(reference: &str, test: &str) {
    if let Some(path) = std::env::var_os("SUMMIT_PARITY_REPORT") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(format!("{reference}: summit-attribution {test}\n").as_bytes());
        }
    }
}

/// The fixture `fixtures/{file}` of `reference` (Captum, Quantus, zennit), or `None` when parity
/// tests are knowingly skipped (`SUMMIT_SKIP_PARITY=1`); missing otherwise, a panic saying how
/// to make it (`how`: the script and what it needs).
pub fn fixture(reference: &str, file: &str, how: &str) -> Option<StateDict> {
    let path = fixtures().join(file);
    if path.exists() {
        return Some(StateDict::load(&path).unwrap());
    }
    let msg = format!(
        "{reference} fixture {} missing: run {how} or scripts/check.sh; SUMMIT_SKIP_PARITY=1 \
         skips the parity tests instead",
        path.display()
    );
    if std::env::var("SUMMIT_SKIP_PARITY").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED (SUMMIT_SKIP_PARITY=1): {msg}");
        return None;
    }
    panic!("{msg}");
}

/// `‖got − want‖₂ / ‖want‖₂` in f64.
pub fn rel_l2(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "length");
    let (mut d, mut n) = (0f64, 0f64);
    for (a, b) in got.iter().zip(want) {
        d += (f64::from(*a) - f64::from(*b)).powi(2);
        n += f64::from(*b).powi(2);
    }
    (d / n.max(1e-300)).sqrt()
}
