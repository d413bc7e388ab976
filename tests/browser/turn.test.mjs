// TURN that is proven: a real coturn started from deploy/coturn/turnserver.conf
// (changed only for loopback, see coturn.mjs), Switchboard handing out its
// time-limited credentials in `hello`, and two separate Chromium processes
// that may only use relay candidates (ICE_TRANSPORT_POLICY=relay). They hear
// each other through the relay; with the shipped peer rules in force, the
// relay refuses to carry their call.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { assertNoProblems, launchBrowser, openPage } from './browser.mjs';
import { startCoturn } from './coturn.mjs';
import { startServer } from './server.mjs';
import {
  audioGrows,
  connectionStates,
  joinVoice,
  meetInRoom,
  selectedPath,
  someConnectionReaches,
  watchPeerConnections,
} from './voice.mjs';

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

  /** coturn with `loopbackPeers`, a server using it with relay only, Ann and Bob in voice. */
  async function callThroughCoturn(t, loopbackPeers) {
    const coturn = await startCoturn({ loopbackPeers });
    t.after(() => coturn.stop());
    const server = await startServer({
      TURN_URLS: coturn.urls,
      TURN_SECRET: coturn.secret,
      ICE_TRANSPORT_POLICY: 'relay',
    });
    t.after(() => server.stop());
    const pages = [];
    for (const browser of browsers) {
      const page = await openPage(browser, server);
      t.after(() => page.context().close());
      await watchPeerConnections(page);
      pages.push(page);
    }
    const [ann, bob] = pages;
    await meetInRoom(ann, bob, 'Relay');
    await joinVoice(ann, bob);
    return { coturn, ann, bob };
  }

  test('two browsers hear each other through TURN only, with the credentials from hello', async (t) => {
    const { coturn, ann, bob } = await callThroughCoturn(t, 'allowed');
    for (const page of [ann, bob]) {
      assert.equal(await page.evaluate(() => window.__switchboard.socket.iceTransportPolicy), 'relay');
      await someConnectionReaches(page, 'connected', { timeout: CONNECT_MS });
    }

    for (const page of [ann, bob]) {
      const path = await selectedPath(page);
      assert.equal(path.local.candidateType, 'relay', "the selected pair starts at this side's TURN relay");
      assert.equal(path.remote.candidateType, 'relay', "and ends at the other side's");
      assert.equal(path.local.address, '127.0.0.1');
      assert.equal(path.local.relayProtocol, 'udp');
      assert.deepEqual(path.localTypes, ['relay'], 'relay policy: no host or server-reflexive candidate is gathered');
      t.diagnostic(
        `${page.name}: selected pair ${path.local.address}:${path.local.port} (relay) -> ` +
          `${path.remote.address}:${path.remote.port} (relay)`,
      );
    }

    // Audio flows both ways through the relay.
    for (const page of [ann, bob]) await audioGrows(page, { timeout: CONNECT_MS });

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
    const { coturn, ann, bob } = await callThroughCoturn(t, 'denied-peer-ip only');
    // Each side's relay refuses to send to the other's relay address, 127.0.0.1.
    await coturn.waitForLog(/CREATE_PERMISSION processed, error 403: Forbidden IP/, { timeout: CONNECT_MS });
    for (const page of [ann, bob]) {
      await someConnectionReaches(page, 'failed', { timeout: CONNECT_MS });
      const states = (await connectionStates(page)).flat();
      assert.ok(!states.includes('connected'), `${page.name} never connected: ${states.join(', ')}`);
    }
  });
});
