// A network of its own for a browser test: a fresh network namespace in which
// the server and Chromium run (`ip netns exec`), with nftables rules that drop
// every UDP datagram not to or from one port and every TCP segment not to or
// from another. Peer-to-peer WebRTC between two pages then really fails, as
// behind a strict firewall, while HTTP, the WebSocket and (later) the SFU's
// one UDP port still work.
//
// Inside: `lo` (127.0.0.1, where the server listens) and a veth pair whose end
// `sb0` holds ADDRESS and the default route, so Chromium sees an ordinary
// network interface and gathers host candidates on ADDRESS (an SFU can
// announce it as SFU_PUBLIC_IP). Traffic between local addresses never
// leaves the namespace; the rules see it in the output and input hooks.
//
// Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN): `netnsSupport()` says whether
// namespaces can be made here, so a test can skip with its reason. Names are
// `sbtest-<pid of the test process>-<random>`: each namespace is deleted by
// `destroy()`, at the test process's exit, or, after a crash, by the next run.
//
// A test uses it so (tests/browser/netns.test.mjs is the worked example):
//
//   const support = await netnsSupport();            // skip: !support.ok && support.reason
//   const netns = await createNetns();
//   const server = await startServer({ SFU_UDP_PORT: '7882', SFU_PUBLIC_IP: netns.address }, { netns });
//   await netns.firewall({ tcpPort: server.port, udpPort: 7882 });
//   const browser = await launchBrowser({ netns });  // pages: openPage(browser, server)
//   ...                                              // finally: browser.close(), server.stop(), netns.destroy()

import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { isRunning } from '../browser/processes.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const run = promisify(execFile);

/** The namespace's own address, on its interface sb0. */
export const ADDRESS = '10.231.0.1';
/** Starts Chromium inside the namespace named by $SB_NETNS (playwright's executablePath). */
export const CHROMIUM_WRAPPER = resolve(HERE, 'chromium.sh');

/** Debian's paths, so that a PATH without the sbin folders does not matter. */
const IP = '/sbin/ip';
const NFT = '/usr/sbin/nft';
const PREFIX = 'sbtest-';
const TABLE = 'switchboard_test';

/**
 * {ok: true}, or {ok: false, reason} when this process may not create
 * network namespaces (not root): tests skip with the reason.
 */
export async function netnsSupport() {
  for (const tool of [IP, NFT]) {
    if (!existsSync(tool)) throw new Error(`${tool} is missing: run tests/setup.sh (iproute2, nftables)`);
  }
  const probe = `${PREFIX}${process.pid}-probe`;
  try {
    await run(IP, ['netns', 'add', probe]);
  } catch (error) {
    const why = (error.stderr || error.message).trim();
    return { ok: false, reason: `network namespaces cannot be created here (needs root): ${why}` };
  }
  await run(IP, ['netns', 'del', probe]);
  return { ok: true };
}

/** Creates a namespace, brings its network up and answers a `Netns`. */
export async function createNetns() {
  await removeLeftovers();
  const name = `${PREFIX}${process.pid}-${randomBytes(3).toString('hex')}`;
  await run(IP, ['netns', 'add', name]);
  const netns = new Netns(name);
  try {
    await netns.ip('link', 'set', 'lo', 'up');
    await netns.ip('link', 'add', 'sb0', 'type', 'veth', 'peer', 'name', 'sb1');
    // No IPv6 link-local addresses: their duplicate address detection ends
    // after Chromium started, which it reports as ERR_NETWORK_CHANGED.
    await netns.ip('link', 'set', 'sb0', 'addrgenmode', 'none');
    await netns.ip('link', 'set', 'sb1', 'addrgenmode', 'none');
    await netns.ip('addr', 'add', `${ADDRESS}/24`, 'dev', 'sb0');
    await netns.ip('link', 'set', 'sb1', 'up');
    await netns.ip('link', 'set', 'sb0', 'up');
    await netns.ip('route', 'add', 'default', 'dev', 'sb0');
  } catch (error) {
    netns.destroy();
    throw error;
  }
  return netns;
}

export class Netns {
  constructor(name) {
    this.name = name;
    this.address = ADDRESS;
    this.destroyed = false;
    this.deleteAtExit = () => deleteNamespace(name);
    process.once('exit', this.deleteAtExit);
  }

