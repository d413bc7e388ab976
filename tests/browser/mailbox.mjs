// The local SMTP server of the Rust tests (tests/smtp/server.mjs) for the
// browser tests: started on a free port, each mail it receives kept, and a
// wait for the mail to an address.

import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const MAIL_WAIT_MS = 30_000;

export async function startMailbox() {
  const child = spawn(process.execPath, [join(HERE, '..', 'smtp', 'server.mjs')], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, SMTP_EXIT_ON_STDIN_EOF: '1' },
  });
  const mails = [];
  const waiters = new Set();
  const lines = createInterface({ input: child.stdout });
  const port = await new Promise((resolvePort, reject) => {
    const timer = setTimeout(() => reject(new Error('the SMTP server did not start within 15 s')), 15_000);
    child.once('exit', (code) => reject(new Error(`the SMTP server exited (${code})`)));
    lines.on('line', (text) => {
      const event = JSON.parse(text);
      if (event.event === 'listening') {
        clearTimeout(timer);
        resolvePort(event.port);
      } else if (event.event === 'mail') {
        mails.push(event);
        for (const wake of waiters) wake();
      }
    });
  });

  return {
    url: `smtp://127.0.0.1:${port}`,
    mails,
    /** The first mail to `address` whose subject contains `subject`. */
    async mailTo(address, subject) {
      const deadline = Date.now() + MAIL_WAIT_MS;
      for (;;) {
        const found = mails.find((m) => m.envelope_to.includes(address) && m.subject.includes(subject));
        if (found) return found;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no mail to ${address} about "${subject}" within ${MAIL_WAIT_MS} ms`);
        await new Promise((wake) => {
          const timer = setTimeout(done, Math.min(left, 500));
          function done() {
            clearTimeout(timer);
            waiters.delete(done);
            wake();
          }
          waiters.add(done);
        });
      }
    },
    stop() {
      child.stdin.end();
      child.kill('SIGTERM');
    },
  };
}

/** The link in a mail's text that starts with `base` + `path`. */
export function linkIn(mail, base, path) {
  const start = mail.text.indexOf(`${base}${path}`);
  if (start < 0) throw new Error(`no ${path} link in: ${mail.text}`);
  return mail.text.slice(start).split(/\s/)[0];
}
