// Typed client for the drydock HTTP API (see .notes/contract.md).

export interface Item {
  id: number;
  name: string;
  description: string;
  created_at: string;
  review_count: number;
  average_rating: number | null;
}

export interface Review {
  id: number;
  item_id: number;
  author: string;
  rating: number;
  body: string;
  created_at: string;
}

export interface Page {
  page: number;
  per_page: number;
  total: number;
}
export interface ItemPage extends Page {
  items: Item[];
}
export interface ReviewPage extends Page {
  reviews: Review[];
}

export type ItemSort = "created_at" | "name" | "rating" | "reviews";
export type SortOrder = "asc" | "desc";

export interface ListItemsParams {
  page?: number;
  per_page?: number;
  sort?: ItemSort;
  order?: SortOrder;
}

export interface NewItem {
  name: string;
  description: string;
}
export interface NewReview {
  author: string;
  rating: number;
  body: string;
}

export interface DependencyCheck {
  status: "up" | "down";
  latency_ms?: number | null;
  required?: boolean;
  [extra: string]: unknown;
}
export interface Readiness {
  /** HTTP status: 200 (ok/degraded) or 503 (unavailable). */
  httpStatus: number;
  status: "ok" | "degraded" | "unavailable" | string;
  checks: Record<string, DependencyCheck>;
}

export type FieldErrors = Record<string, string>;

/** An error answer from the API, or a transport failure (status 0, code "network_error"/"timeout"). */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: FieldErrors = {},
    /** Seconds, from Retry-After on 429. */
    readonly retryAfter: number | null = null,
  ) {
    super(message);
  }
  get isValidation(): boolean {
    return this.code === "validation_failed";
  }
}

type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface ApiClientOptions {
  baseUrl: string;
  fetch?: FetchLike;
  timeoutMs?: number;
}

const FALLBACK_MESSAGES: Record<number, string> = {
  400: "The request was not accepted.",
  404: "Not found.",
  413: "That is too large.",
  429: "Too many requests; please wait a moment.",
  502: "The API is not reachable right now.",
  503: "The service is temporarily unavailable.",
  504: "The API took too long to answer.",
};

function parseRetryAfter(value: string | null): number | null {
  if (!value) return null;
  const secs = Number(value);
  if (Number.isFinite(secs) && secs >= 0) return secs;
  const date = Date.parse(value);
  if (!Number.isNaN(date)) return Math.max(0, Math.ceil((date - Date.now()) / 1000));
  return null;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Turns an error response into an ApiError, tolerating non-JSON bodies (e.g. a proxy's HTML 502). */
export async function errorFromResponse(res: Response): Promise<ApiError> {
  const retryAfter = parseRetryAfter(res.headers.get("retry-after"));
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  const fallback = FALLBACK_MESSAGES[res.status] ?? `Unexpected response (HTTP ${res.status}).`;
  if (isRecord(body) && isRecord(body.error)) {
    const e = body.error;
    const fields: FieldErrors = {};
    if (isRecord(e.fields)) {
      for (const [k, v] of Object.entries(e.fields)) {
        if (typeof v === "string") fields[k] = v;
        else if (Array.isArray(v)) fields[k] = v.map(String).join("; ");
        else if (v !== null && v !== undefined) fields[k] = String(v);
      }
    }
    return new ApiError(
      res.status,
      typeof e.code === "string" ? e.code : `http_${res.status}`,
      typeof e.message === "string" && e.message ? e.message : fallback,
      fields,
      retryAfter,
    );
  }
  return new ApiError(res.status, `http_${res.status}`, fallback, {}, retryAfter);
}

export function buildQuery(params: object): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

export interface ApiClient {
  listItems(params?: ListItemsParams): Promise<ItemPage>;
  getItem(id: number): Promise<Item>;
  createItem(input: NewItem): Promise<Item>;
  listReviews(itemId: number, params?: { page?: number; per_page?: number }): Promise<ReviewPage>;
  createReview(itemId: number, input: NewReview): Promise<Review>;
  readiness(): Promise<Readiness>;
}

export function createApiClient(options: ApiClientOptions): ApiClient {
  const base = options.baseUrl.replace(/\/+$/, "");
  const doFetch: FetchLike = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const timeoutMs = options.timeoutMs ?? 10_000;

  async function send(method: string, path: string, body?: unknown): Promise<Response> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    const headers: Record<string, string> = { Accept: "application/json" };
    const init: RequestInit = { method, headers, signal: controller.signal };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    try {
      return await doFetch(`${base}${path}`, init);
    } catch (err) {
      if (controller.signal.aborted) {
        throw new ApiError(0, "timeout", "The API did not answer in time.");
      }
      throw new ApiError(0, "network_error", `Could not reach the API (${(err as Error).message}).`);
    } finally {
      clearTimeout(timer);
    }
  }

  async function json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await send(method, path, body);
    if (!res.ok) throw await errorFromResponse(res);
    try {
      return (await res.json()) as T;
    } catch {
      throw new ApiError(res.status, "bad_response", "The API sent a response that is not JSON.");
    }
  }

  return {
    listItems: (params = {}) => json<ItemPage>("GET", `/api/v1/items${buildQuery(params)}`),
    getItem: (id) => json<Item>("GET", `/api/v1/items/${encodeURIComponent(id)}`),
    createItem: (input) => json<Item>("POST", "/api/v1/items", input),
    listReviews: (itemId, params = {}) =>
      json<ReviewPage>("GET", `/api/v1/items/${encodeURIComponent(itemId)}/reviews${buildQuery(params)}`),
    createReview: (itemId, input) =>
      json<Review>("POST", `/api/v1/items/${encodeURIComponent(itemId)}/reviews`, input),
    async readiness() {
      const res = await send("GET", "/health/ready");
      let body: unknown = null;
      try {
        body = await res.json();
      } catch {
        body = null;
      }
      // 503 is a meaningful answer here ("unavailable" with per-check detail), not a failure.
      if (isRecord(body) && typeof body.status === "string") {
        const checks = isRecord(body.checks) ? (body.checks as Record<string, DependencyCheck>) : {};
        return { httpStatus: res.status, status: body.status, checks };
      }
      throw await errorFromResponse(
        new Response(null, { status: res.ok ? 502 : res.status, headers: res.headers }),
      );
    },
  };
}
