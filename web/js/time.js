// Times from the server (RFC 3339, UTC) shown in the reader's own time zone.

import { h } from './dom.js';

const timeOfDay = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayAndTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

function parse(value) {
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

function isToday(date) {
  return date.toDateString() === new Date().toDateString();
}

/** "14:05" today, "21 Nov 2026, 14:05" on other days. */
export function shortTime(value) {
  const date = parse(value);
  if (!date) return '';
  return isToday(date) ? timeOfDay.format(date) : dayAndTime.format(date);
}

/** "21 Nov 2026, 14:05" whatever the day. */
export function dateTime(value) {
  const date = parse(value);
  return date ? dayAndTime.format(date) : '';
}

/**
 * A `<time>` element: the short form as text, the machine-readable time in
 * `datetime`, and the full local date in a tooltip.
 */
export function timeElement(value, { long = false } = {}) {
  const date = parse(value);
  if (!date) return h('time', {}, '');
  return h(
    'time',
    { datetime: date.toISOString(), title: full.format(date) },
    long ? dateTime(date) : shortTime(date),
  );
}
