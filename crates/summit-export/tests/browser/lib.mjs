// Shared by the headless-Chromium checks: launching Chromium offline (file: and data: URLs
// only, plus the loopback server a test started itself: `openBrowser({ allow: base })`),
// collecting page errors, and printing checks.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

// Prints "ok - msg", or throws with the message when `cond` is false.
export function check(cond, msg) {
  if (!cond) throw new Error("check failed: " + msg);
  console.log("ok - " + msg);
}

// A fresh Chromium profile with one page of 1440×900; `errors` collects page errors and
// console errors; `close()` closes it and removes the profile.
export async function openBrowser(options = {}) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "summit-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    viewport: { width: 1440, height: 900 },
  });
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith("file:") || url.startsWith("data:")) return route.continue();
    // a page served on loopback by the test itself (summit serve)
    if (options.allow && url.startsWith(options.allow)) return route.continue();
    return route.abort();
  });
  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  const close = async () => {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  };
  return { context, page, errors, close };
}
