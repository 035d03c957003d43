//! The web view `index.html`: the run's overview data (layers, classes,
//! embeddings) inlined as JSON, d3 v7.9.0 and the page's own script and style
//! inlined; each class's attribution graph and most similar classes in its own
//! script `view/class-{c}.js`, loaded when the class is first shown (a
//! `<script>` element, so it works from `file://` with no server); patch
//! images by relative path. The page opens from disk with no network, and a
//! 1000-class output stays small to open.

use serde_json::{Value, json};

use crate::error::{ExportError, Result};
use crate::input::ExportInput;
use crate::manifest::ClassStats;
use crate::output::patch_dir_name;
use crate::patches::PatchCounts;

/// d3 v7.9.0 (ISC license, `assets/d3.LICENSE`), from the npm registry.
const D3_JS: &str = include_str!("../assets/d3.v7.9.0.min.js");
/// The page's script.
const VIEW_JS: &str = include_str!("../assets/view.js");
const LIVE_JS: &str = include_str!("../assets/live.js");
const EVAL_TABLE_JS: &str = include_str!("../assets/eval_table.js");
/// The page's style.
const VIEW_CSS: &str = include_str!("../assets/view.css");

/// How many most similar classes per class and layer the page carries
/// (all of them when there are at most this many classes).
pub const VIEW_NEIGHBOURS: usize = 100;

/// Motifs listed in the page's motif panel (the best ranked; all are in `motifs.json`).
pub(crate) const VIEW_MOTIFS: usize = 50;

/// The directory of the per-class scripts of the web view.
pub(crate) const CLASS_DATA_DIR: &str = "view";

/// The per-class script of class `c`, relative to the output directory.
pub(crate) fn class_data_file(c: usize) -> String {
    format!("{CLASS_DATA_DIR}/class-{c}.js")
}

/// `[layer][class]`: the [`VIEW_NEIGHBOURS`] classes most similar to each class
/// ([`nearest`] of its similarity row).
pub(crate) fn neighbours(input: &ExportInput<'_>) -> Vec<Vec<Vec<(usize, f64)>>> {
    input
        .overview
        .layers
        .iter()
        .map(|o| {
            o.similarity
                .iter()
                .map(|row| nearest(row, VIEW_NEIGHBOURS))
                .collect()
        })
        .collect()
}

/// The `k` classes most similar to a class from its similarity row: `(class, similarity)`
/// by similarity descending, ties by class ascending, non-finite values as 0.
fn nearest(row: &[f64], k: usize) -> Vec<(usize, f64)> {
    let mut r: Vec<(usize, f64)> = row
        .iter()
        .enumerate()
        .map(|(j, &s)| (j, if s.is_finite() { s } else { 0.0 }))
        .collect();
    r.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    r.truncate(k);
    r
}

fn round(x: f64, digits: i32) -> f64 {
    let s = 10f64.powi(digits);
    (x * s).round() / s
}

/// The data object the page reads from `<script id="summit-data">`.
pub(crate) fn view_data(
    input: &ExportInput<'_>,
    stats: &[ClassStats],
    patches: &PatchCounts,
) -> Value {
    let layers: Vec<Value> = input
        .layers
        .iter()
        .enumerate()
        .map(|(l, d)| {
            json!({
                "name": d.name,
                "label": d.summit_name(),
                "channels": d.channels,
                "patchDir": patch_dir_name(l, d),
                "patches": patches.get(&l).map(|m| m.iter().map(|(c, n)| (c.to_string(), json!(n))).collect::<serde_json::Map<_, _>>()).unwrap_or_default(),
            })
        })
        .collect();
    let classes: Vec<Value> = stats
        .iter()
        .map(|s| {
            json!({
                "index": s.index,
                "name": s.name,
                "images": s.images,
                "accuracy": s.accuracy,
                "hist": s.probability_histogram,
                "stability": s.stability.as_ref().map(|st| round(st.halves, 3)),
                "faith": s.faithfulness.as_ref().map(|f| json!({
                    "pr": f.p_random.map(|v| round(v, 3)),
                    "ratio": f.drop_ratio.map(|v| round(v, 3)),
                    "note": f.note,
                })),
            })
        })
        .collect();
    let overview: Vec<Value> = input
        .overview
        .layers
        .iter()
        .map(|o| {
            let embed: Vec<[f64; 2]> = o
                .embedding
                .iter()
                .map(|p| [round(p[0], 5), round(p[1], 5)])
                .collect();
            json!({"embed": embed})
        })
        .collect();
    // the best motifs, for the motif panel: [kind, layer, channels, classes]
    let motifs: Vec<Value> = input
        .motifs
        .motifs
        .iter()
        .take(VIEW_MOTIFS)
        .map(|m| {
            let kind = match m.kind {
                summit_graph::MotifKind::Path => "path",
                summit_graph::MotifKind::InStar => "in-star",
                summit_graph::MotifKind::OutStar => "out-star",
            };
            json!([kind, m.layer, m.channels, m.classes])
        })
        .collect();
    json!({
        "motifs": motifs,
        "motifMinSupport": input.motifs.min_support,
        "motifGraphs": input.motifs.graphs,
        "model": input.model,
        "dataset": input.dataset.name,
        "imagesSeen": input.dataset.images_seen,
        "preset": input.preset,
        "embedding": input.overview.method,
        "layers": layers,
        "classes": classes,
        "overview": overview,
        "classData": format!("{CLASS_DATA_DIR}/class-"),
    })
}

