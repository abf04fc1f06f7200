#!/usr/bin/env node
// drydock browser end-to-end tests.
//
// Drives Debian's /usr/bin/chromium with playwright-core (no browser download) through the running
// stack (edge proxy → frontend + API), and checks the frontend's security headers and caching rules
// over HTTP. Usage:
//
//   node e2e/run.mjs [--base-url http://127.0.0.1:8080] [--artifacts artifacts/e2e]
//                    [--chromium /usr/bin/chromium] [--timeout-ms 15000] [--grep TEXT]
//
// Environment fallbacks: E2E_BASE_URL, E2E_ARTIFACTS, CHROMIUM_PATH.
// Screenshots (and the page HTML) of failing browser tests go to the artifacts directory.
// The last line is `N passed, N failed`; the exit code is 0 only when nothing failed
// (2 for bad arguments, and for a --grep that selects no test: running nothing is not a pass).

import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const USAGE =
  "usage: node e2e/run.mjs [--base-url URL] [--artifacts DIR] [--chromium PATH] [--timeout-ms N] [--grep TEXT]";

let opts;
try {
  ({ values: opts } = parseArgs({
    options: {
      "base-url": { type: "string", default: process.env.E2E_BASE_URL ?? "http://127.0.0.1:8080" },
      artifacts: { type: "string", default: process.env.E2E_ARTIFACTS ?? "artifacts/e2e" },
      chromium: { type: "string", default: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium" },
      "timeout-ms": { type: "string", default: "15000" },
      grep: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  }));
} catch (err) {
  console.error(`${err.message}\n${USAGE}`);
  process.exit(2);
}
if (opts.help) {
  console.log(USAGE);
  process.exit(0);
}

const BASE = opts["base-url"].replace(/\/+$/, "");
const ARTIFACTS = resolve(opts.artifacts);
const TIMEOUT = Number(opts["timeout-ms"]);
if (!/^https?:\/\/[^/]+$/.test(BASE) || !Number.isFinite(TIMEOUT) || TIMEOUT <= 0) {
  console.error(`bad --base-url or --timeout-ms\n${USAGE}`);
  process.exit(2);
}

// Flags from ENVIRONMENT.md (Debian chromium, no sandbox inside containers/CI, no background traffic).
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const PHONE = { width: 390, height: 844 };

// ---------------------------------------------------------------------------------------------
// tiny harness

const tests = [];
const test = (name, fn, { browser = false } = {}) => tests.push({ name, fn, browser });
const state = {}; // shared across the ordered UI flow (item id, ...)

class AssertionError extends Error {}
function assert(cond, message) {
  if (!cond) throw new AssertionError(message);
}
function eq(actual, expected, what) {
  assert(actual === expected, `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

async function http(path, init = {}) {
  const res = await fetch(`${BASE}${path}`, {
    redirect: "manual",
    signal: AbortSignal.timeout(TIMEOUT),
    ...init,
  });
  const body = await res.text();
  return { res, body, h: (name) => res.headers.get(name) };
}

function checkSecurityHeaders(h, what) {
  const csp = h("content-security-policy");
  assert(csp, `${what}: no Content-Security-Policy`);
  const directives = Object.fromEntries(
    csp
      .split(";")
      .map((d) => d.trim())
      .filter(Boolean)
      .map((d) => {
        const [name, ...values] = d.split(/\s+/);
        return [name.toLowerCase(), values];
      }),
  );
  const scripts = directives["script-src"] ?? directives["default-src"];
  assert(scripts, `${what}: CSP has neither script-src nor default-src`);
  assert(!scripts.includes("'unsafe-inline'"), `${what}: CSP allows 'unsafe-inline' scripts`);
  assert(!scripts.includes("'unsafe-eval'"), `${what}: CSP allows 'unsafe-eval' scripts`);
  eq((directives["frame-ancestors"] ?? []).join(" "), "'none'", `${what}: CSP frame-ancestors`);
  eq(h("x-content-type-options"), "nosniff", `${what}: X-Content-Type-Options`);
  assert(h("referrer-policy"), `${what}: no Referrer-Policy`);
  assert(h("permissions-policy"), `${what}: no Permissions-Policy`);
  if (BASE.startsWith("https:")) assert(h("strict-transport-security"), `${what}: no HSTS over TLS`);
}

// ---------------------------------------------------------------------------------------------
// HTTP checks: headers and caching rules

let indexAssets = [];

test("GET / serves index.html: no-cache, security headers, no inline scripts", async () => {
  const { res, body, h } = await http("/");
  eq(res.status, 200, "status");
  assert(/text\/html/.test(h("content-type") ?? ""), `content-type ${h("content-type")}`);
  assert(/no-cache|no-store/.test(h("cache-control") ?? ""), `Cache-Control is ${h("cache-control")}`);
  checkSecurityHeaders(h, "/");
  for (const m of body.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)) {
    assert(/\bsrc=/.test(m[1]) && m[2].trim() === "", `inline script in index.html: ${m[0].slice(0, 80)}`);
  }
  indexAssets = [...body.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]);
  assert(indexAssets.length >= 1, "index.html references no /assets/ files");
});

test("hashed assets: immutable for a year, gzip, security headers", async () => {
  assert(indexAssets.length, "no assets found in index.html (previous test failed?)");
  for (const path of indexAssets) {
    const { res, h } = await http(path, { headers: { "Accept-Encoding": "gzip" } });
    eq(res.status, 200, `${path} status`);
    const cc = h("cache-control") ?? "";
    assert(/public/.test(cc) && /max-age=31536000/.test(cc) && /immutable/.test(cc), `${path} Cache-Control: ${cc}`);
    checkSecurityHeaders(h, path);
    if (/\.(js|css)$/.test(path)) eq(h("content-encoding"), "gzip", `${path} Content-Encoding`);
  }
});

test("missing asset is a 404 (not index.html), not cached forever, with security headers", async () => {
  const path = `/assets/missing-${Date.now()}.js`;
  const { res, body, h } = await http(path);
  eq(res.status, 404, "status");
  assert(!/immutable/.test(h("cache-control") ?? ""), `404 is cached as immutable: ${h("cache-control")}`);
  assert(!body.includes("__DRYDOCK_CONFIG__") && !/<main id="main"/.test(body), "404 body is the SPA index.html");
  checkSecurityHeaders(h, `${path} (404)`);
});

test("SPA fallback: deep links return index.html with no-cache", async () => {
  for (const path of ["/items/42", "/items/new", "/status", "/some/unknown/route"]) {
    const { res, body, h } = await http(path);
    eq(res.status, 200, `${path} status`);
    assert(body.includes('id="main"'), `${path} is not the app shell`);
    assert(/no-cache|no-store/.test(h("cache-control") ?? ""), `${path} Cache-Control: ${h("cache-control")}`);
    checkSecurityHeaders(h, path);
  }
});

test("/config.js is runtime config, served no-cache", async () => {
  const { res, body, h } = await http("/config.js");
  eq(res.status, 200, "status");
  assert(/javascript/.test(h("content-type") ?? ""), `content-type ${h("content-type")}`);
  assert(/no-cache|no-store/.test(h("cache-control") ?? ""), `Cache-Control: ${h("cache-control")}`);
  assert(body.includes("window.__DRYDOCK_CONFIG__"), "config.js does not set window.__DRYDOCK_CONFIG__");
  assert(!body.includes("${"), "config.js still contains an unrendered ${...} template variable");
  checkSecurityHeaders(h, "/config.js");
});

test("/health answers 200 {\"status\":\"ok\"}", async () => {
  const { res, body } = await http("/health");
  eq(res.status, 200, "status");
  eq(JSON.parse(body).status, "ok", "status field");
});

// ---------------------------------------------------------------------------------------------
// browser flow (ordered; later steps use the item created first)

const b = (name, fn) => test(name, fn, { browser: true });

async function gotoApp(page, path) {
  const res = await page.goto(`${BASE}${path}`, { waitUntil: "load" });
  assert(res && res.status() === 200, `GET ${path} answered ${res?.status()}`);
}

async function summaryText(page) {
  const avg = (await page.locator("#item-summary [data-testid=average]").textContent())?.trim();
  const count = (await page.locator("#item-summary [data-testid=review-count]").textContent())?.trim();
  return { avg, count };
}

async function addReview(page, { author, rating, body }) {
  await page.getByLabel("Your name").fill(author);
  await page.getByLabel("Rating (1–5)").fill(String(rating));
  await page.getByLabel("Review", { exact: true }).fill(body);
  await page.getByRole("button", { name: "Add review" }).click();
}

b("create an item", async (page) => {
  state.name = `e2e item ${new Date().toISOString()} ${Math.random().toString(36).slice(2, 7)}`;
  await gotoApp(page, "/");
  await page.getByRole("link", { name: "Add item", exact: true }).first().click();
  await page.waitForURL(`${BASE}/items/new`);
  await page.getByLabel("Name").fill(state.name);
  await page.getByLabel("Description").fill("Created by the drydock browser tests.");
  await page.getByRole("button", { name: "Create item" }).click();
  await page.waitForURL(/\/items\/\d+$/);
  state.id = Number(new URL(page.url()).pathname.split("/").pop());
  await page.getByRole("heading", { level: 1, name: state.name }).waitFor();
  const s = await summaryText(page);
  eq(s.avg, "No ratings yet", "average of a new item");
  eq(s.count, "0 reviews", "review count of a new item");
});

b("add reviews and see the average change", async (page) => {
  assert(state.id, "no item from the previous step");
  await gotoApp(page, `/items/${state.id}`);
  await addReview(page, { author: "Ada", rating: 5, body: "Excellent." });
  await page.locator("#item-summary [data-testid=review-count]", { hasText: "1 review" }).waitFor();
  eq((await summaryText(page)).avg, "5.0 / 5", "average after one 5-star review");

  await addReview(page, { author: "Grace", rating: 2, body: "Not for me." });
  await page.locator("#item-summary [data-testid=review-count]", { hasText: "2 reviews" }).waitFor();
  eq((await summaryText(page)).avg, "3.5 / 5", "average after 5 and 2");
  const reviews = await page.locator(".review-list .review").count();
  eq(reviews, 2, "reviews listed");
});

b("an API validation error is shown next to its field", async (page) => {
  assert(state.id, "no item from the previous step");
  await gotoApp(page, `/items/${state.id}`);
  await addReview(page, { author: "Mallory", rating: 7, body: "Seven stars!" });
  const error = page.locator("#review-form-rating-error");
  await error.waitFor({ state: "visible" });
  const text = (await error.textContent())?.trim() ?? "";
  assert(text.length > 0, "rating error slot is empty");
  eq(await page.getByLabel("Rating (1–5)").getAttribute("aria-invalid"), "true", "rating aria-invalid");
  const describedBy = (await page.getByLabel("Rating (1–5)").getAttribute("aria-describedby")) ?? "";
  assert(describedBy.split(" ").includes("review-form-rating-error"), "error not linked by aria-describedby");
  eq((await summaryText(page)).count, "2 reviews", "count after a rejected review");
});

b("the list shows the item's average and review count", async (page) => {
  assert(state.id, "no item from the previous step");
  await gotoApp(page, "/");
  const card = page.locator(`.item-card[data-item-id="${state.id}"]`);
  await card.waitFor();
  eq((await card.locator("[data-testid=average]").textContent())?.trim(), "3.5 / 5", "average in the list");
  eq((await card.locator("[data-testid=review-count]").textContent())?.trim(), "2 reviews", "count in the list");
  await card.getByRole("link", { name: state.name }).click();
  await page.waitForURL(`${BASE}/items/${state.id}`);
});

b("reloading a deep link keeps the page", async (page) => {
  assert(state.id, "no item from the previous step");
  await gotoApp(page, `/items/${state.id}`);
  await page.getByRole("heading", { level: 1, name: state.name }).waitFor();
  const res = await page.reload({ waitUntil: "load" });
  eq(res?.status(), 200, "reload status");
  await page.getByRole("heading", { level: 1, name: state.name }).waitFor();
  eq((await summaryText(page)).avg, "3.5 / 5", "average after reload");
});

b("the status page shows readiness per service", async (page) => {
  await gotoApp(page, "/");
  await page.getByRole("link", { name: "Status" }).click();
  await page.waitForURL(`${BASE}/status`);
  await page.locator("[data-testid=overall-status]").waitFor();
  const overall = (await page.locator("[data-testid=overall-status]").textContent()) ?? "";
  assert(/^(OK|DEGRADED|UNAVAILABLE)/.test(overall.trim()), `overall status text: ${overall}`);
  const postgres = page.locator('tr[data-service="postgres"]');
  await postgres.waitFor();
  assert(/up/.test((await postgres.textContent()) ?? ""), "postgres is not shown as up");
  assert((await page.locator("tr[data-service]").count()) >= 2, "fewer than two services listed");
  await page.reload({ waitUntil: "load" });
  await page.locator('tr[data-service="postgres"]').waitFor();
});

b("unknown routes show a not-found page", async (page) => {
  await gotoApp(page, "/no/such/page");
  await page.getByRole("heading", { level: 1, name: "Page not found" }).waitFor();
});

b("every form control has an accessible label; no sideways scrolling on a phone", async (page) => {
  for (const path of ["/items/new", state.id ? `/items/${state.id}` : "/", "/"]) {
    await gotoApp(page, path);
    await page.locator("main h1").first().waitFor();
    // A page still loading after the timeout is a failure, not something to check anyway.
    await page.locator("main .loading").waitFor({ state: "detached" });
    const unlabelled = await page.evaluate(() =>
      Array.from(document.querySelectorAll("input, select, textarea, button"))
        .filter((el) => {
          const hasLabel = (el.labels && el.labels.length > 0) || el.getAttribute("aria-label");
          const text = el.tagName === "BUTTON" && el.textContent.trim();
          return !hasLabel && !text;
        })
        .map((el) => el.outerHTML.slice(0, 80)),
    );
    assert(unlabelled.length === 0, `${path}: unlabelled controls: ${unlabelled.join(", ")}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(overflow <= 1, `${path}: page is ${overflow}px wider than a ${PHONE.width}px phone screen`);
  }
});

// ---------------------------------------------------------------------------------------------
// runner

function slug(s) {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 60);
}

