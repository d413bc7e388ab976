// The live sessions tab: every connected session, kept current by the socket's
// `admin_watch` (a `sessions` snapshot, then `session_update` and `session_gone`),
// with kick, move, ban, and server mute and deafen.

import { shortAgent } from '../agents.js';
import { api } from '../api.js';
import { avatar } from '../avatars.js';
import { byId, h, setText } from '../dom.js';
import { hasPermission } from '../session.js';
import { timeElement } from '../time.js';
import { openBanDialog } from './ban-dialog.js';
import { actionButton, feedback, feedbackError, fillTable, formDialog } from './common.js';

const STATUS_TEXT = {
  connecting: 'Connecting…',
  open: 'Live',
  reconnecting: 'Connection lost: reconnecting…',
  kicked: 'Disconnected: this console was kicked.',
  banned: 'Disconnected: banned.',
  'signed-out': 'Disconnected: your session has ended.',
  closed: 'Disconnected.',
};

export function initSessions({ user, socket }) {
  const body = byId('sessions-body');
  const status = byId('sessions-status');
  const result = byId('sessions-feedback');
  /** sid -> LiveSession, in the order they were first seen. */
  const sessions = new Map();
  let watching = false;

  const can = {};
  allowActions(user);

  function allowActions(current) {
    can.kick = hasPermission(current, 'sessions.kick');
    can.move = hasPermission(current, 'sessions.move');
    can.ban = hasPermission(current, 'bans.manage');
    can.mute = hasPermission(current, 'voice.mute');
    can.deafen = hasPermission(current, 'voice.deafen');
  }

  /** Server mute (`what` 'mute') or deafen ('deafen') on or off; the row follows from session_update. */
  async function moderate(session, what, on) {
    const field = what === 'mute' ? 'muted' : 'deafened';
    try {
      await api('POST', `/api/admin/sessions/${encodeURIComponent(session.sid)}/${what}`, { [field]: on });
      const done = { mute: on ? 'muted' : 'unmuted', deafen: on ? 'deafened' : 'undeafened' }[what];
      feedback(result, `${session.user.username} was ${done}.`);
    } catch (error) {
      feedbackError(result, error);
    }
  }

  const kickDialog = formDialog(byId('kick-dialog'), {
    action: (session, form) =>
      api('POST', `/api/admin/sessions/${encodeURIComponent(session.sid)}/kick`, {
        reason: fieldValue(form, 'reason') || undefined,
      }),
    done: (_, session) => feedback(result, `${session.user.username} was kicked.`),
  });

  const moveDialog = formDialog(byId('move-dialog'), {
    prepare: (session, form) => {
      const rooms = new Set(['lobby']);
      for (const live of sessions.values()) if (live.room) rooms.add(live.room);
      rooms.delete(session.room);
      byId('known-rooms').replaceChildren(...[...rooms].map((code) => h('option', { value: code })));
      form.elements.namedItem('room').value = '';
    },
    action: (session, form) =>
      api('POST', `/api/admin/sessions/${encodeURIComponent(session.sid)}/move`, {
        room: roomCodeFrom(fieldValue(form, 'room')),
      }),
    done: (_, session) => feedback(result, `${session.user.username} was moved.`),
  });

  socket.on('status', ({ state }) => {
    status.dataset.state = state;
    setText(status, STATUS_TEXT[state] ?? state);
  });
  socket.on('hello', () => {
    watching = true;
    socket.send({ type: 'admin_watch' });
  });
  socket.on('sessions', (frame) => {
    sessions.clear();
    for (const session of frame.sessions ?? []) sessions.set(session.sid, session);
    render();
  });
  socket.on('session_update', ({ session }) => {
    if (!session?.sid) return;
    sessions.set(session.sid, session);
    render();
  });
  socket.on('session_gone', ({ sid }) => {
    if (sessions.delete(sid)) render();
  });
  socket.on('user', ({ user: current }) => {
    if (!current) return;
    allowActions(current);
    render();
  });
  socket.on('error', (frame) => {
    if (!watching || frame.code !== 'forbidden') return;
    // Refused, or the permission was taken away while watching: the list
    // stops following, so it is not left on screen to look current.
    watching = false;
    sessions.clear();
    render();
    feedback(result, 'You may not watch the live sessions.', 'error');
  });

  function ban(session) {
    openBanDialog({
      userId: session.user?.id,
      ip: session.ip,
      label: describe(session),
      done: () => feedback(result, `The ban on ${session.user?.username ?? session.ip} is in force.`),
    });
  }

  function render() {
    const rows = [...sessions.values()].map(row);
    fillTable(body, rows, 'Nobody is connected.');
    const n = sessions.size;
    if (socket.state !== 'open') return;
    setText(status, watching ? `Live · ${n} session${n === 1 ? '' : 's'}` : 'Not following the live sessions.');
  }

  function row(session) {
    const own = session.sid === socket.sid;
    const name = session.user?.username ?? '?';
    const labelId = `session-${session.sid}`;
    const voice = voiceText(session);
    const actions = [];
    if (!own && can.mute) {
      const on = !session.server_muted;
      actions.push(actionButton(on ? 'Mute' : 'Unmute', () => moderate(session, 'mute', on), { describedBy: labelId }));
    }
    if (!own && can.deafen) {
      const on = !session.server_deafened;
      actions.push(
        actionButton(on ? 'Deafen' : 'Undeafen', () => moderate(session, 'deafen', on), { describedBy: labelId }),
      );
    }
    if (!own && can.kick) {
      actions.push(actionButton('Kick', () => kickDialog.open(session, describe(session)), { describedBy: labelId }));
    }
    if (!own && can.move) {
      actions.push(actionButton('Move', () => moveDialog.open(session, describe(session)), { describedBy: labelId }));
    }
    if (!own && can.ban && session.user?.id !== user.id) {
      actions.push(
        actionButton('Ban', () => ban(session), { danger: true, describedBy: labelId }),
      );
    }
    return h(
      'tr',
      { 'data-sid': session.sid },
      h(
        'td',
        { class: 'cell-person' },
        avatar(session.avatar_url, name),
        h('span', { id: labelId, class: 'strong' }, name),
        own ? h('span', { class: 'muted' }, ' (this console)') : null,
      ),
      h('td', {}, h('code', {}, session.ip ?? '')),
      h('td', {}, session.room ? h('code', {}, session.room) : h('span', { class: 'muted' }, 'none')),
      h('td', { 'data-voice': session.in_voice ? (session.muted ? 'muted' : 'on') : 'off' }, voice),
      h('td', {}, timeElement(session.connected_at)),
      h('td', { class: 'cell-agent', title: session.user_agent ?? '' }, shortAgent(session.user_agent)),
      h('td', { class: 'cell-actions' }, actions),
    );
  }
}

/** "In voice (through the server) · muted by a moderator", and so on. */
function voiceText(session) {
  const parts = [];
  if (!session.in_voice) parts.push('No');
  else parts.push(session.path === 'sfu' ? 'In voice (through the server)' : 'In voice (peer-to-peer)');
  if (session.in_voice && session.muted) parts.push('muted');
  if (session.server_muted) parts.push('muted by a moderator');
  if (session.server_deafened) parts.push('deafened by a moderator');
  return parts.join(' · ');
}

function describe(session) {
  const room = session.room ? ` in room ${session.room}` : '';
  return `${session.user?.username ?? 'This session'}, from ${session.ip}${room}.`;
}

function fieldValue(form, name) {
  const value = form.elements.namedItem(name)?.value;
  return typeof value === 'string' ? value.trim() : '';
}

/** A bare code or a pasted room link. */
function roomCodeFrom(input) {
  const match = /\/room\/([^/?#\s]+)/.exec(input);
  if (!match) return input;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return match[1];
  }
}