/// The per-class scripts of the classes with images, `(class, script)`:
/// `summitClassData(c, {graph, similar})` with the class's attribution graph (per layer
/// `[channel, count, pagerank, [[prev, weight], ...]]`) and per layer its similarity to *every*
/// class, by class index (rounded to 4 digits, non-finite values as 0), so that the sidebar's
/// similarity sort covers every class. A class without images has no script (the page shows
/// it as such, behind a toggle): a 1000-class run over a folder of 3 classes writes 3.
pub(crate) fn class_scripts(input: &ExportInput<'_>) -> Result<Vec<(usize, String)>> {
    let images = input.aggregates.class_images();
    input
        .graphs
        .iter()
        .enumerate()
        .filter(|(c, _)| images.get(*c).is_some_and(|&n| n > 0))
        .map(|(c, g)| {
            let graph = Value::Array(
                g.layers
                    .iter()
                    .map(|l| {
                        Value::Array(
                            l.vertices
                                .iter()
                                .map(|v| {
                                    json!([
                                        v.channel,
                                        v.count,
                                        v.pagerank,
                                        v.prev
                                            .iter()
                                            .map(|&(p, w)| json!([p, w]))
                                            .collect::<Vec<_>>()
                                    ])
                                })
                                .collect(),
                        )
                    })
                    .collect(),
            );
            let similar: Vec<Vec<f64>> = input
                .overview
                .layers
                .iter()
                .map(|o| {
                    o.similarity.get(c).map_or_else(Vec::new, |row| {
                        row.iter()
                            .map(|&s| if s.is_finite() { round(s, 4) } else { 0.0 })
                            .collect()
                    })
                })
                .collect();
            let faith = input.faithfulness.and_then(|f| f.class(c)).map(faith_view);
            let data = json!({"graph": graph, "similar": similar, "faith": faith});
            let text = serde_json::to_string(&data).map_err(|source| ExportError::Json {
                path: class_data_file(c).into(),
                source,
            })?;
            // `<` only occurs inside JSON strings: keep `</script>` out of the file
            let text = text.replace('<', "\\u003c");
            Ok((c, format!("summitClassData({c},{text});\n")))
        })
        .collect()
}

