//! Shards as a Slurm job array: three concurrent processes, each given only the environment
//! Slurm gives an array task (`SLURM_ARRAY_TASK_ID`, `SLURM_ARRAY_TASK_COUNT`,
//! `SLURM_ARRAY_TASK_MIN`), pick their shard with `summit_cli::args::shard_or_slurm(None)`, run
//! the pipeline on the first 300 embedded test images and write their outputs; their merge
//! equals one run over all the images.
//!
//! The processes are this test binary itself, started with the ignored test `shard_worker`
//! (`docs/slurm.md` shows the same with `sbatch` and the examples).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{config, head, meta, model};
use summit_cli::args::shard_or_slurm;
use summit_core::{Aggregates, Pipeline, WriteOptions};

const N: usize = 300;
const TASKS: usize = 3;
/// Array ids as `--array=4-6` gives them (not starting at 0).
const FIRST_ID: usize = 4;

#[test]
#[ignore = "a child process of slurm_job_array_shards_merge_to_one_run (needs its environment)"]
fn shard_worker() {
    let out = PathBuf::from(
        std::env::var("SUMMIT_TEST_SHARD_OUT")
            .expect("started by slurm_job_array_shards_merge_to_one_run, which sets it"),
    );
    let shard = shard_or_slurm(None).unwrap();
    assert!(shard.is_some(), "no Slurm array environment");
    let (m, device) = model();
    let data = head(N);
    let mut c = config();
    c.shard = shard;
    let p = Pipeline::new(&m, data.clone(), c, device).unwrap();
    let opts = WriteOptions {
        patches: false,
        ..WriteOptions::default()
    };
    p.run(&out, &meta(&data), None, &opts).unwrap();
}

#[test]
fn slurm_job_array_shards_merge_to_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let dirs: Vec<PathBuf> = (0..TASKS)
        .map(|i| tmp.path().join(format!("task{i}")))
        .collect();
    // all tasks at once, as the scheduler starts them
    let children: Vec<_> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "shard_worker",
                    "--ignored",
                    "--test-threads",
                    "1",
                ])
                .env("SUMMIT_TEST_SHARD_OUT", dir)
                .env("SLURM_ARRAY_TASK_ID", (FIRST_ID + i).to_string())
                .env("SLURM_ARRAY_TASK_MIN", FIRST_ID.to_string())
                .env("SLURM_ARRAY_TASK_COUNT", TASKS.to_string())
                .env("RAYON_NUM_THREADS", "1")
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "task {i} failed: {out:?}");
    }
    // each task took its own shard: ⌈300/3⌉ images apiece, no image twice
    let mut seen = 0;
    for (i, d) in dirs.iter().enumerate() {
        let m = summit_core::read_manifest(d).unwrap();
        assert_eq!(
            m.parameters["config"]["shard"],
            serde_json::json!([i, TASKS])
        );
        seen += m.total_images;
    }
    assert_eq!(seen, N as u64);
    let merged_dir = tmp.path().join("merged");
    summit_core::merge_outputs(&dirs, &merged_dir, &WriteOptions::default()).unwrap();
    let merged = Aggregates::load(merged_dir.join("aggregates.bin")).unwrap();

    let (m, device) = model();
    let one = Pipeline::new(&m, head(N), config(), device)
        .unwrap()
        .aggregate()
        .unwrap()
        .aggregates;
    assert!(merged == one, "merged shards differ from one run");
    // byte for byte, as one run writes them
    let single = tmp.path().join("single.bin");
    one.save(&single).unwrap();
    assert_eq!(
        std::fs::read(&single).unwrap(),
        std::fs::read(merged_dir.join("aggregates.bin")).unwrap()
    );
}
