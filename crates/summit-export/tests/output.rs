//! The output directory: files, manifest, graph round trip, Summit format,
//! patches, atomic writes and `--force`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{CLASSES, Fixture, IMAGES_PER_CLASS, image_of};
use summit_export::{
    ExportError, WriteOptions, check_summit_format, read_graph, read_manifest, write_comparison,
    write_output,
};

/// `(channel, count, prev_channels)` of an ag-file vertex.
type AgVertex = (u64, u64, Vec<(u64, f64)>);

fn all_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(
                    p.strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    out.sort();
    out
}

fn write(
    dir: &Path,
    fx: &Fixture,
    force: bool,
) -> Result<summit_export::OutputSummary, ExportError> {
    let image: &dyn Fn(u64) -> Option<image::RgbImage> = &image_of;
    write_output(
        dir,
        &fx.input(image),
        &WriteOptions {
            force,
            summit_format: true,
            patches: true,
        },
    )
}

#[test]
fn writes_every_file_atomically_and_lists_them() {
    let fx = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let summary = write(&dir, &fx, false).unwrap();
    let files = all_files(&dir);
    // no temporary files left anywhere
    for f in &files {
        let name = f.rsplit('/').next().unwrap();
        assert!(
            !name.starts_with(".tmp") && !name.starts_with(".summit-tmp-"),
            "left over {f}"
        );
    }
    // the manifest lists exactly the files on disk
    assert_eq!(summary.manifest.files, files);
    for f in [
        "manifest.json",
        "aggregates.bin",
        "overview.json",
        "index.html",
        "data/imagenet.json",
    ] {
        assert!(files.contains(&f.to_string()), "{f} missing");
    }
    for c in 0..4 {
        assert!(files.contains(&format!("data/ag/ag-{c}.json")));
    }
    assert!(files.contains(&"graphs/1-T-shirt_top.json".to_string()));
    // the aggregates load back equal
    let back = summit_influence::Aggregates::load(dir.join("aggregates.bin")).unwrap();
    assert_eq!(back, fx.agg);
}

#[test]
fn manifest_records_the_run_and_per_class_statistics() {
    let fx = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), &fx, false).unwrap();
    let m = read_manifest(tmp.path()).unwrap();
    assert_eq!(m.model, "test-inception");
    assert_eq!(m.preset, "paper");
    assert_eq!(m.dataset.images_seen, 40);
    assert_eq!(m.dataset.skipped.len(), 1);
    assert_eq!(m.dataset.skipped[0].reason, "truncated JPEG");
    assert_eq!(m.versions["burn"], "0.22.1");
    assert_eq!(m.versions["summit-export"], env!("CARGO_PKG_VERSION"));
    assert_eq!(m.timings.phases.len(), 2);
    assert_eq!(m.parameters["share"], 0.5);
    assert_eq!(m.total_images, 40);
    // brute force from the per-image records
    let mut correct = [0u64; 4];
    let mut hist = vec![vec![0u64; 10]; 4];
    let mut n = [0u64; 4];
    for &(c, p) in &fx.records {
        n[c] += 1;
        hist[c][((p * 10.0) as usize).min(9)] += 1;
    }
    correct.copy_from_slice(fx.agg.class_top1_correct());
    for (c, s) in m.classes.iter().enumerate() {
        assert_eq!(s.name, CLASSES[c]);
        assert_eq!(s.images, IMAGES_PER_CLASS as u64);
        assert_eq!(s.images, n[c]);
        assert_eq!(s.top1_correct, correct[c]);
        assert_eq!(s.accuracy, Some(correct[c] as f64 / n[c] as f64));
        assert_eq!(s.probability_histogram, hist[c]);
        assert_eq!(s.graph_vertices, fx.graphs[c].num_vertices());
    }
    assert_eq!(m.classes[0].synset.as_deref(), Some("n02114548"));
}

#[test]
fn graph_files_round_trip_exactly() {
    let fx = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();
    let s = write(tmp.path(), &fx, false).unwrap();
    for (c, stats) in s.manifest.classes.iter().enumerate() {
        let g = read_graph(&tmp.path().join(&stats.graph_file)).unwrap();
        assert_eq!(g.class, c);
        assert_eq!(g.name, CLASSES[c]);
        assert_eq!(g.graph, fx.graphs[c]);
    }
    let ov: summit_export::OverviewFile =
        serde_json::from_slice(&std::fs::read(tmp.path().join("overview.json")).unwrap()).unwrap();
    assert_eq!(ov.layers.len(), 3);
    assert_eq!(ov.layers[1].paper_name.as_deref(), Some("mixed3b"));
    assert_eq!(ov.layers[2].embedding.len(), 4);
}

