// Voice that falls back by itself: in a network namespace whose nftables rules
// drop every UDP datagram not to or from the SFU's port (and TCP other than
// the HTTP port), two pages in VOICE_MODE=auto start peer-to-peer, their
// connection never comes up, and within the fallback timeout both move to
// the SFU and hear each other through it.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { createNetns, netnsSupport } from '../netns/netns.mjs';
import { assertNoProblems, eventually, launchBrowser, openPage } from './browser.mjs';
import { startServer } from './server.mjs';
import { audioGrows, connectionStates, joinVoice, meetInRoom, selectedPath, watchPeerConnections } from './voice.mjs';

const SFU_UDP_PORT = 7882;
/** The fallback takes 5 s; connecting to the SFU on a loaded machine may take much longer. */
const WAIT_MS = 120_000;

const support = await netnsSupport();

describe('peer-to-peer blocked: voice moves to the SFU by itself', { skip: !support.ok && support.reason }, () => {
  let netns;
  let server;
  let browser;
  let ann;
  let bob;

  before(async () => {
    netns = await createNetns();
    server = await startServer(
      { VOICE_MODE: 'auto', SFU_UDP_PORT: String(SFU_UDP_PORT), SFU_PUBLIC_IP: netns.address },
      { netns },
    );
    await netns.firewall({ tcpPort: server.port, udpPort: SFU_UDP_PORT });
    browser = await launchBrowser({ netns });
    ann = await openPage(browser, server);
    bob = await openPage(browser, server);
    for (const page of [ann, bob]) await watchPeerConnections(page);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await netns?.destroy();
  });

  test('the mesh never connects; both move to the SFU and audio grows', async (t) => {
    await meetInRoom(ann, bob, 'Firewalled');
    const before = await netns.dropped();
    await joinVoice(ann, bob);
    // Each page notes when the first audio arrives through the SFU (polled every 20 ms).
    for (const page of [ann, bob]) {
      await page.evaluate(() => {
        const poll = async () => {
          const link = window.__switchboard.voice.sfu;
          let bytes = 0;
          if (link) {
            (await link.pc.getStats()).forEach((r) => {
              if (r.type === 'inbound-rtp' && r.kind === 'audio') bytes += r.bytesReceived;
            });
          }
          if (bytes > 0) window.__firstSfuAudio = performance.now();
          else setTimeout(poll, 20);
        };
        poll();
      });
    }
    for (const page of [ann, bob]) {
      await eventually(
        () => page.evaluate(() => window.__switchboard.voice.sfu?.pc.connectionState === 'connected'),
        { timeout: WAIT_MS, message: `${page.name}: an SFU connection` },
      );
      await audioGrows(page, { timeout: WAIT_MS });
      const path = await selectedPath(page);
      assert.equal(path.remote.port, SFU_UDP_PORT, `${page.name}: the audio comes from the SFU's port`);
      const states = await connectionStates(page);
      // The first connection (the mesh) never came up; the last (the SFU) did.
      assert.ok(!states[0].includes('connected'), `${page.name}: mesh ${states[0].join(' → ')}`);
      assert.ok(states.at(-1).includes('connected'), `${page.name}: SFU ${states.at(-1).join(' → ')}`);
    }
    const after = await netns.dropped();
    assert.ok(after.udp > before.udp, 'the rules dropped the direct ICE checks');
    await ann.locator('#members .member[data-path="sfu"]', { hasText: 'bob' }).waitFor();

    for (const page of [ann, bob]) {
      const { reason, toAudioMs, fromJoinMs } = await page.evaluate(() => {
        const { voice } = window.__switchboard;
        return {
          reason: voice.movedToSfu.reason,
          toAudioMs: window.__firstSfuAudio - voice.movedToSfu.at,
          fromJoinMs: window.__firstSfuAudio - voice.joinStartedAt,
        };
      });
      t.diagnostic(
        `${page.name}: moved (${reason}); move → first SFU audio ${toAudioMs.toFixed(0)} ms; ` +
          `"Join voice" → first SFU audio ${fromJoinMs.toFixed(0)} ms`,
      );
    }
    assertNoProblems(assert, ann, bob);
  });
});
