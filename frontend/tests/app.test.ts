// The whole app in happy-dom with a fake API: routing, rendering, validation display, average refresh.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { startApp } from "../src/app";
import type { Router } from "../src/router";

interface Item {
  id: number;
  name: string;
  description: string;
  created_at: string;
  review_count: number;
  average_rating: number | null;
}

let items: Item[];
let ratings: number[];
let router: Router | null = null;
let calls: string[];

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

function fakeFetch(url: string, init?: RequestInit): Promise<Response> {
  const method = init?.method ?? "GET";
  calls.push(`${method} ${url}`);
  const path = url.split("?")[0];
  if (path === "/api/v1/items" && method === "GET") {
    return Promise.resolve(json(200, { items, page: 1, per_page: 20, total: items.length }));
  }
  let m = /^\/api\/v1\/items\/(\d+)$/.exec(path!);
  if (m) {
    const item = items.find((i) => i.id === Number(m![1]));
    return Promise.resolve(item ? json(200, item) : json(404, { error: { code: "not_found", message: "no such item" } }));
  }
  m = /^\/api\/v1\/items\/(\d+)\/reviews$/.exec(path!);
  if (m && method === "GET") return Promise.resolve(json(200, { reviews: [], page: 1, per_page: 50, total: 0 }));
  if (m && method === "POST") {
    const body = JSON.parse(String(init?.body)) as { author: string; rating: number; body: string };
    if (body.rating < 1 || body.rating > 5) {
      return Promise.resolve(
        json(422, { error: { code: "validation_failed", message: "invalid", fields: { rating: "must be between 1 and 5" } } }),
      );
    }
    ratings.push(body.rating);
    const item = items[0]!;
    item.review_count = ratings.length;
    item.average_rating = ratings.reduce((a, b) => a + b, 0) / ratings.length;
    return Promise.resolve(json(201, { id: ratings.length, item_id: item.id, ...body, created_at: "2026-01-01T00:00:00Z" }));
  }
  if (path === "/health/ready") {
    return Promise.resolve(
      json(503, { status: "unavailable", checks: { postgres: { status: "down", required: true }, redis: { status: "up", latency_ms: 0.4, required: false } } }),
    );
  }
  return Promise.resolve(json(404, { error: { code: "not_found", message: "no route" } }));
}

// Rendering follows promise chains (fetch, response.json()): wait for what a test expects, bounded in time,
// rather than for a fixed number of event-loop turns and hoping the page got there.
const until = <T>(check: () => T): Promise<T> => vi.waitFor(check, { timeout: 2000, interval: 5 });

function element<E extends Element = HTMLElement>(selector: string): Promise<E> {
  return until(() => {
    const el = document.querySelector<E>(selector);
    if (!el) throw new Error(`no ${selector} yet`);
    return el;
  });
}

// Only for checks that something did NOT happen: give pending callbacks a chance to run first.
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setTimeout(r, 0));
}

beforeEach(() => {
  items = [{ id: 1, name: "Anchor", description: "Heavy", created_at: "2026-01-01T00:00:00Z", review_count: 0, average_rating: null }];
  ratings = [];
  calls = [];
  vi.stubGlobal("fetch", vi.fn(fakeFetch));
  document.body.innerHTML = `<nav><a href="/" data-nav="items">Items</a><a href="/status" data-nav="status">Status</a></nav>
    <main id="main" tabindex="-1"></main><div id="announcer"></div>`;
});

afterEach(() => {
  router?.stop();
  router = null;
  vi.unstubAllGlobals();
  window.history.replaceState(null, "", "/");
});

const main = () => document.getElementById("main")!;

describe("app", () => {
  it("lists items with average and review count", async () => {
    items[0]!.review_count = 2;
    items[0]!.average_rating = 3.5;
    router = startApp({ apiBaseUrl: "" });
    const card = await element("#main [data-item-id='1']");
    expect(card.querySelector("a")?.getAttribute("href")).toBe("/items/1");
    expect(card.querySelector("[data-testid=average]")?.textContent).toBe("3.5 / 5");
    expect(card.querySelector("[data-testid=review-count]")?.textContent).toBe("2 reviews");
    expect(document.querySelector("[data-nav=items]")?.getAttribute("aria-current")).toBe("page");
  });

  it("prefixes requests with the configured API base URL", async () => {
    router = startApp({ apiBaseUrl: "https://api.example.com" });
    await until(() => expect(calls.length).toBeGreaterThan(0));
    expect(calls[0]).toMatch(/^GET https:\/\/api\.example\.com\/api\/v1\/items\?/);
  });

  it("shows an API validation error next to the rating, then updates the average", async () => {
    window.history.replaceState(null, "", "/items/1");
    router = startApp({ apiBaseUrl: "" });
    const form = await element<HTMLFormElement>("#main #review-form");
    expect(main().querySelector("h1")?.textContent).toBe("Anchor");
    const input = (name: string) => form.elements.namedItem(name) as HTMLInputElement;

    input("author").value = "Mallory";
    input("rating").value = "7";
    form.dispatchEvent(new Event("submit", { cancelable: true }));
    await until(() =>
      expect(document.getElementById("review-form-rating-error")?.textContent).toBe("must be between 1 and 5"),
    );
    expect(input("rating").getAttribute("aria-invalid")).toBe("true");

    input("author").value = "Ada";
    input("rating").value = "4";
    form.dispatchEvent(new Event("submit", { cancelable: true }));
    // The summary is refreshed last (after the new review is listed).
    await until(() => expect(main().querySelector("#item-summary [data-testid=average]")?.textContent).toBe("4.0 / 5"));
    expect(document.getElementById("review-form-rating-error")?.hidden).toBe(true);
    expect(main().querySelector("#item-summary [data-testid=review-count]")?.textContent).toBe("1 review");
    expect(main().querySelectorAll(".review-list .review")).toHaveLength(1);
  });

  it("rejects a non-numeric rating without calling the API", async () => {
    window.history.replaceState(null, "", "/items/1");
    router = startApp({ apiBaseUrl: "" });
    const form = await element<HTMLFormElement>("#main #review-form");
    (form.elements.namedItem("rating") as HTMLInputElement).value = "";
    const before = calls.length;
    form.dispatchEvent(new Event("submit", { cancelable: true }));
    await settle();
    expect(calls.length).toBe(before);
    expect(document.getElementById("review-form-rating-error")?.textContent).toMatch(/whole number/);
  });

  it("shows a not-found page for an unknown item", async () => {
    window.history.replaceState(null, "", "/items/99");
    router = startApp({ apiBaseUrl: "" });
    await until(() => expect(main().querySelector("h1")?.textContent).toBe("Item not found"));
  });

  it("renders readiness per service, including a 503", async () => {
    window.history.replaceState(null, "", "/status");
    router = startApp({ apiBaseUrl: "" });
    const overall = await element("#main [data-testid=overall-status]");
    expect(overall.textContent).toMatch(/^UNAVAILABLE/);
    expect(main().querySelector("tr[data-service=postgres]")?.textContent).toMatch(/down/);
    expect(main().querySelector("tr[data-service=redis]")?.textContent).toMatch(/up.*0\.4 ms.*no/);
  });

  it("navigates on link clicks without reloading", async () => {
    router = startApp({ apiBaseUrl: "" });
    (await element<HTMLAnchorElement>("#main a[href='/items/1']")).click();
    expect(window.location.pathname).toBe("/items/1");
    await until(() => expect(main().querySelector("h1")?.textContent).toBe("Anchor"));
  });
});
