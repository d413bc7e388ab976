// "Are you sure?" before an action that cannot be undone.

import { byId, setText } from '../dom.js';
import { formDialog } from './common.js';

let dialog = null;

/** Asks, then runs `action()`; `done(result)` after it succeeded. */
export function confirmAction({ title, text, confirm, action, done }) {
  const element = byId('confirm-dialog');
  dialog ??= formDialog(element, {
    action: (target) => target.action(),
    done: (result, target) => target.done?.(result),
  });
  setText(element.querySelector('#confirm-title'), title);
  setText(element.querySelector('.confirm-button'), confirm);
  dialog.open({ action, done }, text);
}
