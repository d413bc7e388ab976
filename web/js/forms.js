// Form behaviour shared by every page: check the fields, send once at a time, and
// report the outcome in the form's own live region (its `.form-status` element).

import { describeError } from './errors.js';

const pendingMessages = new WeakMap();

/**
 * Runs `action()` when the form is submitted and its fields are valid.
 * `validate(form)` may answer `{fieldName: message}` for rules the markup cannot say.
 * A thrown error is shown in the form's status; the action shows its own successes.
 */
export function onSubmit(form, action, { validate } = {}) {
  form.addEventListener('input', (event) => event.target.removeAttribute('aria-invalid'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (form.getAttribute('aria-busy') === 'true') return;
    if (!checkFields(form, validate)) return;
    clearStatus(form);
    setBusy(form, true);
    try {
      await action();
    } catch (error) {
      showError(form, error);
    } finally {
      setBusy(form, false);
    }
  });
}

/** Shows a message in the form's live region. `kind` is 'error', 'info' or 'success'. */
export function showStatus(form, message, kind = 'error') {
  const status = statusOf(form);
  clearTimeout(pendingMessages.get(status));
  status.dataset.kind = kind;
  // Empty first and fill in a later task: screen readers announce a message again
  // even when it repeats the one already shown.
  status.textContent = '';
  pendingMessages.set(status, setTimeout(() => { status.textContent = message; }, 50));
}

export function showError(form, error) {
  showStatus(form, describeError(error), 'error');
}

export function clearStatus(form) {
  const status = statusOf(form);
  clearTimeout(pendingMessages.get(status));
  status.textContent = '';
  delete status.dataset.kind;
}

/** The trimmed text of a field, or '' when it is absent or disabled. */
export function fieldText(form, name) {
  const value = new FormData(form).get(name);
  return typeof value === 'string' ? value.trim() : '';
}

function statusOf(form) {
  const status = form.querySelector('.form-status');
  if (!status) throw new Error(`Form #${form.id} has no .form-status element`);
  return status;
}

function setBusy(form, busy) {
  form.setAttribute('aria-busy', String(busy));
  // aria-disabled rather than disabled: a disabled button would drop keyboard focus.
  for (const button of form.querySelectorAll('button[type="submit"]')) {
    button.setAttribute('aria-disabled', String(busy));
  }
}

/** Marks invalid fields, reports the first one and moves focus to it. */
function checkFields(form, validate) {
  const fields = [...form.elements].filter((field) => field.willValidate);
  for (const field of fields) field.setCustomValidity('');
  const problems = validate?.(form) ?? {};
  for (const [name, message] of Object.entries(problems)) {
    form.elements.namedItem(name)?.setCustomValidity(message);
  }
  const invalid = fields.filter((field) => !field.validity.valid);
  for (const field of fields) {
    if (invalid.includes(field)) field.setAttribute('aria-invalid', 'true');
    else field.removeAttribute('aria-invalid');
  }
  if (invalid.length === 0) return true;
  showStatus(form, problemWith(invalid[0]), 'error');
  invalid[0].focus();
  return false;
}

function problemWith(field) {
  if (field.validity.customError) return field.validationMessage;
  if (field.dataset.invalid) return field.dataset.invalid;
  const label = field.labels?.[0]?.textContent.trim();
  return label ? `${label}: ${field.validationMessage}` : field.validationMessage;
}
