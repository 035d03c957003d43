// summit-export model comparison page (SPEC §4.3): the suggestion scatter (x: mean top score
// over the models, y: number of distinct predicted classes; hover previews an image, click
// opens every model's prediction and heatmap side by side), each model's histogram of
// 1 − p(true class), and the models' attribution graphs of one class side by side (each
// model's own page in a frame). Data inlined in <script id="models-data">.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("models-data").textContent);
  const M = D.models.length;
  const pretty = (s) => String(s).replace(/_/g, " ");
  d3.select("#meta-models").text(D.models.map((m) => m.name).join(" vs ") + " on " + D.dataset);
  d3.select("#meta-points").text(D.points.length + " images sampled (" + D.disagreements + " disagreements)");

  // ---------- suggestion scatter ----------
  const W = 560, H = 300, m = { l: 44, r: 12, t: 10, b: 34 };
  const svg = d3.select("#scatter").attr("width", W).attr("height", H);
  const x = d3.scaleLinear().domain([0, 1]).range([m.l, W - m.r]);
  const y = d3.scaleLinear().domain([0.5, M + 0.5]).range([H - m.b, m.t]);
  svg.append("g").attr("class", "axis").attr("transform", "translate(0," + (H - m.b) + ")").call(d3.axisBottom(x).ticks(6));
  svg.append("g").attr("class", "axis").attr("transform", "translate(" + m.l + ",0)").call(d3.axisLeft(y).ticks(M).tickFormat(d3.format("d")));
  svg.append("text").attr("x", (W + m.l) / 2).attr("y", H - 4).attr("text-anchor", "middle").attr("font-size", 11).text("mean top score over the models");
  svg.append("text").attr("transform", "translate(12," + (H - m.b) / 2 + ") rotate(-90)").attr("text-anchor", "middle").attr("font-size", 11).text("distinct predicted classes");
  // a deterministic vertical jitter, so that points of one row do not hide each other
  const jitter = (id) => (((id * 2654435761) % 1000) / 1000 - 0.5) * 0.5;
  const kind = (p) => {
    const right = p.preds.filter((pr) => pr[0][0] === p.label).length;
    return right === M ? "all-right" : right === 0 ? "all-wrong" : "some-wrong";
  };
  const preview = d3.select("#preview");
  svg
    .append("g")
    .selectAll("circle")
    .data(D.points)
    .join("circle")
    .attr("class", (p) => "point " + kind(p))
    .attr("data-image", (p) => p.id)
    .attr("cx", (p) => x(p.x))
    .attr("cy", (p) => y(p.y + jitter(p.id)))
    .attr("r", 3.5)
    .on("mouseenter", (ev, p) => {
      preview.attr("hidden", null).style("left", ev.clientX + 14 + "px").style("top", ev.clientY + 8 + "px");
      preview.select("img").attr("src", p.file);
      preview.select("div").text(
        "image " + p.id + " (" + pretty(D.classes[p.label]) + "): " + p.preds.map((pr) => pretty(D.classes[pr[0][0]])).join(" / ")
      );
      document.body.setAttribute("data-preview", String(p.id));
    })
    .on("mouseleave", () => {
      preview.attr("hidden", "");
      document.body.removeAttribute("data-preview");
    })
    .on("click", (ev, p) => open(p));
  d3.select("#scatter").attr("data-points", D.points.length);

  function open(p) {
    d3.selectAll("#scatter .point").classed("active", (q) => q === p);
    const panel = d3.select("#image-panel").attr("hidden", null).attr("data-image", p.id);
    d3.select("#image-title").text("image " + p.id + " \u2014 " + p.source + " \u2014 true class " + pretty(D.classes[p.label]));
    const figs = d3
      .select("#image-models")
      .selectAll("figure")
      .data([null].concat(D.models.map((_, i) => i)))
      .join("figure");
    figs.selectAll("*").remove();
    figs.append("div").attr("class", "model-name").text((i) => (i === null ? "image" : D.models[i].name + " \u2014 " + D.method));
    figs
      .append("img")
      .attr("class", (i) => (i === null ? "original" : "heat"))
      .attr("src", (i) => (i === null ? p.file : p.heat[i]));
    figs
      .filter((i) => i !== null)
      .append("ol")
      .selectAll("li")
      .data((i) => p.preds[i])
      .join("li")
      .classed("true", (t) => t[0] === p.label)
      .text((t) => pretty(D.classes[t[0]]) + "  " + (100 * t[1]).toFixed(1) + "%");
    panel.attr("data-ready", "1");
  }
  d3.select("#image-close").on("click", () => d3.select("#image-panel").attr("hidden", ""));

  // ---------- histograms of 1 − p(true class) ----------
  const hw = 200, hh = 70;
  const hs = d3.select("#histograms").selectAll("div").data(D.models).join("div").attr("class", "hist");
  hs.append("div").text((md) => md.name + " (top-1 " + (100 * md.accuracy).toFixed(1) + "%)");
  hs.append("svg")
    .attr("width", hw)
    .attr("height", hh + 14)
    .each(function (md) {
      const s = d3.select(this);
      const n = md.hist.length;
      const top = Math.max(1, d3.max(md.hist));
      // log scale: most images sit in the first bin
      const h = (v) => (v <= 0 ? 0 : (hh * Math.log1p(v)) / Math.log1p(top));
      s.selectAll("rect")
        .data(md.hist)
        .join("rect")
        .attr("x", (v, i) => (i * hw) / n)
        .attr("width", hw / n - 1)
        .attr("y", (v) => hh - h(v))
        .attr("height", (v) => h(v))
        .append("title")
        .text((v, i) => (i / n).toFixed(2) + "\u2013" + ((i + 1) / n).toFixed(2) + ": " + v + " images");
      s.append("text").attr("x", 0).attr("y", hh + 12).attr("font-size", 10).text("0");
      s.append("text").attr("x", hw).attr("y", hh + 12).attr("font-size", 10).attr("text-anchor", "end").text("1 \u2212 p(true) = 1");
    });



  const evs = D.models.filter((md) => md.evaluation && md.evaluation.rows.length);
  if (evs.length) {
    d3.select("#evaluations-section").attr("hidden", null);
    const ed = d3.select("#evaluations").selectAll("div").data(evs).join("div").attr("class", "evaluation").attr("data-model", (md) => md.name);
    ed.append("div").attr("class", "model-name").text((md) => md.name + " (" + md.evaluation.images.length + " images)");
    ed.append("table").attr("class", "eval-table").each(function (md) {
      summitEvaluationTable(d3.select(this), md.evaluation);
    });
  }

  // ---------- attribution graphs of one class, side by side ----------
  const cs = d3.select("#graph-class");
  cs.selectAll("option")
    .data(D.classes)
    .join("option")
    .attr("value", (c, i) => i)
    .text((c) => pretty(c));
  const frames = d3.select("#graphs").selectAll("div").data(D.models).join("div");
  frames.append("div").attr("class", "model-name").text((md) => md.name);
  frames.append("iframe").attr("title", (md) => md.name);
  function showClass(c) {
    frames.select("iframe").attr("src", (md) => md.dir + "/index.html#class=" + c);
    d3.select("#graphs").attr("data-class", c);
  }
  cs.on("change", function () {
    showClass(Number(this.value));
  });
  showClass(0);
  document.body.setAttribute("data-ready", "1");
})();
