// The bans tab: the bans in force, a new ban, lifting one.

import { api } from '../api.js';
import { byId, h } from '../dom.js';
import { fieldText, onSubmit, showStatus } from '../forms.js';
import { dateTime } from '../time.js';
import { actionButton, feedback, feedbackError, fillTable, localInputToIso } from './common.js';
import { confirmAction } from './confirm.js';

export function initBans() {
  const body = byId('bans-body');
  const result = byId('bans-feedback');
  const form = byId('ban-create');

  onSubmit(form, createBan, { validate });

  function validate() {
    const userId = fieldText(form, 'user_id');
    const ip = fieldText(form, 'ip');
    if (!userId && !ip) return { user_id: 'Enter a user ID, an IP address or both.' };
    if (userId && !/^\d+$/.test(userId)) return { user_id: 'User ID: a number, as in the users tab.' };
    return {};
  }

  async function createBan() {
    const request = { reason: fieldText(form, 'reason') };
    const userId = fieldText(form, 'user_id');
    const ip = fieldText(form, 'ip');
    if (userId) request.user_id = Number(userId);
    if (ip) request.ip = ip;
    const expires = localInputToIso(fieldText(form, 'expires_at'));
    if (expires) request.expires_at = expires;
    const ban = await api('POST', '/api/admin/bans', request);
    form.reset();
    showStatus(form, `Ban #${ban.id} is in force.`, 'success');
    await load();
  }

  async function load() {
    const { bans } = await api('GET', '/api/admin/bans');
    fillTable(body, bans.map(row), 'No bans are in force.');
  }

  function row(ban) {
    const labelId = `ban-${ban.id}`;
    return h(
      'tr',
      { 'data-ban-id': String(ban.id) },
      h('td', { id: labelId }, ban.user_id != null ? (ban.username ?? `User #${ban.user_id}`) : h('span', { class: 'muted' }, 'any')),
      h('td', {}, ban.ip ? h('code', {}, ban.ip) : h('span', { class: 'muted' }, 'any')),
      h('td', { class: 'cell-wrap' }, ban.reason),
      h('td', {}, dateTime(ban.created_at)),
      h('td', {}, ban.expires_at ? dateTime(ban.expires_at) : 'Never'),
      h('td', {}, ban.created_by != null ? `#${ban.created_by}` : ''),
      h('td', { class: 'cell-actions' }, actionButton('Lift…', () => lift(ban), { describedBy: labelId })),
    );
  }

  function lift(ban) {
    confirmAction({
      title: 'Lift this ban?',
      text: `Ban #${ban.id} (${ban.reason}) ends now.`,
      confirm: 'Lift ban',
      action: () => api('DELETE', `/api/admin/bans/${ban.id}`),
      done: () => {
        feedback(result, `Ban #${ban.id} was lifted.`);
        load().catch((error) => feedbackError(result, error));
      },
    });
  }

  return { show: () => load().catch((error) => feedbackError(result, error)) };
}
