import { beforeEach, describe, expect, it } from "vitest";
import { ApiError } from "../src/api";
import { clearErrors, field, showFieldErrors, showSubmitError } from "../src/forms";

let form: HTMLFormElement;

beforeEach(() => {
  document.body.replaceChildren();
  form = document.createElement("form");
  form.id = "review-form";
  const summary = document.createElement("p");
  summary.className = "form-error";
  summary.hidden = true;
  form.append(
    summary,
    field(form, { name: "author", label: "Your name", control: document.createElement("input") }),
    field(form, { name: "rating", label: "Rating", control: document.createElement("input"), hint: "1 to 5" }),
  );
  document.body.append(form);
});

const slot = (name: string) => document.getElementById(`review-form-${name}-error`)!;
const control = (name: string) => form.elements.namedItem(name) as HTMLInputElement;
const summary = () => form.querySelector<HTMLElement>(".form-error")!;

describe("field", () => {
  it("labels the control and links hint and error slot", () => {
    const label = form.querySelector<HTMLLabelElement>("label[for='review-form-rating']");
    expect(label?.textContent).toBe("Rating");
    expect(control("rating").id).toBe("review-form-rating");
    expect(control("rating").getAttribute("aria-describedby")).toBe("review-form-rating-hint review-form-rating-error");
    expect(slot("rating").hidden).toBe(true);
  });
});

describe("showFieldErrors", () => {
  it("puts each message next to its field, marks it invalid and focuses the first", () => {
    const shown = showFieldErrors(form, { rating: "must be between 1 and 5" });
    expect(shown).toEqual(["rating"]);
    expect(slot("rating").textContent).toBe("must be between 1 and 5");
    expect(slot("rating").hidden).toBe(false);
    expect(control("rating").getAttribute("aria-invalid")).toBe("true");
    expect(control("author").hasAttribute("aria-invalid")).toBe(false);
    expect(document.activeElement).toBe(control("rating"));
  });

  it("sends errors for unknown fields to the summary", () => {
    showFieldErrors(form, { item_id: "does not exist" });
    expect(summary().hidden).toBe(false);
    expect(summary().textContent).toContain("item_id: does not exist");
  });

  it("clears previous errors", () => {
    showFieldErrors(form, { rating: "bad", author: "missing" });
    showFieldErrors(form, { author: "still missing" });
    expect(slot("rating").hidden).toBe(true);
    expect(control("rating").hasAttribute("aria-invalid")).toBe(false);
    expect(slot("author").textContent).toBe("still missing");
    clearErrors(form);
    expect(slot("author").hidden).toBe(true);
  });
});

describe("showSubmitError", () => {
  it("shows API validation errors next to the fields", () => {
    showSubmitError(form, new ApiError(422, "validation_failed", "invalid", { rating: "must be between 1 and 5" }));
    expect(slot("rating").textContent).toBe("must be between 1 and 5");
    expect(summary().textContent).toMatch(/correct the highlighted/);
  });

  it("shows other API errors (with Retry-After) in the summary", () => {
    showSubmitError(form, new ApiError(429, "rate_limited", "Too many requests.", {}, 5));
    expect(summary().textContent).toBe("Too many requests. Try again in 5 s.");
    expect(slot("rating").hidden).toBe(true);
  });

  it("has a generic message for unexpected errors", () => {
    showSubmitError(form, new Error("boom"));
    expect(summary().textContent).toMatch(/Something went wrong/);
  });
});
