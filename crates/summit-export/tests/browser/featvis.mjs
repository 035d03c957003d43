// Headless-Chromium check of the vertices drawn as feature visualizations.
// usage: node featvis.mjs <output dir> [screenshot.png]
// Checks: every vertex is an image; those with a visualization show it (view/featvis.js) and
// their image files load; moving the pointer across a vertex steps through its diversity
// images; the patch panel shows the visualization and its diversity images. Exit code 0 on
// success, 1 with a message on the first failure.
import { pathToFileURL } from "node:url";
import path from "node:path";
import { check, openBrowser } from "./lib.mjs";

const [dir, shot] = process.argv.slice(2);
if (!dir) {
  console.error("usage: node featvis.mjs <output dir> [screenshot.png]");
  process.exit(2);
}
const { page, errors, close } = await openBrowser();
let status = 0;
try {
  await page.goto(pathToFileURL(path.resolve(dir, "index.html")).href);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });
  await page.waitForSelector('image.vertex-image[data-kind="featvis"]', { state: "attached", timeout: 10000 });
  const nCircles = await page.locator("circle.vertex").count();
  const nImages = await page.locator("image.vertex-image").count();
  check(nCircles > 0 && nImages === nCircles, `every vertex is drawn as an image (${nImages} of ${nCircles})`);
  const kinds = await page.$$eval("image.vertex-image", (els) => els.map((e) => e.getAttribute("data-kind")));
  const nFv = kinds.filter((k) => k === "featvis").length;
  check(nFv === nCircles, `every vertex shows its feature visualization (${nFv})`);
  // the image files load
  const loadedAll = await page.$$eval("image.vertex-image", (els) =>
    Promise.all(
      els.map(
        (e) =>
          new Promise((res) => {
            const i = new Image();
            i.onload = () => res(i.naturalWidth > 0);
            i.onerror = () => res(false);
            i.src = e.href.baseVal;
          })
      )
    )
  );
  check(loadedAll.every((x) => x), `all ${loadedAll.length} vertex images load`);
  // moving the pointer across the largest vertex steps through its diversity images
  const target = await page.$$eval("circle.vertex", (els) => {
    let best = 0;
    els.forEach((e, i) => {
      if (+e.getAttribute("r") > +els[best].getAttribute("r")) best = i;
    });
    return best;
  });
  const circle = page.locator("circle.vertex").nth(target);
  const layer = await circle.getAttribute("data-layer");
  const channel = await circle.getAttribute("data-channel");
  const img = page.locator(`image.vertex-image[data-layer="${layer}"][data-channel="${channel}"]`);
  const before = await img.getAttribute("href");
  const box = await circle.boundingBox();
  const seen = new Set();
  const hrefs = new Set();
  for (const f of [0.1, 0.35, 0.65, 0.9]) {
    await page.mouse.move(box.x + f * box.width, box.y + box.height / 2);
    await page.waitForTimeout(120);
    seen.add(await img.getAttribute("data-shown"));
    hrefs.add(await img.getAttribute("href"));
  }
  check(seen.size >= 2 && !seen.has("channel"), `hovering across vertex ${layer}:${channel} shows diversity images ${[...seen].join(", ")}`);
  check(hrefs.size >= 2 && !hrefs.has(before), "and the vertex's image changes as the pointer moves");
  const fv = await page.locator("#patch-panel .featvis-row img").count();
  check(fv === 5, `the hover panel shows the visualization and its 4 diversity images (${fv})`);
  if (shot) await page.screenshot({ path: shot });
  await page.mouse.move(5, 5);
  await page.waitForTimeout(120);
  check((await img.getAttribute("href")) === before, "leaving the vertex restores its visualization");
  check(errors.length === 0, "no page errors" + (errors.length ? ": " + errors.join("; ") : ""));
} catch (e) {
  console.error(String(e.message || e));
  status = 1;
} finally {
  await close();
}
process.exit(status);
