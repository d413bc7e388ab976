// The users tab's account making: creating an account (with a one-time link for
// its owner to choose a password), one-time reset links for existing accounts,
// and invitation links while the server registers by invitation only.

import { api } from '../api.js';
import { byId, h, setText, show } from '../dom.js';
import { fieldText, onSubmit, showStatus } from '../forms.js';
import { dateTime } from '../time.js';
import { actionButton, feedback, feedbackError, fillTable, localInputToIso } from './common.js';
import { confirmAction } from './confirm.js';

/** Shows a link to hand over, selected for copying. */
export function showHandover(text, url) {
  setText(byId('handover-text'), text);
  const field = byId('handover-url');
  field.value = url;
  show(byId('handover'), true);
  field.focus();
  field.select();
}

/** A one-time link for `account` to choose a new password. */
export async function makeResetLink(account, result) {
  try {
    const { url, expires_at: expires } = await api('POST', `/api/admin/users/${account.id}/reset-link`);
    showHandover(
      `A link for ${account.username} to choose a new password. It works once, until ${dateTime(expires)}; their sessions end when it is used.`,
      url,
    );
  } catch (error) {
    feedbackError(result, error);
  }
}

/** `reload()` refreshes the users table after an account was made. */
export async function initAccounts({ reload }) {
  const createForm = byId('create-user-form');
  onSubmit(createForm, async () => {
    const answer = await api('POST', '/api/admin/users', {
      username: fieldText(createForm, 'username'),
      email: fieldText(createForm, 'email'),
    });
    createForm.reset();
    showStatus(createForm, `Created ${answer.user.username}.`, 'success');
    if (answer.reset_url) {
      showHandover(
        `Hand ${answer.user.username} this link to choose a password. It works once, until ${dateTime(answer.expires_at)}.`,
        answer.reset_url,
      );
    }
    reload();
  });

  const config = await api('GET', '/api/auth/config');
  if (config.registration !== 'invite') return;
  show(byId('invites-section'), true);
  const inviteForm = byId('invite-form');
  const result = byId('invites-feedback');
  onSubmit(inviteForm, async () => {
    const body = { uses: Number(fieldText(inviteForm, 'uses')) };
    const expires = localInputToIso(fieldText(inviteForm, 'expires_at'));
    if (expires) body.expires_at = expires;
    const invite = await api('POST', '/api/admin/invites', body);
    inviteForm.reset();
    showHandover(
      `An invitation for ${invite.uses} registration${invite.uses === 1 ? '' : 's'}, until ${dateTime(invite.expires_at)}. The link is shown only now.`,
      invite.url,
    );
    await loadInvites(result);
  });
  await loadInvites(result);
}

async function loadInvites(result) {
  const { invites } = await api('GET', '/api/admin/invites');
  const rows = invites.map((invite) =>
    h(
      'tr',
      {},
      h('td', {}, `#${invite.id}`),
      h('td', {}, `${invite.uses_left} of ${invite.uses}`),
      h('td', {}, dateTime(invite.expires_at)),
      h(
        'td',
        { class: 'cell-actions' },
        actionButton('Revoke…', () => revoke(invite, result), { danger: true }),
      ),
    ),
  );
  fillTable(byId('invites-body'), rows, 'No invitations.');
}

function revoke(invite, result) {
  confirmAction({
    title: 'Revoke this invitation?',
    text: `Invitation #${invite.id} stops working now. Accounts made with it stay.`,
    confirm: 'Revoke',
    action: () => api('DELETE', `/api/admin/invites/${invite.id}`),
    done: () => {
      feedback(result, `Invitation #${invite.id} was revoked.`);
      loadInvites(result).catch((error) => feedbackError(result, error));
    },
  });
}
