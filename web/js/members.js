// The member list of a room: who is here (picture, display name, username), who is
// in voice, muted or speaking.
// States are shown in words as well as by colour, so they read out and print.

import { avatar } from './avatars.js';
import { h, setText } from './dom.js';

export class MemberList {
  /** `list`: the `<ul>`; `count`: where "N here" goes; `ownSid()`: this connection's sid. */
  constructor({ list, count, ownSid }) {
    this.list = list;
    this.count = count;
    this.ownSid = ownSid;
    /** sid -> {member, element, speaking} */
    this.entries = new Map();
  }

  /** The members of a `joined` frame, in the order they arrived. */
  reset(members) {
    this.entries.clear();
    this.list.replaceChildren();
    for (const member of members) this.add(member);
    this.updateCount();
  }

  add(member) {
    if (!member?.sid) return;
    const existing = this.entries.get(member.sid);
    if (existing) existing.element.remove();
    const entry = { member: { ...member }, element: null, speaking: false };
    entry.element = this.render(entry);
    this.entries.set(member.sid, entry);
    this.list.append(entry.element);
    this.updateCount();
  }

  remove(sid) {
    const entry = this.entries.get(sid);
    if (!entry) return null;
    entry.element.remove();
    this.entries.delete(sid);
    this.updateCount();
    return entry.member;
  }

  get(sid) {
    return this.entries.get(sid)?.member ?? null;
  }

  all() {
    return [...this.entries.values()].map((entry) => entry.member);
  }

  /** A member's new name or picture (`member_updated`); their voice state stays. */
  update(member) {
    const entry = this.entries.get(member?.sid);
    if (!entry) return;
    entry.member = { ...entry.member, username: member.username, display_name: member.display_name, avatar_url: member.avatar_url };
    this.refresh(entry);
  }

  /** The picture of the user `userId` as a member here shows it, or null. */
  avatarOf(userId) {
    for (const { member } of this.entries.values()) {
      if (member.user_id === userId) return member.avatar_url ?? null;
    }
    return null;
  }

  /** Takes a `voice_state` frame's fields (in_voice, muted, server_muted, server_deafened, path). */
  setVoice(sid, state) {
    const entry = this.entries.get(sid);
    if (!entry) return;
    for (const key of ['in_voice', 'muted', 'server_muted', 'server_deafened', 'path']) {
      if (key in state) entry.member[key] = state[key];
    }
    if (!entry.member.in_voice) entry.speaking = false;
    this.refresh(entry);
  }

  setSpeaking(sid, speaking) {
    const entry = this.entries.get(sid);
    if (!entry || entry.speaking === speaking) return;
    entry.speaking = speaking && entry.member.in_voice;
    this.refresh(entry);
  }

  refresh(entry) {
    const fresh = this.render(entry);
    entry.element.replaceWith(fresh);
    entry.element = fresh;
  }

  render({ member, speaking }) {
    const own = member.sid === this.ownSid();
    const name = member.display_name || member.username;
    const silenced = member.muted || member.server_muted || member.server_deafened;
    const voice = !member.in_voice ? 'off' : silenced ? 'muted' : 'on';
    const states = [];
    if (member.in_voice) states.push(h('span', { class: 'state state-voice' }, 'In voice'));
    if (member.in_voice && member.path === 'sfu') {
      states.push(h('span', { class: 'state state-path', title: 'Voice through the server' }, 'Via server'));
    }
    if (member.server_deafened) states.push(h('span', { class: 'state state-muted' }, 'Deafened by a moderator'));
    else if (member.server_muted) states.push(h('span', { class: 'state state-muted' }, 'Muted by a moderator'));
    else if (member.in_voice && member.muted) states.push(h('span', { class: 'state state-muted' }, 'Muted'));
    if (member.in_voice && speaking && !silenced) {
      states.push(h('span', { class: 'state state-speaking' }, 'Speaking'));
    }
    return h(
      'li',
      {
        class: speaking && member.in_voice && !silenced ? 'member member-speaking' : 'member',
        'data-sid': member.sid,
        'data-voice': voice,
        'data-path': member.path ?? 'none',
      },
      avatar(member.avatar_url, name, 'member-avatar'),
      h(
        'span',
        { class: 'member-names' },
        h('span', { class: 'member-name' }, name, own ? ' (you)' : ''),
        member.username && member.username !== name
          ? h('span', { class: 'member-username' }, `@${member.username}`)
          : null,
        member.guest ? h('span', { class: 'member-username' }, 'guest') : null,
      ),
      h('span', { class: 'member-states' }, states),
    );
  }

  updateCount() {
    const n = this.entries.size;
    setText(this.count, n === 1 ? '1 here' : `${n} here`);
  }
}
