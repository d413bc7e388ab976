// The audit log and message log tabs: the same filters (user, IP, room, dates,
// text, and the action for the audit log), a page of results and the total.

import { api } from '../api.js';
import { byId, h, setText } from '../dom.js';
import { onSubmit, showError } from '../forms.js';
import { timeElement } from '../time.js';
import { fillTable, queryFrom, renderPager } from './common.js';

const KINDS = {
  logs: {
    path: '/api/admin/logs',
    items: (answer) => answer.entries ?? [],
    noun: 'entry',
    nounPlural: 'entries',
    row: (entry) =>
      h(
        'tr',
        {},
        h('td', {}, timeElement(entry.ts, { long: true })),
        h('td', {}, entry.username ?? (entry.user_id != null ? `#${entry.user_id}` : h('span', { class: 'muted' }, 'system'))),
        h('td', {}, entry.ip ? h('code', {}, entry.ip) : ''),
        h('td', {}, h('span', { class: 'action-name' }, entry.action)),
        h('td', {}, entry.room ? h('code', {}, entry.room) : ''),
        h('td', { class: 'cell-details' }, details(entry)),
      ),
  },
  messages: {
    path: '/api/admin/messages',
    items: (answer) => answer.messages ?? [],
    noun: 'message',
    nounPlural: 'messages',
    row: (message) =>
      h(
        'tr',
        {},
        h('td', {}, timeElement(message.ts, { long: true })),
        h('td', {}, h('code', {}, message.room)),
        h('td', {}, message.username),
        h('td', {}, message.ip ? h('code', {}, message.ip) : ''),
        h('td', { class: 'cell-text' }, message.text),
      ),
  },
};

/** `kind` is 'logs' or 'messages': the element ids and the endpoint follow from it. */
export function initLog(kind) {
  const config = KINDS[kind];
  const form = byId(`${kind}-filters`);
  const body = byId(`${kind}-body`);
  const summary = byId(`${kind}-summary`);
  let loaded = false;

  onSubmit(form, () => load(1));
  // After the fields have been cleared (the reset event comes before).
  form.addEventListener('reset', () => setTimeout(() => load(1).catch(showLoadError), 0));

  async function load(page) {
    const answer = await api('GET', `${config.path}?${queryFrom(form, { page })}`);
    loaded = true;
    const items = config.items(answer);
    const perPage = Number(new FormData(form).get('per_page')) || 50;
    fillTable(body, items.map(config.row), 'Nothing matches these filters.');
    const total = answer.total ?? items.length;
    setText(summary, total === 1 ? `1 ${config.noun}` : `${total} ${config.nounPlural}`);
    renderPager(byId(`${kind}-pager`), {
      page: answer.page ?? page,
      perPage,
      total,
      onPage: (n) => load(n).catch((error) => showLoadError(error)),
    });
  }

  function showLoadError(error) {
    showError(form, error);
  }

  return {
    show: () => {
      if (!loaded) load(1).catch(showLoadError);
    },
  };
}

function details(entry) {
  const value = entry.details;
  if (value == null || (typeof value === 'object' && Object.keys(value).length === 0)) return '';
  return h('code', {}, JSON.stringify(value));
}
