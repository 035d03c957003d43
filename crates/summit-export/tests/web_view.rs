//! The web view: self-contained HTML, and a headless-Chromium run of
//! `tests/browser/check.mjs` comparing what the page draws with
//! expectations computed here from the graphs.
//!
//! The browser part needs `node`, Debian's `/usr/bin/chromium` (or
//! `$CHROMIUM`) and `npm ci --prefix crates/summit-export/tests/browser`;
//! without them it prints SKIPPED, unless `SUMMIT_REQUIRE_BROWSER=1`.
//! `SUMMIT_VIEW_OUT=<dir>` keeps the output (and screenshots) there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{CLASSES, Fixture, image_of};
use summit_export::{WriteOptions, write_output};
use summit_graph::{AttributionGraph, Membership};

fn write_fixture(dir: &Path, fx: &Fixture) {
    let image: &dyn Fn(u64) -> Option<image::RgbImage> = &image_of;
    write_output(
        dir,
        &fx.input(image),
        &WriteOptions {
            force: true,
            summit_format: true,
            patches: true,
        },
    )
    .unwrap();
}

/// The `<script id="summit-data">` content of the page.
fn page_data(html: &str) -> serde_json::Value {
    let start = html
        .find(r#"<script id="summit-data" type="application/json">"#)
        .unwrap();
    let rest = &html[start..];
    let open = rest.find('>').unwrap() + 1;
    let close = rest.find("</script>").unwrap();
    serde_json::from_str(&rest[open..close]).unwrap()
}

/// The data of class `c`'s script `view/class-{c}.js`.
fn class_data(dir: &std::path::Path, c: usize) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join(format!("view/class-{c}.js"))).unwrap();
    let body = text
        .strip_prefix(&format!("summitClassData({c},"))
        .and_then(|t| t.strip_suffix(");\n"))
        .unwrap();
    serde_json::from_str(body).unwrap()
}

