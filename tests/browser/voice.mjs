// Voice in the browser tests: two people meeting in a room and joining voice
// through the pages, and what the tests observe of WebRTC without relying on
// how the client organises its connections: every RTCPeerConnection a page
// creates (mesh or SFU) is recorded with the states it went through, and
// inbound audio and the selected candidate pair are read from getStats().

import { eventually, register } from './browser.mjs';
import { PASSWORD } from './server.mjs';

/**
 * Ann and Bob (two pages, each with `watchPeerConnections` already called)
 * register, and Ann creates a room that Bob opens. Both end on the room page
 * with the WebSocket open; the pages get a `name` for messages.
 */
export async function meetInRoom(ann, bob, roomName) {
  ann.name = 'ann';
  bob.name = 'bob';
  await register(ann, { username: 'ann', email: 'ann@example.org', password: PASSWORD });
  await register(bob, { username: 'bob', email: 'bob@example.org', password: PASSWORD });
  await ann.fill('#room-name', roomName);
  await ann.click('#create-room-form button[type="submit"]');
  await ann.locator('#created-room').waitFor();
  await ann.click('#created-room-link');
  await ann.waitForURL(/\/room\/[^/]+$/);
  await bob.goto(ann.url());
  for (const page of [ann, bob]) await page.locator('#connection[data-state="open"]').waitFor();
}

/** Ann joins voice, then Bob (so Bob's side makes the offer). */
export async function joinVoice(ann, bob) {
  await ann.click('#voice-join');
  await ann.locator('#voice-mute').waitFor();
  await bob.locator('#members .member[data-voice="on"]', { hasText: 'ann' }).waitFor();
  await bob.click('#voice-join');
  await bob.locator('#voice-mute').waitFor();
}

export async function leaveVoice(page) {
  await page.click('#voice-leave');
  await page.locator('#voice-join').waitFor();
}

/**
 * Records every RTCPeerConnection the page creates from its next navigation
 * on, in `window.__peerConnections` ({pc, states}). Call it before `goto`.
 */
export async function watchPeerConnections(page) {
  await page.addInitScript(() => {
    const Native = window.RTCPeerConnection;
    const seen = [];
    window.__peerConnections = seen;
    window.RTCPeerConnection = class extends Native {
      constructor(...args) {
        super(...args);
        const entry = { pc: this, states: [this.connectionState] };
        seen.push(entry);
        this.addEventListener('connectionstatechange', () => entry.states.push(this.connectionState));
      }
    };
  });
}

/** The states each of the page's connections went through, oldest connection first. */
export function connectionStates(page) {
  return page.evaluate(() => window.__peerConnections.map(({ states }) => [...states]));
}

/** Resolves once one of the page's connections has reached `state` (within `timeout` ms). */
export async function someConnectionReaches(page, state, { timeout }) {
  await page.waitForFunction(
    (wanted) => window.__peerConnections.some(({ states }) => states.includes(wanted)),
    state,
    { timeout, polling: 100 },
  );
}

/** Bytes of audio received so far over all of the page's open connections. */
export function audioBytesReceived(page) {
  return page.evaluate(async () => {
    let total = 0;
    for (const { pc } of window.__peerConnections) {
      if (pc.signalingState === 'closed') continue;
      const stats = await pc.getStats();
      stats.forEach((report) => {
        if (report.type === 'inbound-rtp' && report.kind === 'audio') total += report.bytesReceived;
      });
    }
    return total;
  });
}

/** Resolves once the page's inbound audio has grown by more than `bytes` (within `timeout` ms). */
export async function audioGrows(page, { timeout, bytes = 2000 }) {
  const first = await audioBytesReceived(page);
  await eventually(async () => (await audioBytesReceived(page)) > first + bytes, {
    timeout,
    message: `growing inbound audio at ${page.name ?? page.url()}`,
  });
}

/**
 * The candidate pair the page's newest open connection uses, both ends
 * ({candidateType, address, port, relayProtocol}), and the types of every
 * local candidate that connection gathered.
 */
export function selectedPath(page) {
  return page.evaluate(async () => {
    const { pc } = window.__peerConnections.findLast(({ pc: open }) => open.signalingState !== 'closed');
    const stats = await pc.getStats();
    let pair = null;
    const localTypes = new Set();
    stats.forEach((report) => {
      if (report.type === 'transport' && report.selectedCandidatePairId) pair = stats.get(report.selectedCandidatePairId);
      if (report.type === 'local-candidate') localTypes.add(report.candidateType);
    });
    if (!pair) throw new Error('the connection has no selected candidate pair');
    const end = (id) => {
      const { candidateType, address, port, relayProtocol } = stats.get(id);
      return { candidateType, address, port, relayProtocol };
    };
    return { local: end(pair.localCandidateId), remote: end(pair.remoteCandidateId), localTypes: [...localTypes] };
  });
}
