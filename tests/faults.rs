//! The defects fault injection found (issue "Nothing silently wrong, nothing lost"), each with
//! its test: a finished output is right or absent, an interrupted run loses nothing.
//!
//! Library-level cases run the pipeline on the first images of the embedded default; the
//! cases about processes (signals, kills mid-export, concurrent shards, exit codes and error
//! text) run the examples as child processes (`cargo test` builds them beside this binary).
//! The data-level defects (symbolic-link loops, decompression bombs, an odd-sized first image)
//! are tested in `crates/summit-data/tests`; `scripts/fault_inject.py` kills runs at chosen
//! system calls with strace and compares resumed outputs byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Head, config, head, meta, model};
use summit_core::data::{Dataset, Image};
use summit_core::{
    CheckpointConfig, CoreError, Pipeline, Relabeled, WriteOptions, merge_outputs, read_manifest,
};

fn no_patches() -> WriteOptions {
    WriteOptions {
        patches: false,
        ..WriteOptions::default()
    }
}

/// An example binary built beside this test binary (`target/<profile>/examples/<name>`).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(Path::parent).unwrap();
    let p = profile.join("examples").join(name);
    assert!(
        p.exists(),
        "{} is missing: `cargo test` builds the examples (run it without --test filters)",
        p.display()
    );
    p
}

/// The fashion_mnist example over the first `limit` images, no attribution and no feature
/// visualization unless `extra` asks for them.
fn fashion(out: &Path, limit: usize, extra: &[&str]) -> Command {
    let mut c = fashion_all(out, extra);
    c.args(["--limit", &limit.to_string()]);
    c
}

/// [`fashion`] over all 10,000 images.
fn fashion_all(out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(example("fashion_mnist"));
    c.arg("--out")
        .arg(out)
        .args(["--embedding", "pca"])
        .args(["--batch-size", "64"])
        .env("SUMMIT_CACHE_DIR", out.with_extension("cache"))
        .stdin(Stdio::null());
    let has = |flag: &str| extra.contains(&flag);
    if !has("--attribution") {
        c.args(["--attribution", "off"]);
    }
    if !has("--feature-vis") {
        c.args(["--feature-vis", "off"]);
    }
    c.args(extra);
    c
}

