// Voice in real headless Chromium against a release build (issue 9, item 7):
//   join   — join click → inbound audio flowing, at the joiner (B) and at the
//            one already in voice (A), REPS times, for one VOICE_MODE;
//   room   — N pages (one Chromium process each) all in voice with fake
//            microphones; over a WINDOW: each browser's CPU seconds (its whole
//            process tree, from /proc), the server's CPU and RSS, each page's
//            RTP bytes up and down (getStats), its peer connections, and how
//            many of the other N-1 voices arrive at it.
// Usage (hold the bench lock; the release build is used unless SB_BIN says otherwise):
//   flock /tmp/switchboard-bench.lock node bench/voice_browsers.mjs join p2p 10
//   flock /tmp/switchboard-bench.lock node bench/voice_browsers.mjs room sfu 10
// Writes bench/results/voice/<kind>-<mode>[-<n>].json and prints it.

import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
process.env.SB_BIN ??= join(REPO, 'target', 'release', 'switchboard');

const { eventually, launchBrowser, openPage, register } = await import('../tests/browser/browser.mjs');
const { PASSWORD, startServer } = await import('../tests/browser/server.mjs');
const { watchPeerConnections } = await import('../tests/browser/voice.mjs');

const [kind, mode, countArg] = process.argv.slice(2);
if (!['join', 'room'].includes(kind) || !['p2p', 'sfu'].includes(mode)) {
  console.error('usage: node bench/voice_browsers.mjs join|room p2p|sfu [reps|pages]');
  process.exit(2);
}
const COUNT = Number(countArg ?? 10);
const WINDOW_MS = 20_000;
const POLL_MS = 15;
const TICK = 100; // clock ticks per second (getconf CLK_TCK)
const HARD_LIMIT_MS = 10 * 60_000;

const browsers = [];
let server = null;
async function cleanup() {
  await Promise.allSettled(browsers.map((b) => b.close()));
  await server?.stop();
}
// Bounded whatever happens: past the limit everything is stopped and the run fails.
setTimeout(async () => {
  console.error(`voice_browsers: over ${HARD_LIMIT_MS / 1000} s, stopping`);
  await cleanup();
  process.exit(1);
}, HARD_LIMIT_MS).unref();

try {
  const loadBefore = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  server = await startServer({ VOICE_MODE: mode, MESH_LIMIT: '16' });
  const result = kind === 'join' ? await joinRuns() : await roomRun();
  const loadAfter = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const record = {
    kind,
    mode,
    count: COUNT,
    date: new Date().toISOString(),
    binary: process.env.SB_BIN,
    chromium: browsers[0]?.version(),
    load_before: loadBefore,
    load_after: loadAfter,
    ...result,
  };
  const dir = join(REPO, 'bench', 'results', 'voice');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, kind === 'join' ? `join-${mode}.json` : `room-${mode}-${COUNT}.json`);
  writeFileSync(file, `${JSON.stringify(record, null, 1)}\n`);
  console.log(JSON.stringify(record));
} finally {
  await cleanup();
}

// ---- join click → audio flowing ----

async function joinRuns() {
  const browser = await launchBrowser();
  browsers.push(browser);
  const [a, b] = [await openPage(browser, server), await openPage(browser, server)];
  await Promise.all([watchPeerConnections(a), watchPeerConnections(b)]);
  await meet([a, b], 'Join');
  await clickJoin(a);
  await a.locator('#voice-mute').waitFor();
  const runs = [];
  for (let i = 0; i < COUNT; i++) {
    await b.locator('#members .member[data-voice="on"]', { hasText: 'user0' }).waitFor();
    // Both pages poll getStats from before the click; B's click is made in the page.
    await Promise.all([a, b].map((page) => page.evaluate(startAudioWatch, POLL_MS)));
    const clickedAt = await b.evaluate(() => {
      const at = Date.now();
      document.querySelector('#voice-join').click();
      return at;
    });
    const [atA, atB] = await Promise.all([a, b].map((page) => page.evaluate(awaitAudio, 20_000)));
    runs.push({ b_ms: atB - clickedAt, a_ms: atA - clickedAt });
    console.error(`run ${i + 1}: B hears A after ${atB - clickedAt} ms, A hears B after ${atA - clickedAt} ms`);
    await b.click('#voice-leave');
    await b.locator('#voice-join').waitFor();
    await a.locator('#members .member[data-voice="off"]', { hasText: 'user1' }).waitFor();
    await eventually(() => a.evaluate(noInboundGrowth), { message: "A's inbound audio to stop" });
  }
  const summary = (key) => percentiles(runs.map((r) => r[key]));
  return { poll_ms: POLL_MS, runs, joiner_b: summary('b_ms'), already_in_a: summary('a_ms') };
}

