// summit-export web view: embedding view, class sidebar, attribution graph
// view and class comparison. Vanilla JS on d3 v7; the overview data comes
// from the inlined <script id="summit-data">, each class's graph and similar
// classes from its script view/class-{c}.js, loaded on first use (a <script>
// element, so it works from file://), patch images by relative path.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("summit-data").textContent);
  const L = D.layers.length;
  const C = D.classes.length;

  const state = {
    selected: 0,
    layer: Math.max(0, L - 1),
    threshold: 0,
    compare: null,
    sort: "similarity",
    search: "",
    cmpMode: "union",
    spacing: 46,
    row: 120,
    // classes without a single image in the run stay out of the sidebar and the embedding
    // until asked for (they have no graph and no per-class script)
    showEmpty: false,
  };
  const hasImages = (d) => d.images !== undefined && d.images !== null && d.images > 0;
  const emptyClasses = D.classes.filter((d) => !hasImages(d)).length;
  // start with the class that has the most images (first on ties)
  D.classes.forEach((c, i) => {
    if (c.images > D.classes[state.selected].images) state.selected = i;
  });
  // a shared view: #class=<index>&layer=<index> in the URL
  (function restoreFromUrl() {
    const q = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    const c = Number(q.get("class")),
      l = Number(q.get("layer"));
    if (q.has("class") && Number.isInteger(c) && c >= 0 && c < C) state.selected = c;
    if (q.has("layer") && Number.isInteger(l) && l >= 0 && l < L) state.layer = l;
  })();
  // the page in a frame of the model comparison page follows its hash
  window.addEventListener("hashchange", () => {
    const q = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    const c = Number(q.get("class"));
    if (q.has("class") && Number.isInteger(c) && c >= 0 && c < C && c !== state.selected) select(c);
  });
  function saveToUrl() {
    const h = "#class=" + state.selected + "&layer=" + state.layer;
    if (window.location.hash !== h) history.replaceState(null, "", h);
  }

  const pretty = (name) => String(name).replace(/_/g, " ");
  const pct = (a) => (a === null || a === undefined ? "n/a" : (100 * a).toFixed(1) + "%");
  const fmt = d3.format(",");

  // ---------- header ----------
  d3.select("#meta-model").text("model " + D.model);
  d3.select("#meta-dataset").text("dataset " + D.dataset + " (" + D.preset + " preset)");
  d3.select("#meta-classes").text(fmt(C) + " classes");
  d3.select("#meta-images").text(fmt(D.imagesSeen) + " images");

  // ---------- histogram helper ----------
  function drawHist(svg, hist, w, h) {
    svg.selectAll("*").remove();
    const max = d3.max(hist) || 1;
    const bw = w / hist.length;
    svg
      .attr("width", w)
      .attr("height", h)
      .selectAll("rect")
      .data(hist)
      .join("rect")
      .attr("class", "hist-bar")
      .attr("x", (d, i) => i * bw + 0.5)
      .attr("width", Math.max(1, bw - 1))
      .attr("y", (d) => h - 1 - (h - 2) * (d / max))
      .attr("height", (d) => (h - 2) * (d / max));
    svg
      .append("line")
      .attr("class", "hist-axis")
      .attr("x1", 0)
      .attr("x2", w)
      .attr("y1", h - 0.5)
      .attr("y2", h - 0.5);
  }

  // ---------- per-class data, loaded lazily ----------
  const classCache = new Map();
  const waiting = new Map();
  window.summitClassData = (c, d) => {
    classCache.set(c, d);
    const w = waiting.get(c);
    waiting.delete(c);
    if (w) w.forEach((f) => f.resolve());
  };
  function loadClass(c) {
    if (classCache.has(c)) return Promise.resolve();
    if (!hasImages(D.classes[c])) {
      // no images, no script: an empty graph, no similarities
      classCache.set(c, { graph: D.layers.map(() => []), similar: D.layers.map(() => []), faith: null });
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      if (waiting.has(c)) {
        waiting.get(c).push({ resolve, reject });
        return;
      }
      waiting.set(c, [{ resolve, reject }]);
      const s = document.createElement("script");
      s.src = D.classData + c + ".js";
      s.onerror = () => {
        const w = waiting.get(c) || [];
        waiting.delete(c);
        w.forEach((f) => f.reject(new Error("cannot load " + s.src)));
      };
      document.head.appendChild(s);
    });
  }

  // ---------- similarity ----------
  function similarityTo(c, layer) {
    const m = new Map();
    const d = classCache.get(c);
    // the class's similarity to every class, by class index
    if (d) d.similar[layer].forEach((s, j) => m.set(j, s));
    return m;
  }

  // ---------- class sidebar ----------
  const list = d3.select("#class-list");
  const rows = list
    .selectAll("li")
    .data(D.classes)
    .join("li")
    .attr("data-class", (d) => d.index)
    .attr("title", (d) => pretty(d.name))
    .on("click", (ev, d) => select(d.index));
  const rowText = rows.append("div").attr("class", "row-text");
  rowText.append("span").attr("class", "class-name").text((d) => pretty(d.name));
  rowText.append("span").attr("class", "class-acc").text((d) => pct(d.accuracy));
  // stability (runs with --stability): Jaccard of the two halves' vertex sets
  rowText
    .filter((d) => d.stability !== null && d.stability !== undefined)
    .append("span")
    .attr("class", (d) => "stability-badge " + (d.stability >= 0.7 ? "stable" : d.stability >= 0.4 ? "fair" : "unstable"))
    .attr("data-stability", (d) => d.stability)
    .attr("title", "Jaccard index of the graphs of two halves of this class's images: low means more images are needed")
    .text((d) => "J " + d.stability.toFixed(2));
  // faithfulness (SPEC §3.1): how much ablating the graph lowers p(class), against random
  // channels; green when fewer than 5 % of the random draws drop it as much
  rowText
    .filter((d) => d.faith)
    .append("span")
    .attr("class", (d) => "faith-badge " + (d.faith.note || d.faith.pr === null || d.faith.pr === undefined ? "na" : d.faith.pr < 0.05 ? "good" : "weak"))
    .attr("data-p-random", (d) => (d.faith.pr === null || d.faith.pr === undefined ? "" : d.faith.pr))
    .attr("title", (d) =>
      d.faith.note
        ? "faithfulness not measured (" + d.faith.note + ")"
        : "ablating this class's graph lowers p(class) " +
          (d.faith.ratio ? d.faith.ratio.toFixed(1) + "× as much as random channels" : "no more than random channels") +
          "; share of random draws doing as much: " + d.faith.pr
    )
    .text((d) => {
      const f = d.faith;
      if (f.note || f.pr === null || f.pr === undefined) return "F n/a";
      // the drop ratio graph ÷ random when random channels lower p(class) at all
      if (f.ratio && f.ratio > 0) return f.ratio >= 100 ? "×100+" : "×" + (f.ratio >= 10 ? f.ratio.toFixed(0) : f.ratio.toFixed(1));
      return f.pr < 0.05 ? "F ✓" : "F ✗";
    });
  rowText
    .append("svg")
    .attr("class", "class-hist")
    .each(function (d) {
      drawHist(d3.select(this), d.hist, 70, 16);
    });
  const bars = rows.append("div").attr("class", "sim-bar");
  bars.append("div").attr("class", "sim-fill");
  // the embedding highlights the classes the sidebar shows: rows not hidden by the search and
  // within the list's scrolled view
  function markListed() {
    const box = document.getElementById("class-list").getBoundingClientRect();
    const shown = new Set();
    document.querySelectorAll("#class-list li").forEach((li) => {
      if (li.style.display === "none") return;
      const r = li.getBoundingClientRect();
      if (r.bottom > box.top && r.top < box.bottom) shown.add(Number(li.getAttribute("data-class")));
    });
    points.classed("listed", (d) => shown.has(d.index));
  }
  list.on("scroll", () => markListed());
  // search completion: every class name
  d3.select("#class-names")
    .selectAll("option")
    .data(D.classes)
    .join("option")
    .attr("value", (d) => pretty(d.name));
  // keyboard: arrows move the selection through the visible rows in their current order
  list.attr("tabindex", 0).on("keydown", (ev) => {
    if (ev.key !== "ArrowDown" && ev.key !== "ArrowUp") return;
    ev.preventDefault();
    const shown = Array.from(document.querySelectorAll("#class-list li")).filter((li) => li.style.display !== "none");
    const at = shown.findIndex((li) => Number(li.getAttribute("data-class")) === state.selected);
    const next = shown[Math.max(0, Math.min(shown.length - 1, at + (ev.key === "ArrowDown" ? 1 : -1)))];
    if (next) {
      select(Number(next.getAttribute("data-class")));
      next.scrollIntoView({ block: "nearest" });
    }
  });

  function updateSidebar() {
    const sim = similarityTo(state.selected, state.layer);
    const q = state.search.trim().toLowerCase();
    const listed = (d) => state.showEmpty || hasImages(d) || d.index === state.selected;
    rows
      .classed("selected", (d) => d.index === state.selected)
      .classed("compared", (d) => d.index === state.compare)
      .classed("no-images", (d) => !hasImages(d))
      .style("display", (d) =>
        listed(d) && (q === "" || pretty(d.name).toLowerCase().includes(q) || d.name.toLowerCase().includes(q))
          ? null
          : "none"
      );
    points.style("display", (d) => (listed(d) ? null : "none"));
    bars.select(".sim-fill").style("width", (d) => {
      const s = sim.has(d.index) ? sim.get(d.index) : 0;
      return Math.max(0, Math.min(1, s)) * 100 + "%";
    });
    rows.attr("data-similarity", (d) => (sim.has(d.index) ? sim.get(d.index) : ""));
    markListed();
    const acc = (d) => (d.accuracy === null || d.accuracy === undefined ? -1 : d.accuracy);
    let cmp;
    if (state.sort === "similarity") {
      const s = (d) => (sim.has(d.index) ? sim.get(d.index) : -2);
      cmp = (a, b) => s(b) - s(a) || a.index - b.index;
    } else if (state.sort === "accuracy-desc") {
      cmp = (a, b) => acc(b) - acc(a) || a.index - b.index;
    } else if (state.sort === "accuracy-asc") {
      cmp = (a, b) => acc(a) - acc(b) || a.index - b.index;
    } else {
      cmp = (a, b) => d3.ascending(pretty(a.name), pretty(b.name)) || a.index - b.index;
    }
    rows.sort(cmp);
  }
  d3.select("#empty-toggle")
    .attr("hidden", emptyClasses > 0 ? null : true)
    .select("span")
    .text(emptyClasses + " classes without images");
  d3.select("#empty-toggle input").on("change", function () {
    state.showEmpty = this.checked;
    updateSidebar();
  });
  d3.select("#class-search").on("input", function () {
    state.search = this.value;
    updateSidebar();
  });
  d3.select("#sort-select").on("change", function () {
    state.sort = this.value;
    updateSidebar();
    document.getElementById("class-list").scrollTop = 0;
  });

  // ---------- embedding view ----------
  const layerSelect = d3.select("#layer-select");
  layerSelect
    .selectAll("option")
    .data(D.layers)
    .join("option")
    .attr("value", (d, i) => i)
    .text((d) => (d.label !== d.name ? d.label + " (" + d.name + ")" : d.name));
  layerSelect.property("value", state.layer);
  layerSelect.on("change", function () {
    state.layer = +this.value;
    updateEmbedding(true);
    updateSidebar();
    saveToUrl();
  });

  const EW = 360,
    EH = 300,
    EM = 18;
  const esvg = d3.select("#embedding");
  const eg = esvg.append("g");
  const points = eg
    .selectAll("circle")
    .data(D.classes)
    .join("circle")
    .attr("class", "embed-point")
    .attr("data-class", (d) => d.index)
    .attr("r", 3.5)
    .on("click", (ev, d) => select(d.index));
  points.append("title").text((d) => pretty(d.name));
  const elabel = eg.append("text").attr("class", "embed-label");
  // the hovered class's name beside its point
  const ehover = eg.append("text").attr("class", "embed-hover");
  points
    .on("mouseenter", function (ev, d) {
      const x = +d3.select(this).attr("cx"),
        y = +d3.select(this).attr("cy");
      const right = x > EW * 0.6;
      ehover
        .attr("x", x + (right ? -8 : 8))
        .attr("y", y - 6)
        .attr("text-anchor", right ? "end" : "start")
        .text(pretty(d.name));
    })
    .on("mouseleave", () => ehover.text(""));
  let ex = d3.scaleLinear(),
    ey = d3.scaleLinear(),
    ezoom = d3.zoomIdentity;
  function updateEmbedding(animate) {
    const pts = D.overview[state.layer].embed;
    const xs = d3.extent(pts, (p) => p[0]);
    const ys = d3.extent(pts, (p) => p[1]);
    const pad = (e) => (e[0] === e[1] ? [e[0] - 1, e[1] + 1] : e);
    ex = d3.scaleLinear().domain(pad(xs)).range([EM, EW - EM]);
    ey = d3.scaleLinear().domain(pad(ys)).range([EH - EM, EM]);
    const t = animate ? points.transition().duration(600) : points;
    placePoints(t);
  }
  function placePoints(sel) {
    const pts = D.overview[state.layer].embed;
    const zx = ezoom.rescaleX(ex),
      zy = ezoom.rescaleY(ey);
    sel.attr("cx", (d) => zx(pts[d.index][0])).attr("cy", (d) => zy(pts[d.index][1]));
    const s = pts[state.selected];
    const right = zx(s[0]) > EW * 0.6;
    elabel
      .attr("x", zx(s[0]) + (right ? -8 : 8))
      .attr("y", zy(s[1]) + 4)
      .attr("text-anchor", right ? "end" : "start")
      .text(pretty(D.classes[state.selected].name));
  }
  const embedZoom = d3
    .zoom()
    .scaleExtent([0.5, 80])
    .on("zoom", (ev) => {
      ezoom = ev.transform;
      placePoints(points);
    });
  esvg.call(embedZoom);
  d3.select("#embedding-reset").on("click", () =>
    esvg.transition().duration(500).call(embedZoom.transform, d3.zoomIdentity)
  );
  function updateEmbeddingSelection() {
    points
      .classed("selected", (d) => d.index === state.selected)
      .classed("compared", (d) => d.index === state.compare)
      .attr("r", (d) => (d.index === state.selected || d.index === state.compare ? 6 : 3.5));
    points.filter((d) => d.index === state.compare || d.index === state.selected).raise();
    placePoints(points);
  }

  // ---------- attribution graph ----------
  const compareSelect = d3.select("#compare-select");
  function fillCompareOptions() {
    const opts = [{ index: "", name: "(none)" }].concat(
      D.classes.filter((c) => c.index !== state.selected)
    );
    compareSelect
      .selectAll("option")
      .data(opts)
      .join("option")
      .attr("value", (d) => d.index)
      .text((d) => (d.index === "" ? d.name : pretty(d.name)));
    compareSelect.property("value", state.compare === null ? "" : state.compare);
  }
  compareSelect.on("change", function () {
    state.compare = this.value === "" ? null : +this.value;
    state.threshold = 0;
    render();
  });

  // vertices of class c per layer: Map channel -> {channel, count, pagerank, prev}
  function classLayers(c) {
    const d = classCache.get(c);
    return (d ? d.graph : D.layers.map(() => [])).map((vs) => {
      const m = new Map();
      for (const [channel, count, pagerank, prev] of vs)
        m.set(channel, { channel, count, pagerank, prev });
      return m;
    });
  }

  // the graph shown: one class, or the union of two with memberships
  function currentGraph() {
    const A = classLayers(state.selected);
    const B = state.compare === null ? null : classLayers(state.compare);
    const layers = [];
    for (let l = 0; l < L; l++) {
      const nodes = new Map();
      const add = (v, side) => {
        let n = nodes.get(v.channel);
        if (!n) {
          n = { layer: l, channel: v.channel, a: null, b: null };
          nodes.set(v.channel, n);
        }
        n[side] = v;
      };
      for (const v of A[l].values()) add(v, "a");
      if (B) for (const v of B[l].values()) add(v, "b");
      for (const n of nodes.values()) {
        n.count = Math.max(n.a ? n.a.count : 0, n.b ? n.b.count : 0);
        n.pagerank = Math.max(n.a ? n.a.pagerank : 0, n.b ? n.b.pagerank : 0);
        n.membership = !B ? "single" : n.a && n.b ? "both" : n.a ? "only-a" : "only-b";
      }
      const edges = new Map();
      for (const n of nodes.values()) {
        for (const side of ["a", "b"]) {
          const v = n[side];
          if (!v) continue;
          for (const [p, w] of v.prev) {
            const key = n.channel + ":" + p;
            let e = edges.get(key);
            if (!e) {
              e = { layer: l, to: n.channel, from: p, wa: null, wb: null };
              edges.set(key, e);
            }
            if (side === "a") e.wa = w;
            else e.wb = w;
          }
        }
      }
      for (const e of edges.values()) {
        e.weight = Math.max(e.wa || 0, e.wb || 0);
        e.membership = !B ? "single" : e.wa !== null && e.wb !== null ? "both" : e.wa !== null ? "only-a" : "only-b";
      }
      layers.push({ nodes: Array.from(nodes.values()), edges: Array.from(edges.values()) });
    }
    return layers;
  }

  const GW = 1000,
    MARGIN = 90;
  d3.select("#graph-width").on("input", function () {
    state.spacing = +this.value;
    drawGraph();
  });
  d3.select("#graph-height").on("input", function () {
    state.row = +this.value;
    drawGraph();
  });
  d3.select("#compare-mode").on("change", function () {
    state.cmpMode = this.value;
    drawGraph();
  });
  const gsvg = d3.select("#graph").append("svg").attr("id", "graph-svg");
  const defs = gsvg.append("defs");
  defs
    .append("filter")
    .attr("id", "glow")
    .append("feDropShadow")
    .attr("dx", 0)
    .attr("dy", 0)
    .attr("stdDeviation", 3)
    .attr("flood-color", "rgba(0,0,0,0.45)");
  const zoomLayer = gsvg.append("g").attr("class", "zoom-layer");
  const graphZoom = d3
    .zoom()
    .scaleExtent([0.1, 8])
    .on("zoom", (ev) => zoomLayer.attr("transform", ev.transform));
  gsvg.call(graphZoom).on("dblclick.zoom", null);
  d3.select("#graph-reset").on("click", () =>
    gsvg.transition().duration(500).call(graphZoom.transform, d3.zoomIdentity)
  );

  const slider = d3.select("#count-filter");
  slider.on("input", function () {
    state.threshold = +this.value;
    drawGraph(true);
  });

  // `animate`: vertices filtered out fade away and the kept ones glide to their re-centred
  // places (the count filter); otherwise the graph is drawn at once
  function drawGraph(animate) {
    const old = new Map();
    if (animate)
      zoomLayer.selectAll("g.vertex-group").each((n) => old.set(n.layer + ":" + n.channel, { x: n.x, y: n.y, r: n.r }));
    const ROW = state.row,
      SPACING = state.spacing;
    let all = currentGraph();
    // comparison operations (paper Fig. 9): union (all), intersection (in both), difference
    // (only in the selected class)
    if (state.compare !== null && state.cmpMode !== "union") {
      const keep = state.cmpMode === "intersection" ? "both" : "only-a";
      all = all.map((l) => {
        const nodes = l.nodes.filter((n) => n.membership === keep);
        const ids = new Set(nodes.map((n) => n.channel));
        return { nodes, edges: l.edges, ids };
      });
      all.forEach((l, i) => {
        const below = i > 0 ? all[i - 1].ids : new Set();
        l.edges = l.edges.filter((e) => e.membership === keep && l.ids.has(e.to) && below.has(e.from));
      });
    }
    d3.select("#compare-mode").property("disabled", state.compare === null);
    const maxCount = d3.max(all, (l) => d3.max(l.nodes, (n) => n.count)) || 0;
    slider.attr("max", maxCount);
    if (state.threshold > maxCount) state.threshold = maxCount;
    slider.property("value", state.threshold);
    d3.select("#count-filter-value").text(state.threshold);
    const t = state.threshold;
    // filter vertices, then edges between kept vertices
    const layers = all.map((l) => ({ nodes: l.nodes.filter((n) => n.count >= t), edges: [] }));
    const kept = layers.map((l) => new Set(l.nodes.map((n) => n.channel)));
    all.forEach((l, i) => {
      if (i === 0) return;
      layers[i].edges = l.edges.filter((e) => kept[i].has(e.to) && kept[i - 1].has(e.from));
    });
    // layout: bottom row (first layer) by count, rows above by the mean
    // position of their lower neighbours (barycentre), unconnected last
    const pos = [];
    for (let l = 0; l < L; l++) {
      const nodes = layers[l].nodes;
      let key;
      if (l === 0) {
        key = (n) => [0, -n.count, n.channel];
      } else {
        const below = pos[l - 1];
        const bary = new Map();
        for (const e of layers[l].edges) {
          const x = below.get(e.from);
          if (x === undefined) continue;
          const b = bary.get(e.to) || [0, 0];
          b[0] += x * e.weight + x * 1e-9;
          b[1] += e.weight + 1e-9;
          bary.set(e.to, b);
        }
        key = (n) => {
          const b = bary.get(n.channel);
          return b ? [0, b[0] / b[1], n.channel] : [1, -n.count, n.channel];
        };
      }
      nodes.sort((a, b) => {
        const ka = key(a),
          kb = key(b);
        return ka[0] - kb[0] || ka[1] - kb[1] || ka[2] - kb[2];
      });
      const m = new Map();
      const width = (nodes.length - 1) * SPACING;
      nodes.forEach((n, i) => {
        n.x = GW / 2 - width / 2 + i * SPACING;
        n.y = MARGIN / 2 + (L - 1 - l) * ROW;
        m.set(n.channel, n.x);
      });
      pos.push(m);
    }
    const height = MARGIN + (L - 1) * ROW;
    const widest = d3.max(layers, (l) => l.nodes.length) || 1;
    const minX = Math.min(0, GW / 2 - ((widest - 1) * SPACING) / 2 - MARGIN);
    const maxX = Math.max(GW, GW / 2 + ((widest - 1) * SPACING) / 2 + MARGIN / 2);
    gsvg.attr("viewBox", [minX, 0, maxX - minX, height].join(" "));

    const r = d3.scaleSqrt().domain([0, Math.max(1, maxCount)]).range([3, 18]);
    const maxW = d3.max(layers, (l) => d3.max(l.edges, (e) => e.weight)) || 1;
    const sw = d3.scaleLinear().domain([0, maxW]).range([0.6, 7]);
    const byLayer = layers.map((l) => new Map(l.nodes.map((n) => [n.channel, n])));
    const edges = layers.flatMap((l) => l.edges);
    const nodes = layers.flatMap((l) => l.nodes);

    zoomLayer.selectAll("*").remove();
    for (const n of nodes) n.r = r(n.count);
    zoomLayer
      .append("g")
      .attr("class", "layer-labels")
      .selectAll("text")
      .data(D.layers)
      .join("text")
      .attr("class", "layer-label")
      .attr("x", minX + 8)
      .attr("y", (d, l) => MARGIN / 2 + (L - 1 - l) * ROW + 4)
      .text((d) => d.label);
    zoomLayer
      .append("g")
      .attr("class", "edges")
      .selectAll("path")
      .data(edges)
      .join("path")
      .attr("class", (e) => "edge " + e.membership)
      .attr("data-layer", (e) => e.layer)
      .attr("data-from", (e) => e.from)
      .attr("data-to", (e) => e.to)
      .attr("stroke-width", (e) => sw(e.weight))
      .on("mouseenter", (ev, e) => hoverEdge(e))
      .on("mouseleave", () => unhoverEdge())
      .attr("d", (e) => {
        const a = byLayer[e.layer].get(e.to),
          b = byLayer[e.layer - 1].get(e.from);
        const y1 = a.y + r(a.count),
          y2 = b.y - r(b.count);
        const my = (y1 + y2) / 2;
        return "M" + a.x + "," + y1 + "C" + a.x + "," + my + " " + b.x + "," + my + " " + b.x + "," + y2;
      })
      .append("title")
      .text((e) => {
        let s = D.layers[e.layer - 1].label + ":" + e.from + " \u2192 " + D.layers[e.layer].label + ":" + e.to;
        if (e.membership === "single") return s + "  influence " + e.weight;
        return s + "  A " + (e.wa === null ? "-" : e.wa) + ", B " + (e.wb === null ? "-" : e.wb);
      });
    const at = (p) => "translate(" + p.x + "," + p.y + ")";
    const vg = zoomLayer
      .append("g")
      .attr("class", "vertices")
      .selectAll("g")
      .data(nodes)
      .join("g")
      .attr("class", "vertex-group")
      .attr("transform", (n) => at(n));
    if (animate && old.size) {
      const DUR = 300;
      vg.filter((n) => old.has(n.layer + ":" + n.channel))
        .attr("transform", (n) => at(old.get(n.layer + ":" + n.channel)))
        .transition()
        .duration(DUR)
        .attr("transform", (n) => at(n));
      zoomLayer.selectAll("g.edges path").style("opacity", 0).transition().delay(DUR / 2).duration(DUR).style("opacity", null);
      const keptKeys = new Set(nodes.map((n) => n.layer + ":" + n.channel));
      const gone = Array.from(old.entries()).filter(([k]) => !keptKeys.has(k));
      zoomLayer
        .append("g")
        .attr("class", "ghosts")
        .selectAll("circle")
        .data(gone)
        .join("circle")
        .attr("class", "ghost")
        .attr("cx", (d) => d[1].x)
        .attr("cy", (d) => d[1].y)
        .attr("r", (d) => d[1].r)
        .transition()
        .duration(DUR)
        .attr("r", 0)
        .style("opacity", 0)
        .remove();
    }
    vg.append("circle")
      .attr("class", (n) => "vertex " + n.membership)
      .attr("data-layer", (n) => n.layer)
      .attr("data-channel", (n) => n.channel)
      .attr("data-count", (n) => n.count)
      .attr("r", (n) => r(n.count))
      .on("mouseenter", (ev, n) => hover(n))
      .on("mouseleave", (ev, n) => {
        unhover();
        restoreVertexImage(n);
      })
      .on("click", (ev, n) => {
        ev.stopPropagation();
        pin(n);
      })
      .on("mousemove", (ev, n) => stepDiversity(ev, n))
      .append("title")
      .text((n) => D.layers[n.layer].label + ":" + n.channel + "  count " + n.count + "  pagerank " + n.pagerank.toPrecision(3));
    // the vertex as its channel's feature visualization (view/featvis.js), else its top
    // dataset example; the coloured ring of the circle shows its membership
    const vimg = vg
      .append("image")
      .attr("class", "vertex-image")
      .attr("data-layer", (n) => n.layer)
      .attr("data-channel", (n) => n.channel)
      .attr("x", (n) => -0.85 * r(n.count))
      .attr("y", (n) => -0.85 * r(n.count))
      .attr("width", (n) => 1.7 * r(n.count))
      .attr("height", (n) => 1.7 * r(n.count))
      .attr("preserveAspectRatio", "xMidYMid slice")
      .attr("data-kind", (n) => (fallbackImage(n) ? "example" : "none"))
      .attr("href", (n) => fallbackImage(n));
    loadFeatVis().then((F) => {
      if (!F) return;
      vimg.each(function (n) {
        const e = F.channels[n.layer + ":" + n.channel];
        if (e) d3.select(this).attr("href", e.image).attr("data-kind", "featvis").attr("data-shown", "channel");
      });
    });
    vg.append("text")
      .attr("class", "vertex-label")
      .attr("x", (n) => 0.75 * r(n.count) + 2)
      .attr("y", (n) => -0.75 * r(n.count) - 2)
      .text((n) => n.channel);
    d3.select("#graph").attr("data-vertices", nodes.length).attr("data-edges", edges.length);
    if (typeof highlightMotif === "function" && state.motif !== undefined) highlightMotif();
  }

  function hoverEdge(e) {
    zoomLayer.classed("hovering", true);
    zoomLayer.selectAll("path.edge").classed("highlight", (x) => x === e);
    zoomLayer
      .selectAll("circle.vertex")
      .classed("endpoint", (n) => (n.layer === e.layer && n.channel === e.to) || (n.layer === e.layer - 1 && n.channel === e.from));
    let s = D.layers[e.layer - 1].label + ":" + e.from + " \u2192 " + D.layers[e.layer].label + ":" + e.to;
    s += e.membership === "single" ? "  influence " + e.weight : "  influence A " + (e.wa === null ? "-" : e.wa) + ", B " + (e.wb === null ? "-" : e.wb);
    d3.select("#edge-info").attr("hidden", null).text(s);
  }
  function unhoverEdge() {
    zoomLayer.classed("hovering", false);
    zoomLayer.selectAll(".highlight").classed("highlight", false);
    zoomLayer.selectAll(".endpoint").classed("endpoint", false);
    d3.select("#edge-info").attr("hidden", "");
  }

  function fallbackImage(n) {
    const layer = D.layers[n.layer];
    return (layer.patches[String(n.channel)] || 0) > 0 ? layer.patchDir + "/" + n.channel + "-0.png" : null;
  }
  // ---------- feature visualizations (view/featvis.js, written when the run makes them) ----------
  // a data script of view/ (it calls window[callback] with its data), loaded once
  const dataScripts = {};
  function loadDataScript(src, callback) {
    if (!dataScripts[src])
      dataScripts[src] = new Promise((resolve) => {
        window[callback] = (d) => resolve(d);
        const s = document.createElement("script");
        s.src = src;
        s.onerror = () => resolve(null);
        document.head.appendChild(s);
      });
    return dataScripts[src];
  }
  function loadFeatVis() {
    return loadDataScript("view/featvis.js", "summitFeatVisData");
  }
  // moving the pointer across a vertex steps through its diversity images (paper 7.3)
  function stepDiversity(ev, n) {
    // read the event now: currentTarget is gone once the handler returns
    const g = ev.currentTarget ? ev.currentTarget.parentNode : null;
    if (!g) return;
    const [px] = d3.pointer(ev, g);
    const rr = +ev.currentTarget.getAttribute("r") || 1;
    loadFeatVis().then((F) => {
      const e = F && F.channels[n.layer + ":" + n.channel];
      if (!e || !e.diversity.length) return;
      const k = Math.max(0, Math.min(e.diversity.length - 1, Math.floor(((px + rr) / (2 * rr)) * e.diversity.length)));
      d3.select(g).select("image.vertex-image").attr("href", e.diversity[k]).attr("data-shown", String(k));
    });
  }
  function restoreVertexImage(n) {
    loadFeatVis().then((F) => {
      const e = F && F.channels[n.layer + ":" + n.channel];
      if (!e) return;
      zoomLayer
        .selectAll(`image.vertex-image[data-layer="${n.layer}"][data-channel="${n.channel}"]`)
        .attr("href", e.image)
        .attr("data-shown", "channel");
    });
  }

  function hover(n) {
    zoomLayer.classed("hovering", true);
    zoomLayer
      .selectAll("path.edge")
      .classed(
        "highlight",
        (e) => (e.layer === n.layer && e.to === n.channel) || (e.layer === n.layer + 1 && e.from === n.channel)
      );
    zoomLayer
      .selectAll("circle.vertex")
      .classed("highlight", (m) => m === n);
    showPatches(n);
  }
  function unhover() {
    zoomLayer.classed("hovering", false);
    zoomLayer.selectAll(".highlight").classed("highlight", false);
    if (state.pinned) showPatches(state.pinned);
    else d3.select("#patch-panel").attr("hidden", "");
  }
  // a click on a vertex pins its dataset examples, so that they can be clicked (per-image
  // panel); a second click, or one on the background, unpins
  function pin(n) {
    state.pinned = state.pinned === n ? null : n;
    if (state.pinned) showPatches(n);
    else d3.select("#patch-panel").attr("hidden", "").classed("pinned", false);
  }

  function showPatches(n) {
    const layer = D.layers[n.layer];
    const count = layer.patches[String(n.channel)] || 0;
    const panel = d3.select("#patch-panel").attr("hidden", null);
    panel.selectAll("*").remove();
    panel
      .append("div")
      .attr("class", "patch-title")
      .text(layer.label + " channel " + n.channel + " \u2014 count " + n.count + ", pagerank " + n.pagerank.toPrecision(3));
    const fvRow = panel.append("div").attr("class", "featvis-row");
    loadFeatVis().then((F) => {
      const e = F && F.channels[n.layer + ":" + n.channel];
      if (!e) return;
      fvRow
        .selectAll("img")
        .data([e.image].concat(e.diversity))
        .join("img")
        .attr("class", (f, k) => "featvis" + (k ? " diversity" : ""))
        .attr("alt", (f, k) => (k ? "diversity image " + (k - 1) : "feature visualization"))
        .attr("src", (f) => f);
    });
    if (count === 0) {
      panel.append("div").attr("class", "patch-none").text("no dataset examples exported for this channel");
      return;
    }
    panel.classed("pinned", state.pinned === n);
    const imgs = panel
      .append("div")
      .attr("class", "patches")
      .selectAll("img")
      .data(d3.range(count))
      .join("img")
      .attr("class", "patch")
      .attr("alt", (k) => "example " + k)
      .attr("src", (k) => layer.patchDir + "/" + n.channel + "-" + k + ".png");
    // the examples' images, when the run attributed them (view/images.js)
    loadImages().then((I) => {
      if (!I) return;
      const ids = I.examples[n.layer + ":" + n.channel] || [];
      imgs
        .classed("clickable", (k) => ids[k] !== undefined && I.images[ids[k]] !== undefined)
        .attr("data-image", (k) => (ids[k] === undefined ? null : ids[k]))
        .attr("title", (k) => (ids[k] !== undefined && I.images[ids[k]] ? "open image " + ids[k] : null))
        .on("click", (ev, k) => {
          if (ids[k] !== undefined && I.images[ids[k]]) openImage(ids[k]);
        });
    });
  }



  // ---------- per-image panel (view/images.js, written when the run attributes images) ----------
  function loadImages() {
    return loadDataScript("view/images.js", "summitImageData");
  }
  state.method = null;
  function openImage(id) {
    // served live (`summit serve`): any method, any target, from the API
    if (window.summitLive) return window.summitLive.open(id);
    loadImages().then((I) => {
      const e = I && I.images[id];
      if (!e) return;
      const panel = d3.select("#image-panel").attr("hidden", null).attr("data-image", id);
      if (state.method === null || I.methods.indexOf(state.method) < 0) state.method = I.methods[0];
      d3.select("#image-title").text("image " + id + " \u2014 " + e.source);
      d3.select("#image-original").attr("src", e.file);
      const ms = d3.select("#image-method");
      ms.selectAll("option")
        .data(I.methods)
        .join("option")
        .attr("value", (m) => m)
        .text((m) => m);
      ms.property("value", state.method).on("change", function () {
        state.method = this.value;
        openImage(id);
      });
      d3.select("#image-heat").attr("src", e.heat[state.method] || "");
      d3.select("#image-heat-caption").text(
        state.method + (state.method === "grad-cam" || state.method === "guided-grad-cam" ? " at " + I.grad_cam_layer : "") + ", explaining " + pretty(D.classes[e.top[0][0]].name)
      );
      d3.select("#image-label").text("true class: " + pretty(D.classes[e.label].name));
      d3.select("#image-preds")
        .selectAll("li")
        .data(e.top)
        .join("li")
        .classed("true", (t) => t[0] === e.label)
        .text((t) => pretty(D.classes[t[0]].name) + "  " + (100 * t[1]).toFixed(1) + "%");
      panel.attr("data-ready", "1");
    });
  }
  d3.select("#image-close").on("click", () => d3.select("#image-panel").attr("hidden", ""));
  function showClassImages() {
    const c = state.selected;
    loadImages().then((I) => {
      const ev = I && I.evaluation;
      const es = d3.select("#heat-eval");
      if (ev && ev.rows.length) {
        es.attr("hidden", null);
        d3.select("#heat-eval-note").text(
          "over " + ev.images.length + " images (each class's most confident picks, explained for the predicted class)" +
            (ev.skipped.length ? "; left out: " + ev.skipped.map((s) => s[0] + " (" + s[1] + ")").join(", ") : "")
        );
        summitEvaluationTable(d3.select("#heat-eval-table"), ev);
      } else es.attr("hidden", "");
      const sec = d3.select("#class-images");
      const ci = I && I.classes[c];
      if (!ci) {
        sec.attr("hidden", "");
        return;
      }
      sec.attr("hidden", null);
      for (const [sel, list] of [["#confident-images", ci.confident], ["#misclassified-images", ci.misclassified]]) {
        d3.select(sel)
          .selectAll("img")
          .data(list, (id) => id)
          .join("img")
          .attr("class", "thumb")
          .attr("data-image", (id) => id)
          .attr("src", (id) => I.images[id].file)
          .attr("title", (id) => {
            const e = I.images[id];
            return "image " + id + ": predicted " + pretty(D.classes[e.top[0][0]].name) + " " + (100 * e.top[0][1]).toFixed(1) + "%";
          })
          .on("click", (ev, id) => openImage(id));
      }
    });
  }

  // ---------- faithfulness of the selected class's graph (SPEC §3.1) ----------
  function drawFaith() {
    const d = classCache.get(state.selected);
    const f = d && d.faith;
    const sec = d3.select("#class-faith");
    const drops = d3.select("#faith-drops");
    const del = d3.select("#faith-deletion");
    drops.selectAll("*").remove();
    del.selectAll("*").remove();
    d3.select("#faith-area").text("");
    if (!f) {
      sec.attr("hidden", "");
      return;
    }
    sec.attr("hidden", null);
    const f3 = (v) => (v === null || v === undefined ? "n/a" : v.toFixed(3));
    if (!f.graph) {
      d3.select("#faith-text").text("faithfulness: not measured (" + f.note + ")");
      sec.attr("data-measured", "0");
      return;
    }
    sec.attr("data-measured", "1");
    d3.select("#faith-text").text(
      "ablating the graph's " + f.vertices + " channels lowers p(class) by " + f3(f.graph.drop) +
        " (from " + f3(f.pBefore) + ", " + f.images + " images); random channels " + f3(f.random && f.random.mean) +
        " (p_random " + (f.random ? f.random.pRandom.toFixed(2) : "n/a") + "), top activation channels " + f3(f.activation.drop) +
        "; on the " + (f.selectivity ? f.selectivity.classes.length : 0) + " most similar classes " + f3(f.selectivity && f.selectivity.drop)
    );
    // the drops on one axis: random draws (grey), activation baseline (blue), graph (red)
    const W = 300, H = 58;
    const rd = f.random ? f.random.drops : [];
    const all = rd.concat([f.graph.drop, f.activation.drop, 0]);
    const x = d3.scaleLinear().domain([Math.min(0, d3.min(all)), Math.max(1e-6, d3.max(all))]).nice().range([10, W - 10]);
    drops.attr("width", W).attr("height", H);
    drops.append("line").attr("class", "faith-axis").attr("x1", 10).attr("x2", W - 10).attr("y1", 34.5).attr("y2", 34.5);
    drops.append("g").attr("class", "faith-ticks").selectAll("text").data(x.ticks(4)).join("text")
      .attr("x", (v) => x(v)).attr("y", 50).attr("text-anchor", "middle").text((v) => v);
    drops.selectAll("circle.faith-random").data(rd).join("circle").attr("class", "faith-random")
      .attr("cx", (v) => x(v)).attr("cy", (v, i) => 28 - (i % 4) * 4).attr("r", 2.5);
    for (const [cls, v, label, y] of [["faith-activation", f.activation.drop, "activation", 12], ["faith-graph", f.graph.drop, "graph", 4]]) {
      drops.append("line").attr("class", cls).attr("x1", x(v)).attr("x2", x(v)).attr("y1", y + 4).attr("y2", 38);
      const right = x(v) > W - 60;
      drops.append("text").attr("class", cls + "-label").attr("x", x(v) + (right ? -3 : 3)).attr("y", y + 8)
        .attr("text-anchor", right ? "end" : "start").text(label);
    }
    // the deletion curve: mean p(class) as the graph's vertices are ablated by PageRank
    const dc = f.deletion;
    const W2 = 220, H2 = 58;
    del.attr("width", W2).attr("height", H2);
    const nv = dc.v[dc.v.length - 1] || 1;
    const x2 = d3.scaleLinear().domain([0, nv]).range([24, W2 - 8]);
    const y2 = d3.scaleLinear().domain([0, 1]).range([H2 - 12, 4]);
    del.append("line").attr("class", "faith-axis").attr("x1", 24).attr("x2", W2 - 8).attr("y1", H2 - 11.5).attr("y2", H2 - 11.5);
    del.append("line").attr("class", "faith-axis").attr("x1", 23.5).attr("x2", 23.5).attr("y1", 4).attr("y2", H2 - 12);
    del.append("text").attr("class", "faith-ticks").attr("x", 20).attr("y", 10).attr("text-anchor", "end").text("1");
    del.append("text").attr("class", "faith-ticks").attr("x", 20).attr("y", H2 - 12).attr("text-anchor", "end").text("0");
    del.append("text").attr("class", "faith-ticks").attr("x", W2 - 8).attr("y", H2 - 1).attr("text-anchor", "end").text(nv + " vertices");
    const pts = dc.v.map((v, i) => [v, dc.p[i]]);
    del.append("path").attr("class", "faith-curve").attr("d", d3.line().x((p) => x2(p[0])).y((p) => y2(p[1]))(pts));
    del.selectAll("circle.faith-point").data(pts).join("circle").attr("class", "faith-point")
      .attr("cx", (p) => x2(p[0])).attr("cy", (p) => y2(p[1])).attr("r", 2)
      .append("title").text((p) => p[0] + " vertices ablated: p(class) " + p[1].toFixed(3));
    d3.select("#faith-area").text("area " + f3(dc.area));
  }

  function drawLegend() {
    const lg = d3.select("#legend");
    lg.selectAll("*").remove();
    if (state.compare === null) return;
    const items = [
      ["both", "in both"],
      ["only-a", "only " + pretty(D.classes[state.selected].name)],
      ["only-b", "only " + pretty(D.classes[state.compare].name)],
    ];
    const it = lg.selectAll("span").data(items).join("span").attr("class", "legend-item");
    it.append("span").attr("class", (d) => "swatch " + d[0]);
    it.append("span").text((d) => d[1]);
  }

  // draws once the data of the selected (and compared) class is loaded; the body
  // carries data-loading="1" meanwhile
  let renderToken = 0;
  function render() {
    const token = ++renderToken;
    const need = [state.selected];
    if (state.compare !== null) need.push(state.compare);
    document.body.setAttribute("data-loading", "1");
    return Promise.all(need.map(loadClass))
      .then(() => {
        if (token !== renderToken) return;
        renderNow();
        document.body.removeAttribute("data-loading");
        document.body.setAttribute("data-ready", "1");
      })
      .catch((e) => {
        document.body.removeAttribute("data-loading");
        d3.select("#graph").text(String(e.message || e));
        console.error(String(e.message || e));
      });
  }

  function renderNow() {
    const c = D.classes[state.selected];
    d3.select("#selected-class").text(pretty(c.name));
    d3.select("#selected-images").text(fmt(c.images));
    d3.select("#selected-accuracy").text(pct(c.accuracy));
    drawHist(d3.select("#selected-hist"), c.hist, 120, 22);
    fillCompareOptions();
    drawLegend();
    drawGraph();
    drawFaith();
    updateSidebar();
    updateEmbeddingSelection();
    showClassImages();
    saveToUrl();
  }

  function select(c) {
    if (c === state.selected) return;
    state.selected = c;
    if (state.compare === c) state.compare = null;
    state.threshold = 0;
    state.pinned = null;
    d3.select("#patch-panel").attr("hidden", "").selectAll("*").remove();
    render();
  }

  // ---- motifs shared across classes (motifs.json; the best ranked here)
  const MOTIFS = D.motifs || [];
  state.motif = null;
  // the edges of motif m as [upper layer, lower channel, upper channel]
  function motifEdges(m) {
    const [kind, layer, ch] = m;
    if (kind === "path") return ch.slice(1).map((c, k) => [layer + k + 1, ch[k], c]);
    if (kind === "in-star") return ch.slice(1).map((n) => [layer, n, ch[0]]);
    return ch.slice(1).map((n) => [layer + 1, ch[0], n]);
  }
  function motifLabel(m) {
    const [kind, layer, ch] = m;
    const lab = (l) => D.layers[l].label;
    if (kind === "path") return ch.map((c, k) => lab(layer + k) + ":" + c).join(" \u2192 ");
    const side = kind === "in-star" ? layer - 1 : layer + 1;
    return lab(layer) + ":" + ch[0] + (kind === "in-star" ? " \u2190 " : " \u2192 ") + ch.slice(1).map((c) => lab(side) + ":" + c).join(", ");
  }
  d3.select("#motif-summary").text(
    MOTIFS.length ? MOTIFS.length + " shown, in \u2265 " + D.motifMinSupport + " of " + D.motifGraphs + " classes" : "none shared by \u2265 " + D.motifMinSupport + " classes"
  );
  d3.select("#motif-list")
    .selectAll("li")
    .data(MOTIFS)
    .join("li")
    .attr("class", "motif")
    .attr("data-motif", (m, i) => i)
    .attr("title", (m) => m[0] + ", " + m[3].length + " classes")
    .html((m) => '<span class="motif-label"></span><span class="motif-support"></span>')
    .each(function (m) {
      d3.select(this).select(".motif-label").text(motifLabel(m));
      d3.select(this).select(".motif-support").text(m[3].length);
    })
    .on("click", (ev, m) => {
      const i = MOTIFS.indexOf(m);
      state.motif = state.motif === i ? null : i;
      showMotif();
    });
  function showMotif() {
    d3.selectAll("#motif-list li").classed("active", (m, i) => i === state.motif);
    const box = d3.select("#motif-classes");
    box.selectAll("*").remove();
    if (state.motif !== null) {
      const m = MOTIFS[state.motif];
      box.append("div").attr("class", "meta").text("in " + m[3].length + " classes:");
      box
        .selectAll("button.motif-class")
        .data(m[3])
        .join("button")
        .attr("type", "button")
        .attr("class", "motif-class")
        .attr("data-class", (c) => c)
        .classed("current", (c) => c === state.selected)
        .text((c) => pretty(D.classes[c].name))
        .on("click", (ev, c) => select(c));
    }
    highlightMotif();
  }
  // marks the current motif's vertices and edges in the drawn graph
  function highlightMotif() {
    const svg = d3.select("#graph");
    svg.selectAll(".motif-hl").classed("motif-hl", false);
    let n = 0;
    if (state.motif !== null) {
      for (const [l, from, to] of motifEdges(MOTIFS[state.motif])) {
        n += svg.selectAll(`path.edge[data-layer="${l}"][data-from="${from}"][data-to="${to}"]`).classed("motif-hl", true).size();
        for (const [ll, c] of [[l, to], [l - 1, from]]) {
          const v = svg.selectAll(`circle.vertex[data-layer="${ll}"][data-channel="${c}"]:not(.motif-hl)`);
          n += v.size();
          v.classed("motif-hl", true);
        }
      }
    }
    svg.attr("data-motif-hl", n);
  }

  window.summitView = { state, select, data: D, loadClass };
  updateEmbedding(false);
  render();
})();
