// A person's picture, or the first letter of their name where they have none.
// Pictures come from the server's own /avatars/ URLs only.

import { h } from './dom.js';

/** The largest picture the server takes (src/http/avatars.rs). */
export const AVATAR_MAX_BYTES = 1024 * 1024;

/**
 * The picture at `url` (when it is one of the server's) or `name`'s initial, in an
 * element of `className`. Decorative: the name is always written beside it.
 */
export function avatar(url, name, className = 'avatar') {
  if (typeof url === 'string' && url.startsWith('/avatars/')) {
    return h('img', { class: `${className} avatar-picture`, src: url, alt: '', loading: 'lazy', decoding: 'async' });
  }
  // The letter is drawn by CSS from the attribute, so it is no part of the text
  // around it (a message reads "ann 10:02 hello", not "Aann 10:02 hello").
  return h('span', { class: className, 'aria-hidden': 'true', 'data-initial': initial(name) });
}

function initial(name) {
  const first = [...(name ?? '').trim()][0];
  return first ? first.toUpperCase() : '?';
}
