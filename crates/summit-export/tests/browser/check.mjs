// Headless-Chromium check of the summit-export web view.
// usage: node check.mjs <output dir> <expected.json>
// Opens <output dir>/index.html from disk, drives the page and compares what
// it draws with the expectations computed in Rust (tests/web_view.rs).
// Writes <output dir>/screenshot.png and screenshot-compare.png.
// Exit code 0 on success, 1 with a message on the first failure.
import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const [dir, expectedPath] = process.argv.slice(2);
if (!dir || !expectedPath) {
  console.error("usage: node check.mjs <output dir> <expected.json>");
  process.exit(2);
}
const exp = JSON.parse(fs.readFileSync(expectedPath, "utf8"));
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

function check(cond, msg) {
  if (!cond) throw new Error("check failed: " + msg);
  console.log("ok - " + msg);
}

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "summit-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  viewport: { width: 1440, height: 900 },
});
const network = [];
const errors = [];
let status = 0;
try {
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith("file:") || url.startsWith("data:")) return route.continue();
    network.push(url);
    return route.abort();
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  const url = pathToFileURL(path.resolve(dir, "index.html")).href;
  await page.goto(url);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });
  // the page loads a class's data when it is first shown: wait until it has drawn
  const settle = () => page.waitForSelector("body:not([data-loading])", { timeout: 15000 });
  const vertices = () => page.locator("#graph svg circle.vertex").count();
  const edges = () => page.locator("#graph svg path.edge").count();

  // select a class in the sidebar
  await page.click(`#class-list li[data-class="${exp.cls}"]`);
  await settle();
  check((await page.textContent("#selected-class")).trim() === exp.clsLabel, `selected class shows '${exp.clsLabel}'`);
  check((await vertices()) === exp.vertices, `class ${exp.cls} draws ${exp.vertices} vertices (got ${await vertices()})`);
  check((await edges()) === exp.edges, `class ${exp.cls} draws ${exp.edges} edges (got ${await edges()})`);
  const max = Number(await page.getAttribute("#count-filter", "max"));
  check(max === exp.maxCount, `slider max is the largest count ${exp.maxCount} (got ${max})`);

  // the count filter
  await page.locator("#count-filter").fill(String(exp.threshold));
  check((await vertices()) === exp.filtered, `count >= ${exp.threshold} keeps ${exp.filtered} vertices (got ${await vertices()})`);
  check((await edges()) === exp.filteredEdges, `and ${exp.filteredEdges} edges (got ${await edges()})`);
  const counts = await page.$$eval("#graph svg circle.vertex", (cs) => cs.map((c) => Number(c.getAttribute("data-count"))));
  check(counts.every((c) => c >= exp.threshold), "every remaining vertex has count >= threshold");
  await page.locator("#count-filter").fill("0");
  check((await vertices()) === exp.vertices, "slider back to 0 shows every vertex again");

  // sidebar sorted by similarity to the selected class in the selected layer
  await page.selectOption("#layer-select", String(exp.layer));
  const order = await page.$$eval("#class-list li", (ls) => ls.map((l) => Number(l.getAttribute("data-class"))));
  check(JSON.stringify(order) === JSON.stringify(exp.similarityOrder), `sidebar order by similarity in layer ${exp.layer}: ${JSON.stringify(order)}`);
  await page.selectOption("#sort-select", "accuracy-desc");
  const byAcc = await page.$$eval("#class-list li", (ls) => ls.map((l) => Number(l.getAttribute("data-class"))));
  check(JSON.stringify(byAcc) === JSON.stringify(exp.accuracyOrder), `sidebar order by accuracy: ${JSON.stringify(byAcc)}`);
  await page.selectOption("#sort-select", "similarity");
  await page.fill("#class-search", exp.search);
  const shown = await page.$$eval("#class-list li", (ls) => ls.filter((l) => getComputedStyle(l).display !== "none").length);
  check(shown === exp.searchMatches, `search '${exp.search}' shows ${exp.searchMatches} classes (got ${shown})`);
  await page.fill("#class-search", "");
  const points = await page.locator("#embedding circle.embed-point").count();
  check(points === exp.classes, `embedding shows ${exp.classes} classes`);

  // hover a vertex: its edges highlight and its dataset examples show
  const sel = `#graph svg circle.vertex[data-layer="${exp.hover.layer}"][data-channel="${exp.hover.channel}"]`;
  await page.hover(sel, { force: true });
  const hl = await page.locator("#graph svg path.edge.highlight").count();
  check(hl === exp.hover.edges, `hover highlights the vertex's ${exp.hover.edges} edges (got ${hl})`);
  check(await page.isVisible("#patch-panel"), "hover shows the patch panel");
  const imgs = page.locator("#patch-panel img.patch");
  check((await imgs.count()) === exp.hover.patches, `the panel shows ${exp.hover.patches} patches`);
  await page.waitForFunction(() => Array.from(document.querySelectorAll("#patch-panel img.patch")).every((i) => i.complete));
  const widths = await imgs.evaluateAll((is) => is.map((i) => i.naturalWidth));
  check(widths.every((w) => w === exp.patchSize), `patches load from disk (${widths.join(",")})`);
  await page.screenshot({ path: path.join(dir, "screenshot.png") });

  // comparison with a second class
  await page.mouse.move(5, 5);
  await page.selectOption("#compare-select", String(exp.compare.cls));
  await settle();
  const n = (c) => page.locator(`#graph svg circle.vertex.${c}`).count();
  check((await vertices()) === exp.compare.union, `comparison draws the union, ${exp.compare.union} vertices (got ${await vertices()})`);
  check((await n("both")) === exp.compare.both, `${exp.compare.both} shared vertices (got ${await n("both")})`);
  check((await n("only-a")) === exp.compare.onlyA, `${exp.compare.onlyA} only in A (got ${await n("only-a")})`);
  check((await n("only-b")) === exp.compare.onlyB, `${exp.compare.onlyB} only in B (got ${await n("only-b")})`);
  check((await edges()) === exp.compare.edges, `${exp.compare.edges} union edges (got ${await edges()})`);
  await page.screenshot({ path: path.join(dir, "screenshot-compare.png") });

  // the stability badge of every class, from the manifest's values
  const badges = await page.$$eval("#class-list li", (ls) =>
    ls.map((l) => [Number(l.getAttribute("data-class")), Number(l.querySelector(".stability-badge")?.getAttribute("data-stability"))])
  );
  check(badges.length === exp.stability.length && badges.every(([c, v]) => Math.abs(v - exp.stability[c]) < 1e-9),
    `every class shows its stability badge (${JSON.stringify(badges)})`);

  // the motif panel: a click highlights the motif in a graph that contains it and lists its classes
  await page.selectOption("#compare-select", "");
  await page.click(`#class-list li[data-class="${exp.motif.cls}"]`);
  await settle();
  const listed = await page.locator("#motif-list li.motif").count();
  check(listed === exp.motif.count, `the motif panel lists ${exp.motif.count} motifs (got ${listed})`);
  await page.click('#motif-list li[data-motif="0"]');
  const hlm = Number(await page.getAttribute("#graph", "data-motif-hl"));
  check(hlm === exp.motif.elements, `clicking the best motif highlights its ${exp.motif.elements} vertices and edges (got ${hlm})`);
  const mcl = await page.locator("#motif-classes button.motif-class").count();
  check(mcl === exp.motif.classes, `and lists its ${exp.motif.classes} classes (got ${mcl})`);
  await page.screenshot({ path: path.join(dir, "screenshot-motif.png") });
  await page.click('#motif-list li[data-motif="0"]');
  check(Number(await page.getAttribute("#graph", "data-motif-hl")) === 0, "a second click clears the highlight");

  check(errors.length === 0, "no page errors" + (errors.length ? ": " + errors.join(" | ") : ""));
  check(network.length === 0, "no network requests" + (network.length ? ": " + network.join(" ") : ""));
} catch (e) {
  console.error(String(e && e.stack ? e.stack : e));
  if (errors.length) console.error("page errors: " + errors.join(" | "));
  status = 1;
} finally {
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(status);
