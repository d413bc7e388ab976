// The ban dialog, shared by the live sessions and users tabs: ban an account,
// an IP address or both, with a reason and an optional end.

import { api } from '../api.js';
import { byId } from '../dom.js';
import { formDialog, localInputToIso } from './common.js';

let dialog = null;

/**
 * Opens the dialog for `target` = {userId?, ip?, label, done(ban)}: the account
 * and the address offered are the ones the target has.
 */
export function openBanDialog(target) {
  dialog ??= formDialog(byId('ban-dialog'), {
    prepare: (current, form) => {
      const { by_user: byUser, by_ip: byIp } = form.elements;
      byUser.disabled = current.userId == null;
      byUser.checked = current.userId != null;
      byIp.disabled = !current.ip;
      byIp.checked = false;
      byUser.closest('label').hidden = byUser.disabled;
      byIp.closest('label').hidden = byIp.disabled;
    },
    validate: (_, form) => {
      const { by_user: byUser, by_ip: byIp } = form.elements;
      if (byUser.checked || byIp.checked) return {};
      return { [byUser.disabled ? 'by_ip' : 'by_user']: 'Choose what to ban: the account, the address or both.' };
    },
    action: (current, form) => {
      const { by_user: byUser, by_ip: byIp, reason, expires_at: expiresAt } = form.elements;
      const body = { reason: reason.value.trim() };
      if (byUser.checked) body.user_id = current.userId;
      if (byIp.checked) body.ip = current.ip;
      const expires = localInputToIso(expiresAt.value);
      if (expires) body.expires_at = expires;
      return api('POST', '/api/admin/bans', body);
    },
    done: (ban, current) => current.done?.(ban),
  });
  dialog.open(target, target.label);
}
