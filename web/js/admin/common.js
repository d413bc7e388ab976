// Pieces the tabs of the admin console share: table rows, pagers, the short
// feedback line under a table, and dialogs that ask before acting.

import { h, listen, setText } from '../dom.js';
import { describeError } from '../errors.js';
import { clearStatus, onSubmit } from '../forms.js';

/** Fills a table body; with no rows, one row saying `emptyText`. */
export function fillTable(tbody, rows, emptyText) {
  if (rows.length === 0) {
    const columns = tbody.closest('table')?.querySelectorAll('thead th').length ?? 1;
    tbody.replaceChildren(h('tr', { class: 'empty-row' }, h('td', { colspan: String(columns) }, emptyText)));
    return;
  }
  tbody.replaceChildren(...rows);
}

/** A cell whose text may be long (it wraps instead of widening the table). */
export function textCell(text, className = null) {
  return h('td', { class: className }, text ?? '');
}

export function actionButton(label, handleClick, { danger = false, describedBy = null } = {}) {
  const button = h(
    'button',
    {
      type: 'button',
      class: danger ? 'button button-small button-danger' : 'button button-small',
      'aria-describedby': describedBy,
    },
    label,
  );
  return listen(button, 'click', handleClick);
}

/** The feedback line under a table: what an action did, or why it failed. */
export function feedback(element, text, kind = 'success') {
  element.dataset.kind = kind;
  setText(element, '');
  // Filled in a later task so screen readers announce a repeated message too.
  setTimeout(() => setText(element, text), 50);
}

export function feedbackError(element, error) {
  feedback(element, describeError(error), 'error');
}

/**
 * "Page 2 of 5" with Previous and Next. `onPage(n)` loads page n; the pager is
 * redrawn by the caller with the answer.
 */
export function renderPager(nav, { page, perPage, total, onPage }) {
  const pages = Math.max(1, Math.ceil(total / perPage));
  if (total <= perPage && page <= 1) {
    nav.replaceChildren();
    return;
  }
  nav.replaceChildren(
    listen(
      h('button', { type: 'button', class: 'button button-small', disabled: page <= 1 }, 'Previous'),
      'click',
      () => onPage(page - 1),
    ),
    h('span', { class: 'pager-label' }, `Page ${page} of ${pages}`),
    listen(
      h('button', { type: 'button', class: 'button button-small', disabled: page >= pages }, 'Next'),
      'click',
      () => onPage(page + 1),
    ),
  );
}

/** The non-empty fields of a filter form as a query string (without "?"). */
export function queryFrom(form, extra = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of new FormData(form)) {
    if (typeof value === 'string' && value.trim() !== '') query.set(name, value.trim());
  }
  for (const [name, value] of Object.entries(extra)) query.set(name, String(value));
  return query.toString();
}

/** `1 result`, `12 results`. */
export function countText(total, noun) {
  return `${total} ${noun}${total === 1 ? '' : 's'}`;
}

/** A value for an RFC 3339 field from a datetime-local input (local time), or null. */
export function localInputToIso(value) {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/**
 * A modal dialog holding one form. `open(target, describe)` shows it for a target;
 * on submit `action(target, form)` runs (errors stay in the dialog's status), and
 * on success the dialog closes and `done(result, target)` runs.
 */
export function formDialog(dialog, { prepare, action, validate, done }) {
  const form = dialog.querySelector('form');
  let target = null;
  for (const button of dialog.querySelectorAll('[data-close]')) {
    button.addEventListener('click', () => dialog.close());
  }
  onSubmit(
    form,
    async () => {
      const result = await action(target, form);
      dialog.close();
      done?.(result, target);
    },
    { validate: validate ? () => validate(target, form) : undefined },
  );
  return {
    open(newTarget, description) {
      target = newTarget;
      form.reset();
      clearStatus(form);
      for (const field of form.querySelectorAll('[aria-invalid]')) field.removeAttribute('aria-invalid');
      setText(dialog.querySelector('.dialog-target'), description ?? '');
      prepare?.(target, form);
      dialog.showModal();
      const first = form.querySelector('input:not([type="hidden"]):not([disabled]), select');
      first?.focus();
    },
  };
}
