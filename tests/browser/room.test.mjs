// Two people in two browser contexts: they sign up, meet in a room, chat both
// ways, page back through history, join voice over a real WebRTC connection
// (audio bytes flowing both ways), and see each other mute.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  assertNoProblems,
  eventually,
  launchBrowser,
  openPage,
  register,
  screenshot,
  screenshotBoth,
} from './browser.mjs';
import { PASSWORD, startServer } from './server.mjs';

describe('a room with two people', () => {
  let server;
  let browser;
  let ann;
  let bob;
  let roomUrl;

  before(async () => {
    // Fast chat limits so the history test can fill a room quickly.
    server = await startServer({ CHAT_RATE_PER_SEC: '1000', CHAT_BURST: '1000' });
    browser = await launchBrowser();
    ann = await openPage(browser, server, { permissions: ['clipboard-read', 'clipboard-write'] });
    bob = await openPage(browser, server);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('both register, and one creates a room and copies its invite link', async () => {
    await register(ann, { username: 'ann', email: 'ann@example.org', password: PASSWORD });
    await register(bob, { username: 'bob', email: 'bob@example.org', password: PASSWORD });

    await ann.fill('#room-name', 'Project Falcon');
    await ann.click('#create-room-form button[type="submit"]');
    await ann.locator('#created-room').waitFor();
    await ann.click('#created-room-link');
    await ann.waitForURL(/\/room\/[^/]+$/);
    await ann.locator('#connection[data-state="open"]').waitFor();
    assert.equal(await ann.textContent('#room-name'), 'Project Falcon');

    await ann.click('#copy-invite');
    await ann.locator('#invite-status', { hasText: 'copied' }).waitFor();
    roomUrl = await ann.evaluate(() => navigator.clipboard.readText());
    assert.equal(roomUrl, ann.url());

    await bob.goto(roomUrl);
    await bob.locator('#connection[data-state="open"]').waitFor();
    // Each sees the other in the member list.
    await ann.locator('#members .member', { hasText: 'bob' }).waitFor();
    await bob.locator('#members .member', { hasText: 'ann' }).waitFor();
    assert.equal(await bob.textContent('#member-count'), '2 here');
  });

  test('messages go both ways, with sender and time; Shift+Enter is a new line', async () => {
    await ann.fill('#message-text', 'Hello Bob!');
    await ann.press('#message-text', 'Enter');
    const fromAnn = bob.locator('#messages .message', { hasText: 'Hello Bob!' });
    await fromAnn.waitFor();
    assert.equal(await fromAnn.locator('.message-author').textContent(), 'ann');
    assert.match(await fromAnn.locator('time').textContent(), /^\d{2}:\d{2}$/);
    // The sender's own copy is confirmed by the server (matched by nonce), once.
    await ann.locator('#messages .message[data-id]', { hasText: 'Hello Bob!' }).waitFor();
    assert.equal(await ann.locator('#messages .message', { hasText: 'Hello Bob!' }).count(), 1);
    assert.equal(await ann.inputValue('#message-text'), '');

    await bob.click('#message-text');
    await bob.keyboard.type('Hi Ann,');
    await bob.keyboard.press('Shift+Enter');
    await bob.keyboard.type('two lines <b>not bold</b>');
    await bob.keyboard.press('Enter');
    const fromBob = ann.locator('#messages .message', { hasText: 'two lines' });
    await fromBob.waitFor();
    assert.equal(await fromBob.locator('.message-text').textContent(), 'Hi Ann,\ntwo lines <b>not bold</b>');
    assert.equal(await fromBob.locator('.message-text b').count(), 0, 'text is never parsed as HTML');
  });

  test('the message box refuses more than 4000 characters', async () => {
    await ann.fill('#message-text', 'x'.repeat(4001));
    assert.equal(await ann.textContent('#message-count'), '4001 / 4000');
    await ann.click('#composer button[type="submit"]');
    await ann.locator('#composer .form-status', { hasText: 'at most 4000' }).waitFor();
    assert.equal(await ann.getAttribute('#message-text', 'aria-invalid'), 'true');
    await ann.fill('#message-text', '');
  });

  test('older messages load on demand', async () => {
    // 230 messages through Ann's socket, then Bob comes back: the join brings 200.
    await ann.evaluate(() => {
      const { socket } = window.__switchboard;
      for (let i = 1; i <= 230; i += 1) socket.send({ type: 'chat', text: `filler ${i}` });
    });
    await ann.locator('#messages .message', { hasText: /^ann.*filler 230$/s }).waitFor();
    await bob.reload();
    await bob.locator('#messages .message', { hasText: 'filler 230' }).waitFor();
    assert.equal(await bob.locator('#messages .message').count(), 200);
    assert.equal(await bob.locator('#messages .message', { hasText: 'Hello Bob!' }).count(), 0);

    await bob.click('#load-older');
    await eventually(async () => (await bob.locator('#messages .message').count()) === 232, {
      message: 'the older messages',
    });
    await bob.locator('#beginning').waitFor();
    assert.equal(await bob.isHidden('#load-older'), true);
    const texts = await bob.locator('#messages .message-text').allTextContents();
    assert.equal(texts[0], 'Hello Bob!', 'oldest first');
    assert.equal(texts.at(-1), 'filler 230');
    assert.equal(new Set(await bob.locator('#messages .message').evaluateAll((els) => els.map((e) => e.dataset.id))).size, 232);
  });

  test('both join voice, connect, and hear each other; mute shows on the other side', async (t) => {
    await ann.click('#voice-join');
    await ann.locator('#voice-mute').waitFor();
    await bob.click('#voice-join');
    await bob.locator('#voice-mute').waitFor();

    // Bob joined second: his connection to Ann is the one he set up from his click.
    const connectMs = await bob.evaluate(
      () =>
        new Promise((resolve, reject) => {
          const { voice } = window.__switchboard;
          const deadline = performance.now() + 10_000;
          const check = () => {
            const peer = [...voice.peers.values()][0];
            if (peer?.pc.connectionState === 'connected') resolve(peer.connectedAt - voice.joinStartedAt);
            else if (performance.now() > deadline) reject(new Error('no connected peer after 10 s'));
            else setTimeout(check, 20);
          };
          check();
        }),
    );
    const timing = `voice: "Join voice" clicked to RTCPeerConnection "connected" (loopback): ${connectMs.toFixed(0)} ms`;
    t.diagnostic(timing);
    assert.ok(connectMs < 10_000);
    await ann.waitForFunction(() =>
      [...window.__switchboard.voice.peers.values()].some((p) => p.pc.connectionState === 'connected'),
    );

    // Audio flows both ways: inbound-rtp bytesReceived grows on each side.
    for (const page of [ann, bob]) {
      const first = await audioBytesReceived(page);
      const grown = await eventually(async () => {
        const now = await audioBytesReceived(page);
        return now > first + 1000 ? now : null;
      }, { message: 'growing inbound audio' });
      assert.ok(grown > first);
    }

    // Both show as in voice in each other's member list.
    await bob.locator('#members .member[data-voice="on"]', { hasText: 'ann' }).waitFor();
    await ann.locator('#members .member[data-voice="on"]', { hasText: 'bob' }).waitFor();
    await ann.locator('#voice-status', { hasText: 'Connected to 1 of 1' }).waitFor();

    // The fake microphone beeps: someone shows as speaking at some point.
    await ann.locator('#members .member-speaking').first().waitFor();
    await screenshotBoth(ann, 'room');

    await ann.click('#voice-mute');
    assert.equal(await ann.getAttribute('#voice-mute', 'aria-pressed'), 'true');
    assert.equal(await ann.textContent('#voice-mute'), 'Unmute');
    const annOnBobsList = bob.locator('#members .member', { hasText: 'ann' });
    await bob.locator('#members .member[data-voice="muted"]', { hasText: 'ann' }).waitFor();
    assert.match(await annOnBobsList.textContent(), /Muted/);
    assert.equal(
      await ann.evaluate(() => window.__switchboard.voice.stream.getAudioTracks()[0].enabled),
      false,
      'muting disables the track',
    );
    await screenshot(bob, 'room-peer-muted');

    await ann.click('#voice-mute');
    await bob.locator('#members .member[data-voice="on"]', { hasText: 'ann' }).waitFor();

    // Leaving closes the connection on both sides.
    await bob.click('#voice-leave');
    await ann.locator('#members .member[data-voice="off"]', { hasText: 'bob' }).waitFor();
    await eventually(async () => (await ann.evaluate(() => window.__switchboard.voice.peers.size)) === 0, {
      message: 'the peer connection to close',
    });
    assert.equal(await bob.evaluate(() => window.__switchboard.voice.stream), null, 'the microphone is released');
    await ann.click('#voice-leave');
  });

  test('the profile page changes the username and the password', async () => {
    await bob.goto('/profile');
    await bob.locator('#profile').waitFor();
    assert.equal(await bob.textContent('#profile-email'), 'bob@example.org');
    assert.equal(await bob.textContent('#profile-username'), '@bob');
    await screenshotBoth(bob, 'profile');

    await bob.fill('#username', 'Bad Name');
    await bob.click('#username-form button[type="submit"]');
    await bob.locator('#username-form .form-status[data-kind="error"]').waitFor();

    await bob.fill('#username', 'ann');
    await bob.click('#username-form button[type="submit"]');
    await bob.locator('#username-form .form-status', { hasText: 'That username is taken.' }).waitFor();

    await bob.fill('#username', 'robert');
    await bob.click('#username-form button[type="submit"]');
    await bob.locator('#username-form .form-status', { hasText: '@robert' }).waitFor();
    assert.equal(await bob.textContent('#profile-username'), '@robert');

    await bob.fill('#current-password', 'not my password');
    await bob.fill('#new-password', 'a new password 2');
    await bob.fill('#new-password-confirm', 'a new password 2');
    await bob.click('#password-form button[type="submit"]');
    await bob.locator('#password-form .form-status', { hasText: 'current password is not right' }).waitFor();

    await bob.fill('#current-password', PASSWORD);
    await bob.fill('#new-password', 'a new password 2');
    await bob.fill('#new-password-confirm', 'a new password 2');
    await bob.click('#password-form button[type="submit"]');
    await bob.locator('#password-form .form-status', { hasText: 'Password changed' }).waitFor();
  });

  test('the home page lists the recent rooms', async () => {
    await ann.goto('/');
    const recent = ann.locator('#recent-rooms a', { hasText: 'Project Falcon' });
    await recent.waitFor();
    assert.equal(new URL(await recent.getAttribute('href'), server.base).href, roomUrl);
    await screenshotBoth(ann, 'home');
    assertNoProblems(assert, ann, bob);
  });
});

/** Bytes of audio received over all of the page's peer connections. */
function audioBytesReceived(page) {
  return page.evaluate(async () => {
    let total = 0;
    for (const peer of window.__switchboard.voice.peers.values()) {
      const stats = await peer.pc.getStats();
      stats.forEach((report) => {
        if (report.type === 'inbound-rtp' && report.kind === 'audio') total += report.bytesReceived;
      });
    }
    return total;
  });
}
