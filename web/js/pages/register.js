// /register: a new password account, then on to the home page.

import { api } from '../api.js';
import { createCaptcha } from '../captcha.js';
import { byId, show, showMessage } from '../dom.js';
import { describeError } from '../errors.js';
import { fieldText, onSubmit, showError } from '../forms.js';
import { landingPathFor } from '../session.js';
import { confirmationProblem, passwordProblem, problems, usernameProblem } from '../validation.js';

const notice = byId('notice');
const form = byId('register-form');
const captcha = createCaptcha(byId('captcha'), { onError: (error) => showError(form, error) });

onSubmit(form, register, { validate });
start();

async function start() {
  try {
    const config = await api('GET', '/api/auth/config');
    if (!config.password) {
      showMessage(notice, 'This server does not take new accounts with a password. Sign in instead.');
      return;
    }
    show(byId('register-section'), true);
    if (config.captcha) captcha.enable();
  } catch (error) {
    showMessage(notice, describeError(error));
  }
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
  try {
    const { user } = await api('POST', '/api/auth/register', body);
    location.assign(landingPathFor(user));
  } catch (error) {
    captcha.renew(); // each question works once
    throw error;
  }
}
