// A room's messages on the page: in id order, each shown once however it
// arrived (live, in a `joined` history, fetched after a reconnection or paged in
// on request). The own messages show at once as "sending" and are matched to the
// server's copy by their nonce.

import { api } from './api.js';
import { avatar } from './avatars.js';
import { h, listen, setText, show } from './dom.js';
import { timeElement } from './time.js';

/** Characters (Unicode code points) a message may have: protocol.md. */
export const MAX_MESSAGE_CHARS = 4000;
/** Messages in a `joined` history, and the most one page request answers. */
const HISTORY_SIZE = 200;
const OLDER_PAGE = 50;
/** Pages fetched to fill a gap after a reconnection, at most. */
const CATCH_UP_PAGES = 10;
/** The log follows new messages while the reader is this close to its end. */
const STICK_TO_END_PX = 80;

export function characterCount(text) {
  return [...text].length;
}

/** A random nonce; crypto.randomUUID exists only in secure contexts. */
function newNonce() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export class ChatLog {
  /**
   * `list`: the `<ol>` of messages, inside the scrolling `scroller`.
   * `olderButton`: asks for older messages.
   * `beginning`: shown once the first message of the room is on the page.
   * `send(frame)` sends on the socket (false when it is down).
   * `ownUserId()`: the signed-in user's id, to mark the own messages.
   * `avatarOf(userId)`: the sender's picture URL while they are in the room, or null.
   */
  constructor({ list, scroller, olderButton, beginning, send, ownUserId, avatarOf }) {
    this.list = list;
    this.scroller = scroller;
    this.olderButton = olderButton;
    this.beginning = beginning;
    this.sendFrame = send;
    this.ownUserId = ownUserId;
    this.avatarOf = avatarOf;
    this.room = null;
    /** message id -> <li> */
    this.byId = new Map();
    /** nonce -> {text, element, state: 'queued'|'sent'|'failed'} */
    this.pending = new Map();
    this.loadingOlder = false;
  }

  /** Empties the log for another room. */
  reset(room) {
    this.room = room;
    this.byId.clear();
    this.pending.clear();
    this.list.replaceChildren();
    show(this.olderButton, false);
    show(this.beginning, false);
  }

  get size() {
    return this.byId.size;
  }

  /** The newest message id on the page, or null. */
  get newestId() {
    let newest = null;
    for (const id of this.byId.keys()) if (newest === null || id > newest) newest = id;
    return newest;
  }

  get oldestId() {
    let oldest = null;
    for (const id of this.byId.keys()) if (oldest === null || id < oldest) oldest = id;
    return oldest;
  }

  /**
   * The `joined` frame's history. After a reconnection to the same room the
   * messages missed meanwhile are fetched when the history does not reach back to
   * the newest one seen, and the own messages still unconfirmed are sent again.
   */
  async applyHistory(history, { rejoin }) {
    const newestSeen = rejoin ? this.newestId : null;
    this.bulk(() => this.merge(history));
    if (!rejoin) {
      // A full history means older messages may exist.
      show(this.olderButton, history.length >= HISTORY_SIZE);
      show(this.beginning, history.length < HISTORY_SIZE);
      this.scrollToEnd();
    } else if (newestSeen !== null && history.length >= HISTORY_SIZE && history[0].id > newestSeen) {
      await this.catchUp(history[0].id, newestSeen);
    }
    this.resendPending();
  }

  async catchUp(before, newestSeen) {
    let cursor = before;
    for (let page = 0; page < CATCH_UP_PAGES && cursor > newestSeen; page += 1) {
      const messages = await this.fetchPage(cursor, HISTORY_SIZE);
      this.bulk(() => this.merge(messages));
      if (messages.length < HISTORY_SIZE) break;
      cursor = messages[0].id;
    }
  }

  async fetchPage(before, limit) {
    const query = new URLSearchParams({ before: String(before), limit: String(limit) });
    const path = `/api/rooms/${encodeURIComponent(this.room)}/messages?${query}`;
    const { messages } = await api('GET', path);
    return Array.isArray(messages) ? messages : [];
  }

  /** Loads the page of messages before the oldest one shown. */
  async loadOlder() {
    const oldest = this.oldestId;
    if (this.loadingOlder || oldest === null) return 0;
    this.loadingOlder = true;
    this.olderButton.setAttribute('aria-disabled', 'true');
    try {
      const messages = await this.fetchPage(oldest, OLDER_PAGE);
      // Keep the messages the reader is looking at where they are.
      const fromEnd = this.scroller.scrollHeight - this.scroller.scrollTop;
      this.bulk(() => this.merge(messages));
      this.scroller.scrollTop = this.scroller.scrollHeight - fromEnd;
      if (messages.length < OLDER_PAGE) {
        show(this.olderButton, false);
        show(this.beginning, true);
      }
      return messages.length;
    } finally {
      this.loadingOlder = false;
      this.olderButton.removeAttribute('aria-disabled');
    }
  }

  /** A live message from the socket. */
  receive(message) {
    const follow = this.nearEnd();
    this.merge([message]);
    if (follow || this.isOwn(message)) this.scrollToEnd();
  }

  /** Shows the own message at once and sends it (now, or after a reconnection). */
  post(text) {
    const nonce = newNonce();
    const element = this.renderPending(text);
    const entry = { text, element, state: 'queued' };
    this.pending.set(nonce, entry);
    this.list.append(element);
    this.scrollToEnd();
    this.trySend(nonce, entry);
    return nonce;
  }

  trySend(nonce, entry) {
    entry.state = this.sendFrame({ type: 'chat', text: entry.text, nonce }) ? 'sent' : 'queued';
    this.setPendingLabel(entry);
  }

  resendPending() {
    for (const [nonce, entry] of this.pending) {
      if (entry.state !== 'failed') this.trySend(nonce, entry);
    }
  }

  /**
   * The server refused a chat frame (rate limit): frames are answered in order,
   * so it was the oldest message still waiting. It is marked, with a retry.
   */
  failOldestPending() {
    for (const [nonce, entry] of this.pending) {
      if (entry.state === 'sent') {
        entry.state = 'failed';
        this.setPendingLabel(entry, nonce);
        return true;
      }
    }
    return false;
  }

  merge(messages) {
    for (const message of messages) {
      if (!message || typeof message.id !== 'number' || this.byId.has(message.id)) continue;
      const element = this.render(message);
      const pending = message.nonce ? this.pending.get(message.nonce) : null;
      if (pending && this.isOwn(message)) {
        this.pending.delete(message.nonce);
        pending.element.remove();
      }
      this.byId.set(message.id, element);
      this.insertInOrder(element, message.id);
    }
  }

  insertInOrder(element, id) {
    // Most messages are the newest: look from the end.
    let after = null;
    for (let node = this.list.lastElementChild; node; node = node.previousElementSibling) {
      if (node.dataset.id && Number(node.dataset.id) < id) {
        after = node;
        break;
      }
    }
    if (after) {
      after.after(element);
    } else {
      // Older than everything confirmed: before the first confirmed message.
      const first = [...this.list.children].find((node) => node.dataset.id);
      if (first) first.before(element);
      else this.list.prepend(element);
    }
    // Messages still being sent stay last.
    for (const entry of this.pending.values()) {
      if (entry.element.isConnected) this.list.append(entry.element);
    }
  }

  isOwn(message) {
    return message.user_id !== null && message.user_id === this.ownUserId();
  }

  /**
   * Shows the current picture of `userId` on their messages (after `member_joined` or
   * `member_updated`): a message shows its sender as they are now in the room.
   */
  refreshAvatars(userId) {
    for (const item of this.list.querySelectorAll(`[data-user="${Number(userId)}"]`)) {
      const old = item.querySelector('.message-avatar');
      if (old) old.replaceWith(this.senderAvatar(userId, old.dataset.name));
    }
  }

  senderAvatar(userId, name) {
    const element = avatar(userId === null ? null : this.avatarOf(userId), name, 'message-avatar');
    element.dataset.name = name;
    return element;
  }

  render(message) {
    const own = this.isOwn(message);
    const name = message.display_name || message.username || 'unknown';
    return h(
      'li',
      {
        class: own ? 'message message-own' : 'message',
        'data-id': String(message.id),
        'data-user': message.user_id === null ? null : String(message.user_id),
      },
      h(
        'p',
        { class: 'message-meta' },
        this.senderAvatar(message.user_id, name),
        h('span', { class: 'message-author' }, name),
        message.username && message.display_name && message.username !== message.display_name
          ? h('span', { class: 'message-username' }, ` @${message.username}`)
          : null,
        ' ',
        timeElement(message.ts),
      ),
      // A file's message text is its name, which the attachment shows already.
      message.text && message.text !== message.attachment?.name
        ? h('p', { class: 'message-text' }, message.text)
        : null,
      message.attachment ? renderAttachment(message.attachment) : null,
    );
  }

  renderPending(text) {
    const label = h('span', { class: 'message-state' }, 'Sending…');
    const element = h(
      'li',
      { class: 'message message-own message-pending' },
      h('p', { class: 'message-meta' }, h('span', { class: 'message-author' }, 'You'), ' ', label),
      h('p', { class: 'message-text' }, text),
    );
    return element;
  }

  setPendingLabel(entry, nonce) {
    const label = entry.element.querySelector('.message-state');
    entry.element.classList.toggle('message-failed', entry.state === 'failed');
    if (entry.state === 'failed') {
      setText(label, 'Not sent. ');
      const retry = h('button', { type: 'button', class: 'link-button' }, 'Try again');
      label.append(
        listen(retry, 'click', () => {
          this.trySend(nonce, entry);
          entry.element.classList.remove('message-failed');
        }),
      );
    } else {
      setText(label, entry.state === 'sent' ? 'Sending…' : 'Waiting for the connection…');
    }
  }

  /** Adds many messages without a live-region announcement for each. */
  bulk(action) {
    this.list.setAttribute('aria-busy', 'true');
    try {
      action();
    } finally {
      this.list.setAttribute('aria-busy', 'false');
    }
  }

  nearEnd() {
    const { scrollHeight, scrollTop, clientHeight } = this.scroller;
    return scrollHeight - scrollTop - clientHeight < STICK_TO_END_PX;
  }

  scrollToEnd() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }
}

function renderAttachment(attachment) {
  const url = typeof attachment.url === 'string' && attachment.url.startsWith('/') ? attachment.url : null;
  const name = attachment.name || 'attachment';
  if (!url) return h('p', { class: 'message-attachment' }, name);
  const type = attachment.content_type ?? '';
  return h(
    'p',
    { class: 'message-attachment' },
    preview(type, url, name),
    h('a', { href: url, target: '_blank', rel: 'noopener' }, name),
    typeof attachment.size === 'number' ? h('span', { class: 'muted' }, ` (${formatSize(attachment.size)})`) : null,
  );
}

/** An inline image, audio or video player for media; nothing for other files. */
function preview(type, url, name) {
  if (/^image\/(png|jpeg|gif|webp)$/.test(type)) return h('img', { src: url, alt: name, loading: 'lazy' });
  if (type.startsWith('audio/')) return h('audio', { src: url, controls: '', preload: 'metadata', 'aria-label': name });
  if (type.startsWith('video/')) return h('video', { src: url, controls: '', preload: 'metadata', 'aria-label': name });
  return null;
}

function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}
