// /: the signed-in home page: who is signed in, and the ways into a room.

import { api } from '../api.js';
import { byId, h, setText, show, showMessage } from '../dom.js';
import { describeError } from '../errors.js';
import { fieldText, onSubmit, showStatus } from '../forms.js';
import { CHOOSE_USERNAME, roomPath } from '../paths.js';
import { hasPermission, needsUsername, reloadWhenRestoredFromCache, requireUser } from '../session.js';
import { dateTime } from '../time.js';
import { showAccountNav, wireSignOut } from '../topbar.js';

const CREATE_PERMISSION = 'rooms.create';

const notice = byId('notice');
const createForm = byId('create-room-form');
const joinForm = byId('join-room-form');
let createdRoomUrl = null;

reloadWhenRestoredFromCache();
onSubmit(createForm, createRoom);
onSubmit(joinForm, joinRoom, { validate: validateJoin });
wireSignOut(showNotice);
byId('copy-room-link').addEventListener('click', copyRoomLink);
byId('retry').addEventListener('click', start);

start();

async function start() {
  show(notice, false);
  show(byId('retry'), false);
  show(byId('loading'), true);
  try {
    const user = await requireUser();
    if (!user) return;
    if (needsUsername(user)) {
      location.replace(CHOOSE_USERNAME);
      return;
    }
    renderUser(user);
    loadRecentRooms();
  } catch (error) {
    showNotice(error);
    show(byId('retry'), true);
  } finally {
    show(byId('loading'), false);
  }
}

function renderUser(user) {
  setText(byId('display-name'), user.display_name || user.username);
  setText(byId('username'), `(@${user.username})`);
  show(byId('admin-badge'), user.is_admin === true);
  show(byId('guest-badge'), user.guest === true);
  show(byId('create-section'), hasPermission(user, CREATE_PERMISSION));
  showAccountNav(user);
  show(byId('home'), true);
}

async function loadRecentRooms() {
  const list = byId('recent-rooms');
  show(byId('recent-error'), false);
  try {
    const { rooms } = await api('GET', '/api/me/rooms');
    list.replaceChildren(...rooms.map(recentRoomItem));
    show(list, rooms.length > 0);
    show(byId('recent-empty'), rooms.length === 0);
  } catch (error) {
    showMessage(byId('recent-error'), `Your recent rooms could not be loaded. ${describeError(error)}`);
  } finally {
    show(byId('recent-loading'), false);
  }
}

function recentRoomItem(room) {
  return h(
    'li',
    {},
    h('a', { class: 'room-link', href: roomPath(room.code) }, room.name),
    h('span', { class: 'muted room-list-meta' }, room.code === 'lobby' ? 'lobby' : `created ${dateTime(room.created_at)}`),
  );
}

async function createRoom() {
  const room = await api('POST', '/api/rooms', { name: fieldText(createForm, 'name') });
  createForm.reset();
  showCreatedRoom(room);
  showStatus(createForm, `Room “${room.name}” created.`, 'success');
}

function showCreatedRoom(room) {
  const path = roomPath(room.code);
  createdRoomUrl = new URL(path, location.origin).href;
  setText(byId('created-room-name'), room.name);
  setText(byId('created-room-code'), room.code);
  const link = byId('created-room-link');
  link.href = path;
  // The Clipboard API exists only in secure contexts (https or localhost).
  show(byId('copy-room-link'), Boolean(navigator.clipboard));
  show(byId('created-room'), true);
  link.focus();
}

async function copyRoomLink() {
  try {
    await navigator.clipboard.writeText(createdRoomUrl);
    showStatus(createForm, 'Link copied.', 'success');
  } catch {
    showStatus(createForm, 'The link could not be copied. Open the room and copy its address.', 'error');
  }
}

function validateJoin() {
  const code = roomCodeFrom(fieldText(joinForm, 'code'));
  if (code === '' || /[\s/]/.test(code)) {
    return { code: 'Room code: enter the code you were given, or paste the room link.' };
  }
  return {};
}

function joinRoom() {
  location.assign(roomPath(roomCodeFrom(fieldText(joinForm, 'code'))));
}

/** Accepts a bare code or a pasted room link (https://host/room/CODE). */
function roomCodeFrom(input) {
  const match = /\/room\/([^/?#\s]+)/.exec(input);
  if (!match) return input;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return match[1];
  }
}

function showNotice(error) {
  showMessage(notice, describeError(error));
}