fn read_value(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn summit_format_matches_the_aggregates_and_graphs() {
    let fx = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), &fx, false).unwrap();
    check_summit_format(tmp.path()).unwrap();
    let classes = read_value(&tmp.path().join("data/imagenet.json"));
    let names = ["mixed3a", "mixed3b", "mixed4a"];
    for (c, cv) in classes.as_array().unwrap().iter().enumerate() {
        assert_eq!(cv["target_class"], c);
        assert_eq!(cv["name"], CLASSES[c]);
        assert_eq!(
            cv["synset"],
            if c == 0 {
                "n02114548".to_string()
            } else {
                format!("c{c}")
            }
        );
        // accs: one value per image of the class, its probability of the class quantised
        // to the centre of its 1/100 bin, ascending
        let mut want: Vec<f64> = fx
            .records
            .iter()
            .filter(|r| r.0 == c)
            .map(|r| ((f64::from(r.1) * 100.0).floor().min(99.0) + 0.5) / 100.0)
            .collect();
        want.sort_by(f64::total_cmp);
        let got: Vec<f64> = cv["accs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(got, want);
        for (l, name) in names.iter().enumerate() {
            // brute force: every non-zero count, count descending then channel ascending
            let row = fx.agg.activations().row(l, c).unwrap();
            let mut want = Vec::new();
            for count in (1..=row.iter().copied().max().unwrap_or(0)).rev() {
                for (ch, &n) in row.iter().enumerate() {
                    if n == count {
                        want.push((ch as u64, u64::from(n)));
                    }
                }
            }
            let got: Vec<(u64, u64)> = cv["topChannels"][name]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| (e["c"].as_u64().unwrap(), e["i"].as_u64().unwrap()))
                .collect();
            assert_eq!(got, want, "class {c} layer {name}");
        }
        // ag file: keys last to first, vertices = the graph's
        let text =
            std::fs::read_to_string(tmp.path().join(format!("data/ag/ag-{c}.json"))).unwrap();
        let p5 = text.find("\"mixed4a\"").unwrap();
        let p4 = text.find("\"mixed3b\"").unwrap();
        let p3 = text.find("\"mixed3a\"").unwrap();
        assert!(p5 < p4 && p4 < p3, "layer keys not last to first");
        let ag: serde_json::Value = serde_json::from_str(&text).unwrap();
        for (l, name) in names.iter().enumerate() {
            let got: Vec<AgVertex> = ag[name]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| {
                    (
                        v["channel"].as_u64().unwrap(),
                        v["count"].as_u64().unwrap(),
                        v["prev_channels"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|e| {
                                (
                                    e["prev_channel"].as_u64().unwrap(),
                                    e["inf"].as_f64().unwrap(),
                                )
                            })
                            .collect(),
                    )
                })
                .collect();
            let want: Vec<AgVertex> = fx.graphs[c].layers[l]
                .vertices
                .iter()
                .map(|v| {
                    (
                        u64::from(v.channel),
                        u64::from(v.count),
                        v.prev.iter().map(|&(p, w)| (u64::from(p), w)).collect(),
                    )
                })
                .collect();
            assert_eq!(got, want, "class {c} layer {name}");
        }
    }
}

/// Rewrites `data/ag/ag-0.json` with `f` applied and returns the checker's error.
fn corrupt(f: impl Fn(&mut String)) -> String {
    let fx = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), &fx, false).unwrap();
    let p = tmp.path().join("data/ag/ag-0.json");
    let mut s = std::fs::read_to_string(&p).unwrap();
    f(&mut s);
    std::fs::write(&p, s).unwrap();
    check_summit_format(tmp.path()).unwrap_err().to_string()
}

#[test]
fn summit_check_catches_broken_invariants() {
    // a prev_channel that is not in the layer below
    let e = corrupt(|s| {
        *s = s.replacen(
            "\"prev_channels\":[",
            "\"prev_channels\":[{\"prev_channel\":999,\"inf\":1},",
            1,
        )
    });
    assert!(e.contains("prev_channel 999"), "{e}");
    // an extra key
    let e = corrupt(|s| *s = s.replacen("\"count\"", "\"extra\": 1, \"count\"", 1));
    assert!(e.contains("unexpected [\"extra\"]"), "{e}");
    // layer keys in the wrong order
    let e = corrupt(|s| {
        let v: serde_json::Value = serde_json::from_str(s).unwrap();
        // serde_json's map is sorted: mixed3a, mixed3b, mixed4a (first to last)
        *s = serde_json::to_string(&v).unwrap();
    });
    assert!(e.contains("not in the order last to first"), "{e}");
    // imagenet.json: a topChannels list not sorted by count
    let fx = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), &fx, false).unwrap();
    let p = tmp.path().join("data/imagenet.json");
    let mut v = read_value(&p);
    // a list with at least two different counts
    let (c, layer) = (0..4)
        .flat_map(|c| ["mixed3a", "mixed3b", "mixed4a"].map(|l| (c, l)))
        .find(|&(c, l)| {
            let list = v[c]["topChannels"][l].as_array().unwrap();
            list.len() >= 2 && list[0]["i"] != list[list.len() - 1]["i"]
        })
        .expect("a topChannels list with different counts");
    v[c]["topChannels"][layer].as_array_mut().unwrap().reverse();
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    let e = check_summit_format(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("descending"), "{e}");
}

