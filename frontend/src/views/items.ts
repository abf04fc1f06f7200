import type { ItemSort } from "../api";
import type { AppContext } from "../context";
import { formatCount, formatRating, h, replaceChildren, stars } from "../dom";
import { errorBox, loading, pageHeading } from "./common";

const PER_PAGE = 20;
const SORTS: { value: ItemSort; label: string; order: "asc" | "desc" }[] = [
  { value: "created_at", label: "Newest", order: "desc" },
  { value: "rating", label: "Best rated", order: "desc" },
  { value: "reviews", label: "Most reviewed", order: "desc" },
  { value: "name", label: "Name", order: "asc" },
];

export function renderItems(root: HTMLElement, ctx: AppContext, page: number, url: URL): void {
  const sortParam = url.searchParams.get("sort");
  const sort = SORTS.find((s) => s.value === sortParam) ?? SORTS[0]!;
  ctx.setTitle("Items");

  const select = h(
    "select",
    { id: "sort", name: "sort" },
    SORTS.map((s) => h("option", { value: s.value, selected: s.value === sort.value }, s.label)),
  );
  select.addEventListener("change", () => {
    const q = new URLSearchParams();
    if (select.value !== "created_at") q.set("sort", select.value);
    ctx.router.navigate(q.toString() ? `/?${q}` : "/");
  });

  const list = h("div", { className: "items-body" }, loading("items"));
  replaceChildren(
    root,
    h(
      "div",
      { className: "page-head" },
      pageHeading("Items"),
      h("a", { href: "/items/new", className: "button" }, "Add item"),
    ),
    h("div", { className: "toolbar" }, h("label", { for: "sort" }, "Sort by"), select),
    list,
  );

  const load = () => {
    replaceChildren(list, loading("items"));
    ctx.api
      .listItems({ page, per_page: PER_PAGE, sort: sort.value, order: sort.order })
      .then((res) => {
        if (!ctx.isCurrent()) return;
        if (res.items.length === 0) {
          replaceChildren(
            list,
            h(
              "p",
              { className: "empty" },
              page > 1 ? "No items on this page. " : "No items yet. ",
              h("a", { href: "/items/new" }, "Add the first one"),
              ".",
            ),
          );
          return;
        }
        const pages = Math.max(1, Math.ceil(res.total / res.per_page));
        const query = (p: number) => {
          const q = new URLSearchParams();
          if (p > 1) q.set("page", String(p));
          if (sort.value !== "created_at") q.set("sort", sort.value);
          return q.toString() ? `/?${q}` : "/";
        };
        replaceChildren(
          list,
          h(
            "ul",
            { className: "item-list", "aria-label": "Items" },
            res.items.map((item) =>
              h(
                "li",
                { className: "item-card", "data-item-id": item.id },
                h("h2", {}, h("a", { href: `/items/${item.id}` }, item.name)),
                item.description ? h("p", { className: "description" }, item.description) : null,
                h(
                  "p",
                  { className: "item-meta" },
                  stars(item.average_rating),
                  " ",
                  h("span", { className: "average", "data-testid": "average" }, formatRating(item.average_rating)),
                  " · ",
                  h(
                    "span",
                    { className: "review-count", "data-testid": "review-count" },
                    formatCount(item.review_count, "review", "reviews"),
                  ),
                ),
              ),
            ),
          ),
          pages > 1
            ? h(
                "nav",
                { className: "pagination", "aria-label": "Pages" },
                page > 1 ? h("a", { href: query(page - 1), rel: "prev" }, "← Previous") : null,
                h("span", {}, `Page ${page} of ${pages}`),
                page < pages ? h("a", { href: query(page + 1), rel: "next" }, "Next →") : null,
              )
            : null,
        );
      })
      .catch((err: unknown) => {
        if (ctx.isCurrent()) replaceChildren(list, errorBox(err, load));
      });
  };
  load();
}
