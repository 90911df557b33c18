// Opens a run's report.html from its folder (file://) in headless Chromium with playwright-core,
// with every request that leaves the folder blocked, and prints one JSON line of what it found;
// tests/compat/test_report.py reads it. Optionally saves a screenshot of the page.
//
//   node report.mjs '{"page": "/abs/run/report.html", "screenshot": "/abs/out.png", "width": 1200}'
//
// Exit 0 with the findings (they may still show a failure: the test judges them), 1 when the
// page could not be driven (the line is {"error": ...}).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const params = JSON.parse(process.argv[2] || "{}");
const executablePath = process.env.ECHOPROOF_CHROMIUM || "/usr/bin/chromium";
const pageUrl = pathToFileURL(params.page).href;
const folder = pageUrl.slice(0, pageUrl.lastIndexOf("/") + 1);
const within = params.withinMs || 30000;

const found = { console: [], blocked: [], requested: [] };
const profile = await mkdtemp(path.join(tmpdir(), "echoproof-report-"));
let context = null;
let code = 0;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: params.width || 1200, height: 900 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
  // No network: only the folder's own files may load.
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(folder)) {
      found.requested.push(url.slice(folder.length));
      return route.continue();
    }
    found.blocked.push(url);
    return route.abort();
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on("console", (msg) => {
    if (msg.type() === "error") found.console.push(msg.text().slice(0, 300));
  });
  page.on("pageerror", (err) => found.console.push(`pageerror: ${err}`));
  const started = Date.now();
  await page.goto(pageUrl, { waitUntil: "load" });
  found.loadMs = Date.now() - started;
  found.timing = await page.evaluate(() => {
    const nav = performance.getEntriesByType("navigation")[0];
    return { domContentLoadedMs: nav.domContentLoadedEventEnd, loadMs: nav.loadEventEnd };
  });
  found.verdict = await page.evaluate(() => {
    const b = document.querySelector("#verdict");
    return b && {
      status: b.dataset.status,
      word: b.querySelector(".word").textContent,
      reason: b.querySelector(".reason").textContent,
      signature: b.querySelector(".signature-status").textContent,
      keyId: b.querySelector(".key-id")?.textContent ?? null,
      visible: b.getBoundingClientRect().top < window.innerHeight,
    };
  });
  found.cards = await page.$$eval(".card", (cards) =>
    cards.map((c) => ({
      path: c.dataset.path,
      value: c.dataset.value,
      shown: c.querySelector(".number").textContent,
      limit: c.querySelector(".limit").textContent,
      state: c.classList.contains("ok") ? "ok" : c.classList.contains("fail") ? "fail" : "none",
      visible: c.getBoundingClientRect().top < window.innerHeight,
    })),
  );
  found.players = await page.$$eval(".player", (ps) =>
    ps.map((p) => ({ wav: p.dataset.wav, src: p.querySelector("audio").getAttribute("src") })),
  );
  found.tables = await page.$$eval("table", (ts) => ts.map((t) => t.rows.length));

  // Play the first received stream: it loads from the folder and has the recording's length.
  const audio = page.locator("audio").first();
  await audio.evaluate((a) => {
    a.muted = true;
    return a.play();
  });
  await page.waitForFunction(() => document.querySelector("audio").readyState >= 1, null, {
    timeout: within,
  });
  found.played = await audio.evaluate((a) => ({
    duration: a.duration,
    paused: a.paused,
    error: a.error && a.error.code,
  }));
  // Click the first player's first burst: the playback moves to it.
  const burst = page.locator(".player").first().locator(".region.burst").first();
  if ((await burst.count()) > 0) {
    const seek = Number(await burst.getAttribute("data-seek"));
    const ref = await burst.getAttribute("data-ref");
    await burst.click();
    await page.waitForFunction(
      (s) => {
        const a = document.querySelector("audio");
        return a.currentTime >= s - 0.001 && a.currentTime < s + 0.5;
      },
      seek,
      { timeout: within },
    );
    found.clicked = {
      seek,
      burst: ref === null ? null : Number(ref),
      currentTime: await audio.evaluate((a) => a.currentTime),
    };
  }
  // Click the first turn's row (an agent under test): its player moves to the turn.
  const row = page.locator("[data-play]").first();
  if ((await row.count()) > 0) {
    const seek = Number(await row.getAttribute("data-seek"));
    const id = await row.getAttribute("data-play");
    await row.click();
    await page.waitForFunction(
      ([i, s]) => {
        const a = document.getElementById(i);
        return a.currentTime >= s - 0.001 && a.currentTime < s + 0.5;
      },
      [id, seek],
      { timeout: within },
    );
    found.turn = {
      player: id,
      seek,
      until: await row.getAttribute("data-until"),
      turn: Number(await row.evaluate((b) => b.closest("tr").dataset.turn)),
      currentTime: await page.evaluate((i) => document.getElementById(i).currentTime, id),
    };
  }
  if (params.screenshot) {
    await page.evaluate(() => {
      for (const a of document.querySelectorAll("audio")) {
        a.pause();
        a.muted = false;
        a.currentTime = 0;
      }
      document.activeElement?.blur();
      window.scrollTo(0, 0);
    });
    await page.mouse.move(0, 0);
    await page.screenshot({ path: params.screenshot, fullPage: params.fullPage ?? false });
  }
} catch (err) {
  code = 1;
  found.error = String(err && err.stack ? err.stack : err);
} finally {
  if (context) await context.close().catch(() => {});
  await rm(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(found) + "\n");
process.exit(code);
