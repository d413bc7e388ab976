// A real coturn (Debian's `turnserver`) for the browser tests, started from the
// shipped deploy/coturn/turnserver.conf with only the changes a test on
// loopback needs (LOOPBACK_CHANGES, also listed in deploy/README.md). It is
// ready once it answers a STUN Binding request, and it is stopped by `stop()`,
// by the exit of the test process, or, after a crash, by the next run.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { commandLine, exitOf, isRunning, terminate } from './processes.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
export const DEPLOY_CONFIG = resolve(HERE, '..', '..', 'deploy', 'coturn', 'turnserver.conf');
export const TURNSERVER = process.env.SB_TURNSERVER ?? '/usr/bin/turnserver';

const START_TIMEOUT_MS = 30_000;
/** Temporary folders are named after the test process, so a later run can tell whose they were. */
const DIR_PREFIX = 'switchboard-coturn-';

/**
 * What the test changes in the shipped file, and why. Every other line
 * (use-auth-secret, fingerprint, quotas, no-cli, the denied peer ranges...)
 * is used exactly as shipped.
 */
export const LOOPBACK_CHANGES = [
  ['listening-port', 'a free port, not 3478: other runs or a system coturn may hold that'],
  ['listening-ip', '127.0.0.1: the test reaches nothing else'],
  ['relay-ip', '127.0.0.1: the relayed media stays on loopback too'],
  ['static-auth-secret', "the test server's TURN_SECRET"],
  ['pidfile', 'in the run\'s own folder, so a crashed run\'s coturn can be found and stopped'],
  ['verbose', 'logs every request it answers (ALLOCATE by which user, a refused CREATE_PERMISSION), which the tests read'],
  [
    'allow-loopback-peers, allowed-peer-ip=127.0.0.1',
    "both browsers' relay candidates are 127.0.0.1 ports of this coturn, which the shipped " +
      'file refuses as peers (coturn\'s own loopback rule and denied-peer-ip 127/8). ' +
      'allowed-peer-ip wins over denied-peer-ip, so the deny list itself stays in force',
  ],
];

/**
 * The shipped configuration with the loopback changes. `loopbackPeers`:
 * 'allowed' (both lines), or 'denied-peer-ip only' (coturn's own loopback
 * rule off, so only the shipped denied-peer-ip list stands in the way).
 */
export function loopbackConfig(shipped, { port, secret, pidfile, loopbackPeers = 'allowed' }) {
  let text = shipped;
  const replace = (pattern, line) => {
    if (!pattern.test(text)) throw new Error(`${DEPLOY_CONFIG} has no line matching ${pattern}`);
    text = text.replace(pattern, line);
  };
  replace(/^listening-port=.*$/m, `listening-port=${port}`);
  replace(/^#?listening-ip=.*$/m, 'listening-ip=127.0.0.1');
  replace(/^static-auth-secret=.*$/m, `static-auth-secret=${secret}`);
  const added = ['relay-ip=127.0.0.1', `pidfile=${pidfile}`, 'verbose', 'allow-loopback-peers'];
  if (loopbackPeers === 'allowed') added.push('allowed-peer-ip=127.0.0.1');
  return `${text}\n# --- added by tests/browser/coturn.mjs for a loopback test ---\n${added.join('\n')}\n`;
}

/**
 * Starts coturn with the loopback changes and a fresh secret. Answers
 * {secret, port, urls, log, waitForLog(pattern), stop()}.
 */
export async function startCoturn({ loopbackPeers = 'allowed' } = {}) {
  if (!existsSync(TURNSERVER)) {
    throw new Error(`No coturn at ${TURNSERVER}: run tests/setup.sh (Debian package coturn).`);
  }
  stopLeftovers();
  const dir = mkdtempSync(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
  const secret = randomBytes(24).toString('hex');
  const port = await freePort();
  const pidfile = join(dir, 'turnserver.pid');
  const configPath = join(dir, 'turnserver.conf');
  const config = loopbackConfig(readFileSync(DEPLOY_CONFIG, 'utf8'), { port, secret, pidfile, loopbackPeers });
  writeFileSync(configPath, config, { mode: 0o600 });

  const child = spawn(TURNSERVER, ['-c', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = exitOf(child);
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const log = [];
  const listeners = new Set();
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      log.push(line);
      if (process.env.SB_TEST_LOG) console.error(`coturn: ${line}`);
      for (const listener of listeners) listener(line);
    });
  }
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await terminate(child, exited);
    process.removeListener('exit', killOnExit);
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await Promise.race([
      answersStun(port),
      exited.then(({ code, signal }) => {
        throw new Error(`coturn exited (${code ?? signal}) while starting:\n${log.slice(-20).join('\n')}`);
      }),
    ]);
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    secret,
    port,
    urls: `turn:127.0.0.1:${port}?transport=udp`,
    log,
    /** Resolves with the first log line (past or future) matching `pattern`. */
    waitForLog(pattern, { timeout = START_TIMEOUT_MS } = {}) {
      const seen = log.find((line) => pattern.test(line));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolveLine, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(listener);
          reject(new Error(`coturn logged nothing matching ${pattern} within ${timeout} ms`));
        }, timeout);
        const listener = (line) => {
          if (!pattern.test(line)) return;
          clearTimeout(timer);
          listeners.delete(listener);
          resolveLine(line);
        };
        listeners.add(listener);
      });
    },
    stop,
  };
}

