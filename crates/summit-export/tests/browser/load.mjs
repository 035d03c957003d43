// Load time of a large output in headless Chromium.
// usage: node load.mjs <output dir> <max ms>
// Opens <output dir>/index.html from disk, measures the time from navigation to the first
// graph drawn (body[data-ready="1"], no class loading), checks the graph and the similarity
// sort over every class, and prints "load-ms <n>". Exit 0 when under <max ms>.
import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const [dir, maxMs] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "summit-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  viewport: { width: 1440, height: 900 },
});
let status = 0;
try {
  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const url = pathToFileURL(path.resolve(dir, "index.html")).href;
  // warm the browser's own start-up with a blank page first
  await page.goto("about:blank");
  const t0 = Date.now();
  await page.goto(url);
  await page.waitForSelector('body[data-ready="1"]:not([data-loading])', { timeout: 30000 });
  const ms = Date.now() - t0;
  const vertices = await page.locator("#graph svg circle.vertex").count();
  const rows = await page.locator("#class-list li").count();
  const withSim = await page.$$eval("#class-list li", (ls) => ls.filter((l) => l.getAttribute("data-similarity") !== "").length);
  console.log(`load-ms ${ms}`);
  console.log(`vertices ${vertices} rows ${rows} rows-with-similarity ${withSim}`);
  if (errors.length) throw new Error("page errors: " + errors.join(" | "));
  if (vertices === 0) throw new Error("no graph drawn");
  if (withSim !== rows) throw new Error(`similarity covers ${withSim} of ${rows} classes`);
  if (ms >= Number(maxMs)) throw new Error(`load took ${ms} ms (limit ${maxMs})`);
} catch (e) {
  console.error(String(e && e.stack ? e.stack : e));
  status = 1;
} finally {
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(status);