async function main() {
  const selected = opts.grep ? tests.filter((t) => t.name.includes(opts.grep)) : tests;
  if (selected.length === 0) {
    console.error(`--grep ${JSON.stringify(opts.grep)} matches none of the ${tests.length} tests\n${USAGE}`);
    console.log("0 passed, 0 failed");
    process.exitCode = 2;
    return;
  }
  let passed = 0;
  let failed = 0;
  console.log(`drydock e2e against ${BASE} (${selected.length} tests; artifacts: ${ARTIFACTS})`);

  let context = null;
  let userDataDir = null;
  let launchError = null;
  const needBrowser = selected.some((t) => t.browser);
  if (needBrowser) {
    try {
      userDataDir = await mkdtemp(join(tmpdir(), "drydock-e2e-chromium-"));
      context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: opts.chromium,
        headless: true,
        args: CHROMIUM_FLAGS.filter((f) => f !== "--headless"), // playwright adds its own
        viewport: PHONE,
        isMobile: false,
        timeout: 60_000,
      });
      context.setDefaultTimeout(TIMEOUT);
      context.setDefaultNavigationTimeout(TIMEOUT);
    } catch (err) {
      launchError = err;
    }
  }

  for (const [i, t] of selected.entries()) {
    const started = Date.now();
    let page = null;
    const problems = [];
    try {
      if (t.browser) {
        if (launchError) throw new Error(`could not launch ${opts.chromium}: ${launchError.message}`);
        page = await context.newPage();
        page.on("pageerror", (err) => problems.push(`uncaught error in page: ${err.message}`));
        page.on("console", (msg) => {
          if (msg.type() === "error" && /Content Security Policy|Refused to/i.test(msg.text())) {
            problems.push(`CSP violation: ${msg.text()}`);
          }
        });
        await t.fn(page);
        assert(problems.length === 0, problems.join("\n"));
      } else {
        await t.fn();
      }
      passed++;
      console.log(`  ok   ${t.name} (${Date.now() - started} ms)`);
    } catch (err) {
      failed++;
      console.log(`  FAIL ${t.name} (${Date.now() - started} ms)\n       ${String(err.message ?? err).split("\n").join("\n       ")}`);
      if (page) {
        try {
          await mkdir(ARTIFACTS, { recursive: true });
          const base = join(ARTIFACTS, `${String(i + 1).padStart(2, "0")}-${slug(t.name)}`);
          await page.screenshot({ path: `${base}.png`, fullPage: true });
          await writeFile(`${base}.html`, `<!-- ${page.url()} -->\n${await page.content()}`);
          console.log(`       screenshot: ${base}.png`);
        } catch (shotErr) {
          console.log(`       (no screenshot: ${shotErr.message})`);
        }
      }
    } finally {
      await page?.close().catch(() => {});
    }
  }

  await context?.close().catch(() => {});
  if (userDataDir) await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed === 0 ? 0 : 1;
}

main().catch((err) => {
  console.error(err);
  console.log("0 passed, 1 failed");
  process.exitCode = 1;
});
