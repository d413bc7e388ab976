// Run by tests/through_nginx.rs against a server behind a real nginx over
// https (SB_NGINX_URL, with SB_NGINX_HOST_RULES mapping its name to
// loopback): two people sign up, one signs in again on the login page, and
// they chat in the lobby. The test CA is not installed in Chromium, hence
// --ignore-certificate-errors; the page's own checks (CSP, Secure cookie,
// wss://) run as in production.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { assertNoProblems, launchBrowser, openPage, register, signIn } from '../browser/browser.mjs';
import { PASSWORD } from '../browser/server.mjs';

const base = process.env.SB_NGINX_URL;
const hostRules = process.env.SB_NGINX_HOST_RULES;
if (!base || !hostRules) throw new Error('run by tests/through_nginx.rs: SB_NGINX_URL and SB_NGINX_HOST_RULES');

let browser;

before(async () => {
  browser = await launchBrowser({
    extraArgs: ['--ignore-certificate-errors', `--host-resolver-rules=${hostRules}`],
  });
});

after(async () => {
  await browser?.close();
});

test('sign in and chat through nginx over https', async () => {
  const server = { base };
  const ann = await openPage(browser, server);
  const bob = await openPage(browser, server);
  await register(ann, { username: 'ann', email: 'ann@example.org', password: PASSWORD });
  await register(bob, { username: 'bob', email: 'bob@example.org', password: PASSWORD });

  // Ann signs in again in a fresh context, through the login page.
  const annAgain = await openPage(browser, server);
  await signIn(annAgain, { login: 'ann', password: PASSWORD });
  await annAgain.waitForURL((url) => url.pathname === '/');
  await annAgain.locator('#home').waitFor();
  const cookies = await annAgain.context().cookies();
  const session = cookies.find((c) => c.name === 'sb_session');
  assert.ok(session?.secure, 'the session cookie is Secure behind https');

  await annAgain.goto('/room/lobby');
  await bob.goto('/room/lobby');
  await annAgain.locator('#connection[data-state="open"]').waitFor();
  await bob.locator('#connection[data-state="open"]').waitFor();
  await annAgain.locator('#members .member', { hasText: 'bob' }).waitFor();

  await annAgain.fill('#message-text', 'Hello over https');
  await annAgain.press('#message-text', 'Enter');
  await bob.locator('#messages .message', { hasText: 'Hello over https' }).waitFor();
  await bob.fill('#message-text', 'Loud and clear');
  await bob.press('#message-text', 'Enter');
  await annAgain.locator('#messages .message', { hasText: 'Loud and clear' }).waitFor();
  assert.equal(new URL(annAgain.url()).protocol, 'https:');
  assertNoProblems(assert, ann, bob, annAgain);
});
