// The roles and permissions tab: create and delete roles, grant and revoke
// permissions, create permissions.

import { api } from '../api.js';
import { byId, h, listen } from '../dom.js';
import { fieldText, onSubmit, showStatus } from '../forms.js';
import { actionButton, feedback, feedbackError } from './common.js';
import { confirmAction } from './confirm.js';

export function initRoles() {
  const rolesList = byId('roles-list');
  const permissionsList = byId('permissions-list');
  const result = byId('roles-feedback');
  const roleForm = byId('role-create');
  const permissionForm = byId('permission-create');
  let permissions = [];

  onSubmit(roleForm, async () => {
    const role = await api('POST', '/api/admin/roles', { name: fieldText(roleForm, 'name') });
    roleForm.reset();
    showStatus(roleForm, `Role “${role.name}” created.`, 'success');
    await load();
  });

  onSubmit(permissionForm, async () => {
    const permission = await api('POST', '/api/admin/permissions', { name: fieldText(permissionForm, 'name') });
    permissionForm.reset();
    showStatus(permissionForm, `Permission “${permission.name}” created.`, 'success');
    await load();
  });

  async function load() {
    const [rolesAnswer, permissionsAnswer] = await Promise.all([
      api('GET', '/api/admin/roles'),
      api('GET', '/api/admin/permissions'),
    ]);
    permissions = permissionsAnswer.permissions ?? [];
    rolesList.replaceChildren(...(rolesAnswer.roles ?? []).map(roleItem));
    permissionsList.replaceChildren(
      ...permissions.map((permission) =>
        h('li', { class: 'chip' }, permission.name, permission.builtin ? h('span', { class: 'visually-hidden' }, ' (built in)') : null),
      ),
    );
  }

  function roleItem(role) {
    const headingId = `role-${role.id}`;
    const isAdminRole = role.name === 'admin';
    const chips = isAdminRole
      ? [h('li', { class: 'muted' }, 'Every permission, including new ones.')]
      : role.permissions.map((name) =>
          h(
            'li',
            { class: 'chip' },
            h('span', {}, name),
            listen(
              h('button', { type: 'button', class: 'chip-remove', 'aria-label': `Remove ${name} from ${role.name}` }, '×'),
              'click',
              () => revoke(role, name),
            ),
          ),
        );
    if (!isAdminRole && chips.length === 0) chips.push(h('li', { class: 'muted' }, 'No permissions.'));
    const missing = permissions.filter((p) => !role.permissions.includes(p.name));
    const selectId = `grant-${role.id}`;
    const grant =
      isAdminRole || missing.length === 0
        ? null
        : listen(
            h(
              'form',
              { class: 'grant-form' },
              h('label', { for: selectId, class: 'visually-hidden' }, `Permission to add to ${role.name}`),
              h('select', { id: selectId, name: 'permission' }, missing.map((p) => h('option', { value: p.name }, p.name))),
              h('button', { type: 'submit', class: 'button button-small' }, 'Add'),
            ),
            'submit',
            (event) => {
              event.preventDefault();
              const permission = new FormData(event.currentTarget).get('permission');
              if (permission) assign(role, String(permission));
            },
          );
    return h(
      'li',
      { class: 'role', 'data-role': role.name },
      h(
        'div',
        { class: 'role-head' },
        h('h4', { id: headingId }, role.name),
        role.builtin ? h('span', { class: 'badge' }, 'Built in') : null,
        role.builtin
          ? null
          : actionButton('Delete…', () => removeRole(role), { danger: true, describedBy: headingId }),
      ),
      h('ul', { class: 'chip-list', 'aria-labelledby': headingId }, chips),
      grant,
    );
  }

  async function assign(role, permission) {
    try {
      await api('POST', `/api/admin/roles/${role.id}/permissions`, { permission });
      feedback(result, `${role.name} has ${permission} now.`);
      await load();
      document.getElementById(`grant-${role.id}`)?.focus();
    } catch (error) {
      feedbackError(result, error);
    }
  }

  async function revoke(role, permission) {
    try {
      await api('DELETE', `/api/admin/roles/${role.id}/permissions/${encodeURIComponent(permission)}`);
      feedback(result, `${role.name} no longer has ${permission}.`);
      await load();
      document.getElementById(`role-${role.id}`)?.closest('.role')?.querySelector('button, select')?.focus();
    } catch (error) {
      feedbackError(result, error);
    }
  }

  function removeRole(role) {
    confirmAction({
      title: 'Delete this role?',
      text: `The role ${role.name} is taken from everyone who has it.`,
      confirm: 'Delete role',
      action: () => api('DELETE', `/api/admin/roles/${role.id}`),
      done: () => {
        feedback(result, `The role ${role.name} was deleted.`);
        load().catch((error) => feedbackError(result, error));
      },
    });
  }

  return { show: () => load().catch((error) => feedbackError(result, error)) };
}
