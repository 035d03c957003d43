// The table of heatmap metrics (Quantus 0.6, SPEC §4.4): method × metric, mean ± spread, with
// which direction is better; shared by the run's page (view.js) and the model comparison page
// (models.js), inlined before each. Needs d3.
function summitEvaluationTable(table, ev) {
  table.selectAll("*").remove();
  const methods = [];
  for (const r of ev.rows) if (!methods.includes(r.method)) methods.push(r.method);
  const better = new Map(ev.better);
  const head = table.append("thead").append("tr");
  head.append("th").text("method");
  for (const m of ev.metrics) head.append("th").attr("title", better.get(m) + " is better").text(m + (better.get(m) === "higher" ? " \u2191" : " \u2193"));
  const body = table.append("tbody");
  for (const method of methods) {
    const tr = body.append("tr").attr("data-method", method);
    tr.append("th").text(method);
    for (const m of ev.metrics) {
      const r = ev.rows.find((x) => x.method === method && x.metric === m);
      const ok = r && r.mean !== null && Number.isFinite(r.mean);
      tr.append("td")
        .attr("data-metric", m)
        .attr("data-value", ok ? r.mean : "")
        .attr("title", r ? "n " + r.n + (r.undefined ? ", undefined on " + r.undefined : "") : "")
        .text(ok ? r.mean.toPrecision(3) + " \u00b1 " + r.std.toPrecision(2) : "n/a");
    }
  }
}
