// /login: password sign-in (with CAPTCHA and TOTP when asked), OIDC and guests.

import { api, ApiError } from '../api.js';
import { createCaptcha } from '../captcha.js';
import { byId, enableSection, setText, show, showMessage } from '../dom.js';
import { describeError, messageForCode } from '../errors.js';
import { fieldText, onSubmit, showError, showStatus } from '../forms.js';
import { fetchCurrentUser, landingPathFor } from '../session.js';

const REDIRECT_FAILED = 'Signing in did not complete. Please try again.';

const params = new URLSearchParams(location.search);
const next = params.get('next');

const notice = byId('notice');
const loginForm = byId('login-form');
const totpSection = byId('totp-section');
const guestForm = byId('guest-form');
const captcha = createCaptcha(byId('captcha'), { onError: (error) => showError(loginForm, error) });

onSubmit(loginForm, signIn, { validate: () => captcha.problems() });
onSubmit(guestForm, continueAsGuest);
// A TOTP code belongs to one account; typing another login starts over.
byId('login').addEventListener('input', () => {
  enableSection(totpSection, false);
  askForRecoveryCode(false);
});
byId('use-recovery-code').addEventListener('click', () => {
  askForRecoveryCode(byId('totp').inputMode === 'numeric');
  byId('totp').focus();
});

start();

async function start() {
  if (!showRedirectError() && (await leaveIfSignedIn())) return;
  try {
    applyConfig(await api('GET', '/api/auth/config'));
  } catch (error) {
    showMessage(notice, describeError(error));
  }
}

/**
 * The server sends failed OIDC sign-ins here as `?error=<code>`. Only known codes are
 * shown: reflecting free text from the address would let a crafted link put any
 * sentence on the sign-in page.
 */
function showRedirectError() {
  const code = params.get('error');
  if (code === null) return false;
  showMessage(notice, messageForCode(code) ?? REDIRECT_FAILED);
  params.delete('error');
  const query = params.toString();
  history.replaceState(null, '', query ? `${location.pathname}?${query}` : location.pathname);
  return true;
}

async function leaveIfSignedIn() {
  try {
    const user = await fetchCurrentUser();
    if (user) location.replace(landingPathFor(user, next));
    return user !== null;
  } catch {
    return false; // the config request below reports an unreachable server
  }
}

function applyConfig(config) {
  const { oidc, password, guests } = config;
  show(byId('oidc-section'), oidc);
  setText(byId('oidc-link'), `Sign in with ${config.oidc_name || 'single sign-on'}`);
  show(byId('password-section'), password);
  show(byId('password-divider'), oidc && password);
  show(byId('guest-section'), guests);
  show(byId('guest-divider'), guests && (oidc || password));
  show(byId('forgot-footer'), password && config.mail === true);
  show(byId('register-footer'), password && config.registration === 'open');
  if (password && config.captcha) captcha.enable();
  if (!oidc && !password && !guests) {
    showMessage(notice, 'This server has no way to sign in turned on. Ask its administrator.');
  }
}

async function signIn() {
  try {
    const { user, recovery_codes_left: codesLeft } = await api('POST', '/api/auth/login', loginRequest());
    // After a recovery code, the profile says how many are left and how to start again.
    if (typeof codesLeft === 'number') location.assign(`/profile?recovery_codes_left=${codesLeft}`);
    else location.assign(landingPathFor(user, next));
  } catch (error) {
    captcha.renew(); // the server spends a question on every attempt
    if (error instanceof ApiError && error.code === 'totp_required') askForTotp();
    else throw error;
  }
}

function loginRequest() {
  const body = {
    login: fieldText(loginForm, 'login'),
    password: byId('password').value,
    ...captcha.fields(),
  };
  if (!totpSection.disabled) body.totp = fieldText(loginForm, 'totp');
  return body;
}

function askForTotp() {
  const isRetry = !totpSection.disabled;
  enableSection(totpSection, true);
  const input = byId('totp');
  input.value = '';
  input.focus();
  if (isRetry) showStatus(loginForm, 'That code was not accepted. Enter the current code.', 'error');
  else showStatus(loginForm, messageForCode('totp_required'), 'info');
}

/**
 * The code field takes the app's six digits, or (`recovery`) a recovery code such as
 * k7mq-x3tn-9wbe: the server tells them apart.
 */
function askForRecoveryCode(recovery) {
  const input = byId('totp');
  input.value = '';
  input.inputMode = recovery ? 'text' : 'numeric';
  input.maxLength = recovery ? 20 : 6;
  input.autocomplete = recovery ? 'off' : 'one-time-code';
  if (recovery) input.removeAttribute('pattern');
  else input.setAttribute('pattern', '[0-9]{6}');
  input.dataset.invalid = recovery
    ? 'Recovery code: enter one of the codes you saved, such as k7mq-x3tn-9wbe.'
    : 'Authenticator code: enter the 6 digits your app shows.';
  setText(byId('totp-label'), recovery ? 'Recovery code' : 'Authenticator code');
  setText(
    byId('totp-hint'),
    recovery ? 'One of the codes you saved when you turned two-factor sign-in on. Each works once.' : 'The 6-digit code from your authenticator app.',
  );
  setText(byId('use-recovery-code'), recovery ? 'Use the app instead' : 'Lost your app? Use a recovery code');
}

async function continueAsGuest() {
  const { user } = await api('POST', '/api/auth/guest', { name: fieldText(guestForm, 'name') });
  location.assign(landingPathFor(user, next));
}

