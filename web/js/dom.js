// Small DOM helpers. Text only ever reaches the page as text nodes or textContent,
// so a string from a user or the server can never turn into markup.

/** The element with this id; a missing one is a bug in the page, so fail loudly. */
export function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`Missing element #${id}`);
  return element;
}

/**
 * Builds an element. `attrs` values: a function under an `on…` name becomes an event
 * listener, `true` a boolean attribute, `false`/null/undefined nothing, anything else a
 * string attribute. Children may be nodes, strings (added as text), arrays or null.
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    setAttribute(element, name, value);
  }
  element.append(...flatten(children));
  return element;
}

function setAttribute(element, name, value) {
  if (value === null || value === undefined || value === false) return;
  if (name.startsWith('on')) {
    // Handler strings would be inline script, which the CSP forbids anyway.
    if (typeof value !== 'function') throw new TypeError(`${name} needs a function`);
    element.addEventListener(name.slice(2).toLowerCase(), value);
  } else if (value === true) {
    element.setAttribute(name, '');
  } else {
    element.setAttribute(name, String(value));
  }
}

function flatten(children) {
  return children
    .flat(Infinity)
    .filter((child) => child !== null && child !== undefined && child !== false)
    .map((child) => (child instanceof Node ? child : String(child)));
}

/** Adds an event listener and answers the element, for use around `h(…)`. */
export function listen(element, type, handler) {
  element.addEventListener(type, handler);
  return element;
}

/** Sets an element's text; null and undefined become empty. */
export function setText(element, text) {
  element.textContent = text ?? '';
}

/** Shows or hides an element through the `hidden` attribute. */
export function show(element, visible = true) {
  element.hidden = !visible;
}

/** Puts text into an element and unhides it (page notices, results). */
export function showMessage(element, text) {
  setText(element, text);
  element.hidden = false;
}

/**
 * Shows or hides a part of a form. A hidden fieldset is also disabled, so its fields
 * are neither validated nor submitted.
 */
export function enableSection(fieldset, enabled) {
  fieldset.hidden = !enabled;
  fieldset.disabled = !enabled;
}