fn run_ok(mut c: Command) -> Output {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

fn run_err(mut c: Command) -> (i32, String) {
    let out = c.output().unwrap();
    assert!(!out.status.success(), "{c:?} succeeded but should fail");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An error line as a user reads it: no Rust debug structs, no "Caused by" repeating it.
fn assert_clean_error(stderr: &str) {
    for bad in ["Caused by", "Os {", "Io {", "kind:", "{ inner"] {
        assert!(!stderr.contains(bad), "error text holds `{bad}`: {stderr}");
    }
    assert!(stderr.contains("error: "), "{stderr}");
}

/// The names of the entries of `dir`.
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Sends `signal` (e.g. `INT`) to a process.
fn signal(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Waits (polling) until `ready` holds, at most two minutes.
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

// ---- 1, 2: merging shards ----------------------------------------------------------------

/// Shard outputs as three concurrent processes write them; incomplete, mixed-split, limited and
/// other-folder shard sets are refused naming the fault; the complete set merges.
#[test]
fn shard_sets_must_be_whole_and_of_one_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = |s: &str| tmp.path().join(s);
    let n = 10_000;
    let shard = |name: &str, spec: &str, extra: &[&str]| {
        let mut c = fashion_all(&dir(name), &["--shard", spec]);
        c.args(extra).env("RAYON_NUM_THREADS", "1");
        c
    };
    let children: Vec<_> = [
        shard("s0", "0/3", &[]),
        shard("s1", "1/3", &[]),
        shard("s2", "2/3", &[]),
    ]
    .into_iter()
    .map(|mut c| {
        c.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    })
    .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    run_ok(shard("h1", "1/2", &[]));
    // a limited shard: `--limit` applies after the shard (the first 50 images of shard 1/3)
    run_ok(fashion(&dir("l1"), 50, &["--shard", "1/3"]));

    let merge = |parts: &[&str], out: &str| {
        let mut c = Command::new(example("merge_shards"));
        c.arg("--out").arg(dir(out));
        for p in parts {
            c.arg(dir(p));
        }
        c
    };
    let (code, err) = run_err(merge(&["s0", "s2"], "m1"));
    assert_eq!(code, 1);
    assert!(err.contains("incomplete") && err.contains("1/3"), "{err}");
    assert_clean_error(&err);
    let (_, err) = run_err(merge(&["s0", "s1", "h1"], "m2"));
    assert!(
        err.contains("different splits") || err.contains("split into"),
        "{err}"
    );
    let (_, err) = run_err(merge(&["s0", "l1", "s2"], "m3"));
    assert!(err.contains("--limit 50"), "{err}");
    let (_, err) = run_err(merge(&["s0", "s1", "s1", "s2"], "m4"));
    assert!(err.contains("both shard 1"), "{err}");
    for m in ["m1", "m2", "m3", "m4"] {
        assert!(!dir(m).exists(), "a refused merge wrote {m}");
    }
    run_ok(merge(&["s2", "s0", "s1"], "whole"));
    let m = read_manifest(&dir("whole")).unwrap();
    assert_eq!(m.total_images, n as u64);
}

/// Writes the first `per_class` images of every class of the embedded test set as PNGs into
/// `root/{class}/`, starting at the `skip`-th image of each class.
fn image_folder(root: &Path, per_class: usize, skip: usize) {
    let data = head(2000);
    let names = data.class_names().to_vec();
    let mut taken = vec![0usize; names.len()];
    for i in 0..data.len() {
        let l = data.labels()[i];
        taken[l] += 1;
        if taken[l] <= skip || taken[l] > skip + per_class {
            continue;
        }
        let img = data.load(i).unwrap();
        let rgb = summit_core::to_rgb(&img, data.transform()).unwrap();
        let d = root.join(summit_core::export::sanitize_name(&names[l]));
        std::fs::create_dir_all(&d).unwrap();
        image::DynamicImage::ImageRgb8(rgb)
            .to_luma8()
            .save(d.join(format!("{i:05}.png")))
            .unwrap();
    }
}

fn folder(root: &Path) -> Arc<summit_core::ImageFolder> {
    Arc::new(
        summit_core::ImageFolder::open(root, summit_core::Preprocess::fashion_mnist()).unwrap(),
    )
}

#[test]
fn shards_of_another_folder_with_the_same_name_do_not_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a/images");
    let b = tmp.path().join("b/images");
    image_folder(&a, 4, 0);
    image_folder(&b, 4, 4);
    let (m, device) = model();
    let mut outs = Vec::new();
    for (i, root) in [(0, &a), (1, &b)] {
        let ds = folder(root);
        let meta = summit_core::RunMeta {
            dataset_name: "images".into(),
            dataset_source: root.canonicalize().unwrap().display().to_string(),
            classes: ds
                .class_names()
                .iter()
                .map(summit_core::ClassInfo::new)
                .collect(),
        };
        let mut c = config();
        c.attribution = None;
        c.shard = Some((i, 2));
        let out = tmp.path().join(format!("out{i}"));
        Pipeline::new(&m, ds, c, device.clone())
            .unwrap()
            .run(&out, &meta, None, &no_patches())
            .unwrap();
        outs.push(out);
    }
    let err = merge_outputs(&outs, &tmp.path().join("merged"), &no_patches())
        .unwrap_err()
        .to_string();
    assert!(err.contains("dataset source"), "{err}");
    assert!(!tmp.path().join("merged").exists());
    // the same folder's two shards merge
    let ds = folder(&a);
    let fp = summit_core::dataset_fingerprint(ds.as_ref());
    assert_ne!(fp, summit_core::dataset_fingerprint(folder(&b).as_ref()));
    assert_eq!(
        read_manifest(&outs[0])
            .unwrap()
            .dataset
            .fingerprint
            .as_deref(),
        Some(fp.as_str())
    );
}

// ---- 8: an odd-sized image first in its class --------------------------------------------------

#[test]
fn an_odd_sized_first_image_is_skipped_naming_its_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("images");
    image_folder(&root, 3, 0);
    let first_class = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let tiny = first_class.join("!tiny.png");
    image::GrayImage::new(1, 1).save(&tiny).unwrap();
    let ds = folder(&root);
    assert_eq!(ds.len(), 31);
    let (m, device) = model();
    let mut c = config();
    c.attribution = None;
    let meta = summit_core::RunMeta {
        dataset_name: "images".into(),
        dataset_source: root.display().to_string(),
        classes: ds
            .class_names()
            .iter()
            .map(summit_core::ClassInfo::new)
            .collect(),
    };
    let report = Pipeline::new(&m, ds, c, device)
        .unwrap()
        .run(&tmp.path().join("out"), &meta, None, &no_patches())
        .unwrap();
    let pass = report.pass.unwrap();
    assert_eq!(pass.images, 30);
    assert_eq!(pass.skipped.len(), 1);
    let s = &pass.skipped[0];
    assert!(s.source.contains("!tiny.png"), "{s}");
    assert!(
        s.reason.contains("[1, 1, 1]") && s.reason.contains("[1, 28, 28]"),
        "{s}"
    );
}