#[test]
fn page_is_self_contained() {
    let fx = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();
    write_fixture(tmp.path(), &fx);
    let html = std::fs::read_to_string(tmp.path().join("index.html")).unwrap();
    // (d3 itself contains fetch code, never called; the browser test checks
    // that no request leaves the page)
    for bad in [
        "src=\"http",
        "href=\"http",
        "<script src",
        "<link ",
        "@import",
    ] {
        assert!(!html.contains(bad), "page references '{bad}'");
    }
    assert!(
        html.contains("https://d3js.org v7.9.0"),
        "d3 v7.9.0 inlined"
    );
    let d = page_data(&html);
    assert_eq!(d["classes"].as_array().unwrap().len(), 4);
    assert_eq!(d["layers"][0]["label"], "mixed3a");
    assert!(d.get("graphs").is_none(), "graphs load per class");
    assert_eq!(d["classData"], "view/class-");
    for (c, g) in fx.graphs.iter().enumerate() {
        let cd = class_data(tmp.path(), c);
        // per layer, the class's similarity to every class, by index (itself 1)
        assert_eq!(cd["similar"].as_array().unwrap().len(), 3);
        assert_eq!(cd["similar"][0].as_array().unwrap().len(), 4);
        let ov = common::overview(&fx.agg);
        for (l, row) in cd["similar"].as_array().unwrap().iter().enumerate() {
            for (j, s) in row.as_array().unwrap().iter().enumerate() {
                let want = (ov.layers[l].similarity[c][j] * 1e4).round() / 1e4;
                assert!(
                    (s.as_f64().unwrap() - want).abs() < 1e-12,
                    "class {c} layer {l} vs {j}"
                );
            }
        }
        let n: usize = cd["graph"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_array().unwrap().len())
            .sum();
        assert_eq!(n, g.num_vertices());
    }
    // a class name with markup cannot end the data script
    let fx2 = Fixture::new();
    let image: &dyn Fn(u64) -> Option<image::RgbImage> = &image_of;
    let mut input = fx2.input(image);
    input.classes[1].name = "</script><b>x".into();
    let dir2 = tmp.path().join("markup");
    write_output(&dir2, &input, &WriteOptions::default()).unwrap();
    let html = std::fs::read_to_string(dir2.join("index.html")).unwrap();
    assert_eq!(page_data(&html)["classes"][1]["name"], "</script><b>x");
    let script = std::fs::read_to_string(dir2.join("view/class-1.js")).unwrap();
    assert!(!script.contains("</script>"));
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// Edges between vertices with count >= t.
fn edges_at(g: &AttributionGraph, t: u32) -> usize {
    let mut n = 0;
    for l in 1..g.layers.len() {
        for v in g.layers[l].vertices.iter().filter(|v| v.count >= t) {
            n += v
                .prev
                .iter()
                .filter(|&&(p, _)| g.layers[l - 1].vertex(p).is_some_and(|u| u.count >= t))
                .count();
        }
    }
    n
}

fn expectations(fx: &Fixture) -> serde_json::Value {
    let (a, b) = (2usize, 3usize);
    let g = &fx.graphs[a];
    let counts: Vec<u32> = g
        .layers
        .iter()
        .flat_map(|l| l.vertices.iter().map(|v| v.count))
        .collect();
    let max = *counts.iter().max().unwrap();
    let total = counts.len();
    // a threshold that drops some vertices but not all
    let mut distinct: Vec<u32> = counts.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let t = *distinct
        .iter()
        .find(|&&t| {
            let k = counts.iter().filter(|&&c| c >= t).count();
            k < total && k * 2 >= total
        })
        .or(distinct.last())
        .unwrap();
    let filtered = counts.iter().filter(|&&c| c >= t).count();
    assert!(
        filtered > 0 && filtered < total,
        "fixture: class {a} needs vertices of different counts"
    );
    // sidebar orders
    let ov = common::overview(&fx.agg);
    let layer = 0;
    let mut sim_order: Vec<usize> = (0..4).collect();
    let s = &ov.layers[layer].similarity[a];
    sim_order.sort_by(|&i, &j| round4(s[j]).total_cmp(&round4(s[i])).then(i.cmp(&j)));
    let acc: Vec<f64> = (0..4)
        .map(|c| fx.agg.class_top1_correct()[c] as f64 / fx.agg.class_images()[c] as f64)
        .collect();
    let mut acc_order: Vec<usize> = (0..4).collect();
    acc_order.sort_by(|&i, &j| acc[j].total_cmp(&acc[i]).then(i.cmp(&j)));
    // a hovered vertex of layer 1 with edges and patches
    let ex = fx.agg.examples();
    let patches = |l: usize, c: u32| {
        ex.get(l, c as usize)
            .unwrap()
            .iter()
            .take(3)
            .take_while(|e| e.image_id != 1039)
            .count()
    };
    let (hl, hv) = (1..g.layers.len())
        .flat_map(|l| g.layers[l].vertices.iter().map(move |v| (l, v)))
        .filter(|&(l, v)| !v.prev.is_empty() && patches(l, v.channel) > 0)
        .max_by_key(|&(_, v)| (v.count, std::cmp::Reverse(v.channel)))
        .expect("fixture: a vertex with edges and patches");
    let up = g.layers.get(hl + 1).map_or(0, |u| {
        u.vertices
            .iter()
            .filter(|w| w.prev.iter().any(|&(p, _)| p == hv.channel))
            .count()
    });
    // comparison
    let cmp = summit_graph::compare(g, &fx.graphs[b]).unwrap();
    let mut m: BTreeMap<Membership, usize> = BTreeMap::new();
    for l in &cmp.layers {
        for v in &l.vertices {
            *m.entry(v.membership).or_default() += 1;
        }
    }
    let union_edges: usize = cmp.layers.iter().map(|l| l.edges.len()).sum();
    // the best motif: shown in a class containing it, its vertices and edges highlight
    let motif = fx
        .motifs
        .motifs
        .first()
        .expect("fixture: a motif shared by two classes");
    let mcls = motif.classes[0];
    let mut mverts: BTreeSet<(usize, u32)> = BTreeSet::new();
    for (l, p, q) in motif.edge_list() {
        mverts.insert((l, q));
        mverts.insert((l - 1, p));
    }
    serde_json::json!({
        "layers": g.layers.len(),
        "names": CLASSES.iter().map(|n| n.replace('_', " ")).collect::<Vec<_>>(),
        "stability": fx.stability.iter().map(|s| s.as_ref().map_or(0.0, |s| s.halves)).collect::<Vec<f64>>(),
        "motif": {
            "cls": mcls,
            "elements": mverts.len() + motif.edges,
            "classes": motif.classes.len(),
            "count": fx.motifs.motifs.len().min(50),
        },
        "cls": a,
        "clsLabel": CLASSES[a].replace('_', " "),
        "vertices": total,
        "edges": g.num_edges(),
        "maxCount": max,
        "threshold": t,
        "filtered": filtered,
        "filteredEdges": edges_at(g, t),
        "layer": layer,
        "similarityOrder": sim_order,
        "accuracyOrder": acc_order,
        "search": "bear",
        "searchMatches": CLASSES.iter().filter(|n| n.contains("bear")).count(),
        "classes": 4,
        "hover": {"layer": hl, "channel": hv.channel, "edges": hv.prev.len() + up, "patches": patches(hl, hv.channel)},
        "patchSize": 16,
        "compare": {
            "cls": b,
            "union": cmp.layers.iter().map(|l| l.vertices.len()).sum::<usize>(),
            "both": m.get(&Membership::Both).copied().unwrap_or(0),
            "onlyA": m.get(&Membership::OnlyA).copied().unwrap_or(0),
            "onlyB": m.get(&Membership::OnlyB).copied().unwrap_or(0),
            "edges": union_edges,
        },
    })
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Why the browser check cannot run here, if it cannot.
fn missing_tools() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node not found".into());
    }
    if !Path::new(&chromium).exists() {
        return Some(format!("{chromium} not found (apt-get install chromium)"));
    }
    if !browser_dir().join("node_modules/playwright-core").exists() {
        return Some(
            "playwright-core not installed (npm ci --prefix crates/summit-export/tests/browser)"
                .into(),
        );
    }
    None
}

#[test]
fn page_works_in_headless_chromium() {
    if let Some(why) = missing_tools() {
        assert!(
            std::env::var("SUMMIT_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "browser test required but {why}"
        );
        eprintln!("SKIPPED page_works_in_headless_chromium: {why}");
        return;
    }
    let fx = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();
    let dir = match std::env::var_os("SUMMIT_VIEW_OUT") {
        Some(d) => PathBuf::from(d),
        None => tmp.path().join("out"),
    };
    write_fixture(&dir, &fx);
    let exp_path = tmp.path().join("expected.json");
    std::fs::write(
        &exp_path,
        serde_json::to_vec_pretty(&expectations(&fx)).unwrap(),
    )
    .unwrap();
    let out = Command::new("node")
        .arg(browser_dir().join("check.mjs"))
        .arg(&dir)
        .arg(&exp_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "browser check failed:\n{stdout}\n{stderr}"
    );
    for shot in ["screenshot.png", "screenshot-compare.png"] {
        let img = image::open(dir.join(shot)).unwrap();
        assert_eq!((img.width(), img.height()), (1440, 900), "{shot}");
    }
}
