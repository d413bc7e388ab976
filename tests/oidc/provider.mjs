#!/usr/bin/env node
// Local OpenID provider for Switchboard's integration tests.
//
// Built on the npm package `oauth2-mock-server` (its OAuth2Issuer/OAuth2Service
// request handler), served by a plain node:http server on 127.0.0.1 that adds
// a tiny control API under /test/. See README.md beside this file.
//
// Start:   node tests/oidc/provider.mjs        (port from OIDC_PORT, else ephemeral)
// Prints:  exactly one line: {"issuer":"http://127.0.0.1:PORT","port":PORT}
// Stops:   on SIGTERM / SIGINT (exit 0), or when stdin closes if OIDC_EXIT_ON_STDIN_EOF=1.

import { createServer } from 'node:http';
import { Buffer } from 'node:buffer';
import { OAuth2Issuer, OAuth2Service } from 'oauth2-mock-server';

const HOST = '127.0.0.1';

function envBool(name, dflt) {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  return /^(1|true|yes)$/i.test(v);
}

function defaultIdentity() {
  const id = {
    sub: process.env.OIDC_SUB || 'test-user',
    email: process.env.OIDC_EMAIL ?? 'test-user@example.com',
    email_verified: envBool('OIDC_EMAIL_VERIFIED', true),
  };
  if (process.env.OIDC_NAME) id.name = process.env.OIDC_NAME;
  // OIDC_EMAIL set to the empty string means "no email claim at all".
  if (id.email === '') delete id.email;
  return id;
}

// Claims the control API may not override (the library/protocol owns them).
const RESERVED = new Set(['iss', 'aud', 'exp', 'iat', 'nbf', 'nonce', 'azp', 'at_hash', 'c_hash']);

function validateIdentity(body) {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new Error('identity must be a JSON object');
  }
  if (typeof body.sub !== 'string' || body.sub === '') {
    throw new Error('"sub" must be a non-empty string');
  }
  if ('email' in body && body.email !== null && typeof body.email !== 'string') {
    throw new Error('"email" must be a string or null');
  }
  if ('email_verified' in body && body.email_verified !== null && typeof body.email_verified !== 'boolean') {
    throw new Error('"email_verified" must be a boolean or null');
  }
  const id = {};
  for (const [k, v] of Object.entries(body)) {
    if (RESERVED.has(k)) throw new Error(`claim "${k}" cannot be overridden`);
    if (v !== null) id[k] = v; // null = omit the claim from the ID token
  }
  return id;
}

// Identity used for authorizations from now on (sticky until changed/reset).
let current = defaultIdentity();
// One-shot error for the next authorization request (null = none).
let nextAuthorizeError = null;
// What each issued authorization code was bound to at /authorize time:
// code -> { identity, clientId, redirectUri, pkce, used }
const grants = new Map();
// Identity bound to each issued access token's jti (for /userinfo).
const byAccessToken = new Map();

const STRICT = envBool('OIDC_STRICT', true);
const CLIENT_SECRET = process.env.OIDC_CLIENT_SECRET || null; // null = any secret accepted

const issuer = new OAuth2Issuer();
await issuer.keys.generate('RS256');
const service = new OAuth2Service(issuer);

// Authorize: bind the identity in force *now* to the code being issued.
service.on('beforeAuthorizeRedirect', (redirect, req) => {
  const url = redirect.url;
  if (nextAuthorizeError !== null) {
    url.searchParams.delete('code');
    url.searchParams.set('error', nextAuthorizeError.error);
    if (nextAuthorizeError.error_description) {
      url.searchParams.set('error_description', nextAuthorizeError.error_description);
    }
    nextAuthorizeError = null;
    return;
  }
  const code = url.searchParams.get('code');
  if (!code) return;
  const q = req.query ?? {};
  grants.set(code, {
    identity: structuredClone(current),
    clientId: typeof q.client_id === 'string' ? q.client_id : undefined,
    redirectUri: typeof q.redirect_uri === 'string' ? q.redirect_uri : undefined,
    pkce: typeof q.code_challenge === 'string' && q.code_challenge !== '',
    used: false,
  });
});

// Token: the library signs two JWTs per authorization_code request: the access
// token (payload has a "scope" key) and the ID token (no "scope" key, aud =
// client_id). Put the identity bound to the code into both.
service.on('beforeTokenSigning', (token, req) => {
  const body = req.body ?? {};
  if (body.grant_type !== 'authorization_code' && body.grant_type !== 'refresh_token') return;
  const grant = typeof body.code === 'string' ? grants.get(body.code) : undefined;
  const identity = grant ? grant.identity : current;
  const p = token.payload;
  if (!('scope' in p)) {
    // ID token: keep only the protocol claims, then add the identity.
    for (const k of Object.keys(p)) if (!RESERVED.has(k)) delete p[k];
    Object.assign(p, identity);
    p.auth_time = p.iat;
  } else {
    p.sub = identity.sub;
    p.jti = `${Date.now().toString(36)}.${Math.random().toString(36).slice(2)}`;
    byAccessToken.set(p.jti, structuredClone(identity));
  }
});

