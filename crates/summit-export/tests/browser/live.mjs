// Headless-Chromium check of the page served live by `summit serve` (started by the Rust test
// crates/summit-cli/tests/serve.rs): the dataset browser lists every image of a class and
// filters by the run's predictions, the suggestion panel counts every image, an image the run
// never picked opens in the per-image panel (every served model side by side), switching the
// method (Grad-CAM → integrated gradients → LRP), picking one channel of a summary layer and
// clicking a vertex of the graph each load a new heatmap, the image's attribution graph is
// drawn over its class's graph, and an uploaded image opens like a dataset image.
// usage: node live.mjs <base URL> <expected.json> <screenshot dir>
// expected.json: {"class": c, "className": name, "total": images of class c, "index": an image of
// class c beyond the run, "layer": a summary layer, "wrong": images the first model
// misclassifies, "predictedImages": images with predictions, "models": served models,
// "upload": a PNG file}
import fs from "node:fs";
import path from "node:path";
import { check, openBrowser } from "./lib.mjs";

const [base, expectedPath, shots] = process.argv.slice(2);
if (!base || !expectedPath) {
  console.error("usage: node live.mjs <base URL> <expected.json> [screenshot dir]");
  process.exit(2);
}
const exp = JSON.parse(fs.readFileSync(expectedPath, "utf8"));
const { page, errors, close } = await openBrowser({ allow: base });
let status = 0;
const heatLoaded = (prev) =>
  page.waitForFunction(
    (prev) => {
      const img = document.querySelector("#image-heat");
      return img && img.getAttribute("src") !== prev && img.complete && img.naturalWidth > 0;
    },
    prev,
    { timeout: 60000 }
  );
