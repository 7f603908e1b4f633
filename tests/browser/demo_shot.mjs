// The README's screenshot: the dashboard of `cryowatch demo` during its excursion, in
// Debian's headless Chromium driven by playwright-core. Run by tests/demo.rs while the
// demo's alarms are open; on its own:
//
//   BASE_URL=http://127.0.0.1:8470 CW_USER=demo CW_PASSWORD=... OUT=tests/browser/demo-dashboard.png \
//   node tests/browser/demo_shot.mjs
//
// Signs in, waits until WAIT_ALARMS alarms are listed (default 2), and writes a
// 1280x1000 PNG of the page as a person sees it first. Prints {"ok":true,...} last.

import { chromium } from "playwright-core";

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const base = env("BASE_URL").replace(/\/$/, "");
const out = env("OUT");
const wanted = Number(env("WAIT_ALARMS", "2"));

const browser = await chromium.launch({
  executablePath: env("CHROMIUM", "/usr/bin/chromium"),
  headless: true,
  timeout: 20000,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  context.setDefaultTimeout(15000);
  const page = await context.newPage();
  await page.goto(base + "/");
  await page.fill("#user", env("CW_USER"));
  await page.fill("#password", env("CW_PASSWORD"));
  await Promise.all([page.waitForURL(base + "/"), page.click("button[type=submit]")]);
  await page.waitForFunction((n) => document.querySelectorAll("#alarms article.alarm").length >= n, wanted, {
    timeout: 30000,
  });
  await page.locator("#asset-dewar-1 .readings .v").first().waitFor();
  // Zoomed out so that the tiles and the open alarms fit one screen, from the top.
  await page.evaluate((z) => (document.documentElement.style.zoom = z), env("ZOOM", "0.6"));
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: out, fullPage: false });
  const alarms = await page.locator("#alarms article.alarm").count();
  console.log(JSON.stringify({ ok: true, out, alarms }));
} catch (e) {
  failed = true;
  console.error(`[demo_shot] FAILED: ${e && e.stack ? e.stack : e}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
