// /profile: the signed-in user's account, a new username, a new password,
// two-factor sign-in.

import { api, ApiError } from '../api.js';
import { byId, setText, show, showMessage } from '../dom.js';
import { describeError } from '../errors.js';
import { fieldText, onSubmit, showStatus } from '../forms.js';
import { CHOOSE_USERNAME } from '../paths.js';
import { needsUsername, reloadWhenRestoredFromCache, requireUser } from '../session.js';
import { initEmailSettings } from '../email-settings.js';
import { dateTime } from '../time.js';
import { showAccountNav, wireSignOut } from '../topbar.js';
import { confirmationProblem, passwordProblem, problems, usernameProblem } from '../validation.js';

const notice = byId('notice');
const usernameForm = byId('username-form');
const passwordForm = byId('password-form');
const totpEnableForm = byId('totp-enable-form');
const totpDisableForm = byId('totp-disable-form');

reloadWhenRestoredFromCache();
wireSignOut(showNotice);
onSubmit(usernameForm, changeUsername, {
  validate: () => problems({ username: usernameProblem(fieldText(usernameForm, 'username')) }),
});
onSubmit(passwordForm, changePassword, { validate: validatePassword });
byId('totp-start').addEventListener('click', () => startTotp().catch(showNotice));
onSubmit(totpEnableForm, enableTotp, { validate: () => codeProblems(totpEnableForm) });
onSubmit(totpDisableForm, disableTotp, { validate: () => codeProblems(totpDisableForm) });

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
  } catch (error) {
    showNotice(error);
  } finally {
    show(byId('loading'), false);
  }
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
  // Guests keep their generated name and have no password (the server refuses both).
  show(byId('username-section'), !user.guest);
  show(byId('password-section'), !user.guest);
  show(byId('guest-section'), user.guest === true);
  renderTotp(user);
  const login = passwordForm.elements.namedItem('login');
  login.defaultValue = user.username; // tells password managers whose password changes
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
}

function renderTotp(user) {
  show(byId('totp-section'), !user.guest);
  show(byId('totp-off'), !user.totp_enabled);
  show(totpEnableForm, false);
  show(totpDisableForm, user.totp_enabled === true);
}

function codeProblems(form) {
  const code = fieldText(form, 'code');
  return problems({ code: /^[0-9]{6}$/.test(code) ? null : 'Enter the 6 digits the app shows.' });
}

async function startTotp() {
  const { secret, otpauth_url: url } = await api('POST', '/api/me/totp/setup');
  // Groups of four are easier to type; authenticator apps ignore the spaces.
  setText(byId('totp-secret'), secret.match(/.{1,4}/g).join(' '));
  byId('totp-link').setAttribute('href', url);
  show(byId('totp-off'), false);
  show(totpEnableForm, true);
  byId('totp-code').focus();
}

async function enableTotp() {
  const { user } = await api('POST', '/api/me/totp/enable', { code: fieldText(totpEnableForm, 'code') });
  totpEnableForm.reset();
  renderUser(user);
  showStatus(totpDisableForm, 'Two-factor sign-in is on: sign-ins now ask for a code.', 'success');
}

async function disableTotp() {
  const body = { code: fieldText(totpDisableForm, 'code') };
  // Not trimmed: spaces can be part of a password.
  const password = byId('totp-off-password').value;
  if (password !== '') body.password = password;
  try {
    const { user } = await api('POST', '/api/me/totp/disable', body);
    totpDisableForm.reset();
    renderUser(user);
  } catch (error) {
    if (error instanceof ApiError && error.code === 'invalid_credentials') {
      showStatus(totpDisableForm, 'The password or the code is not right (each code works once).', 'error');
      return;
    }
    throw error;
  }
}

function showNotice(error) {
  showMessage(notice, describeError(error));
}
