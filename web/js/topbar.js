// The header bar of the signed-in pages: links by permission, and signing out.
//
// Markup: `#account-nav` (hidden until a user is known) holding an optional
// `#admin-link` (hidden) and the `#sign-out` button.

import { byId, show } from './dom.js';
import { canUseAdminConsole, signOut } from './session.js';

/** Wires the sign-out button; `onError` shows a failed sign-out. */
export function wireSignOut(onError) {
  byId('sign-out').addEventListener('click', () => signOut().catch(onError));
}

/** Shows the account links that this user may follow. */
export function showAccountNav(user) {
  const adminLink = document.getElementById('admin-link');
  if (adminLink) show(adminLink, canUseAdminConsole(user));
  show(byId('account-nav'), true);
}
