// A TCP proxy in front of the server that can cut one browser's WebSocket, as a
// lost network would: its connection is destroyed without a closing handshake,
// and new WebSocket connections carrying that browser's session cookie are
// dropped until the cut ends. Everything else passes through untouched.

import { createConnection, createServer } from 'node:net';

/** Starts listening at once; `setTarget(url)` says where to (the server's base). */
export async function startProxy() {
  let hostname = null;
  let port = null;
  /** socket pairs of /ws upgrades: {client, upstream, cookie} */
  const sockets = new Set();
  const cuts = new Map(); // cookie value -> time the cut ends

  const server = createServer((client) => {
    client.once('data', (first) => {
      const head = first.toString('latin1');
      const isSocket = /^GET \/ws[ ?]/.test(head);
      const cookie = /\bsb_session=([^;\r\n]+)/.exec(head)?.[1] ?? null;
      if (isSocket && cookie && (cuts.get(cookie) ?? 0) > Date.now()) {
        client.destroy();
        return;
      }
      if (!hostname) {
        client.destroy();
        return;
      }
      const upstream = createConnection({ host: hostname, port: Number(port) }, () => {
        upstream.write(first);
        client.pipe(upstream);
        upstream.pipe(client);
      });
      const entry = { client, upstream, cookie: isSocket ? cookie : null };
      sockets.add(entry);
      const close = () => {
        sockets.delete(entry);
        client.destroy();
        upstream.destroy();
      };
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
    });
    client.on('error', () => client.destroy());
  });
  await new Promise((resolveListen) => server.listen(0, '127.0.0.1', resolveListen));
  const base = `http://127.0.0.1:${server.address().port}`;

  return {
    base,
    setTarget(url) {
      ({ hostname, port } = new URL(url));
    },
    /** Drops the WebSockets of the session with this cookie, for `ms`. */
    cut(cookie, ms) {
      cuts.set(cookie, Date.now() + ms);
      let dropped = 0;
      for (const entry of sockets) {
        if (entry.cookie === cookie) {
          entry.client.destroy();
          entry.upstream.destroy();
          dropped += 1;
        }
      }
      return dropped;
    },
    async stop() {
      for (const entry of sockets) {
        entry.client.destroy();
        entry.upstream.destroy();
      }
      await new Promise((resolveClose) => server.close(resolveClose));
    },
  };
}
