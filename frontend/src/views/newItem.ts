import type { AppContext } from "../context";
import { h, replaceChildren } from "../dom";
import { clearErrors, field, showFieldErrors, showSubmitError } from "../forms";
import { pageHeading } from "./common";

export function renderNewItem(root: HTMLElement, ctx: AppContext): void {
  ctx.setTitle("Add item");
  const form = h("form", { id: "item-form", className: "card-form", novalidate: true });
  const name = h("input", { type: "text", autocomplete: "off", required: true, maxlength: 200 });
  const description = h("textarea", { rows: 4, maxlength: 5000 });
  const submit = h("button", { type: "submit" }, "Create item");
  form.append(
    h("p", { className: "form-error", role: "alert", hidden: true }),
    field(form, { name: "name", label: "Name", control: name }),
    field(form, { name: "description", label: "Description", control: description, hint: "Optional." }),
    h("div", { className: "actions" }, submit),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!name.value.trim()) {
      showFieldErrors(form, { name: "Please enter a name." });
      return;
    }
    submit.disabled = true;
    ctx.api
      .createItem({ name: name.value.trim(), description: description.value.trim() })
      .then((item) => {
        ctx.announce(`Item “${item.name}” created`);
        ctx.router.navigate(`/items/${item.id}`);
      })
      .catch((err: unknown) => {
        if (ctx.isCurrent()) showSubmitError(form, err);
      })
      .finally(() => {
        submit.disabled = false;
      });
  });
  replaceChildren(root, pageHeading("Add item"), form);
}
