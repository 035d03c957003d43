// Headless-Chromium check of the page served live by `summit serve` (started by the Rust test
// crates/summit-cli/tests/serve.rs): the dataset browser lists every image of a class, an image
// the run never picked opens in the per-image panel, switching the method (Grad-CAM →
// integrated gradients → LRP) and picking one channel of a summary layer each load a new
// heatmap, and the image's attribution graph is compared with its class's.
// usage: node live.mjs <base URL> <expected.json> <screenshot dir>
// expected.json: {"class": c, "total": images of class c, "index": an image of class c beyond the run}
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
  check(labels.length === 48 && labels.every((t) => t.endsWith(exp.className)), `every thumbnail is a ${exp.className} (${labels.length})`);
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
  check(errors.length === 0, "no page errors" + (errors.length ? ": " + errors.join("; ") : ""));
} catch (e) {
  console.error(String(e.message || e));
  status = 1;
} finally {
  await close();
}
process.exit(status);
