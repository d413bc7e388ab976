// A person running their own account from the profile page: the browsers they are
// signed in with, one of which they end from another (its socket closes and it is
// sent to the sign-in page); a new display name and picture, which another member
// in the room sees at once.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  assertNoProblems,
  eventually,
  launchBrowser,
  openPage,
  register,
  screenshotBoth,
  signIn,
  watchProblems,
} from './browser.mjs';
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

describe('name and picture', () => {
  let server;
  let browser;
  let annProfile;
  let annRoom;
  let bob;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    annProfile = await openPage(browser, server);
    bob = await openPage(browser, server);
    await register(annProfile, { username: 'ann', email: 'ann@example.org', password: PASSWORD });
    await register(bob, { username: 'bob', email: 'bob@example.org', password: PASSWORD });
    // Ann has the room open in a second tab of the same browser.
    annRoom = await annProfile.context().newPage();
    watchProblems(annRoom);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('a new name and picture reach another member without a reload', async () => {
    await annRoom.goto('/room/lobby');
    await annRoom.locator('#connection[data-state="open"]').waitFor();
    await bob.goto('/room/lobby');
    await bob.locator('#connection[data-state="open"]').waitFor();
    await bob.locator('#members .member', { hasText: 'ann' }).waitFor();
    await annRoom.fill('#message-text', 'hello before the change');
    await annRoom.press('#message-text', 'Enter');
    const message = bob.locator('#messages .message', { hasText: 'hello before the change' });
    await message.waitFor();
    assert.equal(await message.locator('img.message-avatar').count(), 0, 'no picture yet: an initial');

    await annProfile.goto('/profile');
    await annProfile.locator('#name-section:not([hidden])').waitFor();
    await annProfile.fill('#display-name', 'Ann Lee');
    await annProfile.click('#display-name-form button[type="submit"]');
    await annProfile.locator('#display-name-form .form-status').filter({ hasText: 'Ann Lee' }).waitFor();
    // A picture drawn here and handed to the file input, as a person would choose one.
    const png = await annProfile.evaluate(() => {
      const canvas = document.createElement('canvas');
      canvas.width = 64;
      canvas.height = 64;
      const draw = canvas.getContext('2d');
      draw.fillStyle = '#e8590c';
      draw.fillRect(0, 0, 64, 64);
      draw.fillStyle = '#ffffff';
      draw.fillRect(16, 16, 32, 32);
      return canvas.toDataURL('image/png').split(',')[1];
    });
    await annProfile.setInputFiles('#avatar-file', { name: 'me.png', mimeType: 'image/png', buffer: Buffer.from(png, 'base64') });
    await annProfile.locator('#avatar-status').filter({ hasText: 'changed' }).waitFor();
    const url = await annProfile.getAttribute('#avatar-preview img', 'src');
    assert.match(url, /^\/avatars\/[\w-]{20,}$/);

    // Bob sees both at once: the member entry, and the picture on Ann's message.
    const entry = bob.locator('#members .member', { hasText: 'Ann Lee' });
    await entry.waitFor();
    assert.match(await entry.textContent(), /@ann/, 'the username beside the display name');
    await eventually(() => entry.locator('img.member-avatar').evaluate((img) => img.complete && img.naturalWidth === 64), {
      message: "Ann's picture in Bob's member list",
    });
    assert.equal(await entry.locator('img.member-avatar').getAttribute('src'), url);
    await eventually(() => message.locator('img.message-avatar').count(), { message: "the picture on Ann's message" });
    assert.equal(await message.locator('.message-author').textContent(), 'ann', 'a message keeps the name it was sent with');
    await annRoom.fill('#message-text', 'hello after the change');
    await annRoom.press('#message-text', 'Enter');
    const later = bob.locator('#messages .message', { hasText: 'hello after the change' });
    await later.waitFor();
    assert.equal(await later.locator('.message-author').textContent(), 'Ann Lee');
    await screenshotBoth(bob, 'room-member-picture');
    assertNoProblems(assert, annProfile, annRoom, bob);
  });
});
