// The quality record as a person makes it on the dashboard, in Debian's headless
// Chromium driven by playwright-core. Run by tests/quality_browser.rs, which starts
// Mosquitto and the daemon (its clock shortly before the end of a month in the site's
// time zone) and checks the store afterwards; on its own:
//
//   BASE_URL=http://127.0.0.1:8470 CW_USER=qa CW_PASSWORD=... MQTT_PORT=1883 \
//   ARTIFACTS=/tmp/shots node tests/browser/quality.mjs
//
// Steps: sign in; the dewar warms up (readings published to the broker) and the alarm
// appears; acknowledge it with a signature — the first signature of the session is
// refused without the user name (21 CFR 11.200(a)(1)), then made with user name and
// password; it cools down and becomes an open deviation; close it with a reason and
// the password alone; when the month has ended, approve its review with the password. A screenshot is written at each step;
// on failure, failure.png. The last stdout line is JSON:
// {"ok":true,"alarm":ID,"review":ID,"screenshots":[...]}.

import { spawnSync } from "node:child_process";
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
const mqttPort = env("MQTT_PORT");
const topic = env("MQTT_TOPIC", "lab/dewar-1/temp");
const artifacts = env("ARTIFACTS");
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

function check(cond, message) {
  if (!cond) throw new Error(message);
}

// One reading to the broker (QoS 1), as a probe would send it.
function publish(value) {
  const r = spawnSync("mosquitto_pub", ["-h", "127.0.0.1", "-p", mqttPort, "-q", "1", "-t", topic, "-m", JSON.stringify({ v: value })]);
  check(r.status === 0, `mosquitto_pub failed: ${r.stderr}`);
}

// Publishes `value` every second until `done()` resolves true (the page reloaded each time).
async function until(page, value, done, what, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    publish(value);
    await page.waitForTimeout(1000);
    await page.reload();
    if (await done()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  timeout: 20000,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let page;
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  context.setDefaultTimeout(15000);
  page = await context.newPage();

  // 1. Sign in.
  await page.goto(base + "/login");
  await page.fill("#user", user);
  await page.fill("#password", password);
  await Promise.all([page.waitForURL(base + "/"), page.click("button[type=submit]")]);

  // 2. The dewar warms up: an alarm.
  const active = page.locator("#alarms article.alarm.is-active").first();
  await until(page, -120.0, async () => (await active.count()) > 0, "the alarm");
  const id = (await active.getAttribute("id")).replace("alarm-", "");
  log("alarm", id);
  await shot(page, "q01-alarm.png", `alarm ${id} raised`);

  // 3. Acknowledge it with a signature: the session's first signature needs the user
  //    name as well as the password (21 CFR 11.200(a)(1)); with the password alone it
  //    is refused and nothing is acknowledged.
  const item = page.locator(`#alarm-${id}`);
  const ackForm = item.locator("form[action$='/ack']");
  await ackForm.locator("textarea").fill("lid found ajar, closed");
  await ackForm.locator("input[name=password]").fill(password);
  const [refused] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === "POST" && r.url().endsWith(`/alarms/${id}/ack`)),
    ackForm.locator("button[type=submit]").click(),
  ]);
  check(refused.status() === 401, `first signature without the user name answered ${refused.status()}`);
  check((await page.locator("p.notice.bad").innerText()).includes("user name and your password"), "no re-authentication asked");
  await shot(page, "q02-first-signature-refused.png", "first signature of the session: user name and password needed");
  await page.goto(base + "/");
  await ackForm.locator("textarea").fill("lid found ajar, closed");
  await ackForm.locator("input[name=username]").fill(user);
  await ackForm.locator("input[name=password]").fill(password);
  await Promise.all([page.waitForURL(/\/\?acked=\d+$/), ackForm.locator("button[type=submit]").click()]);
  await page.locator(`#alarm-${id} .acked`).waitFor();
  await shot(page, "q03-acknowledged.png", `alarm ${id} acknowledged with a signature`);

  // 4. It cools down: an open deviation, with the form that closes it.
  const deviation = page.locator(`#deviation-${id}`);
  await until(page, -195.0, async () => (await deviation.count()) > 0, "the open deviation");
  await shot(page, "q04-open-deviation.png", `alarm ${id} cleared: an open deviation with its closing form`);

  // 5. Close it: later signatures of the session need the password alone.
  await deviation.locator("select[name=reason]").selectOption("lid-open");
  await deviation.locator("input[name=action]").fill("lid closed, seal inspected");
  await deviation.locator("select[name=impact]").selectOption("assessed");
  await deviation.locator("textarea[name=comment]").fill("racks checked: all below -150 °C throughout");
  await deviation.locator("input[name=password]").fill(password);
  await Promise.all([page.waitForURL(/\/\?closed=\d+/), deviation.locator("button[type=submit]").click()]);
  check((await page.locator(`#deviation-${id}`).count()) === 0, "the deviation is still open after closing");
  await shot(page, "q05-closed.png", `alarm ${id} closed with a signed corrective action`);

  // 7. The month ends: its review, signed with the password alone (same session).
  const form = page.locator("form.sign").first();
  const deadline = Date.now() + 90000;
  await page.goto(base + "/reviews");
  while ((await form.count()) === 0) {
    check(Date.now() < deadline, "no review to sign after 90 s");
    await page.waitForTimeout(2000);
    await page.reload();
  }
  const article = page.locator("article.review").first();
  const review = (await article.getAttribute("id")).replace("review-", "");
  await shot(page, "q06-review.png", `review ${review} awaiting signature`);
  let signed = false;
  for (let attempt = 0; attempt < 3 && !signed; attempt++) {
    await page.goto(base + "/reviews");
    const f = page.locator("form.sign").first();
    await f.locator("select[name=meaning]").selectOption("approved");
    await f.locator("input[name=password]").fill(password);
    const [answer] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === "POST" && r.url().includes("/reviews/")),
      f.locator("button[type=submit]").click(),
    ]);
    if (answer.status() === 409) {
      // The period's record changed after the report was generated (the corrective
      // action above): the next version is generated; read it and sign again.
      const why = await page.locator("p.notice.bad").innerText();
      check(why.includes("changed after version"), `409: ${why}`);
      log("review changed", why);
      continue;
    }
    check(answer.status() === 303 || answer.status() === 200, `signing the review answered ${answer.status()}`);
    signed = true;
  }
  check(signed, "the review could not be signed");
  await page.locator("ul.signatures li").first().waitFor();
  const sig = await page.locator("article.review").first().innerText();
  check(sig.includes("approved by"), `signatures: ${sig}`);
  await shot(page, "q07-review-approved.png", "review approved: printed name, time and meaning shown");
  const finalReview = (await page.locator("article.review").first().getAttribute("id")).replace("review-", "");

  console.log(JSON.stringify({ ok: true, alarm: Number(id), review: Number(finalReview), screenshots: shots }));
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
