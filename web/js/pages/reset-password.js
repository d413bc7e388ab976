// /reset-password: without a token, asks for a reset link by mail; with
// ?token=T (the link from the mail, or one an administrator handed over),
// sets a new password.

import { api } from '../api.js';
import { byId, show, showMessage } from '../dom.js';
import { describeError } from '../errors.js';
import { fieldText, onSubmit, showStatus } from '../forms.js';
import { confirmationProblem, passwordProblem, problems } from '../validation.js';

const notice = byId('notice');
const requestForm = byId('request-form');
const chooseForm = byId('choose-form');
const token = new URLSearchParams(location.search).get('token');
// The token works once: keep it out of the history and of anything the page loads.
if (token !== null) history.replaceState(null, '', location.pathname);

onSubmit(requestForm, requestLink);
onSubmit(chooseForm, choosePassword, { validate });

start();

async function start() {
  if (token) {
    show(byId('choose-section'), true);
    return;
  }
  try {
    const config = await api('GET', '/api/auth/config');
    if (!config.password) {
      showMessage(notice, 'This server signs in through single sign-on only: there is no password to reset here.');
    } else if (!config.mail) {
      showMessage(notice, 'This server does not send mail. Ask an administrator for a link to choose a new password.');
    } else {
      show(byId('request-section'), true);
    }
  } catch (error) {
    showMessage(notice, describeError(error));
  }
}

async function requestLink() {
  await api('POST', '/api/auth/password-reset', { email: fieldText(requestForm, 'email') });
  // The same answer whether or not an account has the address.
  showStatus(
    requestForm,
    'If an account has this address, a mail with a link is on its way. Check your inbox (and the spam folder).',
    'success',
  );
}

function validate() {
  const password = byId('password').value;
  return problems({
    password: passwordProblem(password),
    password_confirm: confirmationProblem(password, byId('password-confirm').value),
  });
}

async function choosePassword() {
  await api('POST', '/api/auth/password-reset/confirm', { token, password: byId('password').value });
  show(byId('choose-section'), false);
  show(byId('done-section'), true);
  byId('done-section').querySelector('a').focus();
}
