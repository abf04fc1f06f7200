import { ApiError, type Item, type Review } from "../api";
import type { AppContext } from "../context";
import { formatCount, formatDate, formatRating, h, replaceChildren, stars } from "../dom";
import { clearErrors, field, showFieldErrors, showSubmitError } from "../forms";
import { errorBox, loading, pageHeading } from "./common";

const REVIEWS_PER_PAGE = 50;

function summary(item: Item): HTMLElement {
  return h(
    "p",
    { className: "item-summary", id: "item-summary" },
    stars(item.average_rating),
    " ",
    h("span", { className: "average", "data-testid": "average" }, formatRating(item.average_rating)),
    " · ",
    h("span", { className: "review-count", "data-testid": "review-count" }, formatCount(item.review_count, "review", "reviews")),
  );
}

function reviewEl(r: Review): HTMLElement {
  return h(
    "li",
    { className: "review", "data-review-id": r.id },
    h(
      "p",
      { className: "review-head" },
      h("span", { className: "visually-hidden" }, `Rated ${r.rating} out of 5`),
      h("span", { className: "stars", "aria-hidden": "true" }, "★".repeat(r.rating) + "☆".repeat(Math.max(0, 5 - r.rating))),
      " ",
      h("strong", {}, r.author),
      " ",
      h("time", { datetime: r.created_at }, formatDate(r.created_at)),
    ),
    r.body ? h("p", { className: "review-body" }, r.body) : null,
  );
}

export function renderItem(root: HTMLElement, ctx: AppContext, id: number): void {
  ctx.setTitle("Item");
  replaceChildren(root, loading("item"));

  const load = () => {
    Promise.all([ctx.api.getItem(id), ctx.api.listReviews(id, { page: 1, per_page: REVIEWS_PER_PAGE })])
      .then(([item, reviews]) => {
        if (ctx.isCurrent()) show(item, reviews.reviews, reviews.total);
      })
      .catch((err: unknown) => {
        if (!ctx.isCurrent()) return;
        if (err instanceof ApiError && err.status === 404) {
          ctx.setTitle("Item not found");
          replaceChildren(
            root,
            pageHeading("Item not found"),
            h("p", {}, `There is no item ${id}. `, h("a", { href: "/" }, "Back to all items"), "."),
          );
        } else {
          replaceChildren(root, pageHeading("Item"), errorBox(err, load));
        }
      });
  };

  const show = (item: Item, reviews: Review[], total: number) => {
    ctx.setTitle(item.name);
    const summarySlot = h("div", {}, summary(item));
    const list = h("ol", { className: "review-list", "aria-label": "Reviews" }, reviews.map(reviewEl));
    const emptyNote = h("p", { className: "empty", hidden: reviews.length > 0 }, "No reviews yet. Be the first!");
    const more =
      total > reviews.length ? h("p", { className: "muted" }, `Showing the latest ${reviews.length} of ${total} reviews.`) : null;

    const form = h("form", { id: "review-form", className: "card-form", novalidate: true });
    const author = h("input", { type: "text", autocomplete: "name", required: true, maxlength: 100 });
    const rating = h("input", { type: "number", inputmode: "numeric", min: 1, max: 5, step: 1, required: true });
    const body = h("textarea", { rows: 4, maxlength: 5000 });
    const submit = h("button", { type: "submit" }, "Add review");
    form.append(
      h("p", { className: "form-error", role: "alert", hidden: true }),
      field(form, { name: "author", label: "Your name", control: author }),
      field(form, { name: "rating", label: "Rating (1–5)", control: rating }),
      field(form, { name: "body", label: "Review", control: body }),
      h("div", { className: "actions" }, submit),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      clearErrors(form);
      const raw = rating.value.trim();
      // Only what the browser cannot send is checked here; the API owns the rules (range, lengths).
      if (!/^-?\d+$/.test(raw)) {
        showFieldErrors(form, { rating: "Please enter a whole number from 1 to 5." });
        return;
      }
      submit.disabled = true;
      ctx.api
        .createReview(item.id, { author: author.value.trim(), rating: Number(raw), body: body.value.trim() })
        .then(async (review) => {
          if (!ctx.isCurrent()) return;
          list.prepend(reviewEl(review));
          emptyNote.hidden = true;
          form.reset();
          // Fresh aggregate from the API (average and count are computed server-side).
          const fresh = await ctx.api.getItem(item.id).catch(() => null);
          if (fresh && ctx.isCurrent()) replaceChildren(summarySlot, summary(fresh));
          ctx.announce(
            fresh ? `Review added. Average rating now ${formatRating(fresh.average_rating)}.` : "Review added.",
          );
        })
        .catch((err: unknown) => {
          if (ctx.isCurrent()) showSubmitError(form, err);
        })
        .finally(() => {
          submit.disabled = false;
        });
    });

    replaceChildren(
      root,
      h("p", { className: "breadcrumb" }, h("a", { href: "/" }, "← All items")),
      pageHeading(item.name),
      item.description ? h("p", { className: "description" }, item.description) : null,
      summarySlot,
      h(
        "section",
        { "aria-labelledby": "add-review-heading" },
        h("h2", { id: "add-review-heading" }, "Add a review"),
        form,
      ),
      h("section", { "aria-labelledby": "reviews-heading" }, h("h2", { id: "reviews-heading" }, "Reviews"), emptyNote, list, more),
    );
  };

  load();
}