/** In the page: remembers every inbound audio stream's bytes now, and polls for any to grow. */
function startAudioWatch(pollMs) {
  const read = async () => {
    const bytes = new Map();
    for (const [index, { pc }] of window.__peerConnections.entries()) {
      if (pc.signalingState === 'closed') continue;
      (await pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'audio') bytes.set(`${index}/${r.id}`, r.bytesReceived);
      });
    }
    return bytes;
  };
  const baseline = read();
  window.__audioAt = baseline.then(
    (before) =>
      new Promise((done) => {
        const timer = setInterval(async () => {
          const now = await read();
          for (const [key, value] of now) {
            if (value > (before.get(key) ?? 0)) {
              clearInterval(timer);
              done(Date.now());
              return;
            }
          }
        }, pollMs);
      }),
  );
  return baseline.then(() => null);
}

function awaitAudio(timeout) {
  return Promise.race([
    window.__audioAt,
    new Promise((_, fail) => setTimeout(() => fail(new Error(`no inbound audio within ${timeout} ms`)), timeout)),
  ]);
}

/** In the page: no inbound audio grows over 300 ms (the other's streams have ended). */
async function noInboundGrowth() {
  const total = async () => {
    let sum = 0;
    for (const { pc } of window.__peerConnections) {
      if (pc.signalingState === 'closed') continue;
      (await pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'audio') sum += r.bytesReceived;
      });
    }
    return sum;
  };
  const first = await total();
  await new Promise((done) => setTimeout(done, 300));
  return (await total()) === first;
}

// ---- a room of N speakers ----

async function roomRun() {
  const pages = [];
  const trees = [];
  for (let i = 0; i < COUNT; i++) {
    const before = new Set(childrenOf(process.pid));
    const browser = await launchBrowser();
    browsers.push(browser);
    const root = childrenOf(process.pid).find((pid) => !before.has(pid) && comm(pid).startsWith('chrom'));
    trees.push(root);
    const page = await openPage(browser, server);
    await watchPeerConnections(page);
    pages.push(page);
  }
  await meet(pages, 'Ten');
  const serverPid = childrenOf(process.pid).find((pid) => comm(pid) === 'switchboard');
  for (const page of pages) {
    await clickJoin(page);
    await page.locator('#voice-mute').waitFor();
  }
  // Connected: every page hears every other voice, or 60 s have passed (then it is reported).
  const settleStart = Date.now();
  let heard = [];
  while (Date.now() - settleStart < 60_000) {
    const first = await Promise.all(pages.map((p) => p.evaluate(rtpTotals)));
    await new Promise((done) => setTimeout(done, 2000));
    const second = await Promise.all(pages.map((p) => p.evaluate(rtpTotals)));
    heard = second.map((s, i) => voicesGrowing(first[i], s));
    if (heard.every((n) => n >= COUNT - 1)) break;
  }
  const allConnectedMs = Date.now() - settleStart;

  // CPU and bytes each over their own measured interval: reading 10 pages' stats takes a while.
  const stats0 = await Promise.all(pages.map((p) => p.evaluate(rtpTotals)));
  const cpuStart = Date.now();
  const cpu0 = trees.map(treeTicks);
  const server0 = processTicks(serverPid);
  await new Promise((done) => setTimeout(done, WINDOW_MS));
  const cpu1 = trees.map(treeTicks);
  const server1 = processTicks(serverPid);
  const seconds = (Date.now() - cpuStart) / 1000;
  const stats1 = await Promise.all(pages.map((p) => p.evaluate(rtpTotals)));

  const perPage = pages.map((_, i) => ({
    browser_cpu_s: (cpu1[i].ticks - cpu0[i].ticks) / TICK,
    browser_cpu_share_of_one_core: (cpu1[i].ticks - cpu0[i].ticks) / TICK / seconds,
    stats_window_s: (stats1[i].at - stats0[i].at) / 1000,
    browser_processes: cpu1[i].count,
    up_kbit_s: ((stats1[i].sent - stats0[i].sent) * 8) / (stats1[i].at - stats0[i].at),
    down_kbit_s: ((stats1[i].received - stats0[i].received) * 8) / (stats1[i].at - stats0[i].at),
    peer_connections: stats1[i].open,
    outbound_streams: stats1[i].outbound,
    voices_heard: voicesGrowing(stats0[i], stats1[i]),
  }));
  const sum = (key) => perPage.reduce((s, p) => s + p[key], 0);
  return {
    pages: COUNT,
    layout: 'one Chromium process (own browser, GPU/utility and renderer processes) per page',
    cpu_window_s: seconds,
    all_heard_everyone_before_window: heard.every((n) => n >= COUNT - 1),
    settle_ms: allConnectedMs,
    server: {
      cpu_s: (server1 - server0) / TICK,
      cpu_share_of_one_core: (server1 - server0) / TICK / seconds,
      rss_kib: rssKib(serverPid),
    },
    browsers_cpu_s_total: sum('browser_cpu_s'),
    browsers_cpu_share_of_machine: sum('browser_cpu_s') / seconds / 2,
    per_page: perPage,
  };
}

