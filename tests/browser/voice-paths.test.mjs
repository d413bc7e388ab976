// Voice paths and server mute in real headless Chromium, VOICE_MODE=auto with
// MESH_LIMIT=2: two people talk peer-to-peer; a moderator's mute silences one
// of them in the mesh (the others stop playing them, their microphone sends
// silence, and their own unmute is refused); a third joining voice takes the
// room over the mesh limit, so the whole room's voice moves to the SFU and
// the member list shows it; there a server mute stops the muted member's
// packets at the others while the rest keep flowing.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { assertNoProblems, eventually, launchBrowser, openPage, register, signIn } from './browser.mjs';
import { PASSWORD, startServer } from './server.mjs';

describe('voice paths and server mute (auto, mesh limit 2)', () => {
  let server;
  let browser;
  let ann;
  let bob;
  let cat;

  before(async () => {
    server = await startServer({ VOICE_MODE: 'auto', MESH_LIMIT: '2' });
    browser = await launchBrowser();
    ann = await openPage(browser, server);
    bob = await openPage(browser, server);
    cat = await openPage(browser, server);
    // Ann is the admin who mutes, made on the command line.
    await server.createAdmin({ username: 'ann' });
    await signIn(ann, { login: 'ann', password: PASSWORD });
    await register(bob, { username: 'bob', email: 'bob@example.org', password: PASSWORD });
    await register(cat, { username: 'cat', email: 'cat@example.org', password: PASSWORD });
    await ann.fill('#room-name', 'Paths');
    await ann.click('#create-room-form button[type="submit"]');
    await ann.locator('#created-room').waitFor();
    await ann.click('#created-room-link');
    await ann.waitForURL(/\/room\/[^/]+$/);
    for (const page of [bob, cat]) await page.goto(ann.url());
    for (const page of [ann, bob, cat]) await page.locator('#connection[data-state="open"]').waitFor();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('two in voice talk peer-to-peer', async () => {
    for (const page of [ann, bob]) {
      await page.click('#voice-join');
      await page.locator('#voice-mute').waitFor();
    }
    for (const page of [ann, bob]) {
      await eventually(async () => (await peerState(page)) === 'connected', { message: 'a connected mesh peer' });
      assert.equal(await page.evaluate(() => window.__switchboard.voice.sfu), null, 'no SFU connection');
    }
    await ann.locator('#members .member[data-path="p2p"]', { hasText: 'bob' }).waitFor();
    const first = await meshInboundBytes(ann);
    await eventually(async () => (await meshInboundBytes(ann)) > first + 1000, { message: 'audio from bob' });
  });

  test('a server mute in the mesh: the others stop playing, the member cannot undo it', async () => {
    const bobSid = await sidOf(bob);
    await apiAs(ann, 'POST', `/api/admin/sessions/${bobSid}/mute`, { muted: true, reason: 'too loud' });
    await bob.locator('#room-notice', { hasText: 'too loud' }).waitFor();
    await ann.locator('#members .member', { hasText: 'Muted by a moderator' }).waitFor();
    // Ann's page no longer plays bob; bob's microphone sends silence.
    await eventually(
      () => ann.evaluate((sid) => window.__switchboard.voice.peers.get(sid)?.audioElement?.muted === true, bobSid),
      { message: "ann's audio element for bob muted" },
    );
    await eventually(
      () => bob.evaluate(() => window.__switchboard.voice.stream.getAudioTracks().every((track) => !track.enabled)),
      { message: "bob's microphone to send silence" },
    );
    await eventually(() => bob.locator('#voice-mute').isDisabled(), { message: 'the mute button disabled' });
    // Bob's own unmute, sent anyway, is refused.
    const refused = await bob.evaluate(
      () =>
        new Promise((resolve) => {
          const { socket } = window.__switchboard;
          const stop = socket.on('error', (frame) => {
            stop();
            resolve(frame.code);
          });
          socket.send({ type: 'mute', muted: false });
        }),
    );
    assert.equal(refused, 'forbidden');
    // What arrives at ann from bob is silence.
    await eventually(async () => (await meshInboundLevel(ann)) < 0.001, { message: "bob's audio level at ann to fall" });

    await apiAs(ann, 'POST', `/api/admin/sessions/${bobSid}/mute`, { muted: false });
    await eventually(
      () => ann.evaluate((sid) => window.__switchboard.voice.peers.get(sid)?.audioElement?.muted === false, bobSid),
      { message: "ann's audio element for bob playing again" },
    );
    assert.equal(await bob.locator('#voice-mute').isDisabled(), false);
  });

  test('a third in voice takes the room over the mesh limit: everyone moves to the SFU', async (t) => {
    await cat.click('#voice-join');
    await cat.locator('#voice-mute').waitFor();
    for (const page of [ann, bob, cat]) {
      await eventually(
        () => page.evaluate(() => window.__switchboard.voice.sfu?.pc.connectionState === 'connected'),
        { message: 'an SFU connection' },
      );
      assert.equal(await page.evaluate(() => window.__switchboard.voice.peers.size), 0, 'the mesh is closed');
    }
    const moved = await ann.evaluate(() => {
      const { voice } = window.__switchboard;
      return { reason: voice.movedToSfu?.reason };
    });
    t.diagnostic(`ann moved to the SFU: ${moved.reason}`);
    for (const page of [ann, bob, cat]) {
      await page.locator('#members .member[data-path="sfu"]').nth(2).waitFor();
    }
    for (const page of [ann, bob, cat]) {
      const first = await sfuInboundBytes(page);
      await eventually(async () => (await sfuInboundBytes(page)) > first + 1000, { message: 'audio through the SFU' });
    }
  });

  test('a server mute on the SFU stops the member at the others', async (t) => {
    const catSid = await sidOf(cat);
    const bobSid = await sidOf(bob);
    await eventually(async () => (await slotBytes(ann, catSid)) > 0 && (await slotBytes(ann, bobSid)) > 0, {
      message: "cat's and bob's voices at ann",
    });
    const asked = Date.now();
    await apiAs(ann, 'POST', `/api/admin/sessions/${catSid}/mute`, { muted: true });
    // Cat's bytes at ann stop growing while bob's go on.
    let last = await slotBytes(ann, catSid);
    let stillSince = Date.now();
    let stoppedAt = null;
    await eventually(
      async () => {
        const now = await slotBytes(ann, catSid);
        if (now !== last) {
          last = now;
          stillSince = Date.now();
        }
        if (Date.now() - stillSince >= 1500) stoppedAt = stillSince;
        return stoppedAt !== null;
      },
      { interval: 20, message: "cat's packets to stop at ann" },
    );
    t.diagnostic(`server mute on the SFU: cat's packets stopped at ann within ${stoppedAt - asked} ms (getStats polled every 20 ms)`);
    const [catThen, bobThen] = [await slotBytes(ann, catSid), await slotBytes(ann, bobSid)];
    await eventually(async () => (await slotBytes(ann, bobSid)) > bobThen + 1000, { message: "more of bob's voice" });
    assert.equal(await slotBytes(ann, catSid), catThen, "none of cat's");
    await cat.locator('#voice-status', { hasText: 'muted by a moderator' }).waitFor();
    for (const page of [ann, bob, cat]) await page.click('#voice-leave');
    assertNoProblems(assert, ann, bob, cat);
  });
});

/** The page's session id. */
function sidOf(page) {
  return page.evaluate(() => window.__switchboard.socket.sid);
}

/** Calls the API with the page's session (and CSRF token). */
function apiAs(page, method, path, body) {
  return page.evaluate(
    async ([m, p, b]) => {
      const { api } = await import('/js/api.js');
      return api(m, p, b);
    },
    [method, path, body],
  );
}

/** The state of the page's one mesh connection. */
function peerState(page) {
  return page.evaluate(() => [...window.__switchboard.voice.peers.values()][0]?.pc.connectionState ?? 'none');
}

/** Audio bytes received over the page's mesh connections. */
function meshInboundBytes(page) {
  return page.evaluate(async () => {
    let total = 0;
    for (const peer of window.__switchboard.voice.peers.values()) {
      (await peer.pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'audio') total += r.bytesReceived;
      });
    }
    return total;
  });
}

