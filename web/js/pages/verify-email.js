// /verify-email?token=T: the link from the verification mail. Posts the token
// (no session needed: any browser may open the link) and shows the outcome.

import { api, ApiError } from '../api.js';
import { byId, setText, show } from '../dom.js';
import { describeError } from '../errors.js';

const token = new URLSearchParams(location.search).get('token') ?? '';
// The token works once: keep it out of the history and of anything the page loads.
history.replaceState(null, '', location.pathname);

verify();

async function verify() {
  try {
    if (!token) throw new ApiError(400, 'invalid_token', 'no token');
    const { user } = await api('POST', '/api/auth/verify-email', { token });
    setText(byId('verified-text'), `${user.email} is confirmed as the address of @${user.username}.`);
    show(byId('verified'), true);
  } catch (error) {
    setText(byId('failed-text'), describeError(error));
    show(byId('failed'), true);
  } finally {
    show(byId('working'), false);
  }
}
