// The profile's email part: the address and whether it is confirmed, sending
// the confirmation link again, and changing the address (confirmed anew).
// Mail features show only when the server sends mail.

import { api, ApiError } from './api.js';
import { byId, setText, show } from './dom.js';
import { fieldText, onSubmit, showStatus } from './forms.js';

/** `onChange(user)` re-renders the rest of the page after a change. */
export function initEmailSettings({ user, config, onChange }) {
  const section = byId('email-section');
  const resendForm = byId('email-resend-form');
  const changeForm = byId('email-change-form');
  const mail = config.mail === true;

  onSubmit(resendForm, async () => {
    await api('POST', '/api/me/email/verify');
    showStatus(resendForm, `A new link is on its way to ${current.email}. The old one no longer works.`, 'success');
  });
  onSubmit(changeForm, async () => {
    const body = { email: fieldText(changeForm, 'email') };
    const password = byId('email-password').value;
    if (password !== '') body.password = password;
    try {
      const { user: updated } = await api('POST', '/api/me/email', body);
      changeForm.reset();
      render(updated);
      onChange(updated);
      showStatus(changeForm, `Check ${updated.email} for the link that confirms it.`, 'success');
    } catch (error) {
      if (error instanceof ApiError && error.code === 'invalid_credentials') {
        byId('email-password').setAttribute('aria-invalid', 'true');
        byId('email-password').focus();
        showStatus(changeForm, 'The current password is not right.', 'error');
        return;
      }
      throw error;
    }
  });

  let current = user;
  render(user);

  function render(latest) {
    current = latest;
    show(section, !latest.guest && Boolean(latest.email));
    setText(byId('email-address'), latest.email ?? '');
    setText(byId('email-state'), latest.email_verified ? 'Confirmed' : 'Not confirmed');
    byId('email-state').classList.toggle('badge-warning', !latest.email_verified);
    show(byId('email-unverified'), mail && !latest.email_verified);
    show(changeForm, mail);
    changeForm.elements.namedItem('login').defaultValue = latest.username;
  }
}
