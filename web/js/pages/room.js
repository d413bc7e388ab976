// /room/CODE: a room's chat, members and voice over the page's WebSocket.

import { api, ApiError } from '../api.js';
import { wireAttachments } from '../attachments.js';
import { ChatLog, MAX_MESSAGE_CHARS, characterCount } from '../chat.js';
import { byId, setText, show, showMessage } from '../dom.js';
import { describeError, messageForCode } from '../errors.js';
import { clearStatus, onSubmit, showStatus } from '../forms.js';
import { MemberList } from '../members.js';
import { CHOOSE_USERNAME, LOGIN, roomPath } from '../paths.js';
import { hasPermission, needsUsername, reloadWhenRestoredFromCache, requireUser } from '../session.js';
import { Socket } from '../socket.js';
import { showAccountNav, wireSignOut } from '../topbar.js';
import { Voice, VoiceError } from '../voice.js';

const notice = byId('notice');
const composer = byId('composer');
const textarea = byId('message-text');
const connection = byId('connection');

let user = null;
let roomCode = roomCodeFromPath();
let joinedOnce = false;
/** REQUIRE_VERIFIED_EMAIL refused the join; a `user` frame says when to try again. */
let waitingForVerification = false;

wireAttachments({
  room: () => roomCode,
  fileInput: byId('attach-file'),
  recordButton: byId('record-note'),
  status: byId('attach-status'),
});

const socket = new Socket();
const members = new MemberList({
  list: byId('members'),
  count: byId('member-count'),
  ownSid: () => socket.sid,
});
const chat = new ChatLog({
  list: byId('messages'),
  scroller: byId('message-scroller'),
  olderButton: byId('load-older'),
  beginning: byId('beginning'),
  send: (frame) => socket.send(frame),
  ownUserId: () => user?.id,
  avatarOf: (userId) => members.avatarOf(userId),
});
const voice = new Voice({
  socket,
  members: () => members.all(),
  audioContainer: byId('remote-audio'),
  onChange: renderVoice,
  onSpeaking: (sid, speaking) => members.setSpeaking(sid, speaking),
  onNotice: (message) => setText(byId('voice-problem'), message),
  onPeer: renderVoice,
});

// Test hook: the browser tests read the peer connections from here (no secrets).
window.__switchboard = { socket, voice, chat, members };

reloadWhenRestoredFromCache();
wireSignOut(showNotice);
wireComposer();
wireVoiceControls();
byId('copy-invite').addEventListener('click', copyInvite);
byId('load-older').addEventListener('click', loadOlder);
byId('reconnect').addEventListener('click', () => {
  show(byId('ended'), false);
  socket.connect();
});
wireSocket();

start();

function roomCodeFromPath() {
  const match = /^\/room\/([^/]+)\/?$/.exec(location.pathname);
  if (!match) return null;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return null;
  }
}

async function start() {
  try {
    user = await requireUser();
    if (!user) return;
    if (needsUsername(user)) {
      location.replace(CHOOSE_USERNAME);
      return;
    }
    showAccountNav(user);
    showUploadTools(user);
    if (!roomCode) {
      showMessage(notice, 'This address does not name a room. Check the link you were given.');
      return;
    }
    const room = await api('GET', `/api/rooms/${encodeURIComponent(roomCode)}`);
    showRoom(room);
    show(byId('room'), true);
    chat.reset(room.code);
    socket.joinRoom(room.code);
    socket.connect();
  } catch (error) {
    if (error instanceof ApiError && error.code === 'not_found') {
      showMessage(notice, 'There is no room with this code. It may have been mistyped, or the room was removed.');
    } else {
      showNotice(error);
    }
  } finally {
    show(byId('loading'), false);
  }
}

function showRoom(room) {
  roomCode = room.code;
  setText(byId('room-name'), room.name);
  setText(byId('room-code'), room.code);
  document.title = `${room.name} · Switchboard`;
}

// The socket

function wireSocket() {
  socket.on('status', renderConnection);
  socket.on('joined', onJoined);
  socket.on('message', (message) => {
    if (message.room === roomCode) chat.receive(message);
  });
  socket.on('member_joined', ({ member }) => {
    members.add(member);
    if (member) chat.refreshAvatars(member.user_id);
  });
  // A member's new name or picture; their messages keep the name they were sent with.
  socket.on('member_updated', ({ member }) => {
    if (!member) return;
    members.update(member);
    chat.refreshAvatars(member.user_id);
  });
  socket.on('member_left', ({ sid }) => {
    members.remove(sid);
    voice.memberLeft(sid);
  });
  socket.on('voice_state', (state) => {
    members.setVoice(state.sid, state);
    voice.memberVoiceChanged(state.sid, state.in_voice);
    if (state.sid === socket.sid) renderVoice();
  });
  socket.on('voice_moderated', ({ server_muted: muted, server_deafened: deafened, reason }) => {
    const what = deafened ? 'deafened' : muted ? 'muted' : 'no longer muted or deafened';
    showMessage(byId('room-notice'), `A moderator has ${what} you${reason ? `: ${reason}` : '.'}`);
    renderVoice();
  });
  socket.on('moved', onMoved);
  socket.on('error', onSocketError);
  // An admin changed this user's roles or permissions, or they changed their name
  // or picture elsewhere.
  socket.on('user', ({ user: current }) => {
    if (!current) return;
    const nowVerified = current.email_verified && !user?.email_verified;
    user = current;
    showUploadTools(current);
    // Confirmed in another tab (REQUIRE_VERIFIED_EMAIL): in we go.
    if (nowVerified && waitingForVerification) {
      waitingForVerification = false;
      show(byId('room-notice'), false);
      socket.joinRoom(roomCode);
    }
  });
}

