// /choose-username: after a first OIDC sign-in the user picks a username.

import { api } from '../api.js';
import { byId, setText, show, showMessage } from '../dom.js';
import { describeError } from '../errors.js';
import { fieldText, onSubmit } from '../forms.js';
import { HOME } from '../paths.js';
import { needsUsername, reloadWhenRestoredFromCache, requireUser, signOut } from '../session.js';
import { problems, usernameProblem } from '../validation.js';

const notice = byId('notice');
const form = byId('choose-form');

reloadWhenRestoredFromCache();
onSubmit(form, chooseUsername, {
  validate: () => problems({ username: usernameProblem(fieldText(form, 'username')) }),
});
byId('sign-out').addEventListener('click', () => signOut().catch(showNotice));

start();

async function start() {
  try {
    const user = await requireUser();
    if (!user) return;
    if (!needsUsername(user)) {
      location.replace(HOME);
      return;
    }
    setText(byId('display-name'), user.display_name || user.email || 'there');
    show(byId('choose-section'), true);
  } catch (error) {
    showNotice(error);
  } finally {
    show(byId('loading'), false);
  }
}

async function chooseUsername() {
  await api('POST', '/api/me/username', { username: fieldText(form, 'username') });
  location.assign(HOME);
}

function showNotice(error) {
  showMessage(notice, describeError(error));
}
