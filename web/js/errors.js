// Human wording for the contract's error codes (protocol.md, "Errors").

import { ApiError } from './api.js';

const GENERIC = 'Something went wrong. Please try again.';

const MESSAGES = {
  bad_request: 'Please check what you entered.',
  unauthenticated: 'You are not signed in, or your session has ended. Please sign in again.',
  invalid_credentials: 'Wrong username, email or password.',
  totp_required: 'Enter the 6-digit code from your authenticator app.',
  captcha_failed: 'The answer to the check question was wrong or it expired. Try the new question.',
  csrf: 'Your session changed in another tab. Reload the page and try again.',
  forbidden: 'You are not allowed to do that.',
  banned: 'This account or network is banned from this server.',
  guests_disabled: 'Guest access is turned off on this server.',
  user_limit: 'This server has reached its limit of users. Ask an administrator for a place.',
  not_found: 'That could not be found. It may have been removed.',
  conflict: 'That username or email is already taken.',
  too_large: 'That is too large.',
  quota_exceeded: 'There is no room left for that in your storage quota or the server\'s.',
  insufficient_storage: 'The server is short of disk space for files. Try again later or tell an administrator.',
  unsupported_type: 'That type of file is not supported.',
  busy: 'The server is busy. Please try again in a moment.',
  mail_disabled: 'This server does not send mail. Ask an administrator for help.',
  invalid_token: 'This link does not work any more: each link works once, and only for a while.',
  password_login_disabled: 'This server signs in through single sign-on only.',
  registration_closed: 'This server takes new accounts only with an invitation from an administrator.',
  email_domain_not_allowed: 'Addresses of that domain cannot sign up or sign in on this server.',
  email_unverified: 'Confirm your email address first: follow the link in the mail we sent you. Your profile can send it again.',
  network: 'The server could not be reached. Check your connection and try again.',
  // Codes of WebSocket `error` frames.
  not_in_room: 'You are not in that room any more. Reload the page to join it again.',
  not_in_voice: 'Voice connections are made only between people in voice.',
  sfu_unavailable: 'This server cannot relay voice, so a direct voice connection is the only way.',
  server_restarting: 'The server is restarting. Reconnecting in a moment…',
  internal: 'The server could not do that. Please try again.',
};

// For these the server's own message says which field or which rule, which beats
// a general sentence; the mapped text is the fallback.
const SERVER_DETAIL_PREFERRED = new Set(['bad_request', 'conflict', 'quota_exceeded']);

/** The sentence to show for a failed request (or any other thrown error). */
export function describeError(error) {
  if (!(error instanceof ApiError)) {
    console.error(error);
    return GENERIC;
  }
  if (error.code === 'rate_limited') return rateLimitedMessage(error.retryAfter);
  if (SERVER_DETAIL_PREFERRED.has(error.code) && error.message) return sentence(error.message);
  return MESSAGES[error.code] ?? (error.message || GENERIC);
}

/** The sentence for a bare error code (e.g. from `?error=`), or null when unknown. */
export function messageForCode(code) {
  if (code === 'rate_limited') return rateLimitedMessage(null);
  return Object.hasOwn(MESSAGES, code) ? MESSAGES[code] : null;
}

/** The server's detail ("that username is taken") as a sentence. */
function sentence(text) {
  const trimmed = text.trim();
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

function rateLimitedMessage(seconds) {
  if (seconds === null || seconds === undefined) {
    return 'Too many attempts. Please wait a moment and try again.';
  }
  const unit = seconds === 1 ? 'second' : 'seconds';
  return `Too many attempts. Please wait ${seconds} ${unit} and try again.`;
}
