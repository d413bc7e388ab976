// Files and voice notes in a room: one person attaches an image and records a
// voice note (Chromium's fake microphone); the other sees the image and gets
// an audio player for the note, served from the server. A guest, who may not
// send files by default, sees no controls for it until an admin allows it.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { assertNoProblems, launchBrowser, openPage, register, screenshot, signIn } from './browser.mjs';
import { PASSWORD, startServer } from './server.mjs';

/** A 1x1 PNG. */
const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d4948445200000001000000010806000000' +
    '1f15c4890000000d49444154789c63f8ffff3f0005fe02fea7358184000000004945' +
    '4e44ae426082',
  'hex',
);

describe('files and voice notes', () => {
  let server;
  let browser;
  let ann;
  let bob;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    ann = await openPage(browser, server);
    bob = await openPage(browser, server);
    await register(ann, { username: 'ann', email: 'ann@example.org', password: PASSWORD });
    await register(bob, { username: 'bob', email: 'bob@example.org', password: PASSWORD });
    for (const page of [ann, bob]) {
      await page.goto(server.url('/room/lobby'));
      await page.locator('#connection[data-state="open"]').waitFor();
      // Enabled once the room is joined: the server takes files only from members.
      await page.locator('#attach-file:not([disabled])').waitFor({ state: 'attached' });
    }
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('an attached image appears for the other person', async () => {
    await ann.setInputFiles('#attach-file', { name: 'dot.png', mimeType: 'image/png', buffer: PNG });
    const image = bob.locator('#messages .message-attachment img[alt="dot.png"]');
    await image.waitFor();
    const loaded = await image.evaluate((img) => img.complete && img.naturalWidth === 1);
    assert.ok(loaded, 'the image loads from the server');
    await ann.locator('#attach-status', { hasText: 'Sent dot.png' }).waitFor();
  });

  test('a recorded voice note arrives as an audio player', async () => {
    await ann.click('#record-note');
    await ann.locator('#record-note[aria-pressed="true"]').waitFor();
    await ann.waitForTimeout(1200);
    await ann.click('#record-note');
    const player = bob.locator('#messages .message-attachment audio');
    await player.waitFor();
    const src = await player.getAttribute('src');
    const served = await bob.evaluate(async (url) => {
      const response = await fetch(url);
      return { status: response.status, type: response.headers.get('content-type'), size: (await response.blob()).size };
    }, src);
    assert.equal(served.status, 200);
    assert.equal(served.type, 'audio/webm');
    assert.ok(served.size > 256, `a real recording (${served.size} bytes)`);
    await screenshot(bob, 'room-attachments');
    assertNoProblems(assert, ann, bob);
  });

  test('a guest sees no upload controls until its role may upload', async () => {
    const guest = await openPage(browser, server);
    await guest.goto('/login');
    await guest.locator('#guest-section').waitFor();
    await guest.fill('#guest-name', 'Visitor');
    await guest.click('#guest-form button[type="submit"]');
    await guest.waitForURL((url) => url.pathname === '/');
    await guest.goto(server.url('/room/lobby'));
    await guest.locator('#connection[data-state="open"]').waitFor();
    await guest.locator('#messages').waitFor({ state: 'attached' });
    assert.equal(await guest.locator('#attach-tools').isVisible(), false, 'hidden without files.upload');

    // An admin gives guests the permission: the open page shows the controls.
    const admin = await openPage(browser, server);
    // Made admin the way admin.test.mjs does: on the command line.
    await server.createAdmin({ username: 'admin' });
    await signIn(admin, { login: 'admin', password: PASSWORD });
    await admin.waitForURL((url) => url.pathname === '/');
    const granted = await admin.evaluate(async () => {
      const me = await (await fetch('/api/me')).json();
      const headers = { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token };
      const { roles } = await (await fetch('/api/admin/roles')).json();
      const guestRole = roles.find((role) => role.name === 'guest');
      const response = await fetch(`/api/admin/roles/${guestRole.id}/permissions`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ permission: 'files.upload' }),
      });
      return response.status;
    });
    assert.equal(granted, 200);
    await guest.locator('#attach-tools').waitFor({ state: 'visible' });
    assertNoProblems(assert, guest, admin);
  });
});
