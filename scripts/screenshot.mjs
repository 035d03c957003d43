// Screenshot of a generated web view for the README (docs/screenshot.png).
// usage: node scripts/screenshot.mjs <output dir> <class name> <png>
// Needs Debian's chromium (or $CHROMIUM) and playwright-core from
// `npm ci --prefix crates/summit-export/tests/browser`. Opens <output dir>/index.html
// from disk, selects the class in the sidebar, hovers the graph's most counted vertex of the
// top layer (its edges highlight, its dataset examples show) and saves the page.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import path from "node:path";

const require = createRequire(
  path.resolve(path.dirname(new URL(import.meta.url).pathname), "../crates/summit-export/tests/browser/package.json"),
);
const { chromium } = require("playwright-core");

const [dir, className, png] = process.argv.slice(2);
if (!dir || !className || !png) {
  console.error("usage: node scripts/screenshot.mjs <output dir> <class name> <png>");
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(pathToFileURL(path.resolve(dir, "index.html")).href);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });
  await page.locator("#class-list li", { hasText: className }).first().click();
  // the class's graph loads from view/class-{c}.js: wait until it is drawn
  await page.waitForSelector("body:not([data-loading])", { timeout: 15000 });
  const top = await page.$$eval("#graph svg circle.vertex", (cs) => {
    const layers = cs.map((c) => Number(c.getAttribute("data-layer")));
    const last = Math.max(...layers);
    const best = cs
      .filter((c) => Number(c.getAttribute("data-layer")) === last)
      .sort((a, b) => Number(b.getAttribute("data-count")) - Number(a.getAttribute("data-count")))[0];
    return { layer: best.getAttribute("data-layer"), channel: best.getAttribute("data-channel"), n: cs.length };
  });
  await page.hover(`#graph svg circle.vertex[data-layer="${top.layer}"][data-channel="${top.channel}"]`, { force: true });
  await page.waitForFunction(() =>
    Array.from(document.querySelectorAll("#patch-panel img.patch")).every((i) => i.complete),
  );
  await page.screenshot({ path: png });
  console.log(`${className}: ${top.n} vertices, hovered layer ${top.layer} channel ${top.channel}; wrote ${png}`);
} finally {
  await browser.close();
}
