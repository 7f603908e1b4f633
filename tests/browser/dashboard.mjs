// The web dashboard as a person uses it, in Debian's headless Chromium driven by
// playwright-core (no browser download). Run by tests/web.rs, which starts cryosim and
// the daemon and checks the store afterwards; on its own:
//
//   BASE_URL=http://127.0.0.1:8470 CW_USER=olga CW_PASSWORD=... CRYOSIM_CONTROL=127.0.0.1:7000 \
//   ARTIFACTS=/tmp/shots node tests/browser/dashboard.mjs
//
// Steps: sign in; see the dashboard with every tile ok; make the dewar warm up through
// cryosim's control port; see the excursion appear by auto-refresh (no reload); type a
// comment, which must survive a refresh; acknowledge; see it acknowledged on the
// dashboard, in the alarm history and on the sensor's chart; and check the dashboard
// fits a 375 px phone. A screenshot is written at each step; on failure, failure.png.
// The last stdout line is JSON: {"ok":true,"alarm":ID,"screenshots":[...]}.

import net from "node:net";
import path from "node:path";
import fs from "node:fs";
import { chromium } from "playwright-core";

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const base = env("BASE_URL").replace(/\/$/, "");
const user = env("CW_USER");
const password = env("CW_PASSWORD");
const control = env("CRYOSIM_CONTROL");
const artifacts = env("ARTIFACTS");
const comment = env("CW_COMMENT", "LN2 top-up started, lid checked");
const executablePath = env("CHROMIUM", "/usr/bin/chromium");
const shots = [];

fs.mkdirSync(artifacts, { recursive: true });

function log(step, detail = "") {
  console.log(`[browser] ${step}${detail ? ": " + detail : ""}`);
}

async function shot(page, name, what) {
  const file = path.join(artifacts, name);
  await page.screenshot({ path: file, fullPage: true });
  shots.push({ file, what });
  log("screenshot", `${name} (${what})`);
}