#[test]
fn patches_are_receptive_field_crops_of_the_top_examples() {
    let fx = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();
    let s = write(tmp.path(), &fx, false).unwrap();
    let ps = s.manifest.patches.clone().unwrap();
    let ex = fx.agg.examples();
    let mut want = BTreeMap::new();
    let mut missing = 0;
    for l in 0..3 {
        let chans: BTreeSet<u32> = fx
            .graphs
            .iter()
            .flat_map(|g| g.layers[l].vertices.iter().map(|v| v.channel))
            .collect();
        for c in chans {
            for (rank, e) in ex.get(l, c as usize).unwrap().iter().take(3).enumerate() {
                if e.image_id == 1039 {
                    missing += 1;
                    continue;
                }
                let name = ["0-inception3a", "1-inception3b", "2-inception4a"][l];
                want.insert(format!("patches/{name}/{c}-{rank}.png"), *e);
            }
        }
    }
    assert_eq!(ps.written, want.len());
    assert_eq!(ps.missing_images, missing);
    for (rel, e) in &want {
        let img = image::open(tmp.path().join(rel)).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (16, 16));
        // cell (h, w) of the 4x4 map has centre 8w+4, 8h+4 in the 32x32 input;
        // the 16 px square around it, shifted inside the image
        let (h, w) = (e.argmax / 4, e.argmax % 4);
        let x0 = (8 * w + 4).saturating_sub(8).min(16);
        let y0 = (8 * h + 4).saturating_sub(8).min(16);
        assert_eq!(
            img.get_pixel(0, 0).0,
            [(x0 * 8) as u8, (y0 * 8) as u8, (e.image_id % 251) as u8],
            "{rel}"
        );
        assert_eq!(
            img.get_pixel(15, 15).0,
            [
                ((x0 + 15) * 8) as u8,
                ((y0 + 15) * 8) as u8,
                (e.image_id % 251) as u8
            ]
        );
    }
}

#[test]
fn existing_output_needs_force_and_force_keeps_foreign_files() {
    let fx = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), &fx, false).unwrap();
    let err = write(tmp.path(), &fx, false).unwrap_err();
    assert!(matches!(err, ExportError::OutputExists { .. }));
    assert!(err.to_string().contains("--force"), "{err}");
    std::fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
    // a stale patch from the previous run must not survive
    std::fs::write(tmp.path().join("patches/0-inception3a/stale.png"), "x").unwrap();
    write(tmp.path(), &fx, true).unwrap();
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("notes.txt")).unwrap(),
        "mine"
    );
    assert!(!tmp.path().join("patches/0-inception3a/stale.png").exists());
    check_summit_format(tmp.path()).unwrap();
}

#[test]
fn force_never_touches_a_directory_that_is_not_an_output() {
    let fx = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("thesis.tex"), "precious").unwrap();
    let err = write(tmp.path(), &fx, true).unwrap_err();
    assert!(matches!(err, ExportError::NotAnOutput { .. }), "{err}");
    assert_eq!(all_files(tmp.path()), vec!["thesis.tex".to_string()]);
    let err = write(tmp.path(), &fx, false).unwrap_err();
    assert!(err.to_string().contains("thesis.tex"), "{err}");
}

#[test]
fn inconsistent_input_is_refused_before_writing() {
    let fx = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let image: &dyn Fn(u64) -> Option<image::RgbImage> = &image_of;
    let mut input = fx.input(image);
    input.graphs = &fx.graphs[..3];
    let e = write_output(&dir, &input, &WriteOptions::default()).unwrap_err();
    assert!(e.to_string().contains("attribution graphs"), "{e}");
    let mut input = fx.input(image);
    input.layers[1].channels = 13;
    let e = write_output(&dir, &input, &WriteOptions::default()).unwrap_err();
    assert!(e.to_string().contains("inception3b"), "{e}");
    let mut input = fx.input(image);
    input.overview.layers[2].embedding.pop();
    let e = write_output(&dir, &input, &WriteOptions::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("embedding points of layer 'inception4a'"),
        "{e}"
    );
    assert!(!dir.exists());
}