// ---- 3, 11, 13: checkpoints tied to the run ----------------------------------------------

#[test]
fn resuming_with_a_reordered_class_list_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("images");
    image_folder(&root, 8, 0);
    let inner = folder(&root);
    let names = inner.class_names().to_vec();
    let mut swapped = names.clone();
    swapped.swap(0, 1);
    let (m, device) = model();
    let ck = tmp.path().join("ck.bin");
    let mut c = config();
    c.attribution = None;
    c.batch_size = 16;
    c.max_batches = Some(1);
    c.checkpoint = Some(CheckpointConfig {
        path: ck.clone(),
        every_batches: 1,
    });
    let first = Relabeled::new(inner.clone(), &names, "list A").unwrap();
    let p = Pipeline::new(&m, Arc::new(first), c.clone(), device.clone()).unwrap();
    assert!(!p.aggregate().unwrap().complete);
    let second = Relabeled::new(inner, &swapped, "list B").unwrap();
    let p = Pipeline::new(&m, Arc::new(second), c, device).unwrap();
    let err = p.aggregate().unwrap_err().to_string();
    assert!(
        err.contains("class list") && err.contains(&ck.display().to_string()),
        "{err}"
    );
}

#[test]
fn resuming_with_other_picks_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, device) = model();
    let data = head(256);
    let ck = tmp.path().join("ck.bin");
    let mut c = config();
    c.attribution = None;
    c.max_batches = Some(1);
    c.checkpoint = Some(CheckpointConfig {
        path: ck.clone(),
        every_batches: 1,
    });
    let p = Pipeline::new(&m, data.clone(), c.clone(), device.clone()).unwrap();
    assert!(!p.aggregate().unwrap().complete);
    c.picks.per_class = 3;
    let p = Pipeline::new(&m, data.clone(), c.clone(), device.clone()).unwrap();
    let err = p.aggregate().unwrap_err().to_string();
    assert!(
        err.contains("--attribution-per-class") && err.contains("10 in the checkpoint, 3 now"),
        "{err}"
    );
    // a --limit mismatch names the images, not whole structs
    c.picks.per_class = 10;
    c.limit = Some(200);
    let p = Pipeline::new(&m, data, c, device).unwrap();
    let err = p.aggregate().unwrap_err().to_string();
    assert!(err.contains("256 in the checkpoint, 200 now"), "{err}");
    assert!(!err.contains("RunKey"), "{err}");
}

