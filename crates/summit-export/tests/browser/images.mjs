// Headless-Chromium check of the per-image panel and the model comparison page.
// usage: node images.mjs <model output dir> <comparison dir> <expected.json>
// expected.json: {"points": N} (the comparison's images), written by the Rust test.
// Writes screenshot-image.png (model dir) and screenshot-models.png, screenshot-models-image.png
// (comparison dir). Exit code 0 on success, 1 with a message on the first failure.
import { pathToFileURL } from "node:url";
import fs from "node:fs";
import path from "node:path";
import { check, openBrowser } from "./lib.mjs";

const [dir, cmpDir, expectedPath] = process.argv.slice(2);
if (!dir || !cmpDir || !expectedPath) {
  console.error("usage: node images.mjs <model output dir> <comparison dir> <expected.json>");
  process.exit(2);
}
const exp = JSON.parse(fs.readFileSync(expectedPath, "utf8"));
const { page, errors, close } = await openBrowser();
let status = 0;
const loaded = (page, sel) =>
  page.waitForFunction((s) => {
    const img = document.querySelector(s);
    return img && img.complete && img.naturalWidth > 0;
  }, sel, { timeout: 10000 });
try {
  // ---- one model's page: the per-image panel
  await page.goto(pathToFileURL(path.resolve(dir, "index.html")).href);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });
  await page.waitForSelector("#misclassified-images img.thumb", { timeout: 10000 });
  const nMis = await page.locator("#misclassified-images img.thumb").count();
  const nConf = await page.locator("#confident-images img.thumb").count();
  check(nConf > 0 && nMis > 0, `the class shows ${nConf} confident and ${nMis} misclassified images`);
  // the heatmap metrics (Quantus), method × metric
  await page.waitForSelector("#heat-eval:not([hidden])", { timeout: 5000 });
  const evRows = await page.locator("#heat-eval-table tbody tr").count();
  const evCells = await page.locator("#heat-eval-table tbody td[data-value]").count();
  check(evRows === exp.evalMethods && evCells === exp.evalMethods * exp.evalMetrics,
    `the heatmap-metric table has ${exp.evalMethods} methods × ${exp.evalMetrics} metrics (${evRows} rows, ${evCells} cells)`);
  await page.locator("#heat-eval").screenshot({ path: path.join(dir, "screenshot-heat-eval.png") });
  const misId = await page.locator("#misclassified-images img.thumb").first().getAttribute("data-image");
  await page.locator("#misclassified-images img.thumb").first().click();
  await page.waitForSelector(`#image-panel[data-image="${misId}"]:not([hidden])`, { timeout: 5000 });
  await loaded(page, "#image-heat");
  await loaded(page, "#image-original");
  const preds = await page.locator("#image-preds li").count();
  check(preds >= 2, `the panel of misclassified image ${misId} lists ${preds} predictions`);
  const trueFirst = await page.locator("#image-preds li").first().getAttribute("class");
  check(trueFirst !== "true", "its top prediction is not its true class (it is misclassified)");
  const methods = await page.locator("#image-method option").count();
  check(methods >= 1, `the method selector offers ${methods} method(s)`);
  await page.screenshot({ path: path.join(dir, "screenshot-image.png") });
  await page.click("#image-close");
  // from a dataset example of a vertex: click the vertex (pins its examples), then an example
  const vertices = page.locator("circle.vertex");
  const nv = await vertices.count();
  let opened = null;
  for (let i = nv - 1; i >= 0 && opened === null; i--) {
    await vertices.nth(i).click({ force: true });
    const clickable = page.locator("#patch-panel.pinned img.patch.clickable");
    try {
      await clickable.first().waitFor({ timeout: 2000 });
    } catch {
      await vertices.nth(i).click({ force: true }); // unpin
      continue;
    }
    opened = await clickable.first().getAttribute("data-image");
    await clickable.first().click();
  }
  check(opened !== null, "a vertex's dataset examples are clickable once the vertex is pinned");
  await page.waitForSelector(`#image-panel[data-image="${opened}"]:not([hidden])`, { timeout: 5000 });
  await loaded(page, "#image-heat");
  check(true, `the panel opens for dataset example image ${opened}`);

  // ---- the comparison page
  await page.goto(pathToFileURL(path.resolve(cmpDir, "index.html")).href);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });
  const points = await page.locator("#scatter circle.point").count();
  check(points === exp.points, `the scatter has one point per sampled image (${points} = ${exp.points})`);
  const hists = await page.locator("#histograms .hist").count();
  check(hists === exp.models, `one histogram of 1 − p(true class) per model (${hists})`);
  const pt = page.locator("#scatter circle.some-wrong, #scatter circle.all-wrong").first();
  await pt.hover({ force: true });
  // the topmost point under the pointer is the one previewed (and clicked)
  await page.waitForSelector("body[data-preview]", { state: "attached", timeout: 3000 });
  const pid = await page.locator("body").getAttribute("data-preview");
  await loaded(page, "#preview img");
  check(true, `hovering point ${pid} previews its image`);
  await page.screenshot({ path: path.join(cmpDir, "screenshot-models.png") });
  await pt.click({ force: true });
  await page.waitForSelector(`#image-panel[data-image="${pid}"]:not([hidden])`, { timeout: 5000 });
  const heats = await page.locator("#image-models img.heat").count();
  check(heats === exp.models, `clicking opens every model's heatmap side by side (${heats})`);
  for (let i = 0; i < heats; i++) await loaded(page, `#image-models figure:nth-child(${i + 2}) img.heat`);
  const lists = await page.locator("#image-models ol").count();
  check(lists === exp.models, "and every model's predictions");
  const evModels = await page.locator("#evaluations .evaluation table.eval-table").count();
  check(evModels === exp.models, `every model's heatmap-metric table (${evModels})`);
  const frames = await page.locator("#graphs iframe").count();
  check(frames === exp.models, `the models' attribution graphs of one class side by side (${frames} frames)`);
  await page.selectOption("#graph-class", "3");
  await page.waitForFunction(() => document.querySelector("#graphs").getAttribute("data-class") === "3");
  await page.waitForTimeout(1500);
  await page.screenshot({ path: path.join(cmpDir, "screenshot-models-image.png") });
  check(errors.length === 0, "no page errors" + (errors.length ? ": " + errors.join("; ") : ""));
} catch (e) {
  console.error(String(e.message || e));
  status = 1;
} finally {
  await close();
}
process.exit(status);
