// Child processes of the browser tests (the server, coturn, programs inside a
// network namespace): stopping them politely, then firmly, and telling whether
// the test run that started one is still alive.

import { readFileSync } from 'node:fs';

const STOP_TIMEOUT_MS = 10_000;

/** Answers a promise of {code, signal} that settles when `child` exits. */
export function exitOf(child) {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolveExit) => child.once('exit', (code, signal) => resolveExit({ code, signal })));
}

/** SIGTERM, and SIGKILL when the process is still there after 10 s. */
export async function terminate(child, exited = exitOf(child)) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timeout = new Promise((done) => setTimeout(done, STOP_TIMEOUT_MS, 'timeout'));
  if ((await Promise.race([exited, timeout])) === 'timeout') {
    child.kill('SIGKILL');
    await exited;
  }
}

/** Whether a process with this id exists (signal 0 only checks). */
export function isRunning(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

/** The command line of a running process, or '' when it is gone. */
export function commandLine(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}
