import { describe, expect, it, vi } from "vitest";
import { ConfigError, DEFAULT_CONFIG, loadConfig, normaliseBaseUrl } from "../src/config";

describe("normaliseBaseUrl", () => {
  it.each([
    [undefined, ""],
    [null, ""],
    ["", ""],
    ["   ", ""],
    ["/", ""],
    ["/backend/", "/backend"],
    ["https://api.example.com", "https://api.example.com"],
    ["https://api.example.com/", "https://api.example.com"],
    ["http://127.0.0.1:8000/prefix//", "http://127.0.0.1:8000/prefix"],
    ["${API_BASE_URL}", ""],
  ])("%j -> %j", (input, expected) => {
    expect(normaliseBaseUrl(input)).toBe(expected);
  });

  it.each([
    ["ftp://example.com"],
    ["javascript:alert(1)"],
    ["not a url"],
    ["https://u:p@example.com"],
    ["https://example.com/?x=1"],
    ["//evil.example.com"],
  ])("rejects %j", (input) => {
    expect(() => normaliseBaseUrl(input)).toThrow(ConfigError);
  });

  it("rejects non-strings", () => {
    expect(() => normaliseBaseUrl(42)).toThrow(/must be a string/);
  });
});

describe("loadConfig", () => {
  it("reads apiBaseUrl from the global object", () => {
    expect(loadConfig({ apiBaseUrl: "https://api.example.com/" })).toEqual({ apiBaseUrl: "https://api.example.com" });
  });

  it("defaults to same origin when config.js did not load", () => {
    const warn = vi.fn();
    expect(loadConfig(undefined, warn)).toBe(DEFAULT_CONFIG);
    expect(warn).toHaveBeenCalledOnce();
  });

  it("falls back (and warns) on a bad value instead of crashing the app", () => {
    const warn = vi.fn();
    expect(loadConfig({ apiBaseUrl: "ftp://x" }, warn)).toEqual({ apiBaseUrl: "" });
    expect(warn.mock.calls[0]?.[0]).toMatch(/http or https/);
    expect(loadConfig("nope", warn)).toBe(DEFAULT_CONFIG);
  });

  it("treats an unrendered template as same origin", () => {
    const warn = vi.fn();
    expect(loadConfig({ apiBaseUrl: "${API_BASE_URL}" }, warn)).toEqual({ apiBaseUrl: "" });
    expect(warn).not.toHaveBeenCalled();
  });

  it("returns a frozen object", () => {
    expect(Object.isFrozen(loadConfig({ apiBaseUrl: "" }))).toBe(true);
  });

  it("matches what the nginx template renders", async () => {
    // The container renders nginx/templates/config.js.template with envsubst; emulate that here.
    const { readFileSync } = await import("node:fs");
    const { dirname, resolve } = await import("node:path");
    const { fileURLToPath } = await import("node:url");
    const here = dirname(fileURLToPath(import.meta.url));
    const template = readFileSync(resolve(here, "../nginx/templates/config.js.template"), "utf8");
    for (const value of ["", "https://api.example.com"]) {
      const rendered = template.replaceAll("${API_BASE_URL}", value);
      const win: { __DRYDOCK_CONFIG__?: unknown } = {};
      new Function("window", rendered)(win);
      expect(loadConfig(win.__DRYDOCK_CONFIG__)).toEqual({ apiBaseUrl: value });
    }
  });
});
