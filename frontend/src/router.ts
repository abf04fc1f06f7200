// Client-side routing on the History API. Deep links (/items/42) work on reload because
// nginx falls back to index.html for app routes.

export type Route =
  | { name: "items"; page: number }
  | { name: "item"; id: number }
  | { name: "new-item" }
  | { name: "status" }
  | { name: "not-found"; path: string };

function positiveInt(s: string | null | undefined): number | null {
  if (!s || !/^[1-9][0-9]{0,15}$/.test(s)) return null;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : null;
}

/** Maps a path (and query string) to a route. Trailing slashes are ignored. */
export function matchRoute(pathname: string, search = ""): Route {
  const path = pathname.length > 1 ? pathname.replace(/\/+$/, "") : pathname;
  if (path === "/" || path === "" || path === "/items") {
    const page = positiveInt(new URLSearchParams(search).get("page")) ?? 1;
    return { name: "items", page };
  }
  if (path === "/items/new") return { name: "new-item" };
  if (path === "/status") return { name: "status" };
  const m = /^\/items\/([^/]+)$/.exec(path);
  if (m) {
    const id = positiveInt(m[1]);
    if (id !== null) return { name: "item", id };
  }
  return { name: "not-found", path: pathname };
}

export function hrefFor(route: Route): string {
  switch (route.name) {
    case "items":
      return route.page > 1 ? `/?page=${route.page}` : "/";
    case "item":
      return `/items/${route.id}`;
    case "new-item":
      return "/items/new";
    case "status":
      return "/status";
    case "not-found":
      return route.path;
  }
}

/** Whether a click on this anchor should be handled by the router instead of the browser. */
export function shouldIntercept(event: MouseEvent, anchor: HTMLAnchorElement, origin: string): boolean {
  if (event.defaultPrevented || event.button !== 0) return false;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return false;
  if (anchor.target && anchor.target !== "_self") return false;
  if (anchor.hasAttribute("download") || anchor.getAttribute("rel")?.includes("external")) return false;
  const href = anchor.getAttribute("href");
  if (!href || href.startsWith("#")) return false;
  let url: URL;
  try {
    url = new URL(anchor.href, origin);
  } catch {
    return false;
  }
  if (url.origin !== origin) return false;
  // Paths served by nginx or the API, never by the app.
  if (/^\/(api|health|assets)(\/|$)/.test(url.pathname) || url.pathname === "/config.js") return false;
  return true;
}

export type RouteHandler = (route: Route, url: URL) => void;

export class Router {
  private handler: RouteHandler | null = null;
  private readonly onPop = () => this.dispatch();
  private readonly onClick = (event: MouseEvent) => {
    const target = event.target as Element | null;
    const anchor = target?.closest?.("a");
    if (!anchor || !(anchor instanceof this.win.HTMLAnchorElement)) return;
    if (!shouldIntercept(event, anchor, this.win.location.origin)) return;
    event.preventDefault();
    const url = new URL(anchor.href, this.win.location.origin);
    this.navigate(url.pathname + url.search + url.hash);
  };

  constructor(private readonly win: Window & typeof globalThis = window) {}

  start(handler: RouteHandler): void {
    this.handler = handler;
    this.win.addEventListener("popstate", this.onPop);
    this.win.document.addEventListener("click", this.onClick);
    this.dispatch();
  }

  stop(): void {
    this.win.removeEventListener("popstate", this.onPop);
    this.win.document.removeEventListener("click", this.onClick);
    this.handler = null;
  }

  navigate(path: string, opts: { replace?: boolean } = {}): void {
    const current = this.win.location.pathname + this.win.location.search + this.win.location.hash;
    if (opts.replace) this.win.history.replaceState(null, "", path);
    else if (path !== current) this.win.history.pushState(null, "", path);
    this.dispatch();
  }

  current(): Route {
    return matchRoute(this.win.location.pathname, this.win.location.search);
  }

  private dispatch(): void {
    this.handler?.(this.current(), new URL(this.win.location.href));
  }
}