/** Files and voice notes are for those who hold `files.upload` (guests do not, by default). */
function showUploadTools(current) {
  show(byId('attach-tools'), hasPermission(current, 'files.upload'));
}

async function onJoined(frame) {
  const code = frame.room?.code;
  if (!code) return;
  const rejoin = joinedOnce && code === chat.room;
  joinedOnce = true;
  if (code !== chat.room) chat.reset(code);
  if (code !== roomCode || location.pathname !== roomPath(code)) {
    history.replaceState(null, '', roomPath(code));
  }
  showRoom(frame.room);
  members.reset(frame.members ?? []);
  enableRoomControls(true);
  if (rejoin) voice.rejoin();
  try {
    await chat.applyHistory(frame.history ?? [], { rejoin });
  } catch (error) {
    showStatus(composer, `Some messages could not be loaded: ${describeError(error)}`, 'error');
  }
}

function onMoved({ room }) {
  if (!room?.code) return;
  // The server has taken this session out of the old room and its voice.
  const wasInVoice = voice.inVoice;
  voice.leave({ notify: false });
  chat.reset(null); // the `joined` that follows fills it for the new room
  members.reset([]);
  showRoom(room);
  history.replaceState(null, '', roomPath(room.code));
  const voiceNote = wasInVoice ? ' You left voice; join again when you are ready.' : '';
  showMessage(byId('room-notice'), `A moderator moved you to “${room.name}”.${voiceNote}`);
}

/** Signalling refusals from a voice race (a peer left voice or the room meanwhile). */
const VOICE_RACE_CODES = new Set(['not_in_voice']);

function onSocketError(frame) {
  if (frame.code === 'sfu_unavailable') return; // the voice module reports it
  if (frame.code === 'email_unverified') {
    waitingForVerification = true;
    showMessage(byId('room-notice'), messageForCode('email_unverified'));
    return;
  }
  if (VOICE_RACE_CODES.has(frame.code)) return;
  if (frame.code === 'rate_limited') chat.failOldestPending();
  const message = messageForCode(frame.code) ?? (frame.message || 'The server refused that.');
  showStatus(composer, message, frame.code === 'server_restarting' ? 'info' : 'error');
}

const CONNECTION_TEXT = {
  connecting: 'Connecting…',
  open: 'Connected',
  closed: 'Disconnected',
};

function renderConnection({ state, reason, retryInMs }) {
  connection.dataset.state = state;
  if (state === 'reconnecting') {
    const seconds = Math.max(1, Math.round(retryInMs / 1000));
    setText(connection, `Connection lost. Trying again in ${seconds} s…`);
    enableRoomControls(false);
    if (voice.inVoice || voice.joining) {
      // The peers are gone with the session; voice starts again after the rejoin.
      for (const sid of [...voice.peers.keys()]) voice.closePeer(sid);
      voice.closeSfu();
    }
    return;
  }
  if (state === 'kicked' || state === 'banned' || state === 'signed-out') {
    endSession(state, reason);
    return;
  }
  setText(connection, CONNECTION_TEXT[state] ?? state);
  if (state === 'open') show(byId('ended'), false);
}

function endSession(state, reason) {
  voice.leave({ notify: false });
  if (state === 'signed-out') {
    // Signed out here or elsewhere, or this session ended from another device:
    // off to the sign-in page, which brings the person back to this room.
    location.replace(`${LOGIN}?next=${encodeURIComponent(location.pathname)}`);
    return;
  }
  members.reset([]); // no longer in the room, so no longer shown who is
  enableRoomControls(false);
  setText(connection, 'Disconnected');
  const because = reason ? ` Reason: ${reason}` : '';
  const text = {
    kicked: `You were removed from the room by a moderator.${because}`,
    banned: `You are banned from this server.${because}`,
  }[state];
  setText(byId('ended-text'), text);
  show(byId('reconnect'), state === 'kicked');
  show(byId('ended'), true);
}

function enableRoomControls(enabled) {
  byId('voice-join').disabled = !enabled && !voice.inVoice;
  // The server takes files only from someone in the room right now.
  byId('attach-file').disabled = !enabled;
  byId('record-note').disabled = !enabled;
}

