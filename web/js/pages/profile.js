// /profile: the signed-in user's account, display name and picture, email
// address (./email-settings.js), a new username, a new password, two-factor
// sign-in with its recovery codes, and where they are signed in.

import { shortAgent } from '../agents.js';
import { api, ApiError } from '../api.js';
import { AVATAR_MAX_BYTES, avatar } from '../avatars.js';
import { byId, h, setText, show, showMessage } from '../dom.js';
import { describeError } from '../errors.js';
import { fieldText, onSubmit, showStatus } from '../forms.js';
import { CHOOSE_USERNAME } from '../paths.js';
import { needsUsername, reloadWhenRestoredFromCache, requireUser } from '../session.js';
import { initEmailSettings } from '../email-settings.js';
import { dateTime, timeElement } from '../time.js';
import { showAccountNav, wireSignOut } from '../topbar.js';
import { confirmationProblem, passwordProblem, problems, usernameProblem } from '../validation.js';

const notice = byId('notice');
const displayNameForm = byId('display-name-form');
const usernameForm = byId('username-form');
const passwordForm = byId('password-form');
const totpEnableForm = byId('totp-enable-form');
const totpDisableForm = byId('totp-disable-form');
const recoveryForm = byId('recovery-form');

reloadWhenRestoredFromCache();
wireSignOut(showNotice);
onSubmit(displayNameForm, changeDisplayName, {
  validate: () => problems({ display_name: fieldText(displayNameForm, 'display_name') ? null : 'Display name: enter a name.' }),
});
byId('avatar-file').addEventListener('change', () => uploadAvatar().catch(showAvatarError));
byId('avatar-remove').addEventListener('click', () => removeAvatar().catch(showAvatarError));
onSubmit(usernameForm, changeUsername, {
  validate: () => problems({ username: usernameProblem(fieldText(usernameForm, 'username')) }),
});
onSubmit(passwordForm, changePassword, { validate: validatePassword });
byId('totp-start').addEventListener('click', () => startTotp().catch(showNotice));
onSubmit(totpEnableForm, enableTotp, { validate: () => codeProblems(totpEnableForm) });
onSubmit(totpDisableForm, disableTotp, { validate: () => codeProblems(totpDisableForm, { recovery: true }) });
onSubmit(recoveryForm, renewRecoveryCodes, { validate: () => codeProblems(recoveryForm) });
wireRecoveryCodes();
byId('end-other-sessions').addEventListener('click', () => endOtherSessions().catch(showSessionsError));

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
    renderUser(user);
    initEmailSettings({ user, config: await api('GET', '/api/auth/config'), onChange: renderUser });
    show(byId('profile'), true);
    noticeAfterRecoveryCode();
    await loadSessions();
  } catch (error) {
    showNotice(error);
  } finally {
    show(byId('loading'), false);
  }
}

/** After a sign-in with a recovery code (the login page sends the count here). */
function noticeAfterRecoveryCode() {
  const params = new URLSearchParams(location.search);
  const left = params.get('recovery_codes_left');
  if (left === null || !/^\d+$/.test(left)) return;
  history.replaceState(null, '', location.pathname);
  const count = Number(left);
  showMessage(
    notice,
    `You signed in with a recovery code; ${count === 1 ? '1 code is' : `${count} codes are`} left. ` +
      'If you lost your authenticator app, turn two-factor sign-in off below (a recovery code does) and set it up again.',
  );
}

function renderUser(user) {
  setText(byId('profile-display-name'), user.display_name || user.username);
  setText(byId('profile-username'), `@${user.username}`);
  setText(byId('profile-email'), user.email ?? 'None (guest)');
  const roles = [...(user.roles ?? [])];
  if (user.guest && !roles.includes('guest')) roles.push('guest');
  setText(byId('profile-roles'), roles.length ? roles.join(', ') : 'None');
  setText(byId('profile-totp'), user.totp_enabled ? 'On' : 'Off');
  setText(byId('profile-created'), dateTime(user.created_at));
  // Guests keep the name they chose and their generated username, and have no
  // password or picture (the server refuses them all).
  show(byId('name-section'), !user.guest);
  byId('display-name').value = user.display_name ?? '';
  byId('avatar-preview').replaceChildren(avatar(user.avatar_url, user.display_name || user.username, 'avatar-large'));
  show(byId('avatar-remove'), Boolean(user.avatar_url));
  show(byId('username-section'), !user.guest);
  show(byId('password-section'), !user.guest);
  show(byId('guest-section'), user.guest === true);
  renderTotp(user);
  const login = passwordForm.elements.namedItem('login');
  login.defaultValue = user.username; // tells password managers whose password changes
}

async function changeDisplayName() {
  const { user } = await api('PATCH', '/api/me', { display_name: fieldText(displayNameForm, 'display_name') });
  renderUser(user);
  showStatus(displayNameForm, `Others now see you as ${user.display_name}.`, 'success');
}

