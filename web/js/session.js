// Who is signed in, where they belong, and signing out.

import { api, ApiError, forgetCsrfToken } from './api.js';
import { CHOOSE_USERNAME, HOME, LOGIN, localPath } from './paths.js';

/** The signed-in user, or null when there is no session. Other failures throw. */
export async function fetchCurrentUser() {
  try {
    const { user } = await api('GET', '/api/me');
    return user;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return null;
    throw error;
  }
}

/**
 * The signed-in user. Without a session the browser is sent to the sign-in page
 * (which brings it back here afterwards) and the answer is null.
 */
export async function requireUser() {
  const user = await fetchCurrentUser();
  if (!user) location.replace(signInPathReturningHere());
  return user;
}

/** After a first OIDC sign-in the user still has to pick a username. */
export function needsUsername(user) {
  return user.needs_username === true;
}

/** Where a freshly signed-in user goes: `next` if it is a local path, else home. */
export function landingPathFor(user, next = null) {
  if (needsUsername(user)) return CHOOSE_USERNAME;
  return localPath(next) ?? HOME;
}

export function hasPermission(user, permission) {
  return user.is_admin === true || (user.permissions ?? []).includes(permission);
}

/** The permissions that each open a part of the admin console. */
export const ADMIN_PERMISSIONS = Object.freeze([
  'sessions.view',
  'admin.users',
  'admin.roles',
  'bans.manage',
  'admin.logs',
  'admin.messages',
]);

/** Whether the admin console has anything to show this user. */
export function canUseAdminConsole(user) {
  return ADMIN_PERMISSIONS.some((permission) => hasPermission(user, permission));
}

/** Ends this session and goes to the sign-in page. */
export async function signOut() {
  try {
    await api('POST', '/api/auth/logout');
  } catch (error) {
    // 401: the session had already ended, which is what we wanted.
    if (!(error instanceof ApiError && error.status === 401)) throw error;
  }
  forgetCsrfToken();
  location.assign(LOGIN);
}

/**
 * Pages that show who is signed in reload when the browser restores them from its
 * back/forward cache, so Back after signing out does not show a stale session.
 */
export function reloadWhenRestoredFromCache() {
  window.addEventListener('pageshow', (event) => {
    if (event.persisted) location.reload();
  });
}

function signInPathReturningHere() {
  const here = location.pathname + location.search;
  return here === HOME ? LOGIN : `${LOGIN}?next=${encodeURIComponent(here)}`;
}