// The message box

function wireComposer() {
  onSubmit(composer, sendMessage, { validate: validateMessage });
  textarea.addEventListener('keydown', (event) => {
    if (event.key !== 'Enter' || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    if (messageText() === '') return;
    composer.requestSubmit();
  });
  textarea.addEventListener('input', () => {
    renderCount();
    // A complaint about the text goes once the text is fixed.
    const status = composer.querySelector('.form-status');
    if (status.dataset.kind === 'error' && Object.keys(validateMessage()).length === 0) clearStatus(composer);
  });
}

/** The text to send: without blank lines before it or white space after it. */
function messageText() {
  return textarea.value.replace(/^(\s*\n)+/, '').trimEnd();
}

function validateMessage() {
  const count = characterCount(messageText());
  if (count === 0) return { text: 'Write a message first.' };
  if (count > MAX_MESSAGE_CHARS) {
    return { text: `A message has at most ${MAX_MESSAGE_CHARS} characters; this one has ${count}.` };
  }
  return {};
}

function sendMessage() {
  chat.post(messageText());
  textarea.value = '';
  renderCount();
  clearStatus(composer);
  if (!socket.isOpen) showStatus(composer, 'Not connected: the message goes out when the connection is back.', 'info');
  textarea.focus();
}

function renderCount() {
  const count = characterCount(textarea.value);
  const counter = byId('message-count');
  setText(counter, `${count} / ${MAX_MESSAGE_CHARS}`);
  counter.classList.toggle('char-count-over', count > MAX_MESSAGE_CHARS);
}

async function loadOlder() {
  try {
    const loaded = await chat.loadOlder();
    if (loaded === 0) setText(byId('beginning'), 'This is the beginning of the room.');
  } catch (error) {
    showStatus(composer, describeError(error), 'error');
  }
}

// Voice

function wireVoiceControls() {
  byId('voice-join').addEventListener('click', joinVoice);
  byId('voice-leave').addEventListener('click', () => {
    voice.leave();
    byId('voice-join').focus();
  });
  byId('voice-mute').addEventListener('click', () => voice.toggleMute());
}

async function joinVoice() {
  setText(byId('voice-problem'), '');
  if (!socket.isOpen) {
    setText(byId('voice-problem'), 'Not connected to the server yet. Try again in a moment.');
    return;
  }
  try {
    await voice.join();
    byId('voice-mute').focus();
  } catch (error) {
    setText(byId('voice-problem'), error instanceof VoiceError ? error.message : describeError(error));
  }
}

function renderVoice() {
  const inVoice = voice.inVoice;
  const join = byId('voice-join');
  const mute = byId('voice-mute');
  show(join, !inVoice);
  join.setAttribute('aria-disabled', String(voice.joining));
  setText(join, voice.joining ? 'Joining…' : 'Join voice');
  show(mute, inVoice);
  show(byId('voice-leave'), inVoice);
  mute.setAttribute('aria-pressed', String(voice.muted));
  setText(mute, voice.muted ? 'Unmute' : 'Mute');
  const own = members.get(socket.sid);
  const serverSilenced = Boolean(own?.server_muted || own?.server_deafened);
  mute.disabled = serverSilenced;

  const status = byId('voice-status');
  let state = 'off';
  let text = 'You are not in voice.';
  if (voice.joining) {
    state = 'joining';
    text = 'Joining voice…';
  } else if (inVoice) {
    state = voice.muted ? 'muted' : 'on';
    const others = voice.sfu ? serverVoiceStatus(voice.sfu) : meshStatus([...voice.peers.values()]);
    text = voice.muted ? `In voice, muted: the others cannot hear you. ${others}` : `In voice. ${others}`;
    if (own?.server_deafened) text = `In voice, deafened by a moderator: you hear nobody and nobody hears you.`;
    else if (own?.server_muted) text = `In voice, muted by a moderator: the others cannot hear you. ${others}`;
  }
  status.dataset.state = state;
  setText(status, text);
}

function meshStatus(peers) {
  const connected = peers.filter((peer) => peer.pc.connectionState === 'connected').length;
  return peers.length === 0 ? 'Nobody else is in voice yet.' : `Connected to ${connected} of ${peers.length}.`;
}

function serverVoiceStatus(link) {
  if (link.state === 'connected') return 'Connected through the server.';
  if (link.state === 'failed') return 'The connection to the server failed.';
  return 'Connecting through the server…';
}

// Invite link

async function copyInvite() {
  const link = new URL(roomPath(roomCode), location.origin).href;
  const status = byId('invite-status');
  try {
    if (!navigator.clipboard) throw new Error('no clipboard');
    await navigator.clipboard.writeText(link);
    setText(status, 'Invite link copied.');
  } catch {
    setText(status, `Copy this link: ${link}`);
  }
}

function showNotice(error) {
  showMessage(notice, describeError(error));
}