#[test]
fn comparison_file_counts_shared_and_distinct_vertices() {
    let fx = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();
    let cmp = summit_graph::compare(&fx.graphs[2], &fx.graphs[3]).unwrap();
    let path = write_comparison(tmp.path(), (2, "brown_bear"), (3, "black_bear"), &cmp).unwrap();
    assert!(path.ends_with("comparisons/2-vs-3.json"));
    let f: summit_export::ComparisonFile =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(f.comparison, cmp);
    for l in 0..3 {
        let a: BTreeSet<u32> = fx.graphs[2].layers[l]
            .vertices
            .iter()
            .map(|v| v.channel)
            .collect();
        let b: BTreeSet<u32> = fx.graphs[3].layers[l]
            .vertices
            .iter()
            .map(|v| v.channel)
            .collect();
        assert_eq!(
            f.vertex_counts[l],
            [
                a.intersection(&b).count(),
                a.difference(&b).count(),
                b.difference(&a).count()
            ]
        );
    }
}

#[test]
fn a_symlinked_output_is_written_where_it_points_and_the_link_stays() {
    let fx = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    write(&link, &fx, false).unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(real.join("manifest.json").exists());
    // replaced through the link, too
    std::fs::write(real.join("notes.txt"), b"mine").unwrap();
    write(&link, &fx, true).unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(real.join("notes.txt")).unwrap(), b"mine");
    let beside: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(beside.len(), 2, "{beside:?}");
}

#[test]
fn a_running_process_staging_beside_the_output_is_not_removed_a_dead_ones_is() {
    let fx = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    // pid 1 is running; u32::MAX is no process
    let live = tmp.path().join(".out.summit-new-1");
    let dead = tmp.path().join(format!(".out.summit-new-{}", u32::MAX));
    for d in [&live, &dead] {
        std::fs::create_dir(d).unwrap();
        std::fs::write(d.join("aggregates.bin"), b"partial").unwrap();
    }
    write(&out, &fx, false).unwrap();
    assert!(
        live.exists(),
        "another running process's staging was removed"
    );
    assert!(!dead.exists(), "a dead run's staging is left");
}

#[test]
fn what_a_killed_swap_leaves_is_put_right_by_the_next_run() {
    let fx = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    write(&out, &fx, false).unwrap();
    let complete = all_files(&out);
    // killed after the exchange, before the previous output was removed: the previous output
    // (with a file of the user's) sits at a dead run's staging name
    let previous = tmp.path().join(format!(".out.summit-new-{}", u32::MAX));
    write(&previous, &fx, false).unwrap();
    std::fs::write(previous.join("notes.txt"), b"mine").unwrap();
    write(&out, &fx, true).unwrap();
    assert!(!previous.exists());
    assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"mine");
    // killed between the two renames of the fallback swap: no output, the previous one beside
    let old = tmp.path().join(format!(".out.summit-old-{}", u32::MAX));
    std::fs::rename(&out, &old).unwrap();
    let e = write(&out, &fx, false).unwrap_err();
    assert!(matches!(e, ExportError::OutputExists { .. }), "{e}");
    assert!(!old.exists(), "the previous output was not put back");
    let mut back = all_files(&out);
    back.retain(|f| f != "notes.txt");
    assert_eq!(back, complete);
}

#[test]
fn an_output_that_appears_during_the_run_is_not_replaced() {
    let fx = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let image: &dyn Fn(u64) -> Option<image::RgbImage> = &image_of;
    let stage = summit_export::OutputStage::begin(&out, false).unwrap();
    let manifest =
        summit_export::write_output_files(stage.dir(), &fx.input(image), &WriteOptions::default())
            .unwrap();
    let staging = stage.dir().to_path_buf();
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("data.csv"), b"someone else's").unwrap();
    let e = stage.commit(manifest).unwrap_err();
    assert!(matches!(e, ExportError::Kept { .. }), "{e}");
    assert!(
        e.to_string().contains(&staging.display().to_string()),
        "{e}"
    );
    assert!(
        staging.join("manifest.json").exists(),
        "the finished output was lost"
    );
    assert_eq!(all_files(&out), vec!["data.csv".to_string()]);
}

#[test]
fn dot_is_not_an_output_directory() {
    let e = summit_export::check_output_target(Path::new("."), true).unwrap_err();
    assert!(e.to_string().contains("not `.`"), "{e}");
    let e = summit_export::check_output_target(Path::new("a/.."), true).unwrap_err();
    assert!(e.to_string().contains("not `.`"), "{e}");
}
