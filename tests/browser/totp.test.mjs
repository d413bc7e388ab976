// Two-factor sign-in as a person meets it: turn it on from the profile page
// with a code from an "authenticator" (computed here, RFC 6238), turn it off
// again (which needs the password as well as a code), turn it back on, sign
// out, and sign in again through the login page's code step.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { assertNoProblems, eventually, launchBrowser, openPage, register, screenshot, signIn } from './browser.mjs';
import { PASSWORD, startServer } from './server.mjs';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32Decode(text) {
  let bits = 0;
  let value = 0;
  const bytes = [];
  for (const char of text.replace(/=+$/, '').toUpperCase()) {
    value = (value << 5) | BASE32.indexOf(char);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

/** The 6-digit code of `secret` for the 30-second step `offset` steps from now. */
function totp(secret, offset = 0) {
  const step = Math.floor(Date.now() / 1000 / 30) + offset;
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const digest = createHmac('sha1', base32Decode(secret)).update(counter).digest();
  const at = digest[19] & 0x0f;
  const number = (digest.readUInt32BE(at) & 0x7fffffff) % 1_000_000;
  return String(number).padStart(6, '0');
}

describe('two-factor sign-in', () => {
  let server;
  let browser;
  let page;
  let secret;
  let recoveryCodes;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    page = await openPage(browser, server);
    await register(page, { username: 'tess', email: 'tess@example.org', password: PASSWORD });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('is turned on from the profile page with a first code', async () => {
    await page.goto('/profile');
    await page.locator('#totp-section').waitFor();
    await page.click('#totp-start');
    await page.locator('#totp-enable-form').waitFor();
    secret = (await page.textContent('#totp-secret')).replace(/\s+/g, '');
    assert.match(secret, /^[A-Z2-7]{32}$/);
    assert.match(await page.getAttribute('#totp-link', 'href'), /^otpauth:\/\/totp\/Switchboard%3Atess\?secret=/);
    // The server draws the QR code: an image from this origin, no script involved.
    await eventually(() => page.evaluate(() => document.getElementById('totp-qr').naturalWidth > 0), {
      message: 'the QR code to load',
    });
    assert.match(await page.getAttribute('#totp-qr', 'src'), /^\/api\/me\/totp\/qr\?/);
    await screenshot(page, 'profile-totp-setup');
    await page.fill('#totp-code', totp(secret));
    await page.click('#totp-enable-form button[type="submit"]');
    await page.locator('#totp-disable-form').waitFor();
    assert.equal(await page.textContent('#profile-totp'), 'On');
    // The recovery codes, shown this once, with a warning and a way to keep them.
    await page.locator('#recovery-codes-shown').waitFor();
    assert.equal(await page.locator('#recovery-code-list li').count(), 10);
    assert.match(await page.textContent('#recovery-codes-shown .notice'), /shown only this once/);
    assert.match(await page.getAttribute('#recovery-download', 'href'), /^blob:/);
    await screenshot(page, 'profile-recovery-codes');
    await page.click('#recovery-saved');
    await page.locator('#recovery-codes-shown').waitFor({ state: 'hidden' });
    assert.equal(await page.locator('#recovery-code-list li').count(), 0, 'the codes leave the page');
  });

  test('turning it off needs the password as well as a code', async () => {
    const status = page.locator('#totp-disable-form .form-status');
    // A code alone: the server asks for the password.
    await page.fill('#totp-off-code', totp(secret, 1));
    await page.click('#totp-disable-form button[type="submit"]');
    await status.filter({ hasText: /password/i }).waitFor();
    // A wrong password with a right code.
    await page.fill('#totp-off-password', 'not my password');
    await page.click('#totp-disable-form button[type="submit"]');
    await status.filter({ hasText: 'not right' }).waitFor();
    assert.equal(await page.textContent('#profile-totp'), 'On');
    await screenshot(page, 'profile-totp-disable');
    // Both right: it is off.
    await page.fill('#totp-off-password', PASSWORD);
    await page.click('#totp-disable-form button[type="submit"]');
    await page.locator('#totp-start').waitFor();
    assert.equal(await page.textContent('#profile-totp'), 'Off');

    // And on again, with a new key, for the sign-ins below.
    await page.click('#totp-start');
    await page.locator('#totp-enable-form').waitFor();
    secret = (await page.textContent('#totp-secret')).replace(/\s+/g, '');
    await page.fill('#totp-code', totp(secret));
    await page.click('#totp-enable-form button[type="submit"]');
    await page.locator('#totp-disable-form').waitFor();
    assert.equal(await page.textContent('#profile-totp'), 'On');
    await page.locator('#recovery-codes-shown').waitFor();
    recoveryCodes = await page.locator('#recovery-code-list code').allTextContents();
    assert.equal(recoveryCodes.length, 10);
    await page.click('#recovery-saved');
    await page.locator('#recovery-remaining').filter({ hasText: '10 unused recovery codes' }).waitFor();
  });

  test('then sign-in asks for a code after the password', async () => {
    await page.click('#sign-out');
    await page.waitForURL((url) => url.pathname === '/login');
    await signIn(page, { login: 'tess', password: PASSWORD });
    await page.locator('#totp-section:not([hidden])').waitFor();
    await screenshot(page, 'login-totp');
    // The enabling code's step is used up: the next step's code is fresh.
    await page.fill('#totp', totp(secret, 1));
    await page.click('#login-form button[type="submit"]');
    await page.waitForURL((url) => url.pathname === '/');
    await page.locator('#home').waitFor();
    assertNoProblems(assert, page);
  });

  test('a recovery code signs in once when the app is lost', async () => {
    await page.click('#sign-out');
    await page.waitForURL((url) => url.pathname === '/login');
    await signIn(page, { login: 'tess', password: PASSWORD });
    await page.locator('#totp-section:not([hidden])').waitFor();
    await page.click('#use-recovery-code');
    assert.equal(await page.textContent('#totp-label'), 'Recovery code');
    await page.fill('#totp', recoveryCodes[0]);
    await page.click('#login-form button[type="submit"]');
    // The profile says a code was used and how many are left.
    await page.waitForURL((url) => url.pathname === '/profile');
    await page.locator('#notice:not([hidden])').filter({ hasText: '9 codes are left' }).waitFor();
    await page.locator('#recovery-remaining').filter({ hasText: '9 unused recovery codes' }).waitFor();
    await screenshot(page, 'profile-after-recovery-code');

    // The same code a second time is refused like a wrong code.
    await page.click('#sign-out');
    await page.waitForURL((url) => url.pathname === '/login');
    await signIn(page, { login: 'tess', password: PASSWORD });
    await page.locator('#totp-section:not([hidden])').waitFor();
    await page.click('#use-recovery-code');
    await page.fill('#totp', recoveryCodes[0]);
    await page.click('#login-form button[type="submit"]');
    await page.locator('#login-form .form-status[data-kind="error"]').filter({ hasText: /\w/ }).waitFor();
    assert.equal(new URL(page.url()).pathname, '/login');
    // Another code works, and with it two-factor sign-in can be turned off.
    await page.fill('#totp', recoveryCodes[1]);
    await page.click('#login-form button[type="submit"]');
    await page.waitForURL((url) => url.pathname === '/profile');
    await page.fill('#totp-off-password', PASSWORD);
    await page.fill('#totp-off-code', recoveryCodes[2]);
    await page.click('#totp-disable-form button[type="submit"]');
    await page.locator('#totp-start').waitFor();
    assert.equal(await page.textContent('#profile-totp'), 'Off');
    assertNoProblems(assert, page);
  });
});
