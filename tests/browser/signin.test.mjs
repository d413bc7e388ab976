// Signing up and in through the real pages with the CAPTCHA on (answered from
// the question the page shows), the server's refusals shown on the form, and a
// first single sign-on that goes through the choose-username page.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  assertNoProblems,
  launchBrowser,
  openPage,
  register,
  screenshot,
  screenshotBoth,
  signIn,
  solveCaptcha,
} from './browser.mjs';
import { PASSWORD, startServer } from './server.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));

describe('sign-in pages with the CAPTCHA on', () => {
  let server;
  let browser;
  let page;

  before(async () => {
    server = await startServer({ CAPTCHA: 'true', LOGIN_RATE_PER_MIN: '20' });
    browser = await launchBrowser();
    page = await openPage(browser, server);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('an anonymous visitor is sent to the sign-in page, which shows the question', async () => {
    await page.goto('/room/lobby');
    await page.waitForURL((url) => url.pathname === '/login' && url.searchParams.get('next') === '/room/lobby');
    await page.locator('#captcha .captcha-question', { hasText: /\d/ }).waitFor();
    await screenshotBoth(page, 'login');
  });

  test('registering answers the CAPTCHA from the page, and a wrong answer is explained', async () => {
    await page.goto('/register');
    await page.locator('#register-section').waitFor();
    await page.fill('#username', 'carol');
    await page.fill('#email', 'carol@example.org');
    await page.fill('#password', PASSWORD);
    await page.fill('#password-confirm', PASSWORD);
    const answer = await solveCaptcha(page);
    await page.fill('#captcha-answer', String(answer + 1));
    await screenshotBoth(page, 'register');
    await page.click('#register-form button[type="submit"]');
    await page.locator('#register-form .form-status', { hasText: 'check question was wrong' }).waitFor();

    // A fresh question was loaded; this time the right answer.
    await solveCaptcha(page);
    await page.click('#register-form button[type="submit"]');
    await page.waitForURL((url) => url.pathname === '/');
    await page.locator('#home').waitFor();
    assert.equal(await page.textContent('#username'), '(@carol)');
  });

  test('signing out and in again, with the CAPTCHA; bad passwords are refused', async () => {
    await page.click('#sign-out');
    await page.waitForURL((url) => url.pathname === '/login');

    await signIn(page, { login: 'carol', password: 'wrong password', captcha: true, next: '/room/lobby' });
    await page.locator('#login-form .form-status', { hasText: 'Wrong username, email or password' }).waitFor();

    await page.fill('#password', PASSWORD);
    await solveCaptcha(page);
    await page.click('#login-form button[type="submit"]');
    // Back to where the visitor was going.
    await page.waitForURL((url) => url.pathname === '/room/lobby');
    await page.locator('#connection[data-state="open"]').waitFor();
    assertNoProblems(assert, page);
  });
});

describe('first single sign-on', () => {
  let provider;
  let server;
  let browser;
  let page;

  before(async () => {
    provider = await startProvider();
    server = await startServer({
      OIDC_ISSUER: provider.issuer,
      OIDC_CLIENT_ID: 'switchboard-browser-test',
      OIDC_CLIENT_SECRET: 'browser-test-client-secret',
      OIDC_NAME: 'Example SSO',
    });
    browser = await launchBrowser();
    page = await openPage(browser, server);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    provider?.stop();
  });

  test('goes through choose-username, then home', async () => {
    await page.goto('/login');
    const sso = page.locator('#oidc-link', { hasText: 'Sign in with Example SSO' });
    await sso.waitFor();
    await sso.click();
    await page.waitForURL((url) => url.pathname === '/choose-username');
    await page.locator('#choose-section').waitFor();
    assert.equal(await page.textContent('#display-name'), 'Dana Example');
    await screenshotBoth(page, 'choose-username');

    await page.fill('#username', 'No Spaces');
    await page.click('#choose-form button[type="submit"]');
    await page.locator('#choose-form .form-status[data-kind="error"]').waitFor();
    await page.fill('#username', 'dana');
    await page.click('#choose-form button[type="submit"]');
    await page.waitForURL((url) => url.pathname === '/');
    await page.locator('#home').waitFor();
    assert.equal(await page.textContent('#username'), '(@dana)');
    await screenshot(page, 'home-after-sso');
    assertNoProblems(assert, page);
  });
});

/** The local OpenID provider of the Rust tests (tests/oidc/provider.mjs). */
async function startProvider() {
  const child = spawn(process.execPath, [join(HERE, '..', 'oidc', 'provider.mjs')], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: {
      ...process.env,
      OIDC_EXIT_ON_STDIN_EOF: '1',
      OIDC_CLIENT_SECRET: 'browser-test-client-secret',
      OIDC_SUB: 'dana-1',
      OIDC_EMAIL: 'dana@example.org',
      OIDC_NAME: 'Dana Example',
    },
  });
  const line = await new Promise((resolveLine, reject) => {
    const timer = setTimeout(() => reject(new Error('the OpenID provider did not start within 15 s')), 15_000);
    createInterface({ input: child.stdout }).once('line', (text) => {
      clearTimeout(timer);
      resolveLine(text);
    });
    child.once('exit', (code) => reject(new Error(`the OpenID provider exited (${code})`)));
  });
  const { issuer } = JSON.parse(line);
  return {
    issuer,
    stop() {
      child.stdin.end();
      child.kill('SIGTERM');
    },
  };
}