async function uploadAvatar() {
  const input = byId('avatar-file');
  const file = input.files?.[0];
  if (!file) return;
  input.value = ''; // choosing the same file again is a new choice
  if (file.size > AVATAR_MAX_BYTES) {
    setText(byId('avatar-status'), 'That picture is larger than 1 MB: choose a smaller one.');
    return;
  }
  const form = new FormData();
  form.append('file', file, file.name);
  setText(byId('avatar-status'), 'Uploading…');
  const { user } = await api('POST', '/api/me/avatar', form);
  renderUser(user);
  setText(byId('avatar-status'), 'Your picture is changed.');
}

async function removeAvatar() {
  const { user } = await api('DELETE', '/api/me/avatar');
  renderUser(user);
  setText(byId('avatar-status'), 'Your picture is removed.');
}

function showAvatarError(error) {
  setText(byId('avatar-status'), describeError(error));
}

async function changeUsername() {
  const { user } = await api('POST', '/api/me/username', { username: fieldText(usernameForm, 'username') });
  usernameForm.reset();
  renderUser(user);
  showStatus(usernameForm, `Your username is now @${user.username}.`, 'success');
}

function validatePassword() {
  const password = byId('new-password').value;
  return problems({
    new_password: passwordProblem(password),
    new_password_confirm: confirmationProblem(password, byId('new-password-confirm').value),
  });
}

async function changePassword() {
  try {
    await api('POST', '/api/me/password', {
      current_password: byId('current-password').value,
      new_password: byId('new-password').value,
    });
  } catch (error) {
    if (error instanceof ApiError && error.code === 'invalid_credentials') {
      byId('current-password').setAttribute('aria-invalid', 'true');
      byId('current-password').focus();
      showStatus(passwordForm, 'The current password is not right.', 'error');
      return;
    }
    if (error instanceof ApiError && error.code === 'forbidden') {
      showStatus(passwordForm, 'This account signs in with single sign-on and has no password here.', 'error');
      return;
    }
    throw error;
  }
  passwordForm.reset();
  showStatus(passwordForm, 'Password changed. Your other sessions have been signed out.', 'success');
  await loadSessions();
}

function renderTotp(user) {
  show(byId('totp-section'), !user.guest);
  show(byId('totp-off'), !user.totp_enabled);
  show(totpEnableForm, false);
  show(totpDisableForm, user.totp_enabled === true);
  show(recoveryForm, user.totp_enabled === true);
  if (user.totp_enabled) showRemainingCodes().catch(showNotice);
}

/** Six digits from the app; where `recovery` allows, a recovery code (xxxx-xxxx-xxxx) too. */
function codeProblems(form, { recovery = false } = {}) {
  const code = fieldText(form, 'code');
  if (/^[0-9]{6}$/.test(code)) return {};
  if (recovery && /^[0-9a-z]{4}-?[0-9a-z]{4}-?[0-9a-z]{4}$/i.test(code)) return {};
  return problems({
    code: recovery ? 'Enter the 6 digits the app shows, or a recovery code.' : 'Enter the 6 digits the app shows.',
  });
}

async function startTotp() {
  const { secret, otpauth_url: url } = await api('POST', '/api/me/totp/setup');
  // Groups of four are easier to type; authenticator apps ignore the spaces.
  setText(byId('totp-secret'), secret.match(/.{1,4}/g).join(' '));
  byId('totp-link').setAttribute('href', url);
  // The server draws the QR code of this set-up's key; a new set-up, a new picture.
  byId('totp-qr').setAttribute('src', `/api/me/totp/qr?setup=${Date.now()}`);
  show(byId('totp-off'), false);
  show(totpEnableForm, true);
  byId('totp-code').focus();
}

async function enableTotp() {
  const { user, recovery_codes: codes } = await api('POST', '/api/me/totp/enable', {
    code: fieldText(totpEnableForm, 'code'),
  });
  totpEnableForm.reset();
  byId('totp-qr').removeAttribute('src');
  renderUser(user);
  showStatus(totpDisableForm, 'Two-factor sign-in is on: sign-ins now ask for a code.', 'success');
  showRecoveryCodes(codes);
}

async function disableTotp() {
  const body = { code: fieldText(totpDisableForm, 'code') };
  // Not trimmed: spaces can be part of a password.
  const password = byId('totp-off-password').value;
  if (password !== '') body.password = password;
  try {
    const { user } = await api('POST', '/api/me/totp/disable', body);
    totpDisableForm.reset();
    hideRecoveryCodes();
    renderUser(user);
  } catch (error) {
    if (error instanceof ApiError && error.code === 'invalid_credentials') {
      showStatus(totpDisableForm, 'The password or the code is not right (each code works once).', 'error');
      return;
    }
    throw error;
  }
}

