// The one WebSocket a page holds to the server (/ws): frames dispatched by type,
// reconnection with exponential backoff and jitter after the network or the
// server goes away, and the room rejoined after each reconnection.
//
// Pages listen with `socket.on(type, handler)` for the server's frame types
// (protocol.md) and for two of the socket's own events:
//   'status'  {state, reason?, retryInMs?}  state is one of
//             'connecting', 'open', 'reconnecting', 'kicked', 'banned', 'signed-out', 'closed'
//   'connected' {reconnect: bool}  after each `hello`; the room has been asked again

import { fetchCurrentUser } from './session.js';

/** Close codes of the contract and of the server (src/realtime/session.rs). */
export const CLOSE_KICKED = 4001;
export const CLOSE_BANNED = 4003;
export const CLOSE_RESTARTING = 1012;

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** After a restart the server is back within seconds: no long wait. */
const RESTART_FIRST_MS = 1_000;
/** A ping this often; a socket silent for TIMEOUT is taken for dead. */
const PING_INTERVAL_MS = 15_000;
const SILENCE_TIMEOUT_MS = 40_000;

/**
 * How long to wait before reconnection attempt `attempt` (0-based): an exponential
 * ceiling with "equal jitter" (between half and all of it), so that clients cut off
 * together do not all come back in the same instant.
 */