  /** [file, args] that run `file args` inside the namespace (for child_process.spawn). */
  command(file, args = []) {
    return [IP, ['netns', 'exec', this.name, file, ...args]];
  }

  /**
   * What playwright-core's `launch()` needs to start Chromium inside the
   * namespace. Host candidates carry the real address, not an mDNS name: the
   * name could only be resolved by multicast, which the UDP rule drops, and
   * Chromium would then never even try the path the rules are meant to block.
   */
  chromium(executable) {
    return {
      executablePath: CHROMIUM_WRAPPER,
      env: { ...process.env, SB_NETNS: this.name, SB_CHROMIUM: executable },
      args: ['--disable-features=WebRtcHideLocalIpsWithMdns'],
    };
  }

  ip(...args) {
    return run(IP, ['-n', this.name, ...args]);
  }

  /**
   * Loads the firewall, replacing any earlier one: TCP only to or from
   * `tcpPort`, UDP only to or from `udpPort`. Either may be 'any' (no rule).
   */
  async firewall({ tcpPort, udpPort }) {
    // One port open, the rest of the protocol dropped. (Not one rule with
    // `sport != P dport != P`: nft 1.0.6 merges the two adjacent comparisons
    // into one, which then drops the allowed port's traffic too.)
    const onlyPort = (protocol, allowed) =>
      allowed === 'any'
        ? []
        : [
            `${protocol} sport ${port(allowed)} accept`,
            `${protocol} dport ${port(allowed)} accept`,
            `meta l4proto ${protocol} counter name ${protocol}_dropped drop`,
          ];
    const rules = [...onlyPort('udp', udpPort), ...onlyPort('tcp', tcpPort)];
    const chain = (hook) =>
      `  chain ${hook} {\n    type filter hook ${hook} priority filter; policy accept;\n` +
      rules.map((rule) => `    ${rule}\n`).join('') +
      '  }\n';
    // Declaring the table first makes the delete safe when there is none yet;
    // nft applies the whole file as one transaction.
    const ruleset =
      `table inet ${TABLE} {}\ndelete table inet ${TABLE}\n` +
      `table inet ${TABLE} {\n  counter udp_dropped {}\n  counter tcp_dropped {}\n` +
      chain('input') +
      chain('output') +
      '}\n';
    await this.nft(['-f', '-'], ruleset);
  }

  /** Packets the firewall has dropped so far: {udp, tcp}. */
  async dropped() {
    const { stdout } = await this.nft(['-j', 'list', 'counters', 'table', 'inet', TABLE]);
    const counts = { udp: 0, tcp: 0 };
    for (const entry of JSON.parse(stdout).nftables) {
      if (entry.counter?.name === 'udp_dropped') counts.udp = entry.counter.packets;
      if (entry.counter?.name === 'tcp_dropped') counts.tcp = entry.counter.packets;
    }
    return counts;
  }

  nft(args, input) {
    const child = run(IP, ['netns', 'exec', this.name, NFT, ...args]);
    if (input !== undefined) child.child.stdin.end(input);
    return child;
  }

  /** Kills whatever still runs inside and deletes the namespace (its rules go with it). */
  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    process.removeListener('exit', this.deleteAtExit);
    deleteNamespace(this.name);
  }
}

function port(value) {
  if (!Number.isInteger(value) || value < 1 || value > 65535) throw new Error(`not a port: ${value}`);
  return value;
}

/**
 * Kills whatever still runs inside and deletes the namespace. Synchronous, so
 * that it also works from the process's exit handler.
 */
function deleteNamespace(name) {
  let pids = '';
  try {
    pids = execFileSync(IP, ['netns', 'pids', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    // no such namespace (any more)
  }
  for (const pid of pids.split(/\s+/).filter(Boolean).map(Number)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  try {
    execFileSync(IP, ['netns', 'del', name], { stdio: 'ignore' });
  } catch {
    // deleted already
  }
}

/** Deletes the namespaces of earlier test processes that are gone (crashed or killed). */
async function removeLeftovers() {
  const { stdout } = await run(IP, ['netns', 'list']);
  for (const line of stdout.split('\n')) {
    const name = line.split(' ')[0];
    const owner = Number(new RegExp(`^${PREFIX}(\\d+)-`).exec(name)?.[1]);
    if (owner && !isRunning(owner)) deleteNamespace(name);
  }
}
