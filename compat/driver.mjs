// Drives compat/page.js in headless Chromium with playwright-core and prints one JSON line per
// event on stdout; tests/compat/test_browser.py reads them. Serves the page and livekit-client's
// UMD build from node_modules on a loopback port of its own, so it works offline.
//
//   node driver.mjs '{"url": "ws://127.0.0.1:PORT", "token": "...", "peer": "IDENTITY",
//                     "metadata": "...", "listenMs": 3000}'
//
// Closes the browser when stdin ends (or on SIGTERM). Exit 0 when the page ran to its end,
// 1 when it failed (the last line is {"event": "error", ...}).
import { readFile } from "node:fs/promises";
import http from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const params = JSON.parse(process.argv[2] || "{}");
const executablePath = process.env.ECHOPROOF_CHROMIUM || "/usr/bin/chromium";

const emit = (event) => process.stdout.write(JSON.stringify(event) + "\n");

const files = {
  "/": [path.join(here, "page.html"), "text/html"],
  "/page.js": [path.join(here, "page.js"), "text/javascript"],
  "/livekit-client.umd.js": [
    path.join(path.dirname(require.resolve("livekit-client")), "livekit-client.umd.js"),
    "text/javascript",
  ],
};

const server = http.createServer(async (req, res) => {
  const entry = files[new URL(req.url, "http://x").pathname];
  if (!entry) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { "Content-Type": entry[1] }).end(await readFile(entry[0]));
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const origin = `http://127.0.0.1:${server.address().port}`;

const profile = await mkdtemp(path.join(tmpdir(), "echoproof-chromium-"));
let browser = null;
let exitCode = 0;

async function close() {
  if (browser) await browser.close().catch(() => {});
  browser = null;
  server.close();
  await rm(profile, { recursive: true, force: true });
}

process.on("SIGTERM", async () => {
  await close();
  process.exit(exitCode);
});

try {
  // A persistent context is how playwright takes a --user-data-dir: a fresh one per run.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // A fake microphone (a beep) that needs no permission prompt, and audio without a gesture.
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
  browser = context;
  const page = context.pages()[0] || (await context.newPage());
  page.on("console", (msg) => {
    // Cut short: the SDK's failed /rtc/v1 attempt (expected: it then falls back to /rtc) logs its URL.
    if (msg.type() === "error") emit({ event: "console", text: msg.text().slice(0, 200) });
  });
  page.on("pageerror", (err) => emit({ event: "pageerror", text: String(err) }));
  await page.exposeFunction("report", emit);
  await page.goto(origin + "/");
  emit({ event: "browser", version: context.browser()?.version() ?? null });
  await page.evaluate((p) => window.runCompat(p), params);
} catch (err) {
  exitCode = 1;
  emit({ event: "error", text: String(err && err.stack ? err.stack : err) });
}

// Stay in the room (the Python side is still listening and sending) until told to go.
process.stdin.resume();
process.stdin.on("end", async () => {
  await close();
  process.exit(exitCode);
});
