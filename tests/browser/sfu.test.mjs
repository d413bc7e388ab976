// Voice through the server's SFU in real headless Chromium (VOICE_MODE=sfu):
// two people join voice, each page holds one connection to the server and no
// mesh, audio bytes arrive on both sides, the selected ICE candidate pair ends
// at the SFU's UDP port, the other's voice shows as speaking, and leaving ends
// the media.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { assertNoProblems, eventually, launchBrowser, openPage, register, screenshot } from './browser.mjs';
import { PASSWORD, startServer } from './server.mjs';

describe('voice through the SFU', () => {
  let server;
  let browser;
  let ann;
  let bob;
  let sfuPort;

  before(async () => {
    server = await startServer({ VOICE_MODE: 'sfu' });
    sfuPort = portFromLog(server.log);
    browser = await launchBrowser();
    ann = await openPage(browser, server);
    bob = await openPage(browser, server);
    await register(ann, { username: 'ann', email: 'ann@example.org', password: PASSWORD });
    await register(bob, { username: 'bob', email: 'bob@example.org', password: PASSWORD });
    await ann.fill('#room-name', 'Relay');
    await ann.click('#create-room-form button[type="submit"]');
    await ann.locator('#created-room').waitFor();
    await ann.click('#created-room-link');
    await ann.waitForURL(/\/room\/[^/]+$/);
    await bob.goto(ann.url());
    for (const page of [ann, bob]) await page.locator('#connection[data-state="open"]').waitFor();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('both hear each other through the server, on its one UDP port', async (t) => {
    await ann.click('#voice-join');
    await ann.locator('#voice-mute').waitFor();
    await bob.click('#voice-join');
    await bob.locator('#voice-mute').waitFor();

    for (const page of [ann, bob]) {
      const connectMs = await page.evaluate(
        () =>
          new Promise((resolve, reject) => {
            const { voice } = window.__switchboard;
            const deadline = performance.now() + 20_000;
            const check = () => {
              if (voice.sfu?.pc.connectionState === 'connected') resolve(performance.now() - voice.joinStartedAt);
              else if (performance.now() > deadline) reject(new Error('no SFU connection after 20 s'));
              else setTimeout(check, 20);
            };
            check();
          }),
      );
      t.diagnostic(`"Join voice" clicked to the SFU connection "connected" (loopback): ${connectMs.toFixed(0)} ms`);
      assert.equal(await page.evaluate(() => window.__switchboard.voice.peers.size), 0, 'no mesh connection');
    }

    for (const page of [ann, bob]) {
      const first = await inboundAudioBytes(page);
      await eventually(async () => (await inboundAudioBytes(page)) > first + 1000, {
        timeout: 20_000,
        message: 'growing inbound audio through the SFU',
      });
      const remote = await selectedRemoteCandidate(page);
      assert.equal(remote.port, sfuPort, 'the selected pair ends at the SFU port');
      assert.equal(remote.address, '127.0.0.1');
    }

    await ann.locator('#voice-status', { hasText: 'Connected through the server.' }).waitFor();
    // Each hears the other's voice: the fake microphone's beeps show as speaking.
    await ann.locator('#members .member-speaking', { hasText: 'bob' }).waitFor({ timeout: 20_000 });
    await bob.locator('#members .member-speaking', { hasText: 'ann' }).waitFor({ timeout: 20_000 });
    await screenshot(ann, 'room-sfu');
  });

  test('leaving voice ends the media on both sides', async () => {
    await bob.click('#voice-leave');
    await ann.locator('#members .member[data-voice="off"]', { hasText: 'bob' }).waitFor();
    // Ann is told at once that bob's m-line carries nobody: its audio element goes.
    await eventually(async () => (await ann.locator('#remote-audio audio').count()) === 0, {
      message: "bob's audio element to go",
    });
    assert.equal(await bob.evaluate(() => window.__switchboard.voice.sfu), null, 'bob holds no SFU connection');
    assert.equal(await bob.evaluate(() => window.__switchboard.voice.stream), null, 'the microphone is released');
    await ann.click('#voice-leave');
    assertNoProblems(assert, ann, bob);
  });
});

/** The SFU's UDP port, from the server's "SFU listening" log line. */
function portFromLog(log) {
  for (const line of log) {
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      continue;
    }
    if (entry.message === 'SFU listening') return Number(entry.addr.split(':').pop());
  }
  throw new Error('the server did not log "SFU listening"');
}

/** Bytes of audio received on the page's connection to the SFU. */
function inboundAudioBytes(page) {
  return page.evaluate(async () => {
    const link = window.__switchboard.voice.sfu;
    if (!link) return 0;
    let total = 0;
    (await link.pc.getStats()).forEach((report) => {
      if (report.type === 'inbound-rtp' && report.kind === 'audio') total += report.bytesReceived;
    });
    return total;
  });
}

/** The remote end of the selected ICE candidate pair: {address, port, candidateType}. */
function selectedRemoteCandidate(page) {
  return page.evaluate(async () => {
    const stats = await window.__switchboard.voice.sfu.pc.getStats();
    let pairId = null;
    stats.forEach((report) => {
      if (report.type === 'transport' && report.selectedCandidatePairId) pairId = report.selectedCandidatePairId;
    });
    const pair = stats.get(pairId);
    const remote = pair && stats.get(pair.remoteCandidateId);
    return remote ? { address: remote.address, port: remote.port, candidateType: remote.candidateType } : {};
  });
}