#[test]
fn stale_checkpoint_temporaries_are_removed_on_start() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("ck.bin");
    // what a kill during a checkpoint write leaves: its temporary, full size
    let stale = tmp.path().join(".ck.bin.summit-tmp-Ab12Cd");
    std::fs::write(&stale, vec![7u8; 6 << 20]).unwrap();
    let other = tmp.path().join(".other.bin.summit-tmp-Xy34Zw");
    std::fs::write(&other, b"another checkpoint's").unwrap();
    let (m, device) = model();
    let mut c = config();
    c.attribution = None;
    c.max_batches = Some(1);
    c.checkpoint = Some(CheckpointConfig {
        path: ck.clone(),
        every_batches: 1,
    });
    let p = Pipeline::new(&m, head(128), c, device).unwrap();
    p.aggregate().unwrap();
    assert!(!stale.exists(), "the stale temporary is still there");
    assert!(other.exists(), "another checkpoint's temporary was removed");
    assert!(ck.exists());
    let left: Vec<_> = entries(tmp.path())
        .into_iter()
        .filter(|n| n.starts_with(".ck.bin"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

// ---- 9, 10: problems found before the pass -------------------------------------------------

#[test]
fn a_checkpoint_inside_the_output_is_refused_before_the_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (m, device) = model();
    let data = head(128);
    let mut c = config();
    c.checkpoint = Some(CheckpointConfig {
        path: tmp.path().join("out/../out/ck.bin"),
        every_batches: 1,
    });
    let p = Pipeline::new(&m, data.clone(), c, device).unwrap();
    let err = p
        .run(&out, &meta(&data), None, &no_patches())
        .unwrap_err()
        .to_string();
    assert!(err.contains("inside the output directory"), "{err}");
    assert!(!tmp.path().join("out/ck.bin").exists(), "the pass ran");
}

/// A dataset of `n` unreadable images.
struct Broken(Vec<usize>, Vec<String>);

impl Dataset for Broken {
    fn class_names(&self) -> &[String] {
        &self.1
    }
    fn labels(&self) -> &[usize] {
        &self.0
    }
    fn source(&self, index: usize) -> String {
        format!("broken-{index}.png")
    }
    fn load(&self, index: usize) -> summit_core::data::Result<Image> {
        Err(summit_core::data::DataError::Decode {
            item: self.source(index),
            reason: "corrupt".into(),
        })
    }
    fn sample_dims(&self) -> Option<[usize; 3]> {
        None
    }
}

#[test]
fn runs_that_process_no_image_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, device) = model();
    let data = head(64);
    let names = data.class_names().to_vec();
    let run = |ds: Arc<dyn Dataset>, c: summit_core::Config| -> CoreError {
        let out = tmp.path().join("out");
        let p = Pipeline::new(&m, ds, c, device.clone()).unwrap();
        let e = p.run(&out, &meta(&data), None, &no_patches()).unwrap_err();
        assert!(!out.exists(), "an empty analysis was written");
        e
    };
    let mut c = config();
    c.attribution = None;
    c.limit = Some(0);
    let e = run(data.clone(), c.clone());
    assert!(matches!(e, CoreError::NothingToDo(_)), "{e}");
    // a class without images
    let mut only = config();
    only.attribution = None;
    let missing = (0..10).find(|c| !data.labels().contains(c));
    if let Some(class) = missing {
        only.classes = Some(vec![class]);
        assert!(matches!(run(data.clone(), only), CoreError::NothingToDo(_)));
    }
    let skipped_first: Arc<dyn Dataset> = Arc::new(Broken(vec![0, 1, 2, 3, 4, 5], names.clone()));
    c.limit = None;
    let e = run(skipped_first, c);
    let text = e.to_string();
    assert!(
        matches!(e, CoreError::NothingToDo(_))
            && text.contains("all 6")
            && text.contains("broken-0.png"),
        "{text}"
    );
}

#[test]
fn a_class_without_images_in_the_run_is_nothing_to_do() {
    // the first 64 test images hold every class; a subset of class 0 only, asked for class 1
    let data = head(64);
    let zeros: Vec<usize> = (0..64).filter(|&i| data.labels()[i] == 0).collect();
    let sub: Arc<dyn Dataset> = Arc::new(common::Subset::new(data.clone(), zeros));
    let (m, device) = model();
    let mut c = config();
    c.attribution = None;
    c.classes = Some(vec![1]);
    let tmp = tempfile::tempdir().unwrap();
    let p = Pipeline::new(&m, sub, c, device).unwrap();
    let e = p
        .run(&tmp.path().join("out"), &meta(&data), None, &no_patches())
        .unwrap_err();
    assert!(matches!(e, CoreError::NothingToDo(_)), "{e}");
}

// ---- 15: interrupts --------------------------------------------------------------------------

/// The embedded images, raising a stop flag when image `at` is loaded.
struct StopAt {
    inner: Arc<Head>,
    at: usize,
    flag: Arc<AtomicBool>,
}

