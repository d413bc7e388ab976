// /register: a new password account, then on to the home page. An invitation
// link (/register?invite=CODE) carries its code along, to the password form and
// to the single sign-on link.

import { api } from '../api.js';
import { createCaptcha } from '../captcha.js';
import { byId, setText, show, showMessage } from '../dom.js';
import { describeError } from '../errors.js';
import { fieldText, onSubmit, showError } from '../forms.js';
import { landingPathFor } from '../session.js';
import { confirmationProblem, passwordProblem, problems, usernameProblem } from '../validation.js';

const notice = byId('notice');
const form = byId('register-form');
const invite = new URLSearchParams(location.search).get('invite');
const captcha = createCaptcha(byId('captcha'), { onError: (error) => showError(form, error) });

onSubmit(form, register, { validate });
start();

async function start() {
  try {
    const config = await api('GET', '/api/auth/config');
    const closed =
      config.registration === 'closed' || (config.registration === 'invite' && !invite);
    if (closed) {
      showMessage(
        notice,
        config.registration === 'closed'
          ? 'This server does not take new accounts: an administrator makes them. Ask one for an account.'
          : 'This server takes new accounts only with an invitation link from an administrator.',
      );
      return;
    }
    if (config.oidc) showSingleSignOn(config);
    if (!config.password) {
      if (!config.oidc) showMessage(notice, 'This server does not take new accounts with a password.');
      return;
    }
    show(byId('oidc-divider'), config.oidc);
    show(byId('register-section'), true);
    if (config.captcha) captcha.enable();
  } catch (error) {
    showMessage(notice, describeError(error));
  }
}

function showSingleSignOn(config) {
  const link = byId('oidc-link');
  if (invite) link.setAttribute('href', `/auth/oidc/login?invite=${encodeURIComponent(invite)}`);
  setText(link, `Sign up with ${config.oidc_name || 'single sign-on'}`);
  show(byId('oidc-section'), true);
}

function validate() {
  const password = byId('password').value;
  return {
    ...problems({
      username: usernameProblem(fieldText(form, 'username')),
      password: passwordProblem(password),
      password_confirm: confirmationProblem(password, byId('password-confirm').value),
    }),
    ...captcha.problems(),
  };
}

async function register() {
  const body = {
    username: fieldText(form, 'username'),
    email: fieldText(form, 'email'),
    password: byId('password').value,
    ...captcha.fields(),
  };
  if (invite) body.invite = invite;
  try {
    const { user } = await api('POST', '/api/auth/register', body);
    location.assign(landingPathFor(user));
  } catch (error) {
    captcha.renew(); // each question works once
    throw error;
  }
}
