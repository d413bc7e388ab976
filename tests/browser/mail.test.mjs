// Mail through the real pages, with a real local SMTP server: the verification
// link from a registration, the "forgot password" flow from the sign-in page to
// a new password, and a single-sign-on-only sign-in page.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { assertNoProblems, launchBrowser, openPage, register, screenshotBoth, signIn } from './browser.mjs';
import { linkIn, startMailbox } from './mailbox.mjs';
import { PASSWORD, startServer } from './server.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const NEW_PASSWORD = 'a much better passphrase';

describe('mail: verification and password reset by link', () => {
  let mailbox;
  let server;
  let browser;
  let page;

  before(async () => {
    mailbox = await startMailbox();
    server = await startServer({ SMTP_URL: mailbox.url, MAIL_RATE_PER_MIN: '0' });
    browser = await launchBrowser();
    page = await openPage(browser, server);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    mailbox?.stop();
  });

  test('the link in the verification mail confirms the address', async () => {
    await register(page, { username: 'vera', email: 'vera@example.org', password: PASSWORD });
    await page.goto('/profile');
    await page.locator('#email-state', { hasText: 'Not confirmed' }).waitFor();
    await page.locator('#email-resend-form').waitFor();

    const mail = await mailbox.mailTo('vera@example.org', 'Confirm your email address');
    const link = linkIn(mail, server.base, '/verify-email?token=');
    // Opened in another browser, where nobody is signed in.
    const other = await openPage(browser, server);
    await other.goto(link);
    await other.locator('#verified-text', { hasText: 'vera@example.org is confirmed' }).waitFor();
    assert.equal(new URL(other.url()).search, '', 'the token leaves the address bar');
    await screenshotBoth(other, 'verify-email');

    // Used once: the same link again is explained.
    await other.goto(link);
    await other.locator('#failed-text', { hasText: 'each link works once' }).waitFor();

    await page.reload();
    await page.locator('#email-state', { hasText: 'Confirmed' }).waitFor();
    assert.equal(await page.isVisible('#email-resend-form'), false);
    assertNoProblems(assert, page, other);
    await other.context().close();
  });

  test('"forgot password" mails a link that sets a new password', async () => {
    await page.click('#sign-out');
    await page.waitForURL((url) => url.pathname === '/login');
    await page.click('#forgot-link');
    await page.waitForURL((url) => url.pathname === '/reset-password');
    await page.fill('#email', 'vera@example.org');
    await page.click('#request-form button[type="submit"]');
    await page.locator('#request-form .form-status', { hasText: 'on its way' }).waitFor();
    await screenshotBoth(page, 'reset-request');

    const mail = await mailbox.mailTo('vera@example.org', 'Reset your password');
    await page.goto(linkIn(mail, server.base, '/reset-password?token='));
    await page.locator('#choose-section').waitFor();
    await page.fill('#password', NEW_PASSWORD);
    await page.fill('#password-confirm', 'does not match');
    await page.click('#choose-form button[type="submit"]');
    await page.locator('#choose-form .form-status', { hasText: 'do not match' }).waitFor();
    await page.fill('#password-confirm', NEW_PASSWORD);
    await screenshotBoth(page, 'reset-choose');
    await page.click('#choose-form button[type="submit"]');
    await page.locator('#done-section').waitFor();

    await signIn(page, { login: 'vera', password: PASSWORD });
    await page.locator('#login-form .form-status', { hasText: 'Wrong username, email or password' }).waitFor();
    await page.fill('#password', NEW_PASSWORD);
    await page.click('#login-form button[type="submit"]');
    await page.waitForURL((url) => url.pathname === '/');
    await page.locator('#home').waitFor();
    assertNoProblems(assert, page);
  });
});

describe('REQUIRE_VERIFIED_EMAIL on the room page', () => {
  let mailbox;
  let server;
  let browser;
  let page;

  before(async () => {
    mailbox = await startMailbox();
    server = await startServer({ SMTP_URL: mailbox.url, REQUIRE_VERIFIED_EMAIL: 'true' });
    browser = await launchBrowser();
    page = await openPage(browser, server);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    mailbox?.stop();
  });

  test('the room tells an unverified person to confirm, and lets them in once they have', async () => {
    await register(page, { username: 'walt', email: 'walt@example.org', password: PASSWORD });
    await page.goto('/room/lobby');
    await page.locator('#room-notice', { hasText: 'Confirm your email address first' }).waitFor();
    assert.equal(await page.locator('#members li').count(), 0, 'not in the room');

    const mail = await mailbox.mailTo('walt@example.org', 'Confirm your email address');
    const other = await openPage(browser, server);
    await other.goto(linkIn(mail, server.base, '/verify-email?token='));
    await other.locator('#verified').waitFor();

    // The open room page hears of it on its socket and joins.
    await page.locator('#members li', { hasText: 'walt' }).waitFor();
    assert.equal(await page.isVisible('#room-notice'), false);
    assertNoProblems(assert, page, other);
  });
});

describe('sign-in with single sign-on only', () => {
  let provider;
  let server;
  let browser;
  let page;

  before(async () => {
    provider = await startProvider();
    server = await startServer({
      PASSWORD_LOGIN: 'false',
      ALLOW_GUESTS: 'false',
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

  test('the sign-in page shows the provider button alone, and it signs in', async () => {
    await page.goto('/login');
    const sso = page.locator('#oidc-link', { hasText: 'Sign in with Example SSO' });
    await sso.waitFor();
    for (const hidden of ['#password-section', '#password-divider', '#guest-section', '#forgot-footer', '#register-footer']) {
      assert.equal(await page.isVisible(hidden), false, `${hidden} is hidden`);
    }
    await screenshotBoth(page, 'login-sso-only');

    await page.goto('/register');
    await page.locator('#oidc-link', { hasText: 'Sign up with Example SSO' }).waitFor();
    assert.equal(await page.isVisible('#register-section'), false);

    await page.goto('/login');
    await sso.click();
    await page.waitForURL((url) => url.pathname === '/choose-username');
    await page.fill('#username', 'sso.only');
    await page.click('#choose-form button[type="submit"]');
    await page.waitForURL((url) => url.pathname === '/');
    await page.locator('#home').waitFor();
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
      OIDC_SUB: 'sso-1',
      OIDC_EMAIL: 'sso@example.org',
      OIDC_NAME: 'Sso Only',
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
