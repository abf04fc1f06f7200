import { ApiError } from "../api";
import { h } from "../dom";

export function pageHeading(text: string): HTMLHeadingElement {
  return h("h1", { tabindex: "-1" }, text);
}

export function loading(what: string): HTMLElement {
  return h("p", { className: "loading", role: "status" }, `Loading ${what}…`);
}

export function errorBox(err: unknown, retry?: () => void): HTMLElement {
  const message =
    err instanceof ApiError ? err.message : "Something went wrong while talking to the API.";
  return h(
    "div",
    { className: "notice notice-error", role: "alert" },
    h("p", {}, message),
    retry ? h("button", { type: "button", onclick: () => retry() }, "Try again") : null,
  );
}
