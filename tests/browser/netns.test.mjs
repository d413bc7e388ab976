// The network-namespace harness (tests/netns/netns.mjs) does what the SFU
// fallback test needs: inside the namespace, with UDP allowed only to or from
// one port (the SFU's; nothing listens there yet) and TCP only to or from the
// server's HTTP port, the pages load and the WebSocket works, but a
// peer-to-peer call between two pages never connects. As a control, with the
// UDP rule lifted the same two pages do connect and hear each other.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { createNetns, netnsSupport } from '../netns/netns.mjs';
import { assertNoProblems, launchBrowser, openPage } from './browser.mjs';
import { startServer } from './server.mjs';
import {
  audioGrows,
  connectionStates,
  joinVoice,
  leaveVoice,
  meetInRoom,
  selectedPath,
  someConnectionReaches,
  watchPeerConnections,
} from './voice.mjs';

/** The one UDP port left open: the SFU's default (SFU_UDP_PORT). */
const SFU_UDP_PORT = 7882;
/** Chromium gives up on a dead path after about 15 s; on a loaded machine, allow much more. */
const ICE_MS = 120_000;

const support = await netnsSupport();

describe('a network namespace where peer-to-peer voice is blocked', { skip: !support.ok && support.reason }, () => {
  let netns;
  let server;
  let browser;
  let ann;
  let bob;

  before(async () => {
    netns = await createNetns();
    // Peer-to-peer only: this proves the harness, so the client must not move to the SFU.
    server = await startServer({ VOICE_MODE: 'p2p' }, { netns });
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

  test('HTTP and the WebSocket pass the rules', async () => {
    await meetInRoom(ann, bob, 'Behind a firewall');
    await ann.fill('#message-text', 'Can you hear me?');
    await ann.press('#message-text', 'Enter');
    await bob.locator('#messages .message', { hasText: 'Can you hear me?' }).waitFor();
    // The browser really runs in the namespace: it offers the namespace's address.
    const local = await hostCandidates(ann);
    assert.ok(local.includes(netns.address), `host candidates on ${netns.address}: ${local.join(', ')}`);
  });

  test('a peer-to-peer call does not connect: its datagrams are dropped', async () => {
    const before = await netns.dropped();
    await joinVoice(ann, bob);
    for (const page of [ann, bob]) {
      await someConnectionReaches(page, 'failed', { timeout: ICE_MS });
      const states = (await connectionStates(page)).flat();
      assert.ok(!states.includes('connected'), `${page.name}: ${states.join(' → ')}`);
    }
    const after = await netns.dropped();
    assert.ok(after.udp > before.udp, `the UDP rule dropped the ICE checks (${after.udp - before.udp} datagrams)`);
    for (const page of [ann, bob]) await leaveVoice(page);
  });

  test('control: without the UDP rule the same pages connect and hear each other', async (t) => {
    await netns.firewall({ tcpPort: server.port, udpPort: 'any' });
    await joinVoice(ann, bob);
    for (const page of [ann, bob]) {
      await someConnectionReaches(page, 'connected', { timeout: ICE_MS });
      await audioGrows(page, { timeout: ICE_MS });
    }
    const path = await selectedPath(bob);
    assert.equal(path.local.candidateType, 'host', 'a direct path, no relay');
    assert.equal(path.local.address, netns.address);
    t.diagnostic(`bob: ${path.local.address}:${path.local.port} -> ${path.remote.address}:${path.remote.port}`);
    assertNoProblems(assert, ann, bob);
  });
});

/** The addresses of the host candidates a fresh RTCPeerConnection gathers in the page. */
function hostCandidates(page) {
  return page.evaluate(async () => {
    const pc = new RTCPeerConnection();
    const addresses = new Set();
    const gathered = new Promise((resolve) => {
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
    });
    pc.addEventListener('icecandidate', ({ candidate }) => candidate?.address && addresses.add(candidate.address));
    pc.createDataChannel('probe');
    await pc.setLocalDescription();
    await gathered;
    pc.close();
    return [...addresses];
  });
}
