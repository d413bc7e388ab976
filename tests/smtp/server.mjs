#!/usr/bin/env node
// Local SMTP server for Switchboard's tests: a real SMTP conversation
// (the npm package `smtp-server`), each received mail parsed (`mailparser`)
// and printed as one JSON line on stdout. See README.md beside this file.
//
// Start:   node tests/smtp/server.mjs      (port from SMTP_PORT, else ephemeral)
// Prints:  {"event":"listening","port":PORT}, then one {"event":"mail",...} per mail.
// Stops:   on SIGTERM / SIGINT, or when stdin closes if SMTP_EXIT_ON_STDIN_EOF=1.

import { SMTPServer } from 'smtp-server';
import { simpleParser } from 'mailparser';

const HOST = '127.0.0.1';
const USER = process.env.SMTP_USER ?? '';
const PASS = process.env.SMTP_PASS ?? '';
// Recipients that contain this text are refused with 550 (a permanent error).
const REJECT = process.env.SMTP_REJECT ?? '';
const MAX_BYTES = 1024 * 1024;

function emit(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

const server = new SMTPServer({
  secure: false,
  disabledCommands: USER ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
  authOptional: !USER,
  allowInsecureAuth: true,
  size: MAX_BYTES,
  logger: false,
  onAuth(auth, _session, callback) {
    if (auth.username === USER && auth.password === PASS) return callback(null, { user: auth.username });
    return callback(new Error('Invalid username or password'));
  },
  onRcptTo(address, _session, callback) {
    if (REJECT && address.address.includes(REJECT)) {
      const error = new Error('mailbox unavailable');
      error.responseCode = 550;
      return callback(error);
    }
    return callback();
  },
  onData(stream, session, callback) {
    simpleParser(stream)
      .then((mail) => {
        emit({
          event: 'mail',
          user: session.user ?? null,
          envelope_from: session.envelope.mailFrom?.address ?? null,
          envelope_to: session.envelope.rcptTo.map((r) => r.address),
          from: mail.from?.text ?? null,
          to: mail.to?.text ?? null,
          subject: mail.subject ?? null,
          message_id: mail.messageId ?? null,
          content_type: mail.headers.get('content-type')?.value ?? null,
          text: mail.text ?? null,
          html: typeof mail.html === 'string' ? mail.html : null,
        });
        callback();
      })
      .catch((error) => callback(error));
  },
});

server.on('error', (error) => {
  process.stderr.write(`smtp server: ${error.message}\n`);
});

const port = Number(process.env.SMTP_PORT ?? 0);
server.listen(port, HOST, () => {
  emit({ event: 'listening', port: server.server.address().port });
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (/^(1|true|yes)$/i.test(process.env.SMTP_EXIT_ON_STDIN_EOF ?? '')) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}
