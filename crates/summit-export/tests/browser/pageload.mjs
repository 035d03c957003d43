// The first load of a page served live by `summit serve`, timed in headless Chromium (used by
// `cargo bench -p summit-cli --bench explorer`): from navigation until the page is drawn
// (body[data-ready="1"]) and until the live dataset browser has its first page of thumbnails
// (#dataset-browser[data-ready="1"]), with the bytes transferred. Prints one JSON line.
// usage: node pageload.mjs <base URL> [runs]
import { openBrowser } from "./lib.mjs";

const [base, runsArg] = process.argv.slice(2);
if (!base) {
  console.error("usage: node pageload.mjs <base URL> [runs]");
  process.exit(2);
}
const runs = Math.max(1, +(runsArg || 3));
const results = [];
let status = 0;
for (let r = 0; r < runs; r++) {
  // a fresh profile each time: nothing cached by the browser
  const { page, errors, close } = await openBrowser({ allow: base });
  try {
    let bytes = 0;
    page.on("response", async (resp) => {
      try {
        bytes += (await resp.body()).length;
      } catch {
        // a response without a body
      }
    });
    const t0 = Date.now();
    await page.goto(base);
    await page.waitForSelector('body[data-ready="1"]', { timeout: 120000 });
    const drawn = Date.now() - t0;
    await page.waitForSelector('#dataset-browser[data-ready="1"]', { timeout: 120000 });
    await page.waitForFunction(() => [...document.querySelectorAll("#browse-thumbs img")].every((i) => i.complete), null, { timeout: 120000 });
    const browser = Date.now() - t0;
    const sidebar = await page.$$eval("#class-list li", (ls) => ls.filter((l) => l.offsetParent !== null).length);
    results.push({ drawn_ms: drawn, browser_ms: browser, bytes, errors: errors.length, sidebar_rows: sidebar });
  } catch (e) {
    console.error(String(e.message || e));
    status = 1;
  } finally {
    await close();
  }
}
console.log(JSON.stringify({ runs: results }));
process.exit(status);
