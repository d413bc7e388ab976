// The client's page addresses, in one place.

export const HOME = '/';
export const LOGIN = '/login';
export const CHOOSE_USERNAME = '/choose-username';

/** The page of a room. Codes come from users and the server, so they are encoded. */
export function roomPath(code) {
  return `/room/${encodeURIComponent(code)}`;
}

/**
 * `value` as a path on this site, or null. Guards `?next=` against sending the
 * browser elsewhere: resolving it as a URL catches `//host`, `/\host` and the tabs
 * and newlines that browsers strip before parsing.
 */
export function localPath(value) {
  if (typeof value !== 'string' || !value.startsWith('/')) return null;
  try {
    const url = new URL(value, location.origin);
    return url.origin === location.origin ? url.pathname + url.search + url.hash : null;
  } catch {
    return null;
  }
}
