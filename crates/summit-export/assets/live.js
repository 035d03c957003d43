// ---------- live mode (`summit serve`, SPEC §5.1) ----------
// Served over HTTP by `summit serve`, the page asks the explorer's API what the static output
// cannot hold: a browser over every dataset image (filtered by class and by the run's
// predictions), the suggestion panel over every image, uploads, and for any image every
// served model side by side — any method for any class or one channel of a summary layer
// (picked in the selectors or by clicking a vertex of the graph), and its attribution graph
// drawn over a class's graph. Opened from file:// (or served by anything without the API)
// nothing here runs.
(function () {
  if (!/^https?:$/.test(window.location.protocol)) return;
  const V = window.summitView;
  if (!V) return;
  const pretty = (name) => String(name).replace(/_/g, " ");
  // the access token of a server bound beyond loopback, passed on to every request
  const token = new URLSearchParams(window.location.search).get("token");
  const api = (path, params) => {
    const q = new URLSearchParams(params || {});
    if (token) q.set("token", token);
    const s = q.toString();
    return "api/" + path + (s ? "?" + s : "");
  };
  const live = {
    info: null,
    method: "grad-cam",
    target: "",
    layer: "",
    channel: 0,
    page: 0,
    cls: "",
    model: 0,
    predicted: "",
    correct: "",
    min: "",
    max: "",
    cell: null,
    open: null,
    graph: null,
    // the vertices picked for an ablation ("layer:channel"), of the class `pickClass`
    picks: new Set(),
    pickClass: null,
    ablating: null,
  };
  const PAGE = 48;
  // the method selector's last entry: a channel's activation map, not an attribution
  const ACTIVATION = "activation";
  const models = () => live.info.models || [{ index: 0, name: live.info.model, predictions: false }];

  fetch(api("info"))
    .then((r) => (r.ok ? r.json() : null))
    .then((info) => {
      if (!info) return;
      live.info = info;
      start();
    })
    .catch(() => {});

  function classOptions(sel, first) {
    sel
      .selectAll("option")
      .data([""].concat(live.info.classes.map((_, i) => String(i))))
      .join("option")
      .attr("value", (v) => v)
      .text((v) => (v === "" ? first : pretty(live.info.classes[+v])));
  }

  function start() {
    document.body.setAttribute("data-live", "1");
    window.summitLive = { open };
    // the dataset browser: every image, filtered by class and by the run's predictions, paged
    const sec = d3.select("#dataset-browser").attr("hidden", null);
    classOptions(d3.select("#browse-class"), "every class");
    classOptions(d3.select("#browse-predicted"), "any prediction");
    const ms = d3.select("#browse-model");
    if (models().length > 1) {
      ms.attr("hidden", null)
        .selectAll("option")
        .data(models())
        .join("option")
        .attr("value", (m) => m.index)
        .text((m) => "predicted by " + m.name);
    }
    const refilter = () => {
      live.page = 0;
      live.cell = null;
      d3.selectAll("#suggest-plot rect.cell").classed("chosen", false);
      browse();
    };
    const bind = (sel, key) =>
      d3.select(sel).on("change", function () {
        live[key] = this.value;
        refilter();
      });
    bind("#browse-class", "cls");
    bind("#browse-predicted", "predicted");
    bind("#browse-correct", "correct");
    bind("#browse-min", "min");
    bind("#browse-max", "max");
    ms.on("change", function () {
      live.model = +this.value;
      refilter();
    });
    d3.select("#browse-prev").on("click", () => {
      if (live.page > 0) {
        live.page -= 1;
        browse();
      }
    });
    d3.select("#browse-next").on("click", () => {
      live.page += 1;
      browse();
    });
    // uploads: the button, or a file dropped on the browser
    d3.select("#upload-input").on("change", function () {
      if (this.files && this.files[0]) upload(this.files[0]);
      this.value = "";
    });
    const node = sec.node();
    node.addEventListener("dragover", (ev) => {
      ev.preventDefault();
      sec.classed("dropping", true);
    });
    node.addEventListener("dragleave", () => sec.classed("dropping", false));
    node.addEventListener("drop", (ev) => {
      ev.preventDefault();
      sec.classed("dropping", false);
      const f = ev.dataTransfer && ev.dataTransfer.files && ev.dataTransfer.files[0];
      if (f) upload(f);
    });
    sec.attr("data-ready", "0");
    browse();
    suggestions();
    // the per-image panel's live controls: every method, any class or one channel
    d3.select("#image-live").attr("hidden", null);
    classOptions(d3.select("#image-target"), "predicted class");
    d3.select("#image-layer")
      .selectAll("option")
      .data([""].concat(live.info.layers.map((l) => l.name)))
      .join("option")
      .attr("value", (v) => v)
      .text((v) => (v === "" ? "— (a class)" : v));
    // the neuron picker: a click on a vertex of the graph explains that channel
    const graph = document.getElementById("graph");
    if (graph) {
      graph.addEventListener(
        "click",
        (ev) => {
          // the circle, or the feature visualization drawn over it
          const grp = ev.target.closest && ev.target.closest("g.vertex-group");
          const c = grp && grp.querySelector("circle.vertex");
          if (c && ev.shiftKey) {
            // shift-click: the vertex joins (or leaves) the set to ablate
            ev.stopPropagation();
            const key = c.getAttribute("data-layer") + ":" + c.getAttribute("data-channel");
            if (live.pickClass !== V.state.selected) {
              live.picks.clear();
              live.pickClass = V.state.selected;
            }
            if (live.picks.has(key)) live.picks.delete(key);
            else live.picks.add(key);
            drawPicks();
            return;
          }
          if (!c || live.open === null) return;
          const l = live.info.layers[+c.getAttribute("data-layer")];
          if (!l) return;
          live.layer = l.name;
          live.channel = +c.getAttribute("data-channel");
          d3.select("#image-layer").property("value", live.layer);
          d3.select("#image-channel").property("value", live.channel);
          showHeat(live.open);
        },
        true
      );
      // the image's graph stays drawn over whatever class graph is shown
      new MutationObserver(() =>
        requestAnimationFrame(() => {
          drawOverlay();
          drawPicks();
        })
      ).observe(graph, { childList: true, subtree: true });
      startAblation();
    }
    d3.select("#image-close").on("click.live", () => {
      live.open = null;
      live.graph = null;
      drawOverlay();
    });
  }

  // ---------- ablation of chosen vertices (SPEC §3.1, §5.1), streamed with progress ----------
  function startAblation() {
    d3.select("#ablate-live").attr("hidden", null);
    d3.select("#ablate-clear").on("click", () => {
      live.picks.clear();
      drawPicks();
    });
    d3.select("#ablate-run").on("click", () => (live.ablating ? live.ablating.abort() : ablate()));
    drawPicks();
  }

  function drawPicks() {
    if (live.pickClass !== V.state.selected && live.picks.size) {
      live.picks.clear();
      live.pickClass = V.state.selected;
    }
    d3.selectAll("#graph circle.vertex").each(function () {
      const on = live.picks.has(this.getAttribute("data-layer") + ":" + this.getAttribute("data-channel"));
      if (this.classList.contains("ablate-pick") !== on) this.classList.toggle("ablate-pick", on);
    });
    const t = live.picks.size
      ? live.picks.size + " vertices picked: " + Array.from(live.picks).map((k) => live.info.layers[+k.split(":")[0]].name + ":" + k.split(":")[1]).join(", ")
      : "the class's whole graph (shift-click vertices to pick a set)";
    const sel = d3.select("#ablate-set");
    if (sel.text() !== t) sel.text(t);
  }

  function ablate() {
    const c = V.state.selected;
    const params = { class: c, images: d3.select("#ablate-images").property("value"), mode: d3.select("#ablate-mode").property("value") };
    if (live.picks.size) params.vertices = Array.from(live.picks).join(",");
    const ctl = new AbortController();
    live.ablating = ctl;
    const bar = d3.select("#ablate-progress").attr("hidden", null).attr("value", 0);
    const out = d3.select("#ablate-result").attr("data-done", null).text("waiting for a compute slot…");
    d3.select("#ablate-run").text("stop");
    const done = () => {
      live.ablating = null;
      d3.select("#ablate-run").text("ablate");
    };
    const show = (msg) => {
      if (msg.error) {
        out.attr("data-done", "error").text(msg.error);
      } else if (msg.result) {
        const r = msg.result;
        out.attr("data-done", "1").text(
          "p(" + pretty(live.info.classes[r.class]) + ") " + r.p_before.toFixed(3) + " → " + r.p_after.toFixed(3) + " (drop " + r.drop.toFixed(3) + ") over " + r.images + " images, " + r.channels + " channels ablated; top-1 " + r.correct_before + " → " + r.correct_after
        );
      } else if (msg.total !== undefined) {
        bar.attr("value", msg.total ? msg.done / msg.total : 0);
        out.text(msg.done + " of " + msg.total + " images");
      }
    };
    fetch(api("ablate", params), { signal: ctl.signal })
      .then((r) => {
        if (!r.ok) return r.json().then((e) => show({ error: e.error || "the ablation failed" }));
        const reader = r.body.getReader();
        const dec = new TextDecoder();
        let buf = "";
        const pump = () =>
          reader.read().then(({ value, done: end }) => {
            if (value) {
              buf += dec.decode(value, { stream: true });
              let nl;
              while ((nl = buf.indexOf("\n")) >= 0) {
                const line = buf.slice(0, nl);
                buf = buf.slice(nl + 1);
                if (line.trim()) show(JSON.parse(line));
              }
            }
            if (!end) return pump();
          });
        return pump();
      })
      .catch((e) => out.attr("data-done", "stopped").text(e.name === "AbortError" ? "stopped" : String(e)))
      .finally(done);
  }

  function filters(extra) {
    const p = Object.assign({}, extra || {});
    if (live.cls !== "") p.class = live.cls;
    if (live.predicted !== "") p.predicted = live.predicted;
    if (live.correct !== "") p.correct = live.correct;
    if (live.min !== "") p.min_confidence = live.min;
    if (live.max !== "") p.max_confidence = live.max;
    if (live.model) p.model = live.model;
    if (live.cell) Object.assign(p, live.cell);
    return p;
  }

  function browse() {
    const params = filters({ offset: live.page * PAGE, limit: PAGE });
    const sec = d3.select("#dataset-browser").attr("data-ready", "0");
    fetch(api("images", params))
      .then((r) => r.json())
      .then((res) => {
        if (res.error) {
          d3.select("#browse-info").text(res.error);
          d3.select("#browse-thumbs").selectAll("img").remove();
          sec.attr("data-ready", "1");
          return;
        }
        const last = Math.max(0, Math.ceil(res.total / PAGE) - 1);
        if (live.page > last) live.page = last;
        d3.select("#browse-info").text(
          res.total ? "images " + (res.offset + 1) + "–" + (res.offset + res.images.length) + " of " + res.total : "no images"
        );
        d3.select("#browse-prev").property("disabled", live.page === 0);
        d3.select("#browse-next").property("disabled", res.offset + res.images.length >= res.total);
        const top = (d) => (d.predicted || [])[live.model];
        d3.select("#browse-thumbs")
          .selectAll("img")
          .data(res.images, (d) => d.index)
          .join("img")
          .attr("class", "thumb")
          .classed("wrong", (d) => !!top(d) && top(d)[0] !== d.label)
          .attr("data-image", (d) => d.index)
          .attr("title", (d) => {
            let t = "image " + d.index + ": " + pretty(live.info.classes[d.label]);
            if (top(d)) t += ", predicted " + pretty(live.info.classes[top(d)[0]]) + " " + (100 * top(d)[1]).toFixed(1) + "%";
            return t;
          })
          .attr("src", (d) => api("image/" + d.index + "/image.png"))
          .on("click", (ev, d) => open(d.index));
        sec.attr("data-ready", "1");
      });
  }

  // the suggestion panel (iNNvestigate-GUI §4.3) over every image: the models' mean top-1
  // probability against how many classes they predict (one model: correct or not); a cell
  // lists its images in the browser
  function suggestions() {
    if (!models().every((m) => m.predictions)) return;
    fetch(api("suggestions"))
      .then((r) => (r.ok ? r.json() : null))
      .then((S) => {
        if (!S) return;
        d3.select("#suggestions").attr("hidden", null).attr("data-images", S.images);
        d3.select("#suggest-title").text(S.models > 1 ? "where the " + S.models + " models agree" : "how sure the model is");
        d3.select("#suggest-note").text(S.images + " images; x: " + S.x + "; click a cell to list its images");
        const svg = d3.select("#suggest-plot");
        svg.selectAll("*").remove();
        const W = 520,
          H = 200,
          left = 100,
          bottom = 24;
        const cw = (W - left) / S.bins,
          ch = (H - bottom) / S.rows.length;
        const max = Math.max(1, d3.max(S.rows, (r) => d3.max(r.counts)));
        const cells = [];
        S.rows.forEach((row, y) => row.counts.forEach((n, x) => cells.push({ row, x, y, n })));
        svg
          .selectAll("rect.cell")
          .data(cells)
          .join("rect")
          .attr("class", "cell")
          .attr("x", (c) => left + c.x * cw + 1)
          .attr("y", (c) => c.y * ch + 1)
          .attr("width", cw - 2)
          .attr("height", ch - 2)
          .attr("fill", (c) => (c.n ? d3.interpolateBlues(0.15 + 0.85 * Math.sqrt(c.n / max)) : "#f4f4f4"))
          .attr("data-count", (c) => c.n)
          .on("click", function (ev, c) {
            d3.selectAll("#suggest-plot rect.cell").classed("chosen", false);
            d3.select(this).classed("chosen", true);
            live.cell = Object.assign({ min_score: c.x / S.bins, max_score: (c.x + 1) / S.bins }, c.row.filter);
            live.page = 0;
            browse();
          })
          .append("title")
          .text((c) => c.n + " images: " + c.row.label + ", " + (c.x / S.bins).toFixed(1) + "–" + ((c.x + 1) / S.bins).toFixed(1));
        svg
          .selectAll("text.row")
          .data(S.rows)
          .join("text")
          .attr("class", "row")
          .attr("x", left - 6)
          .attr("y", (r, y) => y * ch + ch / 2 + 4)
          .attr("text-anchor", "end")
          .style("font-size", "11px")
          .text((r) => r.label);
        svg
          .selectAll("text.col")
          .data([0, 0.5, 1])
          .join("text")
          .attr("class", "col")
          .attr("x", (v) => left + v * (W - left))
          .attr("y", H - 8)
          .attr("text-anchor", (v) => (v === 1 ? "end" : v === 0 ? "start" : "middle"))
          .style("font-size", "11px")
          .text((v) => v.toFixed(1));
      });
  }

  function upload(file) {
    d3.select("#upload-info").text("uploading " + file.name + "…");
    fetch(api("upload"), { method: "POST", body: file })
      .then((r) => r.json().then((j) => [r.status, j]))
      .then(([status, j]) => {
        if (status !== 201) {
          d3.select("#upload-info").attr("data-error", "1").text(j.error || "the upload failed");
          return;
        }
        d3.select("#upload-info").attr("data-error", null).text(file.name + " (" + j.width + "×" + j.height + ") as " + j.id);
        open(j.id);
      })
      .catch((e) => d3.select("#upload-info").attr("data-error", "1").text(String(e)));
  }

  function heatUrl(id, m) {
    if (live.method === ACTIVATION) {
      // a channel's activations: a neuron is needed
      if (live.layer === "") return null;
      const p = { layer: live.layer, channel: live.channel };
      if (m) p.model = m;
      return api("image/" + id + "/activation.png", p);
    }
    const p = { method: live.method };
    if (live.layer !== "") {
      p.layer = live.layer;
      p.channel = live.channel;
    } else if (live.target !== "") p.class = live.target;
    if (m) p.model = m;
    return api("image/" + id + "/attribution.png", p);
  }

  function open(id) {
    live.open = id;
    live.graph = null;
    drawOverlay();
    const panel = d3.select("#image-panel").attr("hidden", null).attr("data-image", id).attr("data-ready", "0");
    d3.select("#image-title").text(String(id).startsWith("u-") ? "upload " + id : "image " + id);
    d3.select("#image-original").attr("src", api("image/" + id + "/image.png"));
    const ms = d3.select("#image-method");
    ms.selectAll("option")
      .data(live.info.methods.concat([ACTIVATION]))
      .join("option")
      .attr("value", (m) => m)
      .text((m) => (m === ACTIVATION ? "activation map (a neuron)" : m));
    ms.property("value", live.method).on("change", function () {
      live.method = this.value;
      showHeat(id);
    });
    d3.select("#image-target").property("value", live.target).on("change", function () {
      live.target = this.value;
      live.layer = "";
      d3.select("#image-layer").property("value", "");
      showHeat(id);
    });
    d3.select("#image-layer").property("value", live.layer).on("change", function () {
      live.layer = this.value;
      showHeat(id);
    });
    d3.select("#image-channel").property("value", live.channel).on("input change", function () {
      live.channel = Math.max(0, Math.floor(+this.value || 0));
      if (live.layer !== "") showHeat(id);
    });
    // the other models, side by side (iNNvestigate-GUI Fig. 1)
    const others = models().slice(1);
    panel.classed("multi", others.length > 0);
    const cols = d3.select("#image-models").attr("hidden", others.length ? null : "")
      .selectAll("div.model-col")
      .data(others, (m) => m.index)
      .join((enter) => {
        const d = enter.append("div").attr("class", "model-col").attr("data-model", (m) => m.index);
        const f = d.append("figure");
        f.append("img").attr("class", "model-heat").attr("alt", "heatmap");
        f.append("figcaption").attr("class", "model-caption");
        d.append("ol").attr("class", "model-preds");
        return d;
      });
    cols.select("figcaption").text((m) => m.name);
    d3.select("#image-heat-caption").attr("data-model", models()[0].name);
    fetch(api("image/" + id + "/predictions"))
      .then((r) => r.json())
      .then((p) => {
        d3.select("#image-label").text(p.label === null || p.label === undefined ? "no label (an upload)" : "true class: " + pretty(live.info.classes[p.label]));
        const list = (sel, top, label) =>
          sel
            .selectAll("li")
            .data(top || [])
            .join("li")
            .classed("true", (t) => t[0] === label)
            .text((t) => pretty(live.info.classes[t[0]]) + "  " + (100 * t[1]).toFixed(1) + "%");
        list(d3.select("#image-preds"), p.top, p.label);
        (p.models || []).slice(1).forEach((m) => list(d3.select(`#image-models div.model-col[data-model="${m.model}"] ol`), m.top, p.label));
        panel.attr("data-predicted", p.top && p.top.length ? p.top[0][0] : null).attr("data-label", p.label === null ? null : p.label);
      });
    showHeat(id);
    const gs = d3.select("#image-graph").attr("data-vertices", null).text("attribution graph: computing…");
    d3.select("#image-graph-tools").attr("hidden", "");
    fetch(api("image/" + id + "/graph"))
      .then((r) => r.json())
      .then((g) => {
        if (live.open !== id) return;
        if (!g.layers) {
          gs.text("attribution graph: " + (g.error || "not available"));
          return;
        }
        live.graph = g;
        const n = g.layers.reduce((a, l) => a + l.length, 0);
        gs.attr("data-vertices", n).text(
          "attribution graph: " + n + " vertices; " +
            g.compare
              .map((c) => "with " + pretty(live.info.classes[c.class]) + "'s graph J = " + c.jaccard.toFixed(2) + " (" + c.shared.length + " shared, " + c.class_only.length + " lacking)")
              .join("; ")
        );
        d3.select("#image-graph-tools").attr("hidden", null);
        d3.select("#graph-over-true").property("hidden", g.class === null || g.class === undefined || String(id).startsWith("u-")).on("click", () => V.select(g.class));
        d3.select("#graph-over-predicted").on("click", () => V.select(g.predicted));
        drawOverlay();
      });
    panel.attr("data-ready", "1");
  }

  // the image's graph over the class graph shown: its vertices there highlighted, the rest
  // dimmed, and a count of what the class graph lacks
  function drawOverlay() {
    const svg = d3.select("#graph");
    const g = live.graph;
    if (!g) {
      svg.classed("image-overlay", false).attr("data-overlay", null);
      svg.selectAll("circle.vertex.in-image").classed("in-image", false);
      return;
    }
    const keys = new Set();
    g.layers.forEach((l, li) => l.forEach((v) => keys.add(li + ":" + v.channel)));
    let shared = 0;
    svg.selectAll("circle.vertex").each(function () {
      const k = this.getAttribute("data-layer") + ":" + this.getAttribute("data-channel");
      const on = keys.has(k);
      if (on) shared += 1;
      if (this.classList.contains("in-image") !== on) this.classList.toggle("in-image", on);
    });
    if (!svg.classed("image-overlay")) svg.classed("image-overlay", true);
    const shown = V.state && V.state.selected !== undefined && live.info.classes[V.state.selected] !== undefined ? pretty(live.info.classes[V.state.selected]) : "this class";
    const text = "drawn over " + shown + "'s graph: " + shared + " of the image's " + keys.size + " vertices are in it, " + (keys.size - shared) + " are the image's own";
    if (svg.attr("data-overlay") !== String(shared)) svg.attr("data-overlay", shared);
    const t = d3.select("#image-overlay-text");
    if (t.text() !== text) t.text(text);
  }

  function showHeat(id) {
    const what = live.layer !== "" ? live.layer + " channel " + live.channel : live.target === "" ? "the predicted class" : pretty(live.info.classes[+live.target]);
    const load = (img, url, caption) => {
      if (url === null) {
        img.attr("src", null).attr("data-error", null).attr("hidden", "");
        caption.text("an activation map needs a neuron: pick a layer and channel, or click a vertex");
        return false;
      }
      img.attr("data-error", null).attr("hidden", null).on("error", () => {
        img.attr("data-error", "1");
        fetch(url)
          .then((r) => r.json())
          .then((e) => caption.text(e.error || "no heatmap"))
          .catch(() => {});
      });
      img.attr("src", url);
      return true;
    };
    const multi = models().length > 1;
    const label = live.method === ACTIVATION ? "activations of " + what : live.method + ", explaining " + what;
    if (load(d3.select("#image-heat"), heatUrl(id, 0), d3.select("#image-heat-caption")))
      d3.select("#image-heat-caption").text((multi ? models()[0].name + ": " : "") + label);
    d3.selectAll("#image-models div.model-col").each(function (m) {
      const col = d3.select(this);
      const cap = col.select("figcaption");
      if (live.layer !== "") {
        // a neuron is the first model's: its layer names are not the others'
        col.select("img").attr("src", null).attr("data-error", null).attr("hidden", "");
        cap.text(m.name + ": (the neuron is " + models()[0].name + "'s)");
        return;
      }
      if (load(col.select("img"), heatUrl(id, m.index), cap)) cap.text(m.name + ": " + label);
    });
  }
})();
