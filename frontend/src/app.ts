import { createApiClient } from "./api";
import type { AppConfig } from "./config";
import type { AppContext } from "./context";
import { h, replaceChildren } from "./dom";
import { Router, type Route } from "./router";
import { pageHeading } from "./views/common";
import { renderItem } from "./views/item";
import { renderItems } from "./views/items";
import { renderNewItem } from "./views/newItem";
import { renderStatus } from "./views/status";

const NAV_FOR: Partial<Record<Route["name"], string>> = {
  items: "items",
  item: "items",
  "new-item": "new-item",
  status: "status",
};

export function startApp(config: AppConfig, doc: Document = document): Router {
  const main = doc.getElementById("main") as HTMLElement;
  const announcer = doc.getElementById("announcer");
  const api = createApiClient({ baseUrl: config.apiBaseUrl });
  const router = new Router();
  let renderId = 0;
  let first = true;

  router.start((route, url) => {
    const id = ++renderId;
    const focusHeading = !first;
    first = false;
    const ctx: AppContext = {
      api,
      router,
      announce(message) {
        if (!announcer) return;
        announcer.textContent = "";
        setTimeout(() => (announcer.textContent = message), 50);
      },
      setTitle(title) {
        doc.title = `${title} · drydock reviews`;
      },
      isCurrent: () => id === renderId,
    };
    for (const link of Array.from(doc.querySelectorAll<HTMLAnchorElement>("[data-nav]"))) {
      if (link.dataset.nav === NAV_FOR[route.name]) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    switch (route.name) {
      case "items":
        renderItems(main, ctx, route.page, url);
        break;
      case "item":
        renderItem(main, ctx, route.id);
        break;
      case "new-item":
        renderNewItem(main, ctx);
        break;
      case "status":
        renderStatus(main, ctx);
        break;
      case "not-found":
        ctx.setTitle("Page not found");
        replaceChildren(
          main,
          pageHeading("Page not found"),
          h("p", {}, "Nothing lives at this address. ", h("a", { href: "/" }, "See all items"), "."),
        );
        break;
    }
    // After client-side navigation move focus to the new content (screen readers, keyboard).
    if (focusHeading) {
      const heading = main.querySelector<HTMLElement>("h1") ?? main;
      heading.focus({ preventScroll: false });
    }
  });
  return router;
}