function clientCredentials(req) {
  const body = req.body ?? {};
  const m = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (m) {
    const raw = Buffer.from(m[1], 'base64').toString('utf8');
    const i = raw.indexOf(':');
    // RFC 6749 2.3.1: id and secret are form-urlencoded before base64.
    const dec = (x) => decodeURIComponent(x.replace(/\+/g, ' '));
    try {
      return { method: 'client_secret_basic', id: dec(raw.slice(0, i)), secret: dec(raw.slice(i + 1)) };
    } catch {
      return { method: 'client_secret_basic', id: raw.slice(0, i), secret: raw.slice(i + 1) };
    }
  }
  if (typeof body.client_secret === 'string') {
    return { method: 'client_secret_post', id: body.client_id, secret: body.client_secret };
  }
  return { method: 'none', id: body.client_id, secret: undefined };
}

// Token response: in strict mode (default) reject what a real provider rejects.
// The library itself accepts any code, any redirect_uri, any client, and a
// missing code_verifier; it only checks a code_verifier that *is* sent.
service.on('beforeResponse', (response, req) => {
  const body = req.body ?? {};
  if (body.grant_type !== 'authorization_code' || !STRICT) return;
  const fail = (error, description) => {
    response.statusCode = 400;
    response.body = { error, error_description: description };
  };
  const grant = typeof body.code === 'string' ? grants.get(body.code) : undefined;
  if (!grant) return fail('invalid_grant', 'unknown authorization code');
  if (grant.used) return fail('invalid_grant', 'authorization code already used');
  grant.used = true;
  const client = clientCredentials(req);
  if (client.id !== grant.clientId) {
    response.statusCode = 401;
    response.body = { error: 'invalid_client', error_description: `client_id ${JSON.stringify(client.id)} does not match the authorization request's ${JSON.stringify(grant.clientId)}` };
    return;
  }
  if (CLIENT_SECRET !== null && client.secret !== CLIENT_SECRET) {
    response.statusCode = 401;
    response.body = { error: 'invalid_client', error_description: `bad or missing client secret (auth method seen: ${client.method})` };
    return;
  }
  if (body.redirect_uri !== grant.redirectUri) {
    return fail('invalid_grant', 'redirect_uri does not match the authorization request');
  }
  if (grant.pkce && typeof body.code_verifier !== 'string') {
    return fail('invalid_grant', 'code_verifier required: the authorization request had a code_challenge');
  }
});

// Userinfo: return the identity behind the bearer access token.
service.on('beforeUserinfo', (response, req) => {
  const auth = req.headers.authorization ?? '';
  const m = /^Bearer\s+([^.\s]+)\.([^.\s]+)\./i.exec(auth);
  let identity;
  if (m) {
    try {
      const payload = JSON.parse(Buffer.from(m[2], 'base64url').toString('utf8'));
      identity = byAccessToken.get(payload.jti);
    } catch {
      identity = undefined;
    }
  }
  if (!identity) {
    response.statusCode = 401;
    response.body = { error: 'invalid_token' };
    return;
  }
  response.body = identity;
});

function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > 64 * 1024) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(text === '' ? {} : JSON.parse(text));
      } catch {
        reject(new Error('malformed JSON body'));
      }
    });
    req.on('error', reject);
  });
}

function sendJson(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

async function controlHandler(req, res, path) {
  if (path === '/test/next-identity') {
    if (req.method === 'GET') return sendJson(res, 200, current);
    if (req.method === 'POST' || req.method === 'PUT') {
      try {
        current = validateIdentity(await readJson(req));
      } catch (e) {
        return sendJson(res, 400, { error: String(e.message ?? e) });
      }
      return sendJson(res, 200, current);
    }
    if (req.method === 'DELETE') {
      current = defaultIdentity();
      return sendJson(res, 200, current);
    }
    return sendJson(res, 405, { error: 'method not allowed' });
  }
  if (path === '/test/next-authorize-error') {
    if (req.method !== 'POST') return sendJson(res, 405, { error: 'method not allowed' });
    let body;
    try {
      body = await readJson(req);
    } catch (e) {
      return sendJson(res, 400, { error: String(e.message ?? e) });
    }
    if (body === null || typeof body !== 'object' || typeof body.error !== 'string' || body.error === '') {
      return sendJson(res, 400, { error: '"error" must be a non-empty string' });
    }
    nextAuthorizeError = { error: body.error, error_description: typeof body.error_description === 'string' ? body.error_description : undefined };
    return sendJson(res, 200, nextAuthorizeError);
  }
  if (path === '/test/health' && req.method === 'GET') return sendJson(res, 200, { ok: true });
  return sendJson(res, 404, { error: 'unknown control endpoint' });
}

const handler = service.requestHandler;
const server = createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  if (path.startsWith('/test/')) {
    controlHandler(req, res, path).catch((e) => sendJson(res, 500, { error: String(e) }));
    return;
  }
  handler(req, res);
});

const requestedPort = process.env.OIDC_PORT ? Number(process.env.OIDC_PORT) : 0;
if (!Number.isInteger(requestedPort) || requestedPort < 0 || requestedPort > 65535) {
  console.error(`invalid OIDC_PORT: ${process.env.OIDC_PORT}`);
  process.exit(2);
}

server.on('error', (e) => {
  console.error(`oidc provider: ${e.message}`);
  process.exit(1);
});

server.listen(requestedPort, HOST, () => {
  const { port } = server.address();
  // Set explicitly: the library would otherwise report http://localhost:PORT.
  issuer.url = `http://${HOST}:${port}`;
  process.stdout.write(`${JSON.stringify({ issuer: issuer.url, port })}\n`);
});

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (envBool('OIDC_EXIT_ON_STDIN_EOF', false)) {
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
}
