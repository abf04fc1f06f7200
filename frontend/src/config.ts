// Runtime configuration: read from `window.__DRYDOCK_CONFIG__`, which /config.js sets.
// In the container /config.js is rendered at start-up from the API_BASE_URL environment
// variable, so the same image serves every environment (Vite's import.meta.env would be
// frozen at build time).

export interface AppConfig {
  /** Prefix for API and health requests. "" = same origin (the edge proxy routes /api and /health). */
  readonly apiBaseUrl: string;
}

export const DEFAULT_CONFIG: AppConfig = Object.freeze({ apiBaseUrl: "" });

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Validates and normalises a base URL: "", an absolute path ("/backend") or an http(s) URL. */
export function normaliseBaseUrl(value: unknown): string {
  if (value === undefined || value === null) return "";
  if (typeof value !== "string") {
    throw new ConfigError(`apiBaseUrl must be a string, got ${typeof value}`);
  }
  const trimmed = value.trim();
  // An unrendered template means the entrypoint did not run: fall back to same origin.
  if (trimmed === "" || trimmed.includes("${")) return "";
  if (trimmed.startsWith("/") && !trimmed.startsWith("//")) {
    return trimmed.replace(/\/+$/, "");
  }
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    throw new ConfigError(`apiBaseUrl "${trimmed}" is neither an absolute path nor a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(`apiBaseUrl "${trimmed}" must use http or https`);
  }
  if (url.search || url.hash || url.username || url.password) {
    throw new ConfigError(`apiBaseUrl "${trimmed}" must not carry a query, fragment or credentials`);
  }
  return `${url.origin}${url.pathname}`.replace(/\/+$/, "");
}

/** Builds the app config from the raw global; never throws (a bad value is reported and ignored). */
export function loadConfig(
  raw: unknown,
  warn: (message: string) => void = (m) => console.warn(m),
): AppConfig {
  if (raw === undefined || raw === null) {
    warn("drydock: /config.js did not set window.__DRYDOCK_CONFIG__; using same-origin API");
    return DEFAULT_CONFIG;
  }
  if (typeof raw !== "object") {
    warn("drydock: window.__DRYDOCK_CONFIG__ is not an object; using same-origin API");
    return DEFAULT_CONFIG;
  }
  try {
    const apiBaseUrl = normaliseBaseUrl((raw as Record<string, unknown>).apiBaseUrl);
    return Object.freeze({ apiBaseUrl });
  } catch (err) {
    warn(`drydock: ${(err as Error).message}; using same-origin API`);
    return DEFAULT_CONFIG;
  }
}

declare global {
  interface Window {
    __DRYDOCK_CONFIG__?: unknown;
  }
}
