// A person running their own account from the profile page: the browsers they are
// signed in with, one of which they end from another (its socket closes and it is
// sent to the sign-in page).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { assertNoProblems, launchBrowser, openPage, register, screenshotBoth, signIn } from './browser.mjs';
import { PASSWORD, startServer } from './server.mjs';

describe('your sessions', () => {
  let server;
  let browser;
  let desk;
  let laptop;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    desk = await openPage(browser, server);
    laptop = await openPage(browser, server);
    await register(desk, { username: 'nia', email: 'nia@example.org', password: PASSWORD });
    await signIn(laptop, { login: 'nia', password: PASSWORD });
    await laptop.waitForURL((url) => url.pathname === '/');
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('the profile lists both browsers, this one marked', async () => {
    await desk.goto('/profile');
    await desk.locator('#own-sessions .own-session').nth(1).waitFor();
    assert.equal(await desk.locator('#own-sessions .own-session').count(), 2);
    const current = desk.locator('#own-sessions .own-session', { hasText: 'This browser' });
    assert.equal(await current.count(), 1);
    assert.match(await current.textContent(), /Chrome \d+ on Linux/);
    assert.match(await current.textContent(), /From 127\.0\.0\.1/);
    assert.equal(await current.locator('button').count(), 0, 'the current one is ended by signing out');
    await screenshotBoth(desk, 'profile-sessions');
  });

  test('ending the other closes its socket and sends it to the sign-in page', async () => {
    await laptop.goto('/room/lobby');
    await laptop.locator('#connection[data-state="open"]').waitFor();
    const other = desk.locator('#own-sessions .own-session', { hasNotText: 'This browser' });
    await other.getByRole('button', { name: /End the session/ }).click();
    await desk.locator('#sessions-status').filter({ hasText: 'is signed out' }).waitFor();
    assert.equal(await desk.locator('#own-sessions .own-session').count(), 1);

    await laptop.waitForURL((url) => url.pathname === '/login' && url.searchParams.get('next') === '/room/lobby');
    await laptop.locator('#password-section:not([hidden])').waitFor();
    assertNoProblems(assert, desk, laptop);
  });

  test('signing out everywhere else leaves this browser signed in', async () => {
    await signIn(laptop, { login: 'nia', password: PASSWORD, next: '/room/lobby' });
    await laptop.waitForURL((url) => url.pathname === '/room/lobby');
    await laptop.locator('#connection[data-state="open"]').waitFor();
    await desk.reload();
    await desk.locator('#own-sessions .own-session').nth(1).waitFor();
    await desk.click('#end-other-sessions');
    await desk.locator('#sessions-status').filter({ hasText: 'Signed out everywhere else (1 session)' }).waitFor();
    await laptop.waitForURL((url) => url.pathname === '/login');
    assert.equal(await desk.locator('#own-sessions .own-session').count(), 1);
    assertNoProblems(assert, desk, laptop);
  });
});
