import type { ApiClient } from "./api";
import type { Router } from "./router";

export interface AppContext {
  api: ApiClient;
  router: Router;
  /** Polite screen-reader announcement (e.g. "Review added"). */
  announce(message: string): void;
  /** Sets document.title and moves focus to the page heading. */
  setTitle(title: string): void;
  /** True while this render is still the current one (ignore late answers after navigation). */
  isCurrent(): boolean;
}
