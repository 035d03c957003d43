//! The page comparing several models' runs over one dataset (SPEC §4.3): `index.html` with
//! the comparison data inlined, d3 and the page's script and style inlined; heatmaps and
//! images by relative path; each model's own output in a subdirectory.

use std::path::Path;

use serde_json::Value;

use crate::atomic::write_atomic;
use crate::error::{ExportError, Result};

const D3_JS: &str = include_str!("../assets/d3.v7.9.0.min.js");
const MODELS_JS: &str = include_str!("../assets/models.js");
const EVAL_TABLE_JS: &str = include_str!("../assets/eval_table.js");
const MODELS_CSS: &str = include_str!("../assets/models.css");

/// Writes `out/index.html`, the model comparison page, with `data` inlined: `models` (`name`,
/// `dir`, `accuracy`, `hist`: counts of `1 − p(true class)` in equal bins), `classes`
/// (names), `dataset`, `method`, `disagreements` and `points` (`id`, `label`, `source`,
/// `file`, `x`: mean top score, `y`: distinct predicted classes, `preds[m]`: model `m`'s top
/// `(class, probability)` pairs, `heat[m]`: its heatmap).
pub fn write_models_page(out: &Path, data: &Value) -> Result<()> {
    let json = serde_json::to_string(data).map_err(|source| ExportError::Json {
        path: out.join("index.html"),
        source,
    })?;
    let json = json.replace('<', "\\u003c");
    let html = format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Summit: model comparison</title>
<style>
{MODELS_CSS}
</style>
</head>
<body>
<header><span id="title">Summit: models compared</span> <span class="meta" id="meta-models"></span>
<span class="meta" id="meta-points"></span></header>
<main>
  <div class="row">
    <section><h2>Suggestions: images worth inspecting</h2>
      <div class="legend"><span><span class="swatch" style="background:#2a9d8f"></span>all models right</span>
        <span><span class="swatch" style="background:#e9a03b"></span>some wrong</span>
        <span><span class="swatch" style="background:#c0392b"></span>all wrong</span></div>
      <svg id="scatter"></svg></section>
    <section><h2>1 &minus; p(true class), every image (log scale)</h2><div id="histograms"></div></section>
  </div>
  <section id="evaluations-section" hidden><h2>How faithful are the heatmaps? (Quantus 0.6, per model)</h2>
    <div id="evaluations" class="row"></div></section>
  <section><h2>Attribution graphs of <select id="graph-class"></select></h2>
    <div id="graphs" class="graphs"></div></section>
</main>
<div id="preview" hidden><img alt="preview"><div></div></div>
<div id="image-panel" hidden>
  <div class="image-head"><span id="image-title"></span><button id="image-close" type="button">close</button></div>
  <div id="image-models" class="image-models"></div>
</div>
<script id="models-data" type="application/json">{json}</script>
<script>
{D3_JS}
</script>
<script>
{EVAL_TABLE_JS}
</script>
<script>
{MODELS_JS}
</script>
</body>
</html>
"#
    );
    write_atomic(&out.join("index.html"), html.as_bytes())
}