export function backoffDelay(attempt, firstMs = BACKOFF_FIRST_MS, random = Math.random) {
  const ceiling = Math.min(BACKOFF_MAX_MS, firstMs * 2 ** Math.min(attempt, 16));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

export class Socket {
  constructor({ path = '/ws' } = {}) {
    this.url = socketUrl(path);
    this.handlers = new Map();
    this.ws = null;
    this.state = 'idle';
    /** From `hello`: this connection's id, the user, the WebRTC servers and policy, the voice mode. */
    this.sid = null;
    this.user = null;
    this.iceServers = [];
    this.iceTransportPolicy = 'all';
    this.voiceMode = 'p2p';
    this.meshLimit = 6;
    /** The room this page belongs in; asked for again after every reconnection. */
    this.room = null;
    this.attempt = 0;
    this.everConnected = false;
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastHeard = 0;
    this.finalReason = null;
    this.restarting = false;
    window.addEventListener('online', () => this.retryNow());
  }

  /** Adds a handler for a frame type or a socket event; answers a remover. */
  on(type, handler) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(handler);
    return () => this.handlers.get(type)?.delete(handler);
  }

  emit(type, detail) {
    for (const handler of this.handlers.get(type) ?? []) {
      try {
        handler(detail);
      } catch (error) {
        console.error(`socket handler for ${type}`, error);
      }
    }
  }

  get isOpen() {
    return this.state === 'open';
  }

  /** Opens the connection (again, after a final close such as a kick). */
  connect() {
    clearTimeout(this.retryTimer);
    this.finalReason = null;
    this.open();
  }

  /** Sends a frame; false when there is no open connection to send it on. */
  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.state !== 'open') return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Joins a room now (if connected) and after every reconnection. */
  joinRoom(code) {
    this.room = code;
    this.send({ type: 'join', room: code });
  }

  /** Follows a move by a moderator: the server has already put us in `code`. */
  followTo(code) {
    this.room = code;
  }

  leaveRoom() {
    this.room = null;
    this.send({ type: 'leave' });
  }

  /** Closes for good: no reconnection. */
  close() {
    this.finish('closed');
  }

  open() {
    this.detach();
    this.setState('connecting');
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (error) {
      console.error(error);
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.restarting = false;
    let greeted = false;
    ws.addEventListener('message', (event) => {
      this.lastHeard = Date.now();
      const frame = parseFrame(event.data);
      if (!frame) return;
      if (frame.type === 'hello') {
        greeted = true;
        this.onHello(frame);
        return;
      }
      this.onFrame(frame);
    });
    ws.addEventListener('close', (event) => {
      if (this.ws !== ws) return; // replaced already (a forced reconnect)
      this.onClose(event.code, event.reason, greeted);
    });
  }

  onHello(frame) {
    const reconnect = this.everConnected;
    this.sid = frame.sid;
    this.user = frame.user;
    this.iceServers = Array.isArray(frame.ice_servers) ? frame.ice_servers : [];
    this.voiceMode = frame.voice?.mode ?? 'p2p';
    this.meshLimit = frame.voice?.mesh_limit ?? 6;
    this.iceTransportPolicy = frame.ice_transport_policy === 'relay' ? 'relay' : 'all';
    this.everConnected = true;
    this.attempt = 0;
    this.setState('open');
    this.startPinging();
    this.emit('hello', frame);
    if (this.room) this.send({ type: 'join', room: this.room });
    this.emit('connected', { reconnect });
  }

  onFrame(frame) {
    switch (frame.type) {
      case 'kicked':
        this.finalReason = { state: 'kicked', reason: frame.reason };
        break;
      case 'banned':
        this.finalReason = { state: 'banned', reason: frame.reason };
        break;
      case 'moved':
        if (frame.room?.code) this.room = frame.room.code;
        break;
      case 'user':
        // An admin changed this user's roles or permissions: the fresh record.
        if (frame.user) this.user = frame.user;
        break;
      case 'error':
        if (frame.code === 'server_restarting') this.restarting = true;
        break;
      default:
        break;
    }
    this.emit(frame.type, frame);
  }

  async onClose(code, reason, greeted) {
    this.stopPinging();
    this.ws = null;
    if (this.state === 'closed') return;
    if (code === CLOSE_KICKED || this.finalReason?.state === 'kicked') {
      // The login session may have ended too: a sign-out, a password change or the
      // session ended from another device close the socket like a kick.
      const kicked = this.finalReason?.state === 'kicked';
      const ended = !kicked || (await this.sessionEnded());
      this.finish(ended ? 'signed-out' : 'kicked', this.finalReason?.reason ?? reason);
      return;
    }
    if (code === CLOSE_BANNED || this.finalReason?.state === 'banned') {
      this.finish('banned', this.finalReason?.reason ?? reason);
      return;
    }
    if (!greeted) {
      // The upgrade was refused or the server is unreachable. A browser does not
      // say which, so ask: an ended session will not come back by retrying.
      if (await this.sessionEnded()) {
        this.finish('signed-out');
        return;
      }
    }
    const restart = code === CLOSE_RESTARTING || this.restarting;
    this.scheduleReconnect(restart);
  }

  async sessionEnded() {
    try {
      return (await fetchCurrentUser()) === null;
    } catch {
      return false; // unreachable: keep trying
    }
  }

  scheduleReconnect(restart = false) {
    clearTimeout(this.retryTimer);
    const delay = backoffDelay(this.attempt, restart ? RESTART_FIRST_MS : BACKOFF_FIRST_MS);
    this.attempt += 1;
    this.setState('reconnecting', { retryInMs: delay });
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  /** The browser is back online: do not sit out the rest of a long wait. */
  retryNow() {
    if (this.state !== 'reconnecting') return;
    clearTimeout(this.retryTimer);
    this.open();
  }

  startPinging() {
    this.stopPinging();
    this.lastHeard = Date.now();
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastHeard > SILENCE_TIMEOUT_MS) {
        // The network went away without closing the socket: do not wait for TCP.
        const ws = this.ws;
        this.detach();
        this.onClose(1006, 'no answer', true);
        ws?.close();
        return;
      }
      this.send({ type: 'ping' });
    }, PING_INTERVAL_MS);
  }

  stopPinging() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  /** Forgets the current WebSocket (closing it) without reacting to its close. */
  detach() {
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, 'reconnecting');
  }

  finish(state, reason) {
    clearTimeout(this.retryTimer);
    this.stopPinging();
    this.detach();
    this.setState(state, { reason: reason || null });
  }

  setState(state, extra = {}) {
    this.state = state;
    this.emit('status', { state, ...extra });
  }
}

function socketUrl(path) {
  const url = new URL(path, location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

function parseFrame(data) {
  if (typeof data !== 'string') return null;
  try {
    const frame = JSON.parse(data);
    return frame && typeof frame.type === 'string' ? frame : null;
  } catch {
    return null;
  }
}
