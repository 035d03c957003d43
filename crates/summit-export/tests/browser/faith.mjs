// Headless-Chromium check of the faithfulness badges and plots (SPEC §3.1).
// usage: node faith.mjs <output dir> <expected.json>
// expected.json, written by the Rust test (tests/faithfulness.rs) from faithfulness.json:
//   {"classes": [{"index", "pr", "measured", "draws", "points"}], "select": class index}
// Checks: every class row carries its badge with the class's p_random; selecting a class draws
// its random drops, the graph and activation markers and its deletion curve (one point per
// measured prefix). Writes screenshot-faith.png (the page) and screenshot-faith-panel.png.
// Exit code 0 on success, 1 with a message on the first failure.
import { pathToFileURL } from "node:url";
import fs from "node:fs";
import path from "node:path";
import { check, openBrowser } from "./lib.mjs";

const [dir, expectedPath] = process.argv.slice(2);
if (!dir || !expectedPath) {
  console.error("usage: node faith.mjs <output dir> <expected.json>");
  process.exit(2);
}
const exp = JSON.parse(fs.readFileSync(expectedPath, "utf8"));
const { page, errors, close } = await openBrowser();
let status = 0;
try {
  await page.goto(pathToFileURL(path.resolve(dir, "index.html")).href);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });
  const badges = await page.$$eval("#class-list li", (ls) =>
    ls.map((l) => {
      const b = l.querySelector(".faith-badge");
      return [Number(l.getAttribute("data-class")), b ? b.getAttribute("data-p-random") : null, b ? b.className : null];
    })
  );
  const byClass = new Map(exp.classes.map((c) => [c.index, c]));
  check(
    badges.length === exp.classes.length &&
      badges.every(([c, pr, cls]) => {
        const e = byClass.get(c);
        if (!e || cls === null) return false;
        if (!e.measured) return pr === "" && cls.includes("na");
        return Math.abs(Number(pr) - e.pr) < 5e-4 && cls.includes(e.pr < 0.05 ? "good" : "weak");
      }),
    `every class shows its faithfulness badge with its p_random (${JSON.stringify(badges)})`
  );
  await page.click(`#class-list li[data-class="${exp.select}"]`);
  await page.waitForSelector("body:not([data-loading])", { timeout: 15000 });
  await page.waitForSelector('#class-faith[data-measured="1"]', { timeout: 5000 });
  const want = byClass.get(exp.select);
  const dots = await page.locator("#faith-drops circle.faith-random").count();
  check(dots === want.draws, `class ${exp.select}: the drop plot shows its ${want.draws} random draws (got ${dots})`);
  const marks = await page.locator("#faith-drops line.faith-graph, #faith-drops line.faith-activation").count();
  check(marks === 2, "and the graph's and the activation baseline's drops");
  const pts = await page.locator("#faith-deletion circle.faith-point").count();
  check(pts === want.points, `the deletion curve has its ${want.points} points (got ${pts})`);
  const text = await page.textContent("#faith-text");
  check(/lowers p\(class\) by/.test(text), `the panel says what ablation did: "${text.trim()}"`);
  await page.locator("#class-faith").scrollIntoViewIfNeeded();
  await page.screenshot({ path: path.join(dir, "screenshot-faith.png") });
  await page.locator("#class-faith").screenshot({ path: path.join(dir, "screenshot-faith-panel.png") });
  check(errors.length === 0, "no page errors" + (errors.length ? ": " + errors.join(" | ") : ""));
} catch (e) {
  console.error(String(e.message || e));
  status = 1;
} finally {
  await close();
}
process.exit(status);