/** In the page: RTP bytes over the open connections, and each inbound stream's bytes. */
async function rtpTotals() {
  let sent = 0;
  let received = 0;
  let open = 0;
  let outbound = 0;
  const streams = {};
  for (const [index, { pc }] of window.__peerConnections.entries()) {
    if (pc.signalingState === 'closed') continue;
    open += 1;
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'outbound-rtp' && r.kind === 'audio') {
        sent += r.bytesSent;
        outbound += 1;
      }
      if (r.type === 'inbound-rtp' && r.kind === 'audio') {
        received += r.bytesReceived;
        streams[`${index}/${r.id}`] = r.bytesReceived;
      }
    });
  }
  return { at: Date.now(), sent, received, open, outbound, streams };
}

/** How many inbound streams grew by at least 1,000 bytes between two readings. */
function voicesGrowing(first, second) {
  return Object.entries(second.streams).filter(([key, bytes]) => bytes - (first.streams[key] ?? 0) >= 1000).length;
}

// ---- pages ----

/** Registers user0..user(n-1); user0 creates the room the others open. */
async function meet(pages, roomName) {
  for (const [i, page] of pages.entries()) {
    await register(page, { username: `user${i}`, email: `user${i}@example.org`, password: PASSWORD });
  }
  const [first, ...others] = pages;
  await first.fill('#room-name', roomName);
  await first.click('#create-room-form button[type="submit"]');
  await first.locator('#created-room').waitFor();
  await first.click('#created-room-link');
  await first.waitForURL(/\/room\/[^/]+$/);
  for (const page of others) await page.goto(first.url());
  for (const page of pages) await page.locator('#connection[data-state="open"]').waitFor();
}

function clickJoin(page) {
  return page.click('#voice-join');
}

// ---- /proc ----

function percentiles(values) {
  const sorted = [...values].sort((x, y) => x - y);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  return { p50: at(0.5), p90: at(0.9), max: sorted[sorted.length - 1], n: sorted.length };
}

function stat(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

function comm(pid) {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

function childrenOf(parent) {
  const out = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const fields = stat(name);
    if (fields && Number(fields[1]) === parent) out.push(Number(name));
  }
  return out;
}

/** utime + stime of one process (its threads included), in ticks. */
function processTicks(pid) {
  const fields = stat(pid);
  return fields ? Number(fields[11]) + Number(fields[12]) : 0;
}

/** CPU ticks of a process and all its descendants, and how many there are. */
function treeTicks(root) {
  let ticks = 0;
  let count = 0;
  const queue = [root];
  while (queue.length) {
    const pid = queue.pop();
    ticks += processTicks(pid);
    count += 1;
    queue.push(...childrenOf(pid));
  }
  return { ticks, count };
}

function rssKib(pid) {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  return Number(line.split(/\s+/)[1]);
}
