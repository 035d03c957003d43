// Headless-Chromium check of a run whose dataset leaves classes without images: the sidebar and
// the embedding list only the classes with images until the toggle shows the others, and a
// class without images opens (no per-class script to load) without a page error.
// usage: node empty_classes.mjs <output dir> <expected.json>
// expected.json: {"withImages": N, "classes": M, "empty": <a class without images>}
import { pathToFileURL } from "node:url";
import fs from "node:fs";
import path from "node:path";
import { check, openBrowser } from "./lib.mjs";

const [dir, expectedPath] = process.argv.slice(2);
if (!dir || !expectedPath) {
  console.error("usage: node empty_classes.mjs <output dir> <expected.json>");
  process.exit(2);
}
const exp = JSON.parse(fs.readFileSync(expectedPath, "utf8"));
const { page, errors, close } = await openBrowser();
let status = 0;
const visible = (sel) =>
  page.$$eval(sel, (els) => els.filter((e) => e.style.display !== "none" && getComputedStyle(e).display !== "none").length);
try {
  await page.goto(pathToFileURL(path.resolve(dir, "index.html")).href);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });
  const rows = await visible("#class-list li");
  check(rows === exp.withImages, `the sidebar lists the ${exp.withImages} classes with images (${rows})`);
  const pts = await visible("#embedding circle.embed-point");
  check(pts === exp.withImages, `and so does the embedding (${pts} points)`);
  const label = await page.locator("#empty-toggle").textContent();
  const hidden = exp.classes - exp.withImages;
  check(label.includes(String(hidden)), `the toggle offers the ${hidden} others ("${label.trim()}")`);
  await page.locator("#empty-toggle input").check();
  const all = await visible("#class-list li");
  check(all === exp.classes, `checked, the sidebar lists all ${exp.classes} classes (${all})`);
  await page.locator(`#class-list li[data-class="${exp.empty}"]`).click();
  await page.waitForTimeout(500);
  check(errors.length === 0, "a class without images opens without page errors" + (errors.length ? ": " + errors.join("; ") : ""));
} catch (e) {
  console.error(String(e.message || e));
  status = 1;
} finally {
  await close();
}
process.exit(status);