/// A class's faithfulness figures for the class panel's plots (rounded to 4 digits).
fn faith_view(f: &crate::ClassFaithfulness) -> Value {
    let r4 = |v: f64| round(v, 4);
    json!({
        "images": f.images,
        "vertices": f.vertices,
        "note": f.note,
        "pBefore": r4(f.p_before),
        "accBefore": r4(f.accuracy_before),
        "graph": f.graph.as_ref().map(|g| json!({"drop": r4(g.drop), "accDrop": r4(g.accuracy_drop)})),
        "activation": f.activation.as_ref().map(|g| json!({"drop": r4(g.drop), "accDrop": r4(g.accuracy_drop)})),
        "random": f.random.as_ref().map(|r| json!({
            "drops": r.drops.iter().map(|&d| r4(d)).collect::<Vec<_>>(),
            "mean": r4(r.mean_drop),
            "pRandom": r4(r.p_random),
        })),
        "ratio": f.drop_ratio.map(r4),
        "selectivity": f.selectivity.as_ref().map(|s| json!({
            "drop": r4(s.drop), "classes": s.classes, "images": s.images,
        })),
        "deletion": f.deletion.as_ref().map(|d| json!({
            "v": d.vertices, "p": d.p.iter().map(|&p| r4(p)).collect::<Vec<_>>(), "area": r4(d.area),
        })),
    })
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page.
pub(crate) fn render(
    input: &ExportInput<'_>,
    stats: &[ClassStats],
    patches: &PatchCounts,
) -> Result<String> {
    let data = view_data(input, stats, patches);
    let json = serde_json::to_string(&data).map_err(|source| ExportError::Json {
        path: "index.html".into(),
        source,
    })?;
    // `<` only occurs inside JSON strings, where `\u003c` is the same text;
    // this keeps `</script>` and `<!--` out of the script element.
    let json = json.replace('<', "\\u003c");
    let title = escape_html(&format!(
        "Summit: {} on {}",
        input.model, input.dataset.name
    ));
    Ok(format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
{VIEW_CSS}
</style>
</head>
<body>
<header id="top-bar">
  <span id="title">Summit</span>
  <span class="meta" id="meta-model"></span>
  <span class="meta" id="meta-dataset"></span>
  <span class="meta" id="meta-classes"></span>
  <span class="meta" id="meta-images"></span>
</header>
<div id="app">
  <aside id="left">
    <section id="embedding-view">
      <div class="options">
        <label for="layer-select">layer</label>
        <select id="layer-select"></select>
        <button id="embedding-reset" type="button" title="Reset zoom">reset</button>
      </div>
      <svg id="embedding" viewBox="0 0 360 300"></svg>
    </section>
    <section id="class-sidebar">
      <div class="options">
        <input id="class-search" type="search" placeholder="search classes" autocomplete="off" list="class-names">
        <datalist id="class-names"></datalist>
        <select id="sort-select" title="Sort classes">
          <option value="similarity">similar to selected</option>
          <option value="accuracy-desc">accuracy, high first</option>
          <option value="accuracy-asc">accuracy, low first</option>
          <option value="name">name</option>
        </select>
        <label id="empty-toggle" hidden title="Classes with no image in this run: no graph, no similarities"><input type="checkbox"> show <span></span></label>
      </div>
      <ul id="class-list"></ul>
    </section>
    <section id="motif-panel">
      <div class="options"><span class="label">motifs</span> <span id="motif-summary" class="meta"></span></div>
      <ul id="motif-list"></ul>
      <div id="motif-classes"></div>
    </section>
  </aside>
  <main id="right">
    <div class="options" id="graph-options">
      <div><span class="label">class</span> <span id="selected-class" class="value"></span></div>
      <div><span class="label">images</span> <span id="selected-images" class="value"></span></div>
      <div><span class="label">accuracy</span> <span id="selected-accuracy" class="value"></span></div>
      <div><span class="label">probabilities</span> <svg id="selected-hist" width="120" height="22"></svg></div>
      <div><label class="label" for="count-filter">filter graph: count &ge;</label>
        <input id="count-filter" type="range" min="0" max="0" value="0" step="1">
        <span id="count-filter-value" class="value">0</span></div>
      <div><label class="label" for="compare-select">compare with</label>
        <select id="compare-select"><option value="">(none)</option></select>
        <select id="compare-mode" title="Comparison operation" disabled>
          <option value="union">union</option>
          <option value="intersection">intersection</option>
          <option value="difference">difference (only this class)</option>
        </select></div>
      <div><label class="label" for="graph-width">width</label>
        <input id="graph-width" type="range" min="16" max="140" value="46" step="2">
        <label class="label" for="graph-height">height</label>
        <input id="graph-height" type="range" min="50" max="260" value="120" step="5"></div>
      <button id="graph-reset" type="button" title="Reset zoom">reset zoom</button>
    </div>
    <div id="legend"></div>
    <div id="edge-info" hidden></div>
    <div id="graph"></div>
    <div id="patch-panel" hidden></div>
    <section id="class-faith" hidden>
      <div id="faith-text"></div>
      <div class="faith-plots">
        <figure><svg id="faith-drops"></svg><figcaption>drop in p(class): graph, top activation channels, random draws</figcaption></figure>
        <figure><svg id="faith-deletion"></svg><figcaption>deletion curve (by PageRank) <span id="faith-area"></span></figcaption></figure>
      </div>
    </section>
    <section id="ablate-live" hidden><span class="label">ablate (live)</span>
      <span id="ablate-set" class="meta"></span>
      <label class="label" for="ablate-images">images</label> <input id="ablate-images" type="number" min="1" max="1000" value="50">
      <select id="ablate-mode"><option value="zero">zeroed</option><option value="mean">set to their mean</option></select>
      <button id="ablate-run" type="button">ablate</button> <button id="ablate-clear" type="button">clear</button>
      <progress id="ablate-progress" max="1" value="0" hidden></progress> <span id="ablate-result" class="meta"></span></section>
    <section id="class-images" hidden>
      <div class="images-row"><span class="label">most confident</span> <span id="confident-images" class="thumbs"></span></div>
      <div class="images-row"><span class="label">most confidently misclassified</span> <span id="misclassified-images" class="thumbs"></span></div>
    </section>
    <section id="dataset-browser" hidden>
      <div class="options"><span class="label">every image (live)</span>
        <select id="browse-class" title="true class"></select>
        <select id="browse-model" title="whose predictions filter" hidden></select>
        <select id="browse-predicted" title="predicted class"></select>
        <select id="browse-correct" title="correct or not"><option value="">correct or not</option><option value="true">correct</option><option value="false">misclassified</option></select>
        <label class="label" for="browse-min">confidence</label> <input id="browse-min" type="number" min="0" max="1" step="0.05" placeholder="0">–<input id="browse-max" type="number" min="0" max="1" step="0.05" placeholder="1">
        <button id="browse-prev" type="button">previous</button> <span id="browse-info" class="meta"></span>
        <button id="browse-next" type="button">next</button>
        <label class="upload-button">upload an image <input id="upload-input" type="file" accept="image/png,image/jpeg"></label> <span id="upload-info" class="meta">or drop one here</span></div>
      <div id="suggestions" hidden><span class="label" id="suggest-title"></span> <span id="suggest-note" class="meta"></span><svg id="suggest-plot"></svg></div>
      <div id="browse-thumbs" class="thumbs"></div>
    </section>
    <section id="heat-eval" hidden>
      <div><span class="label">how faithful are the heatmaps? (Quantus 0.6)</span> <span id="heat-eval-note" class="meta"></span></div>
      <table id="heat-eval-table" class="eval-table"></table>
    </section>
  </main>
  <div id="image-panel" hidden>
    <div class="image-head"><span id="image-title"></span>
      <label class="label" for="image-method">method</label> <select id="image-method"></select>
      <span id="image-live" hidden><label class="label" for="image-target">explaining</label> <select id="image-target"></select>
        <label class="label" for="image-layer">or a neuron of</label> <select id="image-layer"></select>
        <label class="label" for="image-channel">channel</label> <input id="image-channel" type="number" min="0" value="0"></span>
      <button id="image-close" type="button">close</button></div>
    <div class="image-body">
      <figure><img id="image-original" alt="image"><figcaption>image</figcaption></figure>
      <figure><img id="image-heat" alt="heatmap"><figcaption id="image-heat-caption">heatmap</figcaption></figure>
      <div id="image-models" hidden></div>
      <div><div id="image-label"></div><ol id="image-preds"></ol></div>
    </div>
    <div id="image-graph" class="meta"></div>
    <div id="image-graph-tools" class="meta" hidden><span id="image-overlay-text"></span>
      <button id="graph-over-true" type="button">over its true class's graph</button>
      <button id="graph-over-predicted" type="button">over its predicted class's graph</button>
      <span id="image-pick">click a vertex to explain that neuron</span></div>
  </div>
</div>
<script id="summit-data" type="application/json">{json}</script>
<script>
{D3_JS}
</script>
<script>
{EVAL_TABLE_JS}
</script>
<script>
{VIEW_JS}
{LIVE_JS}
</script>
</body>
</html>
"#
    ))
}
