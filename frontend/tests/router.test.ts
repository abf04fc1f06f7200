import { afterEach, describe, expect, it, vi } from "vitest";
import { Router, hrefFor, matchRoute, shouldIntercept } from "../src/router";

describe("matchRoute", () => {
  it.each([
    ["/", "", { name: "items", page: 1 }],
    ["/items", "", { name: "items", page: 1 }],
    ["/", "?page=3", { name: "items", page: 3 }],
    ["/", "?page=0", { name: "items", page: 1 }],
    ["/", "?page=abc", { name: "items", page: 1 }],
    ["/items/42", "", { name: "item", id: 42 }],
    ["/items/42/", "", { name: "item", id: 42 }],
    ["/items/new", "", { name: "new-item" }],
    ["/status", "", { name: "status" }],
    ["/items/0", "", { name: "not-found", path: "/items/0" }],
    ["/items/-1", "", { name: "not-found", path: "/items/-1" }],
    ["/items/4.2", "", { name: "not-found", path: "/items/4.2" }],
    ["/items/99999999999999999999", "", { name: "not-found", path: "/items/99999999999999999999" }],
    ["/nope", "", { name: "not-found", path: "/nope" }],
  ])("%s%s", (path, search, expected) => {
    expect(matchRoute(path, search)).toEqual(expected);
  });

  it("round-trips through hrefFor", () => {
    for (const href of ["/", "/?page=2", "/items/5", "/items/new", "/status"]) {
      const [path, search] = href.split("?");
      expect(hrefFor(matchRoute(path!, search ? `?${search}` : ""))).toBe(href);
    }
  });
});

function click(init: MouseEventInit = {}): MouseEvent {
  return new MouseEvent("click", { button: 0, bubbles: true, cancelable: true, ...init });
}

function anchor(href: string, attrs: Record<string, string> = {}): HTMLAnchorElement {
  const a = document.createElement("a");
  a.setAttribute("href", href);
  for (const [k, v] of Object.entries(attrs)) a.setAttribute(k, v);
  document.body.append(a);
  return a;
}

describe("shouldIntercept", () => {
  const origin = window.location.origin;
  afterEach(() => document.body.replaceChildren());

  it("handles plain same-origin app links", () => {
    expect(shouldIntercept(click(), anchor("/items/3"), origin)).toBe(true);
  });
  it.each([
    ["modifier key", click({ ctrlKey: true }), anchor("/items/3")],
    ["middle button", click({ button: 1 }), anchor("/items/3")],
    ["new tab target", click(), anchor("/items/3", { target: "_blank" })],
    ["download", click(), anchor("/items/3", { download: "" })],
    ["other origin", click(), anchor("https://elsewhere.example/items/3")],
    ["hash link", click(), anchor("#main")],
    ["API path", click(), anchor("/api/v1/items")],
    ["health path", click(), anchor("/health/ready")],
  ])("leaves %s to the browser", (_name, event, a) => {
    expect(shouldIntercept(event, a, origin)).toBe(false);
  });
});

describe("Router", () => {
  afterEach(() => {
    document.body.replaceChildren();
    window.history.replaceState(null, "", "/");
  });

  it("dispatches the current route on start, on navigate and on popstate", () => {
    window.history.replaceState(null, "", "/items/9");
    const router = new Router();
    const seen: string[] = [];
    router.start((route) => seen.push(route.name === "item" ? `item:${route.id}` : route.name));
    expect(seen).toEqual(["item:9"]);

    router.navigate("/status");
    expect(window.location.pathname).toBe("/status");
    expect(seen.at(-1)).toBe("status");

    window.history.replaceState(null, "", "/items/new");
    window.dispatchEvent(new PopStateEvent("popstate"));
    expect(seen.at(-1)).toBe("new-item");
    router.stop();
  });

  it("intercepts link clicks without a page load", () => {
    const router = new Router();
    const handler = vi.fn();
    router.start(handler);
    const a = anchor("/items/12");
    const event = click();
    a.dispatchEvent(event);
    expect(event.defaultPrevented).toBe(true);
    expect(window.location.pathname).toBe("/items/12");
    expect(handler).toHaveBeenLastCalledWith({ name: "item", id: 12 }, expect.any(URL));
    router.stop();
  });

  it("replace does not add a history entry", () => {
    const router = new Router();
    router.start(() => {});
    const before = window.history.length;
    router.navigate("/status", { replace: true });
    expect(window.history.length).toBe(before);
    router.stop();
  });
});
