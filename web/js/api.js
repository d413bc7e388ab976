// The one way the client talks HTTP to the server: JSON in and out, the session
// cookie, the CSRF header, and contract errors turned into ApiError.

const CSRF_STORAGE_KEY = 'switchboard.csrf';
const CSRF_HEADER = 'X-CSRF-Token';
const ME_PATH = '/api/me';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

let csrfToken = readStoredToken();

/** An HTTP failure: `code` is the contract's error code, `retryAfter` seconds or null. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/**
 * Sends a request and answers the parsed JSON body (null for an empty one).
 * `body` is sent as JSON, or as is when it is FormData (uploads).
 */
export async function api(method, path, body) {
  const verb = method.toUpperCase();
  try {
    return await request(verb, path, body);
  } catch (error) {
    if (!(error instanceof ApiError) || error.code !== 'csrf' || SAFE_METHODS.has(verb)) {
      throw error;
    }
    // The remembered token is stale when another tab signed in again since. A request
    // refused for CSRF was not carried out, so fetching the current token and trying
    // once more is safe.
    await request('GET', ME_PATH);
    return request(verb, path, body);
  }
}

/** Remembers the session's CSRF token; every answer carrying one calls this. */
export function rememberCsrfToken(token) {
  csrfToken = token;
  writeStoredToken(token);
}

/** Forgets the CSRF token, e.g. after signing out. */
export function forgetCsrfToken() {
  csrfToken = null;
  writeStoredToken(null);
}

async function request(method, path, body) {
  const response = await send(path, buildInit(method, body));
  const data = await readJson(response);
  if (!response.ok) {
    const error = toApiError(response, data);
    if (error.code === 'unauthenticated') forgetCsrfToken();
    throw error;
  }
  if (typeof data?.csrf_token === 'string') rememberCsrfToken(data.csrf_token);
  return data;
}

function buildInit(method, body) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (!SAFE_METHODS.has(method) && csrfToken) headers[CSRF_HEADER] = csrfToken;
  if (body instanceof FormData) {
    init.body = body; // the browser sets the multipart Content-Type with its boundary
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  return init;
}

async function send(path, init) {
  try {
    return await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', 'The server could not be reached.');
  }
}

async function readJson(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null; // e.g. an HTML error page from a proxy; the status still tells
  }
}

function toApiError(response, data) {
  const detail = data?.error;
  const code = typeof detail?.code === 'string' ? detail.code : `http_${response.status}`;
  const message = typeof detail?.message === 'string' ? detail.message : '';
  const retryAfter = parseRetryAfter(response.headers.get('Retry-After'));
  return new ApiError(response.status, code, message, retryAfter);
}

/** Retry-After is whole seconds per the contract; an HTTP date is accepted too. */
function parseRetryAfter(value) {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const date = Date.parse(value);
  if (Number.isNaN(date)) return null;
  return Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

// sessionStorage can be unavailable (privacy modes, sandboxed frames); the module
// variable still carries the token for the life of the page.
function readStoredToken() {
  try {
    return sessionStorage.getItem(CSRF_STORAGE_KEY);
  } catch {
    return null;
  }
}

function writeStoredToken(token) {
  try {
    if (token) sessionStorage.setItem(CSRF_STORAGE_KEY, token);
    else sessionStorage.removeItem(CSRF_STORAGE_KEY);
  } catch {
    // Not stored; see readStoredToken.
  }
}
