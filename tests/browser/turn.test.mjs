// TURN that is proven: a real coturn started from deploy/coturn/turnserver.conf
// (changed only for loopback, see coturn.mjs), Switchboard handing out its
// time-limited credentials in `hello`, and two separate Chromium processes
// that may only use relay candidates (ICE_TRANSPORT_POLICY=relay). They hear
// each other through the relay; with the shipped peer rules in force, the
// relay refuses to carry their call.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { assertNoProblems, eventually, launchBrowser, openPage, register } from './browser.mjs';
import { startCoturn } from './coturn.mjs';
import { PASSWORD, startServer } from './server.mjs';

/** ICE through a relay on a loaded 2-core machine: generous. */
const CONNECT_MS = 45_000;

describe('voice through a real coturn with ICE_TRANSPORT_POLICY=relay', () => {
  /** Two browser processes, as two people on two machines would have. */
  let browsers = [];

  before(async () => {
    browsers = await Promise.all([launchBrowser(), launchBrowser()]);
  });

  after(async () => {
    await Promise.all(browsers.map((browser) => browser.close()));
  });

  test('two browsers hear each other through TURN only, with the credentials from hello', async (t) => {
    const coturn = await startCoturn();
    t.after(() => coturn.stop());
    const server = await startServer({
      TURN_URLS: coturn.urls,
      TURN_SECRET: coturn.secret,
      ICE_TRANSPORT_POLICY: 'relay',
    });
    t.after(() => server.stop());

    const [ann, bob] = await meetInVoice(server, browsers);
    for (const page of [ann, bob]) {
      assert.equal(await page.evaluate(() => window.__switchboard.socket.iceTransportPolicy), 'relay');
      await page.waitForFunction(
        () => [...window.__switchboard.voice.peers.values()].some((peer) => peer.pc.connectionState === 'connected'),
        null,
        { timeout: CONNECT_MS },
      );
    }

    for (const page of [ann, bob]) {
      const path = await selectedPath(page);
      assert.equal(path.local.candidateType, 'relay', 'the selected pair starts at this side\'s TURN relay');
      assert.equal(path.remote.candidateType, 'relay', 'and ends at the other side\'s');
      assert.equal(path.local.address, '127.0.0.1');
      assert.equal(path.local.relayProtocol, 'udp');
      assert.deepEqual(path.localTypes, ['relay'], 'relay policy: no host or server-reflexive candidate is gathered');
      t.diagnostic(`${page.name}: selected pair ${path.local.address}:${path.local.port} (relay) -> ${path.remote.address}:${path.remote.port} (relay)`);
    }

    // Audio flows both ways through the relay.
    for (const page of [ann, bob]) {
      const first = await audioBytesReceived(page);
      await eventually(async () => (await audioBytesReceived(page)) > first + 2000, {
        timeout: CONNECT_MS,
        message: `growing inbound audio at ${page.name}`,
      });
    }

    // coturn accepted the very credentials Switchboard put in each `hello`.
    for (const page of [ann, bob]) {
      const username = await page.evaluate(() => window.__switchboard.socket.iceServers[0].username);
      assert.match(username, /^\d+:\d+$/);
      await coturn.waitForLog(new RegExp(`user <${username}>: incoming packet ALLOCATE processed, success`));
    }
    assertNoProblems(assert, ann, bob);
  });

  test('the shipped denied-peer-ip list keeps the relay from reaching loopback peers', async (t) => {
    // coturn's own loopback rule is off here: only the shipped list stands in the way.
    const coturn = await startCoturn({ loopbackPeers: 'denied-peer-ip only' });
    t.after(() => coturn.stop());
    const server = await startServer({
      TURN_URLS: coturn.urls,
      TURN_SECRET: coturn.secret,
      ICE_TRANSPORT_POLICY: 'relay',
    });
    t.after(() => server.stop());

    const [ann, bob] = await meetInVoice(server, browsers);
    for (const page of [ann, bob]) await recordPeerStates(page);
    // Each side's relay refuses to send to the other's relay address, 127.0.0.1.
    await coturn.waitForLog(/CREATE_PERMISSION processed, error 403/, { timeout: CONNECT_MS });
    for (const page of [ann, bob]) {
      const states = await eventually(
        () => page.evaluate(() => (window.peerStates.includes('failed') ? window.peerStates : null)),
        { timeout: CONNECT_MS, message: `the connection to fail at ${page.name}` },
      );
      assert.ok(!states.includes('connected'), `${page.name} never connected: ${states.join(', ')}`);
    }
  });
});

/**
 * Ann (first browser) and Bob (second) register, meet in a new room and both
 * join voice. Answers their pages, each with a `name`.
 */
async function meetInVoice(server, [first, second]) {
  const ann = await openPage(first, server);
  const bob = await openPage(second, server);
  ann.name = 'ann';
  bob.name = 'bob';
  await register(ann, { username: 'ann', email: 'ann@example.org', password: PASSWORD });
  await register(bob, { username: 'bob', email: 'bob@example.org', password: PASSWORD });
  await ann.fill('#room-name', 'Relay');
  await ann.click('#create-room-form button[type="submit"]');
  await ann.locator('#created-room').waitFor();
  await ann.click('#created-room-link');
  await ann.waitForURL(/\/room\/[^/]+$/);
  await bob.goto(ann.url());
  for (const page of [ann, bob]) await page.locator('#connection[data-state="open"]').waitFor();
  await ann.click('#voice-join');
  await ann.locator('#voice-mute').waitFor();
  await bob.locator('#members .member[data-voice="on"]', { hasText: 'ann' }).waitFor();
  await bob.click('#voice-join');
  await bob.locator('#voice-mute').waitFor();
  return [ann, bob];
}

/** Every state the page's peer connections go through lands in `window.peerStates`. */
async function recordPeerStates(page) {
  await page.evaluate(() => {
    const { voice } = window.__switchboard;
    window.peerStates = [...voice.peers.values()].map((peer) => peer.pc.connectionState);
    const report = voice.onPeer;
    voice.onPeer = (sid, state) => {
      window.peerStates.push(state);
      report(sid, state);
    };
  });
}

/**
 * The candidate pair the page's (one) peer connection uses, with both ends,
 * and the types of every local candidate it gathered.
 */
function selectedPath(page) {
  return page.evaluate(async () => {
    const [peer] = window.__switchboard.voice.peers.values();
    const stats = await peer.pc.getStats();
    let pair = null;
    const localTypes = new Set();
    stats.forEach((report) => {
      if (report.type === 'transport' && report.selectedCandidatePairId) pair = stats.get(report.selectedCandidatePairId);
      if (report.type === 'local-candidate') localTypes.add(report.candidateType);
    });
    if (!pair) throw new Error('the peer connection has no selected candidate pair');
    const end = (id) => {
      const { candidateType, address, port, relayProtocol } = stats.get(id);
      return { candidateType, address, port, relayProtocol };
    };
    return { local: end(pair.localCandidateId), remote: end(pair.remoteCandidateId), localTypes: [...localTypes] };
  });
}

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
