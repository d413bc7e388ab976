// The users tab: search accounts, promote or demote, set roles, hand over a
// reset link, turn off two-factor sign-in, ban, delete; creating accounts and
// invitations (./accounts.js).

import { api } from '../api.js';
import { avatar } from '../avatars.js';
import { byId, h, setText } from '../dom.js';
import { clearStatus, onSubmit } from '../forms.js';
import { hasPermission } from '../session.js';
import { dateTime } from '../time.js';
import { openBanDialog } from './ban-dialog.js';
import { initAccounts, makeResetLink } from './accounts.js';
import { actionButton, countText, feedback, feedbackError, fillTable, formDialog, renderPager } from './common.js';
import { confirmAction } from './confirm.js';

const PER_PAGE = 50; // the server's page size for users

export function initUsers({ user }) {
  const form = byId('users-search');
  const body = byId('users-body');
  const result = byId('users-feedback');
  const canSetRoles = hasPermission(user, 'admin.roles');
  const canBan = hasPermission(user, 'bans.manage');
  let query = '';
  let page = 1;

  onSubmit(form, async () => {
    query = new FormData(form).get('q')?.toString().trim() ?? '';
    await load(1);
  });

  const rolesDialog = formDialog(byId('roles-dialog'), {
    prepare: (target, dialogForm) => {
      const boxes = target.roles.map((role) =>
        h(
          'label',
          { class: 'check' },
          h('input', { type: 'checkbox', name: 'roles', value: role.name, checked: target.user.roles.includes(role.name) }),
          ' ',
          h('span', {}, role.name),
        ),
      );
      dialogForm.querySelector('.role-checks').replaceChildren(...boxes);
    },
    action: (target, dialogForm) => {
      const roles = new FormData(dialogForm).getAll('roles').map(String);
      return api('PATCH', `/api/admin/users/${target.user.id}`, { roles });
    },
    done: ({ user: updated }) => {
      feedback(result, `Roles of ${updated.username}: ${updated.roles.join(', ') || 'none'}.`);
      load(page);
    },
  });

  const totpOffDialog = formDialog(byId('totp-off-dialog'), {
    action: (target, dialogForm) =>
      api('POST', `/api/admin/users/${target.id}/totp/disable`, {
        reason: new FormData(dialogForm).get('reason')?.toString().trim() ?? '',
      }),
    done: ({ user: updated }) => {
      feedback(result, `Two-factor sign-in is off for ${updated.username}.`);
      load(page);
    },
  });

  async function load(newPage) {
    clearStatus(form);
    const params = new URLSearchParams({ page: String(newPage) });
    if (query) params.set('q', query);
    const answer = await api('GET', `/api/admin/users?${params}`);
    page = answer.page ?? newPage;
    fillTable(body, answer.users.map(row), query ? 'No account matches.' : 'There are no accounts.');
    setText(byId('users-summary'), countText(answer.total, 'account'));
    renderPager(byId('users-pager'), { page, perPage: PER_PAGE, total: answer.total, onPage: (n) => load(n).catch((e) => feedbackError(result, e)) });
  }

  function row(account) {
    const labelId = `user-${account.id}`;
    const self = account.id === user.id;
    const actions = [
      actionButton(account.is_admin ? 'Remove admin' : 'Make admin', () => setAdmin(account, !account.is_admin), {
        describedBy: labelId,
      }),
    ];
    if (canSetRoles) actions.push(actionButton('Roles…', () => editRoles(account), { describedBy: labelId }));
    if (!account.guest && account.email) {
      actions.push(actionButton('Reset link', () => makeResetLink(account, result), { describedBy: labelId }));
    }
    if (account.totp_enabled && !self) {
      actions.push(
        actionButton('Turn off two-factor…', () => totpOffDialog.open(account, `The account ${account.username} (#${account.id}).`), {
          describedBy: labelId,
        }),
      );
    }
    if (canBan && !self) {
      actions.push(
        actionButton('Ban…', () => openBanDialog({
          userId: account.id,
          label: `The account ${account.username} (#${account.id}).`,
          done: () => feedback(result, `${account.username} is banned; their sessions were closed.`),
        }), { danger: true, describedBy: labelId }),
      );
    }
    if (!self) actions.push(actionButton('Delete…', () => remove(account), { danger: true, describedBy: labelId }));
    return h(
      'tr',
      { 'data-user-id': String(account.id) },
      h(
        'td',
        { class: 'cell-person' },
        avatar(account.avatar_url, account.display_name || account.username),
        h('span', { id: labelId, class: 'strong' }, account.username),
        account.is_admin ? h('span', { class: 'badge badge-admin' }, 'Admin') : null,
        account.guest ? h('span', { class: 'badge' }, 'Guest') : null,
        h('span', { class: 'muted cell-note' }, `#${account.id}`),
      ),
      h('td', {}, account.display_name ?? ''),
      h(
        'td',
        { class: 'cell-wrap' },
        account.email ?? h('span', { class: 'muted' }, 'none'),
        account.email && !account.email_verified ? h('span', { class: 'badge badge-warning' }, 'Not confirmed') : null,
      ),
      h('td', {}, account.roles.length ? account.roles.join(', ') : h('span', { class: 'muted' }, 'none')),
      h('td', {}, dateTime(account.created_at)),
      h('td', { class: 'cell-actions' }, actions),
    );
  }

  async function setAdmin(account, isAdmin) {
    try {
      const { user: updated } = await api('PATCH', `/api/admin/users/${account.id}`, { is_admin: isAdmin });
      feedback(result, `${updated.username} is ${updated.is_admin ? 'now an admin' : 'no longer an admin'}.`);
      await load(page);
    } catch (error) {
      feedbackError(result, error);
    }
  }

  async function editRoles(account) {
    try {
      const { roles } = await api('GET', '/api/admin/roles');
      rolesDialog.open({ user: account, roles }, `Roles of ${account.username}.`);
    } catch (error) {
      feedbackError(result, error);
    }
  }

  function remove(account) {
    confirmAction({
      title: 'Delete this account?',
      text: `The account ${account.username} and its sessions end now. Its messages stay in the rooms.`,
      confirm: 'Delete account',
      action: () => api('DELETE', `/api/admin/users/${account.id}`),
      done: () => {
        feedback(result, `The account ${account.username} was deleted.`);
        load(page);
      },
    });
  }

  initAccounts({ reload: () => load(page).catch((error) => feedbackError(result, error)) }).catch((error) =>
    feedbackError(result, error),
  );

  return {
    show: () => load(page).catch((error) => feedbackError(result, error)),
  };
}
