// /admin: the admin console. Each tab appears only to users with the permission
// that guards its endpoints; the live sessions tab follows the WebSocket.

import { initBans } from '../admin/bans.js';
import { initLog } from '../admin/logs.js';
import { initRoles } from '../admin/roles.js';
import { initSessions } from '../admin/sessions.js';
import { initUsers } from '../admin/users.js';
import { byId, show, showMessage } from '../dom.js';
import { describeError } from '../errors.js';
import { CHOOSE_USERNAME } from '../paths.js';
import { hasPermission, needsUsername, reloadWhenRestoredFromCache, requireUser } from '../session.js';
import { Socket } from '../socket.js';
import { showAccountNav, wireSignOut } from '../topbar.js';

const notice = byId('notice');
const tabList = byId('tabs');
/** tab name -> {tab, panel, show()} for the tabs this user may see. */
const tabs = new Map();
let socket = null;

reloadWhenRestoredFromCache();
wireSignOut(showNotice);

start();

async function start() {
  try {
    const user = await requireUser();
    if (!user) return;
    if (needsUsername(user)) {
      location.replace(CHOOSE_USERNAME);
      return;
    }
    showAccountNav(user);
    setUpTabs(user);
    if (tabs.size === 0) {
      showMessage(notice, 'Your account has no admin permissions. Ask an administrator if you need them.');
      return;
    }
    show(byId('console'), true);
    selectTab(tabFromHash() ?? tabs.keys().next().value, { focus: false });
  } catch (error) {
    showNotice(error);
  } finally {
    show(byId('loading'), false);
  }
}

function setUpTabs(user) {
  const makers = {
    sessions: () => {
      socket = new Socket();
      initSessions({ user, socket });
      socket.connect();
      return { show() {} };
    },
    users: () => initUsers({ user }),
    roles: () => initRoles(),
    bans: () => initBans(),
    logs: () => initLog('logs'),
    messages: () => initLog('messages'),
  };
  for (const tab of tabList.querySelectorAll('[role="tab"]')) {
    const name = tab.dataset.tab;
    if (!hasPermission(user, tab.dataset.permission)) continue;
    const panel = byId(tab.getAttribute('aria-controls'));
    tabs.set(name, { tab, panel, ...makers[name]() });
    show(tab, true);
    tab.addEventListener('click', () => selectTab(name));
  }
  tabList.addEventListener('keydown', onTabKey);
  window.addEventListener('hashchange', () => {
    const name = tabFromHash();
    if (name) selectTab(name, { focus: false });
  });
}

function tabFromHash() {
  const name = location.hash.slice(1);
  return tabs.has(name) ? name : null;
}

function selectTab(name, { focus = true } = {}) {
  for (const [other, entry] of tabs) {
    const selected = other === name;
    entry.tab.setAttribute('aria-selected', String(selected));
    entry.tab.tabIndex = selected ? 0 : -1;
    show(entry.panel, selected);
  }
  const entry = tabs.get(name);
  if (focus) entry.tab.focus();
  if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
  entry.show();
}

/** Arrow keys, Home and End move between tabs (the ARIA tabs pattern). */
function onTabKey(event) {
  const names = [...tabs.keys()];
  const current = names.findIndex((name) => tabs.get(name).tab === document.activeElement);
  if (current < 0) return;
  const moves = {
    ArrowRight: (current + 1) % names.length,
    ArrowLeft: (current - 1 + names.length) % names.length,
    Home: 0,
    End: names.length - 1,
  };
  if (!(event.key in moves)) return;
  event.preventDefault();
  selectTab(names[moves[event.key]]);
}

function showNotice(error) {
  showMessage(notice, describeError(error));
}
