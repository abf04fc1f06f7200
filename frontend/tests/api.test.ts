import { describe, expect, it, vi } from "vitest";
import { ApiError, buildQuery, createApiClient, errorFromResponse } from "../src/api";

function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

const item = {
  id: 7,
  name: "Anchor",
  description: "Heavy",
  created_at: "2026-01-01T00:00:00Z",
  review_count: 2,
  average_rating: 4.5,
};

describe("buildQuery", () => {
  it("skips empty values", () => {
    expect(buildQuery({ page: 2, sort: "rating", order: undefined, x: "" })).toBe("?page=2&sort=rating");
    expect(buildQuery({})).toBe("");
  });
});

describe("createApiClient", () => {
  it("lists items with query parameters under the base URL", async () => {
    const fetch = vi.fn().mockResolvedValue(jsonResponse(200, { items: [item], page: 1, per_page: 20, total: 1 }));
    const api = createApiClient({ baseUrl: "https://api.example.com/", fetch });
    const res = await api.listItems({ page: 1, per_page: 20, sort: "rating", order: "desc" });
    expect(res.items[0]?.name).toBe("Anchor");
    expect(fetch).toHaveBeenCalledWith(
      "https://api.example.com/api/v1/items?page=1&per_page=20&sort=rating&order=desc",
      expect.objectContaining({ method: "GET" }),
    );
  });

  it("uses same-origin relative paths with an empty base", async () => {
    const fetch = vi.fn().mockResolvedValue(jsonResponse(200, item));
    await createApiClient({ baseUrl: "", fetch }).getItem(7);
    expect(fetch.mock.calls[0]?.[0]).toBe("/api/v1/items/7");
  });

  it("posts JSON for a new review", async () => {
    const review = { id: 1, item_id: 7, author: "A", rating: 5, body: "ok", created_at: "2026-01-01T00:00:00Z" };
    const fetch = vi.fn().mockResolvedValue(jsonResponse(201, review));
    const api = createApiClient({ baseUrl: "", fetch });
    await expect(api.createReview(7, { author: "A", rating: 5, body: "ok" })).resolves.toEqual(review);
    const [url, init] = fetch.mock.calls[0] as [string, RequestInit];
    expect(url).toBe("/api/v1/items/7/reviews");
    expect(init.method).toBe("POST");
    expect((init.headers as Record<string, string>)["Content-Type"]).toBe("application/json");
    expect(JSON.parse(init.body as string)).toEqual({ author: "A", rating: 5, body: "ok" });
  });

  it("turns a validation error into an ApiError with fields", async () => {
    const fetch = vi.fn().mockResolvedValue(
      jsonResponse(422, {
        error: { code: "validation_failed", message: "invalid input", fields: { rating: "must be between 1 and 5" } },
      }),
    );
    const err = await createApiClient({ baseUrl: "", fetch })
      .createReview(7, { author: "A", rating: 9, body: "" })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    const e = err as ApiError;
    expect(e.status).toBe(422);
    expect(e.isValidation).toBe(true);
    expect(e.fields).toEqual({ rating: "must be between 1 and 5" });
    expect(e.message).toBe("invalid input");
  });

  it("keeps Retry-After on 429", async () => {
    const fetch = vi
      .fn()
      .mockResolvedValue(jsonResponse(429, { error: { code: "rate_limited", message: "slow down" } }, { "Retry-After": "3" }));
    const e = (await createApiClient({ baseUrl: "", fetch }).listItems().catch((x: unknown) => x)) as ApiError;
    expect(e.code).toBe("rate_limited");
    expect(e.retryAfter).toBe(3);
  });

  it("copes with a non-JSON error page from a proxy", async () => {
    const fetch = vi.fn().mockResolvedValue(new Response("<html>502 Bad Gateway</html>", { status: 502 }));
    const e = (await createApiClient({ baseUrl: "", fetch }).getItem(1).catch((x: unknown) => x)) as ApiError;
    expect(e).toBeInstanceOf(ApiError);
    expect(e.code).toBe("http_502");
    expect(e.message).toMatch(/not reachable/);
  });

  it("maps a transport failure to network_error", async () => {
    const fetch = vi.fn().mockRejectedValue(new TypeError("Failed to fetch"));
    const e = (await createApiClient({ baseUrl: "", fetch }).getItem(1).catch((x: unknown) => x)) as ApiError;
    expect(e.status).toBe(0);
    expect(e.code).toBe("network_error");
  });

  it("times out slow requests", async () => {
    const fetch = vi.fn(
      (_url: string, init?: RequestInit) =>
        new Promise<Response>((_resolve, reject) => {
          init?.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
        }),
    );
    const e = (await createApiClient({ baseUrl: "", fetch, timeoutMs: 10 }).getItem(1).catch((x: unknown) => x)) as ApiError;
    expect(e.code).toBe("timeout");
  });

  it("returns readiness for 200 and for 503", async () => {
    const ok = { status: "degraded", checks: { postgres: { status: "up", latency_ms: 1.2, required: true }, redis: { status: "down", required: false } } };
    const down = { status: "unavailable", checks: { postgres: { status: "down", required: true } } };
    const fetch = vi.fn().mockResolvedValueOnce(jsonResponse(200, ok)).mockResolvedValueOnce(jsonResponse(503, down));
    const api = createApiClient({ baseUrl: "", fetch });
    await expect(api.readiness()).resolves.toEqual({ httpStatus: 200, ...ok });
    await expect(api.readiness()).resolves.toEqual({ httpStatus: 503, ...down });
    expect(fetch.mock.calls[0]?.[0]).toBe("/health/ready");
  });

  it("fails readiness when the answer is not a readiness document", async () => {
    const fetch = vi.fn().mockResolvedValue(new Response("gateway timeout", { status: 504 }));
    await expect(createApiClient({ baseUrl: "", fetch }).readiness()).rejects.toMatchObject({ status: 504 });
  });
});

describe("errorFromResponse", () => {
  it("joins array-valued field errors", async () => {
    const e = await errorFromResponse(
      jsonResponse(422, { error: { code: "validation_failed", message: "bad", fields: { name: ["too short", "bad chars"] } } }),
    );
    expect(e.fields).toEqual({ name: "too short; bad chars" });
  });
});
