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
  const ghosts = await page.locator("#graph svg circle.ghost").count();
  check(ghosts === exp.vertices - exp.filtered, `the ${exp.vertices - exp.filtered} filtered vertices fade out (${ghosts} fading)`);
  // the animation's end state: the filtered vertices gone, every row re-centred
  await page.waitForFunction(() => document.querySelectorAll("#graph svg circle.ghost").length === 0, null, { timeout: 5000 });
  await page.waitForTimeout(400);
  const centres = await page.$$eval("#graph svg g.vertex-group", (gs) => {
    const rows = new Map();
    for (const g of gs) {
      const m = g.getCTM ? g.transform.baseVal.consolidate().matrix : null;
      const y = m.f;
      rows.set(y, (rows.get(y) || []).concat([m.e]));
    }
    return Array.from(rows.values()).map((xs) => xs.reduce((a, b) => a + b, 0) / xs.length);
  });
  check(centres.length > 0 && centres.every((c) => Math.abs(c - 500) < 1e-6), `after the filter's animation every row is centred (${centres.map((c) => c.toFixed(1)).join(", ")})`);
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
  // comparison operations: intersection keeps the shared part, difference what only A has
  await page.selectOption("#compare-mode", "intersection");
  check((await vertices()) === exp.compare.both, `intersection draws the ${exp.compare.both} shared vertices (got ${await vertices()})`);
  check((await n("only-a")) + (await n("only-b")) === 0, "and nothing of one class only");
  await page.selectOption("#compare-mode", "difference");
  check((await vertices()) === exp.compare.onlyA, `difference draws the ${exp.compare.onlyA} vertices only in A (got ${await vertices()})`);
  await page.screenshot({ path: path.join(dir, "screenshot-difference.png") });
  await page.selectOption("#compare-mode", "union");
  check((await vertices()) === exp.compare.union, "union again draws the union");

  // hover an edge: it and its two vertices highlight, its weight shows
  const edge = page.locator("#graph svg path.edge").first();
  await edge.hover({ force: true });
  check(await page.isVisible("#edge-info"), "hovering an edge shows its info");
  const info = await page.textContent("#edge-info");
  check(/influence/.test(info) && /\u2192/.test(info), `edge info names its endpoints and weight ('${info}')`);
  check((await page.locator("#graph svg circle.vertex.endpoint").count()) === 2, "the edge's two vertices highlight");
  check((await page.locator("#graph svg path.edge.highlight").count()) === 1, "the edge highlights");
  await page.mouse.move(5, 5);
  await page.selectOption("#compare-select", "");
  await settle();

  // width and height sliders
  await page.locator("#graph-height").fill("200");
  const vb = (await page.getAttribute("#graph svg", "viewBox")).split(" ").map(Number);
  check(vb[3] === 90 + (exp.layers - 1) * 200, `the height slider spaces the layers 200 apart (viewBox height ${vb[3]})`);
  // the spread of the vertices of one row, from their translate(x, y)
  const spread = () =>
    page.$$eval("#graph svg g.vertex-group", (gs) => {
      const rows = new Map();
      for (const g of gs) {
        const m = /translate\(([-\d.e]+),([-\d.e]+)\)/.exec(g.getAttribute("transform"));
        const y = m[2];
        rows.set(y, (rows.get(y) || []).concat([Number(m[1])]));
      }
      return Math.max(...Array.from(rows.values()).map((xs) => Math.max(...xs) - Math.min(...xs)));
    });
  const s1 = await spread();
  await page.locator("#graph-width").fill("92");
  const s2 = await spread();
  check(s1 > 0 && Math.abs(s2 - 2 * s1) < 1e-6, `the width slider doubles the spacing of a row (${s1} -> ${s2})`);
  await page.locator("#graph-height").fill("120");
  await page.locator("#graph-width").fill("46");

  // the embedding names a hovered class and highlights the classes a search lists
  const other = (exp.cls + 1) % exp.classes;
  await page.hover(`#embedding circle.embed-point[data-class="${other}"]`, { force: true });
  const hov = (await page.textContent("#embedding text.embed-hover")).trim();
  check(hov === exp.names[other], `hovering a point names its class ('${hov}')`);
  await page.fill("#class-search", exp.search);
  const listedPts = await page.locator("#embedding circle.embed-point.listed").count();
  check(listedPts === exp.searchMatches, `the embedding highlights the ${exp.searchMatches} listed classes (got ${listedPts})`);
  await page.fill("#class-search", "");
  const inView = await page.$$eval("#class-list li", (ls) => {
    const box = document.getElementById("class-list").getBoundingClientRect();
    return ls.filter((l) => { const r = l.getBoundingClientRect(); return r.bottom > box.top && r.top < box.bottom; }).length;
  });
  const listedAll = await page.locator("#embedding circle.embed-point.listed").count();
  check(listedAll === inView, `without a search the embedding highlights the ${inView} classes in the sidebar's view (got ${listedAll})`);
  check((await page.locator("#class-names option").count()) === exp.classes, "search completes every class name");

  // keyboard navigation of the sidebar
  const orderNow = await page.$$eval("#class-list li", (ls) => ls.filter((l) => l.style.display !== "none").map((l) => Number(l.getAttribute("data-class"))));
  const selNow = await page.evaluate(() => window.summitView.state.selected);
  await page.focus("#class-list");
  await page.keyboard.press("ArrowDown");
  await settle();
  const selNext = await page.evaluate(() => window.summitView.state.selected);
  const want = orderNow[Math.min(orderNow.length - 1, orderNow.indexOf(selNow) + 1)];
  check(selNext === want, `ArrowDown selects the next class in the sidebar (${selNow} -> ${selNext}, want ${want})`);

  // the selected class and layer are in the URL: a reload restores them
  await page.click(`#class-list li[data-class="${exp.cls}"]`);
  await settle();
  await page.selectOption("#layer-select", String(exp.layer));
  await page.reload();
  await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });
  await settle();
  check((await page.textContent("#selected-class")).trim() === exp.clsLabel, `a reload keeps class '${exp.clsLabel}' (URL ${page.url().split("#")[1]})`);
  check((await page.inputValue("#layer-select")) === String(exp.layer), `and layer ${exp.layer}`);

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
