// Shows validation errors next to the fields they belong to, accessibly:
// each field has an error slot (<p id="{form}-{field}-error">) referenced by aria-describedby,
// and gets aria-invalid="true" while it has an error. Errors for fields the form does not have
// go into the form's summary (role="alert").

import { ApiError, type FieldErrors } from "./api";

export function errorSlotId(form: HTMLFormElement, field: string): string {
  return `${form.id}-${field}-error`;
}

export function clearErrors(form: HTMLFormElement): void {
  for (const el of Array.from(form.querySelectorAll<HTMLElement>("[aria-invalid='true']"))) {
    el.removeAttribute("aria-invalid");
  }
  for (const slot of Array.from(form.querySelectorAll<HTMLElement>(".field-error"))) {
    slot.textContent = "";
    slot.hidden = true;
  }
  const summary = form.querySelector<HTMLElement>(".form-error");
  if (summary) {
    summary.textContent = "";
    summary.hidden = true;
  }
}

/**
 * Displays field errors; returns the names of fields that were shown next to a control.
 * Focuses the first invalid control so keyboard and screen-reader users land on it.
 */
export function showFieldErrors(form: HTMLFormElement, fields: FieldErrors, summaryText?: string): string[] {
  clearErrors(form);
  const shown: string[] = [];
  const orphans: string[] = [];
  for (const [field, message] of Object.entries(fields)) {
    const control = form.elements.namedItem(field);
    const slot = form.querySelector<HTMLElement>(`#${CSS.escape(errorSlotId(form, field))}`);
    if (control instanceof HTMLElement && slot) {
      control.setAttribute("aria-invalid", "true");
      slot.textContent = message;
      slot.hidden = false;
      shown.push(field);
    } else {
      orphans.push(`${field}: ${message}`);
    }
  }
  const summaryParts = [summaryText, ...orphans].filter(Boolean) as string[];
  if (summaryParts.length) showFormError(form, summaryParts.join(" "));
  const first = shown[0];
  if (first !== undefined) {
    const control = form.elements.namedItem(first);
    if (control instanceof HTMLElement) control.focus();
  }
  return shown;
}

export function showFormError(form: HTMLFormElement, message: string): void {
  const summary = form.querySelector<HTMLElement>(".form-error");
  if (summary) {
    summary.textContent = message;
    summary.hidden = false;
  }
}

/** Routes any error from a submit to the right place in the form. */
export function showSubmitError(form: HTMLFormElement, err: unknown): void {
  if (err instanceof ApiError) {
    if (err.isValidation && Object.keys(err.fields).length) {
      showFieldErrors(form, err.fields, "Please correct the highlighted fields.");
      return;
    }
    const wait = err.retryAfter !== null ? ` Try again in ${err.retryAfter} s.` : "";
    clearErrors(form);
    showFormError(form, `${err.message}${wait}`);
    return;
  }
  clearErrors(form);
  showFormError(form, "Something went wrong. Please try again.");
}

/** A labelled control with its error slot. */
export function field(
  form: { id: string },
  opts: { name: string; label: string; control: HTMLElement; hint?: string },
): HTMLElement {
  const controlId = `${form.id}-${opts.name}`;
  const errorId = `${form.id}-${opts.name}-error`;
  const hintId = opts.hint ? `${form.id}-${opts.name}-hint` : null;
  opts.control.id = controlId;
  opts.control.setAttribute("name", opts.name);
  opts.control.setAttribute("aria-describedby", [hintId, errorId].filter(Boolean).join(" "));
  const wrapper = document.createElement("div");
  wrapper.className = "field";
  const label = document.createElement("label");
  label.htmlFor = controlId;
  label.textContent = opts.label;
  wrapper.append(label);
  if (opts.hint && hintId) {
    const hint = document.createElement("p");
    hint.id = hintId;
    hint.className = "field-hint";
    hint.textContent = opts.hint;
    wrapper.append(hint);
  }
  wrapper.append(opts.control);
  const error = document.createElement("p");
  error.id = errorId;
  error.className = "field-error";
  error.hidden = true;
  wrapper.append(error);
  return wrapper;
}
