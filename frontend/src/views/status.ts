import type { Readiness } from "../api";
import type { AppContext } from "../context";
import { h, replaceChildren } from "../dom";
import { errorBox, loading, pageHeading } from "./common";

const OVERALL: Record<string, string> = {
  ok: "all services are up",
  degraded: "the app works; an optional service is down",
  unavailable: "a required service is down",
};

export function renderStatusTable(r: Readiness): HTMLElement {
  const rows = Object.entries(r.checks).sort(([a], [b]) => a.localeCompare(b));
  return h(
    "div",
    {},
    h(
      "p",
      { className: `overall status-${r.status}`, "data-testid": "overall-status" },
      h("strong", {}, r.status.toUpperCase()),
      " — ",
      OVERALL[r.status] ?? `HTTP ${r.httpStatus}`,
    ),
    rows.length
      ? h(
          "table",
          { className: "status-table" },
          h("caption", {}, "Readiness per service"),
          h(
            "thead",
            {},
            h("tr", {}, h("th", { scope: "col" }, "Service"), h("th", { scope: "col" }, "Status"), h("th", { scope: "col" }, "Latency"), h("th", { scope: "col" }, "Required")),
          ),
          h(
            "tbody",
            {},
            rows.map(([name, c]) =>
              h(
                "tr",
                { "data-service": name },
                h("th", { scope: "row" }, name),
                h("td", { className: `check-${c.status}` }, c.status === "up" ? "✔ up" : "✖ down"),
                h("td", {}, typeof c.latency_ms === "number" ? `${c.latency_ms.toFixed(1)} ms` : "—"),
                h("td", {}, c.required === false ? "no" : "yes"),
              ),
            ),
          ),
        )
      : h("p", {}, "No dependency checks reported."),
  );
}

export function renderStatus(root: HTMLElement, ctx: AppContext): void {
  ctx.setTitle("Status");
  const body = h("div", { "aria-live": "polite" }, loading("status"));
  const refresh = h("button", { type: "button" }, "Refresh");
  const updated = h("p", { className: "muted" });
  replaceChildren(
    root,
    h("div", { className: "page-head" }, pageHeading("Service status"), refresh),
    body,
    updated,
  );
  const load = () => {
    refresh.disabled = true;
    ctx.api
      .readiness()
      .then((r) => {
        if (!ctx.isCurrent()) return;
        replaceChildren(body, renderStatusTable(r));
        updated.textContent = `Checked at ${new Date().toLocaleTimeString()}.`;
      })
      .catch((err: unknown) => {
        if (ctx.isCurrent()) replaceChildren(body, errorBox(err, load));
      })
      .finally(() => {
        refresh.disabled = false;
      });
  };
  refresh.addEventListener("click", load);
  load();
}