// One line to cryosim's control port; resolves with the answer line.
function cryosim(line) {
  const [host, port] = control.split(/:(?=\d+$)/);
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port: Number(port) }, () => s.write(line + "\n"));
    let answer = "";
    s.setTimeout(5000, () => s.destroy(new Error(`cryosim did not answer ${line}`)));
    s.on("data", (d) => {
      answer += d;
      if (answer.includes("\n")) {
        s.end();
        resolve(answer.trim());
      }
    });
    s.on("error", reject);
  });
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  timeout: 20000,
  // Chromium must not reach out: this machine's network is closed.
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
let page;
let failed = false;
try {
  const desktop = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  desktop.setDefaultTimeout(15000);
  page = await desktop.newPage();
  // Script errors and CSP violations are failures (an expected 401 page is not), and
  // nothing may be fetched from another server (facility networks are closed).
  const consoleErrors = [];
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  page.on("request", (r) => {
    if (!r.url().startsWith(base + "/") && !r.url().startsWith("data:")) consoleErrors.push(`request to ${r.url()}`);
  });
  page.on("response", (r) => {
    if (r.url().includes("/assets/") && r.status() >= 400) consoleErrors.push(`${r.url()}: ${r.status()}`);
  });

  // 1. Not signed in: the dashboard sends us to the sign-in page.
  await page.goto(base + "/");
  check(new URL(page.url()).pathname === "/login", `expected /login, got ${page.url()}`);
  await page.locator("#password").waitFor();
  await shot(page, "01-login.png", "sign-in page (redirected from /)");

  // 2. A wrong password is refused with a generic message.
  await page.fill("#user", user);
  await page.fill("#password", "not the password");
  const [refused] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === "POST" && r.url().endsWith("/login")),
    page.click("button[type=submit]"),
  ]);
  check(refused.status() === 401, `a wrong password answered ${refused.status()}`);
  await page.locator("p.notice.bad").waitFor();
  check((await page.locator("p.notice.bad").innerText()).includes("Wrong user name or password"), "no generic refusal");
  await shot(page, "02-login-refused.png", "wrong password: generic message, still on the sign-in page");

  // 3. Sign in: the dashboard, every tile ok.
  await page.fill("#user", user);
  await page.fill("#password", password);
  await Promise.all([page.waitForURL(base + "/"), page.click("button[type=submit]")]);
  await page.locator("#asset-dewar-1[data-state=ok]").waitFor();
  await page.locator("#asset-dewar-1 .readings .v").first().waitFor();
  check((await page.locator("#alarms .none").count()) === 1, "alarms listed before any excursion");
  await shot(page, "03-dashboard-ok.png", "signed in: a tile per asset, all ok, no open alarms");

  // 4. The dewar warms up; the alarm appears without reloading the page.
  const answer = await cryosim("set dewar-1 warmup:60");
  check(answer.startsWith("ok"), `cryosim answered ${answer}`);
  log("excursion", "set dewar-1 warmup:60");
  const navigations = [];
  page.on("framenavigated", (f) => f === page.mainFrame() && navigations.push(f.url()));
  const alarm = page.locator("#alarms article.alarm.is-active").first();
  await alarm.waitFor({ timeout: 30000 });
  await page.locator("#asset-dewar-1[data-state=alarm]").waitFor();
  check(navigations.length === 0, `the page reloaded instead of refreshing in place: ${navigations}`);
  const id = (await alarm.getAttribute("id")).replace("alarm-", "");
  log("alarm appeared", `alarm ${id}`);
  await shot(page, "04-excursion.png", `alarm ${id} appeared by auto-refresh; dewar tile red`);

  // 5. A comment being typed survives the next refresh.
  const item = page.locator(`#alarm-${id}`);
  await item.locator("textarea").fill(comment);
  const before = await page.locator("#updated").innerText();
  await page.waitForFunction((t) => document.getElementById("updated")?.textContent !== t, before, { timeout: 15000 });
  check((await item.locator("textarea").inputValue()) === comment, "the refresh wiped the comment being typed");
  await shot(page, "05-ack-comment.png", "comment typed into the acknowledge form (kept across a refresh)");

  // 6. Acknowledge: back on the dashboard, the alarm is shown acknowledged.
  await Promise.all([page.waitForURL(/\/\?acked=\d+$/), item.locator("button[type=submit]").click()]);
  const notice = await page.locator("p.notice.ok").innerText();
  check(notice.includes(`Alarm ${id} acknowledged by ${user}`), `notice: ${notice}`);
  const acked = page.locator(`#alarm-${id} .acked`);
  await acked.waitFor();
  const ackedText = await acked.innerText();
  check(ackedText.includes(user) && ackedText.includes(comment) && ackedText.includes("via web"), `acked: ${ackedText}`);
  check((await page.locator(`#alarm-${id} form`).count()) === 0, "an acknowledged alarm still has a form");
  await shot(page, "06-acknowledged.png", `alarm ${id} acknowledged by ${user} with the comment`);

  // 7. The alarm history records who, when, how and the comment.
  await Promise.all([page.waitForURL(base + "/alarms/history"), page.click("header nav a[href='/alarms/history']")]);
  const row = page.locator(`#history-${id}`);
  await row.waitFor();
  check((await row.locator("td.by").innerText()) === user, "history: acknowledged by");
  check((await row.locator("td.comment").innerText()) === comment, "history: comment");
  check((await row.innerText()).includes("web"), "history: path");
  await shot(page, "07-alarm-history.png", "alarm history: who acknowledged, when, path web, comment");

  // 8. The sensor's chart shows the threshold and the excursion.
  await page.goto(base + "/sensors/dewar-1.temp?from=-10m");
  await page.locator("figure.chart svg").waitFor();
  const sensorText = await page.locator("main").innerText();
  check(sensorText.includes("dewar-warm") && sensorText.includes(comment), "sensor page: threshold and excursion");
  await shot(page, "08-sensor-chart.png", "dewar-1.temp history: threshold line, excursion shaded and listed");
  check(consoleErrors.length === 0, `console errors: ${consoleErrors.join(" | ")}`);

  // 9. On a phone: the same session, 375 px wide, nothing wider than the screen.
  const phone = await browser.newContext({
    viewport: { width: 375, height: 812 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    storageState: await desktop.storageState(),
  });
  const small = await phone.newPage();
  await small.goto(base + "/");
  await small.locator(`#alarm-${id} .acked`).waitFor();
  const width = await small.evaluate(() => document.documentElement.scrollWidth);
  check(width <= 375, `the dashboard is ${width} px wide on a 375 px phone`);
  await shot(small, "09-phone.png", "dashboard on a 375 px phone: tiles in one column, alarm acknowledged");

  // 10. Sign out: the session ends.
  await page.goto(base + "/");
  await Promise.all([page.waitForURL(base + "/login"), page.click("form[action='/logout'] button")]);
  await page.goto(base + "/");
  check(new URL(page.url()).pathname === "/login", "still signed in after signing out");

  console.log(JSON.stringify({ ok: true, alarm: Number(id), screenshots: shots }));
} catch (e) {
  failed = true;
  console.error(`[browser] FAILED: ${e && e.stack ? e.stack : e}`);
  if (page) {
    await page.screenshot({ path: path.join(artifacts, "failure.png"), fullPage: true }).catch(() => {});
    console.error(`[browser] page at failure: ${page.url()}`);
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