/** A port free on 127.0.0.1 for both TCP and UDP (coturn listens on both). */
async function freePort() {
  for (;;) {
    const tcp = createServer();
    await new Promise((done, fail) => tcp.once('error', fail).listen(0, '127.0.0.1', done));
    const { port } = tcp.address();
    const udp = createSocket('udp4');
    const udpFree = await new Promise((done) => {
      udp.once('error', () => done(false));
      udp.bind(port, '127.0.0.1', () => done(true));
    });
    udp.close();
    await new Promise((done) => tcp.close(done));
    if (udpFree) return port;
  }
}

/** Resolves once a STUN Binding request to 127.0.0.1:port gets its success response. */
function answersStun(port) {
  const MAGIC_COOKIE = 0x2112a442;
  const transaction = randomBytes(12);
  const request = Buffer.alloc(20);
  request.writeUInt16BE(0x0001, 0); // Binding request, no attributes
  request.writeUInt32BE(MAGIC_COOKIE, 4);
  transaction.copy(request, 8);
  const socket = createSocket('udp4');
  return new Promise((resolveReady, reject) => {
    const finish = (error) => {
      clearInterval(retry);
      clearTimeout(timer);
      socket.close();
      if (error) reject(error);
      else resolveReady();
    };
    socket.on('message', (reply) => {
      const success = reply.length >= 20 && reply.readUInt16BE(0) === 0x0101;
      if (success && reply.subarray(8, 20).equals(transaction)) finish();
    });
    const send = () => socket.send(request, port, '127.0.0.1');
    const retry = setInterval(send, 200);
    const timer = setTimeout(
      () => finish(new Error(`coturn did not answer STUN on 127.0.0.1:${port} within ${START_TIMEOUT_MS} ms`)),
      START_TIMEOUT_MS,
    );
    send();
  });
}

/**
 * Stops the coturn of an earlier run whose test process is gone (killed
 * before its clean-up ran), found by the pid file in that run's folder and
 * recognised by its command line, and removes the folder.
 */
function stopLeftovers() {
  for (const name of readdirSync(tmpdir())) {
    const owner = Number(/^switchboard-coturn-(\d+)-/.exec(name)?.[1]);
    if (!owner || isRunning(owner)) continue;
    const dir = join(tmpdir(), name);
    const pid = Number(readFileOr(join(dir, 'turnserver.pid')).trim());
    if (pid && commandLine(pid).includes(join(dir, 'turnserver.conf'))) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

function readFileOr(path, fallback = '') {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}