try {
  await page.goto(base);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });
  await page.waitForSelector('#dataset-browser[data-ready="1"]', { timeout: 15000 });
  check((await page.getAttribute("body", "data-live")) === "1", "served, the page is live");
  await page.selectOption("#browse-class", String(exp.class));
  await page.waitForFunction(
    (c) => document.querySelector("#browse-info").textContent.endsWith(" of " + c),
    exp.total,
    { timeout: 10000 }
  );
  const info = await page.locator("#browse-info").textContent();
  check(info.endsWith(" of " + exp.total), `the browser pages through all ${exp.total} images of the class ("${info}")`);
  const labels = await page.$$eval("#browse-thumbs img", (is) => is.map((i) => i.getAttribute("title")));
  check(labels.length === 48 && labels.every((t) => t.split(", predicted")[0].endsWith(exp.className)), `every thumbnail is a ${exp.className} (${labels.length})`);
  // page forward until the image the run never picked is shown
  for (let k = 0; k < 100; k++) {
    if ((await page.locator(`#browse-thumbs img[data-image="${exp.index}"]`).count()) > 0) break;
    await page.click("#browse-next");
    await page.waitForSelector('#dataset-browser[data-ready="1"]');
  }
  await page.locator(`#browse-thumbs img[data-image="${exp.index}"]`).click();
  await page.waitForSelector(`#image-panel[data-image="${exp.index}"]:not([hidden])`, { timeout: 5000 });
  await heatLoaded(null);
  check(true, `image ${exp.index}, which the run did not pick, opens with its Grad-CAM`);
  await page.waitForFunction(() => document.querySelectorAll("#image-preds li").length === 5);
  check(true, "and its top 5 predictions");
  const methods = await page.$$eval("#image-method option", (os) => os.map((o) => o.value));
  check(methods.includes("lrp-epsilon-plus-flat") && methods.length >= 14, `every method is offered (${methods.length})`);
  const seen = new Set([await page.getAttribute("#image-heat", "src")]);
  for (const m of ["integrated-gradients", "lrp-epsilon-plus-flat"]) {
    const prev = await page.getAttribute("#image-heat", "src");
    await page.selectOption("#image-method", m);
    await heatLoaded(prev);
    const src = await page.getAttribute("#image-heat", "src");
    check(!seen.has(src) && src.includes("method=" + m), `switching to ${m} loads a new heatmap`);
    seen.add(src);
    if (shots) await page.locator("#image-panel").screenshot({ path: path.join(shots, `live-${m}.png`) });
  }
  // one channel of a summary layer
  const prev = await page.getAttribute("#image-heat", "src");
  await page.fill("#image-channel", "7");
  await page.selectOption("#image-layer", exp.layer);
  await heatLoaded(prev);
  const src = await page.getAttribute("#image-heat", "src");
  check(src.includes("layer=" + exp.layer) && src.includes("channel=7"), `a neuron (${exp.layer} channel 7) gets its heatmap`);
  if (shots) await page.locator("#image-panel").screenshot({ path: path.join(shots, "live-neuron.png") });
  await page.waitForSelector("#image-graph[data-vertices]", { timeout: 30000 });
  const g = await page.locator("#image-graph").textContent();
  check(/J = [0-9.]+/.test(g), `the image's attribution graph is compared with its class's ("${g}")`);

  // the image's graph drawn over its true class's graph
  await page.click("#graph-over-true");
  await page.waitForFunction(
    (name) => (document.querySelector("#image-overlay-text").textContent || "").includes(name),
    exp.className.replace(/_/g, " "),
    { timeout: 15000 }
  );
  const shared = +(await page.getAttribute("#graph", "data-overlay"));
  const lit = await page.locator("#graph circle.vertex.in-image").count();
  const overlay = await page.locator("#image-overlay-text").textContent();
  check(shared > 0 && lit === shared, `the image's graph is drawn over the class graph: ${lit} shared vertices highlighted ("${overlay}")`);
  if (shots) await page.screenshot({ path: path.join(shots, "live-overlay.png") });

  // the neuron picker: a click on a vertex explains that channel
  const asClass = await page.getAttribute("#image-heat", "src");
  await page.selectOption("#image-layer", "");
  await heatLoaded(asClass);
  const v = page.locator("#graph circle.vertex.in-image").first();
  const [vl, vc] = [await v.getAttribute("data-layer"), await v.getAttribute("data-channel")];
  const before = await page.getAttribute("#image-heat", "src");
  // (dispatched on the circle: the floating image panel may lie over it)
  await v.dispatchEvent("click");
  await heatLoaded(before);
  const picked = await page.getAttribute("#image-heat", "src");
  const layerName = await page.$eval("#image-layer", (s) => s.value);
  check(picked.includes("channel=" + vc) && picked.includes("layer=" + layerName) && layerName !== "", `clicking vertex ${vl}:${vc} explains that neuron (${layerName} channel ${vc})`);
  // a second click unpins the vertex's dataset examples (the same neuron stays explained)
  await v.dispatchEvent("click");
  // and its activation map
  await page.selectOption("#image-method", "activation");
  await heatLoaded(picked);
  const act = await page.getAttribute("#image-heat", "src");
  check(act.includes("/activation.png") && act.includes("channel=" + vc), `the neuron's activation map loads (${act.replace(/^.*api\//, "")})`);
  if (shots) await page.locator("#image-panel").screenshot({ path: path.join(shots, "live-activation.png") });
  await page.selectOption("#image-method", "lrp-epsilon-plus-flat");
  await heatLoaded(act);

  // several models side by side
  if (exp.models > 1) {
    await page.waitForFunction(
      (n) => {
        const cols = document.querySelectorAll("#image-models div.model-col");
        return cols.length === n - 1 && [...cols].every((c) => c.querySelectorAll("ol li").length === 5);
      },
      exp.models,
      { timeout: 30000 }
    );
    await page.selectOption("#image-layer", "");
    await page.waitForFunction(() => {
      const img = document.querySelector("#image-models img.model-heat");
      return img && (img.getAttribute("src") || "").includes("model=1") && img.complete && img.naturalWidth > 0;
    }, null, { timeout: 60000 });
    const caps = await page.$$eval("#image-models figcaption", (cs) => cs.map((c) => c.textContent));
    check(true, `${exp.models} models side by side, each with its heatmap and top 5 (${caps.join("; ")})`);
    if (shots) await page.locator("#image-panel").screenshot({ path: path.join(shots, "live-models.png") });
  }

  // the browser filtered by the run's predictions: the first model's misclassified images
  await page.click("#image-close");
  await page.selectOption("#browse-class", "");
  await page.selectOption("#browse-correct", "false");
  await page.waitForFunction(
    (n) => document.querySelector("#browse-info").textContent.endsWith(" of " + n),
    exp.wrong,
    { timeout: 10000 }
  );
  const wrongShown = await page.locator("#browse-thumbs img.thumb.wrong").count();
  const shown = await page.locator("#browse-thumbs img.thumb").count();
  check(wrongShown === shown && shown > 0, `"misclassified" lists the ${exp.wrong} images the model gets wrong, each marked (${shown} on the page)`);
  await page.waitForSelector("#suggestions:not([hidden])", { timeout: 10000 });
  if (shots) await page.locator("#dataset-browser").screenshot({ path: path.join(shots, "live-browser.png") });
  await page.selectOption("#browse-correct", "");
  // the suggestion panel counts every image with predictions
  await page.waitForSelector("#suggestions:not([hidden])", { timeout: 10000 });
  const counted = +(await page.getAttribute("#suggestions", "data-images"));
  const cells = await page.$$eval("#suggest-plot rect.cell", (rs) => rs.map((r) => +r.getAttribute("data-count")));
  check(counted === exp.predictedImages && cells.reduce((a, b) => a + b, 0) === counted, `the suggestion panel counts all ${counted} images (${cells.length} cells)`);
  const full = await page.$$eval("#suggest-plot rect.cell", (rs) => rs.findIndex((r) => +r.getAttribute("data-count") > 0));
  const cellCount = cells[full];
  await page.locator("#suggest-plot rect.cell").nth(full).click();
  await page.waitForFunction(
    (n) => document.querySelector("#browse-info").textContent.endsWith(" of " + n),
    cellCount,
    { timeout: 10000 }
  );
  check(true, `a cell of the suggestion panel lists its ${cellCount} images in the browser`);

  // an ablation of two picked vertices (shift-click), streamed with progress
  const vs = page.locator("#graph circle.vertex");
  const nv = await vs.count();
  await vs.nth(0).dispatchEvent("click", { shiftKey: true });
  await vs.nth(nv - 1).dispatchEvent("click", { shiftKey: true });
  const picked2 = await page.locator("#graph circle.vertex.ablate-pick").count();
  await page.fill("#ablate-images", "30");
  await page.click("#ablate-run");
  await page.waitForSelector('#ablate-result[data-done="1"]', { timeout: 30000 });
  const ab = await page.locator("#ablate-result").textContent();
  const prog = +(await page.getAttribute("#ablate-progress", "value"));
  check(picked2 === 2 && ab.includes("over 30 images, 2 channels ablated") && prog === 1, `two picked vertices ablated over 30 images ("${ab}")`);
  if (shots) await page.screenshot({ path: path.join(shots, "live-ablation.png") });
  await page.click("#ablate-clear");

  // an upload opens like a dataset image
  if (exp.upload) {
    await page.setInputFiles("#upload-input", exp.upload);
    await page.waitForSelector('#image-panel:not([hidden])[data-image^="u-"]', { timeout: 15000 });
    await heatLoaded(null);
    await page.waitForFunction(() => document.querySelectorAll("#image-preds li").length === 5, null, { timeout: 15000 });
    const id = await page.getAttribute("#image-panel", "data-image");
    check(true, `an uploaded image opens as ${id} with its heatmap and top 5`);
    // the refused upload's 422 is the one resource error expected from here on
    const known = errors.length;
    await page.setInputFiles("#upload-input", { name: "bad.png", mimeType: "image/png", buffer: Buffer.from("not a png") });
    await page.waitForSelector('#upload-info[data-error="1"]', { timeout: 10000 });
    const msg = await page.locator("#upload-info").textContent();
    check(/format|decode|PNG|JPEG/i.test(msg), `a bad upload says why ("${msg}")`);
    const late = errors.splice(known);
    check(late.every((e) => e.includes("422")), "a bad upload is its 422 and nothing else: " + late.join("; "));
  }
  check(errors.length === 0, "no page errors" + (errors.length ? ": " + errors.join("; ") : ""));
} catch (e) {
  console.error(String(e.message || e));
  status = 1;
} finally {
  await close();
}
process.exit(status);