impl Dataset for StopAt {
    fn class_names(&self) -> &[String] {
        self.inner.class_names()
    }
    fn labels(&self) -> &[usize] {
        self.inner.labels()
    }
    fn source(&self, index: usize) -> String {
        self.inner.source(index)
    }
    fn load(&self, index: usize) -> summit_core::data::Result<Image> {
        if index == self.at {
            self.flag.store(true, Ordering::SeqCst);
        }
        self.inner.load(index)
    }
    fn sample_dims(&self) -> Option<[usize; 3]> {
        self.inner.sample_dims()
    }
}

#[test]
fn a_stopped_pass_checkpoints_and_resumes_to_the_same_aggregates() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, device) = model();
    let data = head(640);
    let flag = Arc::new(AtomicBool::new(false));
    let stopping: Arc<dyn Dataset> = Arc::new(StopAt {
        inner: data.clone(),
        at: 200,
        flag: flag.clone(),
    });
    let ck = tmp.path().join("ck.bin");
    let mut c = config();
    c.attribution = None;
    c.checkpoint = Some(CheckpointConfig {
        path: ck.clone(),
        every_batches: 1000,
    });
    let out = tmp.path().join("out");
    let p = Pipeline::new(&m, stopping, c.clone(), device.clone())
        .unwrap()
        .with_stop(flag.clone());
    let e = p.run(&out, &meta(&data), None, &no_patches()).unwrap_err();
    let CoreError::Interrupted {
        processed, total, ..
    } = &e
    else {
        panic!("{e}")
    };
    assert!(*processed > 0 && *processed < 640 && *total == 640, "{e}");
    assert!(e.to_string().contains("run the same command again"), "{e}");
    assert!(ck.exists() && !out.exists());
    // resumed: the rest, then the same aggregates as one uninterrupted pass
    let p = Pipeline::new(&m, data.clone(), c.clone(), device.clone()).unwrap();
    let resumed = p.aggregate().unwrap();
    assert_eq!(resumed.resumed_from, *processed);
    c.checkpoint = None;
    let whole = Pipeline::new(&m, data, c, device)
        .unwrap()
        .aggregate()
        .unwrap();
    let (a, b) = (tmp.path().join("a.bin"), tmp.path().join("b.bin"));
    resumed.aggregates.save(&a).unwrap();
    whole.aggregates.save(&b).unwrap();
    assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
}

/// SIGINT and SIGTERM to the example: the batch in flight finishes, the checkpoint is written,
/// the exit code is 130 with a message saying how to resume; the same command then resumes
/// and its aggregates equal an uninterrupted run's byte for byte.
#[test]
fn signals_checkpoint_and_the_same_command_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 5000;
    let whole = tmp.path().join("whole");
    run_ok(fashion(&whole, n, &[]));
    for sig in ["INT", "TERM"] {
        let out = tmp.path().join(format!("out-{sig}"));
        let ck = tmp.path().join(format!("ck-{sig}.bin"));
        let cmd = || {
            let mut c = fashion(&out, n, &["--checkpoint-every", "1"]);
            c.arg("--checkpoint").arg(&ck);
            c
        };
        let mut child = cmd()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for("the first checkpoint", || ck.exists());
        signal(child.id(), sig);
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(130), "SIG{sig}: {err}");
        assert!(
            err.contains("interrupted after") && err.contains("run the same command again"),
            "{err}"
        );
        assert_clean_error(&err);
        assert!(!out.exists(), "an interrupted run wrote its output");
        let again = run_ok(cmd());
        let stdout = String::from_utf8_lossy(&again.stdout);
        assert!(stdout.contains("resumed from the checkpoint"), "{stdout}");
        assert_eq!(
            std::fs::read(out.join("aggregates.bin")).unwrap(),
            std::fs::read(whole.join("aggregates.bin")).unwrap(),
            "SIG{sig}: the resumed aggregates differ from one uninterrupted run"
        );
    }
}

// ---- 6, 7, 12: the output is written whole, with regular modes --------------------------------

/// The files under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The umask of this process (from /proc).
fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

