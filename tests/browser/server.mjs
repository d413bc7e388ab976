// Starts the real switchboard binary for the browser tests: an ephemeral port on
// 127.0.0.1, a temporary database, JSON logs read until "listening" says where.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { exitOf, terminate } from './processes.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..');

export const ADMIN_EMAIL = 'admin@example.org';
export const PASSWORD = 'correct horse battery';

const START_TIMEOUT_MS = 30_000;

/** The binary under test: $SB_BIN, else the debug build of this repository. */
export function binaryPath() {
  return process.env.SB_BIN ? resolve(process.env.SB_BIN) : join(REPO, 'target', 'debug', 'switchboard');
}

/**
 * Starts a server; `env` overrides the test defaults (e.g. {CAPTCHA: 'true'}).
 * With `netns` (tests/netns/netns.mjs) it runs inside that network namespace.
 * Answers {base, port, log, url(path), restart(), stop()}. The log lines are
 * kept in `log` (and printed when SB_TEST_LOG is set).
 */
export async function startServer(env = {}, { netns = null } = {}) {
  const bin = binaryPath();
  if (!existsSync(bin)) throw new Error(`No server binary at ${bin}: run cargo build first (or set SB_BIN).`);
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-browser-'));
  const settings = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    DATABASE_PATH: join(dir, 'switchboard.db'),
    LOG_FORMAT: 'json',
    RUST_LOG: 'info',
    SECRET_KEY: 'browser-test-secret-key-0123456789',
    BCRYPT_COST: '4',
    ADMIN_EMAIL,
    ALLOW_GUESTS: 'true',
    CAPTCHA: 'false',
    LOGIN_RATE_PER_MIN: '0',
    // Any free loopback port: several servers run at once.
    SFU_UDP_PORT: '0',
    SFU_PUBLIC_IP: '127.0.0.1',
    REGISTER_RATE_PER_MIN: '0',
    ...env,
  };
  const log = [];
  const start = (bind) => spawnServer(bin, dir, { ...settings, BIND: bind }, log, netns);
  let running = await start('127.0.0.1:0');
  const addr = running.addr;
  let stopped = false;

  return {
    base: `http://${addr}`,
    port: Number(addr.split(':').pop()),
    log,
    url: (path) => `http://${addr}${path}`,
    /**
     * Creates an admin the supported way for a password-only install:
     * `switchboard user create --admin` (password on stdin) against this
     * server's database while it runs.
     */
    createAdmin: ({ username, email = ADMIN_EMAIL, password = PASSWORD }) =>
      runCommand(bin, dir, settings, ['user', 'create', '--username', username, '--email', email, '--admin'], `${password}\n`),
    /** SIGTERM (sessions are told `server_restarting`, close 1012), then the same port and database again. */
    async restart() {
      await terminate(running.child, running.exited);
      running = await start(addr);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await terminate(running.child, running.exited);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function spawnServer(bin, dir, env, log, netns) {
  const [file, args] = netns ? netns.command(bin, ['serve']) : [bin, ['serve']];
  const child = spawn(file, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], env });
  const exited = exitOf(child);
  const lines = createInterface({ input: child.stderr });
  const addr = await new Promise((resolveAddr, reject) => {
    const timer = setTimeout(() => reject(new Error('the server did not say "listening" within 30 s')), START_TIMEOUT_MS);
    lines.on('line', (line) => {
      log.push(line);
      if (process.env.SB_TEST_LOG) console.error(`server: ${line}`);
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry.message === 'listening' && entry.addr) {
        clearTimeout(timer);
        resolveAddr(entry.addr);
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${code ?? signal}) before listening:\n${log.slice(-20).join('\n')}`));
    });
  });
  return { child, exited, addr };
}

/** Runs the binary with `args` and `input` on stdin; resolves when it succeeds. */
function runCommand(bin, dir, env, args, input) {
  return new Promise((resolveRun, reject) => {
    const child = spawn(bin, args, { cwd: dir, stdio: ['pipe', 'ignore', 'pipe'], env });
    let stderr = '';
    child.stderr.on('data', (chunk) => { stderr += chunk; });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code === 0) resolveRun();
      else reject(new Error(`switchboard ${args.join(' ')} exited with ${code}: ${stderr}`));
    });
    child.stdin.end(input);
  });
}