// Recovery codes: shown once, when two-factor sign-in is turned on or the codes renewed.

async function showRemainingCodes() {
  const { remaining } = await api('GET', '/api/me/totp/recovery-codes');
  const text =
    remaining === 0
      ? 'You have no unused recovery codes left: get new ones below.'
      : `You have ${remaining} unused recovery code${remaining === 1 ? '' : 's'}.`;
  setText(byId('recovery-remaining'), text);
}

async function renewRecoveryCodes() {
  const body = { code: fieldText(recoveryForm, 'code') };
  const password = byId('recovery-password').value;
  if (password !== '') body.password = password;
  try {
    const { recovery_codes: codes } = await api('POST', '/api/me/totp/recovery-codes', body);
    recoveryForm.reset();
    showRecoveryCodes(codes);
    await showRemainingCodes();
  } catch (error) {
    if (error instanceof ApiError && error.code === 'invalid_credentials') {
      showStatus(recoveryForm, 'The password or the code is not right (each code works once).', 'error');
      return;
    }
    throw error;
  }
}

let downloadUrl = null;

function wireRecoveryCodes() {
  byId('recovery-copy').addEventListener('click', copyRecoveryCodes);
  byId('recovery-saved').addEventListener('click', hideRecoveryCodes);
}

function showRecoveryCodes(codes) {
  const list = byId('recovery-code-list');
  list.replaceChildren(...codes.map((code) => h('li', {}, h('code', {}, code))));
  if (downloadUrl) URL.revokeObjectURL(downloadUrl);
  const text = `Switchboard recovery codes for ${location.host}\nEach code signs you in once in place of an authenticator code.\n\n${codes.join('\n')}\n`;
  downloadUrl = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
  byId('recovery-download').setAttribute('href', downloadUrl);
  setText(byId('recovery-copy-status'), '');
  const panel = byId('recovery-codes-shown');
  show(panel, true);
  panel.focus();
}

/** Takes the codes off the page (and out of memory, as far as the page can). */
function hideRecoveryCodes() {
  byId('recovery-code-list').replaceChildren();
  if (downloadUrl) URL.revokeObjectURL(downloadUrl);
  downloadUrl = null;
  byId('recovery-download').setAttribute('href', '/profile');
  show(byId('recovery-codes-shown'), false);
}

async function copyRecoveryCodes() {
  const codes = [...byId('recovery-code-list').querySelectorAll('code')].map((code) => code.textContent);
  const status = byId('recovery-copy-status');
  try {
    if (!navigator.clipboard) throw new Error('no clipboard');
    await navigator.clipboard.writeText(codes.join('\n'));
    setText(status, 'Copied. Paste them somewhere safe.');
  } catch {
    setText(status, 'Copying is not possible here: select the codes and copy them, or download the file.');
  }
}

function showNotice(error) {
  showMessage(notice, describeError(error));
}

// Where the user is signed in

async function loadSessions() {
  const { sessions } = await api('GET', '/api/me/sessions');
  byId('own-sessions').replaceChildren(...sessions.map(sessionItem));
  show(byId('end-other-sessions'), sessions.some((session) => !session.current));
}

function sessionItem(session) {
  const browser = shortAgent(session.user_agent) || 'An unknown browser';
  return h(
    'li',
    { class: 'own-session', 'data-session': session.id },
    h(
      'div',
      { class: 'own-session-facts' },
      h(
        'span',
        { class: 'strong', title: session.user_agent || null },
        browser,
        session.current ? h('span', { class: 'badge' }, 'This browser') : null,
      ),
      h('span', { class: 'muted' }, `From ${session.ip} · last active `, timeElement(session.last_seen_at)),
      h('span', { class: 'muted' }, 'Signed in ', timeElement(session.created_at)),
    ),
    session.current
      ? null
      : h(
          'button',
          {
            type: 'button',
            class: 'button button-small',
            'aria-label': `End the session of ${browser} from ${session.ip}`,
            onclick: () => endSession(session, browser).catch(showSessionsError),
          },
          'End',
        ),
  );
}

async function endSession(session, browser) {
  await api('DELETE', `/api/me/sessions/${encodeURIComponent(session.id)}`);
  await loadSessions();
  setText(byId('sessions-status'), `${browser} from ${session.ip} is signed out.`);
}

async function endOtherSessions() {
  const { ended } = await api('POST', '/api/me/sessions/end-others');
  await loadSessions();
  const text = ended === 0 ? 'You were signed in nowhere else.' : `Signed out everywhere else (${ended} ${ended === 1 ? 'session' : 'sessions'}).`;
  setText(byId('sessions-status'), text);
}

function showSessionsError(error) {
  setText(byId('sessions-status'), describeError(error));
}