/** The loudest audio level arriving over the page's mesh connections (0 to 1). */
function meshInboundLevel(page) {
  return page.evaluate(async () => {
    let level = 0;
    for (const peer of window.__switchboard.voice.peers.values()) {
      (await peer.pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'audio') level = Math.max(level, r.audioLevel ?? 0);
      });
    }
    return level;
  });
}

/** Audio bytes received on the page's SFU connection. */
function sfuInboundBytes(page) {
  return page.evaluate(async () => {
    const link = window.__switchboard.voice.sfu;
    if (!link) return 0;
    let total = 0;
    (await link.pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'audio') total += r.bytesReceived;
    });
    return total;
  });
}

/** Audio bytes received on the SFU m-line that carries `sid` at the page. */
function slotBytes(page, sid) {
  return page.evaluate(async (who) => {
    const link = window.__switchboard.voice.sfu;
    if (!link) return 0;
    for (const [mid, slot] of link.slots) {
      if (slot.sid !== who) continue;
      const transceiver = link.pc.getTransceivers().find((tr) => tr.mid === mid);
      let total = 0;
      (await transceiver.receiver.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp') total += r.bytesReceived;
      });
      return total;
    }
    return 0;
  }, sid);
}

describe('a kick ends mesh voice at once (p2p)', () => {
  let server;
  let browser;
  let ann;
  let bob;

  before(async () => {
    server = await startServer({ VOICE_MODE: 'p2p' });
    browser = await launchBrowser();
    ann = await openPage(browser, server);
    bob = await openPage(browser, server);
    await server.createAdmin({ username: 'ann' });
    await signIn(ann, { login: 'ann', password: PASSWORD });
    await register(bob, { username: 'bob', email: 'bob@example.org', password: PASSWORD });
    for (const page of [ann, bob]) {
      await page.goto('/room/lobby');
      await page.locator('#connection[data-state="open"]').waitFor();
    }
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test("the kicked member's connection closes and its audio stops", async () => {
    for (const page of [ann, bob]) {
      await page.click('#voice-join');
      await page.locator('#voice-mute').waitFor();
    }
    await eventually(async () => (await peerState(ann)) === 'connected', { message: 'the mesh connection' });
    const first = await meshInboundBytes(ann);
    await eventually(async () => (await meshInboundBytes(ann)) > first + 1000, { message: 'audio from bob' });
    const bobSid = await sidOf(bob);
    await apiAs(ann, 'POST', `/api/admin/sessions/${bobSid}/kick`, { reason: 'enough' });
    await eventually(() => ann.evaluate(() => window.__switchboard.voice.peers.size === 0), {
      message: "ann's connection to bob to close",
    });
    assert.equal(await ann.locator('#remote-audio audio').count(), 0, "bob's audio element is gone");
    await eventually(
      () => bob.evaluate(() => [...window.__switchboard.voice.peers.values()].every((p) => p.pc.connectionState === 'closed')),
      { message: "bob's side closed too" },
    );
  });
});
