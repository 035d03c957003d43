// Screenshots of the comparison view and the motif panel for the README.
// usage: node scripts/screenshot_views.mjs compare <output dir> <class A> <class B> <union|intersection|difference> <png>
//        node scripts/screenshot_views.mjs motif <output dir> <class> <png>   (clicks the best motif)
// Needs Debian's chromium (or $CHROMIUM) and playwright-core from
// `npm ci --prefix crates/summit-export/tests/browser`.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import path from "node:path";

const require = createRequire(
  path.resolve(path.dirname(new URL(import.meta.url).pathname), "../crates/summit-export/tests/browser/package.json"),
);
const { chromium } = require("playwright-core");

const [what, dir, ...rest] = process.argv.slice(2);
if (!["compare", "motif"].includes(what) || !dir) {
  console.error("usage: node scripts/screenshot_views.mjs compare <dir> <A> <B> <mode> <png> | motif <dir> <class> <png>");
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu"],
});
// the index of a class by its exact (pretty) name
const classIndex = (page, name) =>
  page.$$eval(
    "#class-list li",
    (ls, name) => {
      const li = ls.find((l) => l.querySelector(".class-name").textContent.trim() === name);
      return li ? Number(li.getAttribute("data-class")) : -1;
    },
    name,
  );
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(pathToFileURL(path.resolve(dir, "index.html")).href);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });
  const settle = () => page.waitForSelector("body:not([data-loading])", { timeout: 15000 });
  const a = await classIndex(page, rest[0]);
  if (a < 0) throw new Error(`no class '${rest[0]}'`);
  await page.click(`#class-list li[data-class="${a}"]`);
  await settle();
  let png;
  if (what === "compare") {
    const b = await classIndex(page, rest[1]);
    if (b < 0) throw new Error(`no class '${rest[1]}'`);
    await page.selectOption("#compare-select", String(b));
    await settle();
    await page.selectOption("#compare-mode", rest[2]);
    png = rest[3];
  } else {
    await page.click('#motif-list li[data-motif="0"]');
    png = rest[1];
  }
  await page.waitForTimeout(200);
  await page.screenshot({ path: png });
  const n = await page.locator("#graph svg circle.vertex").count();
  console.log(`${what} ${rest.slice(0, -1).join(" ")}: ${n} vertices; wrote ${png}`);
} finally {
  await browser.close();
}