/// Killed during attribution or feature visualization (after images.json is written, before
/// the manifest), a first run leaves no output, and a `--force` rerun leaves the previous one
/// intact; the manifest of a complete output lists every file it holds, all with a regular
/// file's mode.
#[test]
fn a_kill_before_the_manifest_leaves_the_previous_output_or_none() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let n = 400;
    let full = ["--attribution", "grad-cam", "--feature-vis", "vertices"];
    let kill_after_images = |force: bool| {
        let mut c = fashion(&out, n, &full);
        if force {
            c.arg("--force");
        }
        let mut child = c
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let staged = || {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the run ended ({status}) before it was killed");
            }
            std::fs::read_dir(tmp.path()).unwrap().any(|e| {
                let e = e.unwrap();
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".out.summit-new-")
                    && e.path().join("images.json").exists()
            })
        };
        wait_for("images.json in the staging directory", staged);
        child.kill().unwrap();
        child.wait().unwrap();
    };
    kill_after_images(false);
    assert!(!out.exists(), "a killed first run left an output");

    let first = run_ok(fashion(&out, n, &full));
    assert!(String::from_utf8_lossy(&first.stdout).contains("feature"));
    let before = tree(&out);
    let m = read_manifest(&out).unwrap();
    let listed: Vec<&str> = m.files.iter().map(String::as_str).collect();
    let held: Vec<&str> = before.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        listed, held,
        "the manifest lists exactly the files the output holds"
    );
    for f in [
        "images.json",
        "feature-vis.json",
        "view/images.js",
        "view/featvis.js",
    ] {
        assert!(listed.contains(&f), "{f} not listed");
    }
    assert!(listed.iter().any(|f| f.starts_with("attribution/")));
    assert!(listed.iter().any(|f| f.starts_with("feature-vis/")));
    assert!(
        !String::from_utf8_lossy(&std::fs::read(out.join("view/images.js")).unwrap())
            .contains("(null)")
    );
    // modes: a regular file's, for the output and the feature-visualization cache
    let want = 0o666 & !umask();
    for root in [out.clone(), out.with_extension("cache")] {
        let mut stack = vec![root];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, want, "{} has mode {mode:o}", p.display());
            }
        }
    }
    // a file of the user's in the output survives --force
    std::fs::write(out.join("notes.txt"), b"mine").unwrap();
    let before = tree(&out);
    kill_after_images(true);
    assert_eq!(
        tree(&out),
        before,
        "a killed --force run changed the previous output"
    );
    // the next run cleans what the killed ones left beside the output, and keeps the notes
    run_ok({
        let mut c = fashion(&out, n, &["--attribution", "grad-cam"]);
        c.arg("--force");
        c
    });
    let names: Vec<String> = entries(tmp.path())
        .into_iter()
        .filter(|n| n.contains("summit-"))
        .collect();
    assert!(names.is_empty(), "left beside the output: {names:?}");
    assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"mine");
    assert!(
        !out.join("feature-vis.json").exists(),
        "a file of the replaced output is left"
    );
    let tmps: Vec<String> = tree(&out)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.contains(".tmp") || p.contains("summit-tmp"))
        .collect();
    assert!(tmps.is_empty(), "{tmps:?}");
}

// ---- 14 and error text -----------------------------------------------------------------------

#[test]
fn bad_arguments_fail_first_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let sheet = tmp.path().join("fv.png");
    let mut c = Command::new(example("feature_vis"));
    c.args(["--layer", "mixed3a", "--channels", "7-2", "--steps", "2"])
        .arg("--sheet")
        .arg(&sheet);
    let (code, err) = run_err(c);
    assert_eq!(code, 1);
    assert!(err.contains("7-2") && err.contains("empty"), "{err}");
    assert!(!sheet.exists());
    assert_clean_error(&err);
    // an I/O error: the output's parent is a file
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let (code, err) = run_err(fashion(&file.join("out"), 64, &[]));
    assert_eq!(code, 1);
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert_clean_error(&err);
    // zero images, from the command line
    let (code, err) = run_err(fashion(&tmp.path().join("none"), 0, &[]));
    assert_eq!(code, 1);
    assert!(err.contains("no image to process"), "{err}");
}
