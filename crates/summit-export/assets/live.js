// ---------- live mode (`summit serve`, SPEC §5.1) ----------
// Served over HTTP by `summit serve`, the page asks the explorer's API what the static output
// cannot hold: a browser over every dataset image, and for any image any method for any class
// or one channel of a summary layer, and its attribution graph beside its class's. Opened from
// file:// (or served by anything without the API) nothing here runs.
(function () {
  if (!/^https?:$/.test(window.location.protocol)) return;
  const V = window.summitView;
  if (!V) return;
  const D = V.data;
  const pretty = (name) => String(name).replace(/_/g, " ");
  // the access token of a server bound beyond loopback, passed on to every request
  const token = new URLSearchParams(window.location.search).get("token");
  const api = (path, params) => {
    const q = new URLSearchParams(params || {});
    if (token) q.set("token", token);
    const s = q.toString();
    return "api/" + path + (s ? "?" + s : "");
  };
  const live = { info: null, method: "grad-cam", target: "", layer: "", channel: 0, page: 0, cls: "" };
  const PAGE = 48;

  fetch(api("info"))
    .then((r) => (r.ok ? r.json() : null))
    .then((info) => {
      if (!info) return;
      live.info = info;
      start();
    })
    .catch(() => {});

  function start() {
    document.body.setAttribute("data-live", "1");
    window.summitLive = { open };
    // the dataset browser: every image, filtered by class, paged
    const sec = d3.select("#dataset-browser").attr("hidden", null);
    const cs = d3.select("#browse-class");
    cs.selectAll("option")
      .data([""].concat(live.info.classes.map((_, i) => String(i))))
      .join("option")
      .attr("value", (v) => v)
      .text((v) => (v === "" ? "every class" : pretty(live.info.classes[+v])));
    cs.on("change", function () {
      live.cls = this.value;
      live.page = 0;
      browse();
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
    sec.attr("data-ready", "0");
    browse();
    // the per-image panel's live controls: every method, any class or one channel
    d3.select("#image-live").attr("hidden", null);
    d3.select("#image-target")
      .selectAll("option")
      .data([""].concat(live.info.classes.map((_, i) => String(i))))
      .join("option")
      .attr("value", (v) => v)
      .text((v) => (v === "" ? "predicted class" : pretty(live.info.classes[+v])));
    d3.select("#image-layer")
      .selectAll("option")
      .data([""].concat(live.info.layers.map((l) => l.name)))
      .join("option")
      .attr("value", (v) => v)
      .text((v) => (v === "" ? "— (a class)" : v));
  }

  function browse() {
    const params = { offset: live.page * PAGE, limit: PAGE };
    if (live.cls !== "") params.class = live.cls;
    const sec = d3.select("#dataset-browser").attr("data-ready", "0");
    fetch(api("images", params))
      .then((r) => r.json())
      .then((res) => {
        const last = Math.max(0, Math.ceil(res.total / PAGE) - 1);
        if (live.page > last) live.page = last;
        d3.select("#browse-info").text(
          res.total ? "images " + (res.offset + 1) + "–" + (res.offset + res.images.length) + " of " + res.total : "no images"
        );
        d3.select("#browse-prev").property("disabled", live.page === 0);
        d3.select("#browse-next").property("disabled", res.offset + res.images.length >= res.total);
        d3.select("#browse-thumbs")
          .selectAll("img")
          .data(res.images, (d) => d.index)
          .join("img")
          .attr("class", "thumb")
          .attr("data-image", (d) => d.index)
          .attr("title", (d) => "image " + d.index + ": " + pretty(live.info.classes[d.label]))
          .attr("src", (d) => api("image/" + d.index + "/image.png"))
          .on("click", (ev, d) => open(d.index));
        sec.attr("data-ready", "1");
      });
  }

  function heatUrl(id) {
    const p = { method: live.method };
    if (live.layer !== "") {
      p.layer = live.layer;
      p.channel = live.channel;
    } else if (live.target !== "") p.class = live.target;
    return api("image/" + id + "/attribution.png", p);
  }

  function open(id) {
    const panel = d3.select("#image-panel").attr("hidden", null).attr("data-image", id).attr("data-ready", "0");
    d3.select("#image-title").text("image " + id);
    d3.select("#image-original").attr("src", api("image/" + id + "/image.png"));
    const ms = d3.select("#image-method");
    ms.selectAll("option")
      .data(live.info.methods)
      .join("option")
      .attr("value", (m) => m)
      .text((m) => m);
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
    fetch(api("image/" + id + "/predictions"))
      .then((r) => r.json())
      .then((p) => {
        d3.select("#image-label").text(p.label === null ? "" : "true class: " + pretty(live.info.classes[p.label]));
        d3.select("#image-preds")
          .selectAll("li")
          .data(p.top)
          .join("li")
          .classed("true", (t) => t[0] === p.label)
          .text((t) => pretty(live.info.classes[t[0]]) + "  " + (100 * t[1]).toFixed(1) + "%");
      });
    showHeat(id);
    const gs = d3.select("#image-graph").text("attribution graph: computing…");
    fetch(api("image/" + id + "/graph"))
      .then((r) => r.json())
      .then((g) => {
        if (!g.layers) {
          gs.text("attribution graph: " + (g.error || "not available"));
          return;
        }
        const n = g.layers.reduce((a, l) => a + l.length, 0);
        gs.attr("data-vertices", n).text(
          "attribution graph: " + n + " vertices; " +
            g.compare
              .map((c) => "with " + pretty(live.info.classes[c.class]) + "'s graph J = " + c.jaccard.toFixed(2) + " (" + c.shared.length + " shared, " + c.class_only.length + " lacking)")
              .join("; ")
        );
      });
    panel.attr("data-ready", "1");
  }

  function showHeat(id) {
    const url = heatUrl(id);
    const img = d3.select("#image-heat").attr("data-error", null);
    img.on("error", () => {
      img.attr("data-error", "1");
      fetch(url)
        .then((r) => r.json())
        .then((e) => d3.select("#image-heat-caption").text(e.error || "no heatmap"))
        .catch(() => {});
    });
    img.attr("src", url);
    const what = live.layer !== "" ? live.layer + " channel " + live.channel : live.target === "" ? "the predicted class" : pretty(live.info.classes[+live.target]);
    d3.select("#image-heat-caption").text(live.method + ", explaining " + what);
  }
})();
