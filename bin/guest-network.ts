/**
 * The embedded default's guest network (DESIGN.md §7): a namespace holding the
 * manager's guest-facing address on one end of a veth pair, the other end on
 * an address-less bridge in the root namespace that guests attach to, and a
 * relay child inside the namespace that owns the DHCP, DNS (UDP and TCP) and
 * appliance API sockets and hands every packet and connection to the manager
 * (the one owner of the database).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { connect, Socket } from 'node:net';
import { join } from 'node:path';
import { parseHostPort } from '../lib/config.ts';
import { run, stopChild } from '../lib/exec.ts';
import type { Logger } from '../lib/logger.ts';
import { PACKAGE_ROOT } from '../lib/paths.ts';
import { withRevert } from '../lib/revert.ts';
import type { Manager } from '../manager/main.ts';

export interface GuestNetwork {
  netns: string;
  bridge: string;
  /** The manager's address inside the namespace, CIDR. */
  address: string;
  /** Remove the namespace, veth pair and bridge (idempotent). */
  remove(): Promise<void>;
}

const RELAY = join(PACKAGE_ROOT, 'bin', 'netsvc-relay.ts');

async function ip(...args: string[]): Promise<void> {
  const r = await run('ip', args);
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.code}`}`);
}

/** No IPv6 link-local either: the root namespace gets no address on the guest network. */
function noIpv6(dev: string): void {
  try {
    writeFileSync(`/proc/sys/net/ipv6/conf/${dev}/disable_ipv6`, '1');
  } catch {
    /* IPv6 off in this kernel */
  }
}

/** Why the guest network cannot be made here, or undefined when it can. */
export function guestNetworkUnavailable(uid: number): string | undefined {
  if (uid !== 0) return 'not running as root (namespaces and bridges need root): run npm start as root for guest networking';
  return undefined;
}

/** The pid recorded in the owner file for this namespace, if that process still runs. */
function liveOwner(ownerFile: string, netns: string): number | undefined {
  try {
    const o = JSON.parse(readFileSync(ownerFile, 'utf8')) as { netns?: string; pid?: number };
    if (o.netns !== netns || typeof o.pid !== 'number') return -1;
    return existsSync(`/proc/${o.pid}`) ? o.pid : undefined;
  } catch {
    return -1;
  }
}

/**
 * Create NETNS + veth + BRIDGE, recording ourselves in `ownerFile`. A namespace
 * left by a crashed storm up of this state directory (owner gone) is removed
 * first; any other existing one is refused.
 */
export async function createGuestNetwork(o: { netns: string; bridge: string; address: string; ownerFile: string }): Promise<GuestNetwork> {
  const outer = `${o.bridge}-o`;
  const inner = `${o.bridge}-i`;
  if (outer.length > 15) throw new Error(`bridge name ${o.bridge}: at most 13 characters (its veth is named ${outer})`);
  const remove = async () => {
    await run('ip', ['netns', 'del', o.netns]);
    await run('ip', ['link', 'del', outer]);
    await run('ip', ['link', 'del', o.bridge]);
    rmSync(o.ownerFile, { force: true });
  };
  const existing = await run('ip', ['netns', 'list']);
  if (existing.stdout.split('\n').some((l) => l.split(' ')[0] === o.netns)) {
    const owner = liveOwner(o.ownerFile, o.netns);
    if (owner !== undefined) {
      throw new Error(`namespace ${o.netns} already exists (${owner > 0 ? `storm up pid ${owner} runs it` : 'not made by this state directory'}; if it is stale: ip netns del ${o.netns}; ip link del ${o.bridge})`);
    }
    await remove(); // ours, left by a crash
  }
  await withRevert(async (r) => {
    await ip('netns', 'add', o.netns);
    r.add('netns', remove);
    await ip('link', 'add', outer, 'type', 'veth', 'peer', 'name', inner);
    await ip('link', 'set', inner, 'netns', o.netns);
    await ip('-n', o.netns, 'link', 'set', 'lo', 'up');
    await ip('-n', o.netns, 'addr', 'add', o.address, 'dev', inner);
    await ip('-n', o.netns, 'link', 'set', inner, 'up');
    await ip('link', 'add', o.bridge, 'type', 'bridge');
    noIpv6(o.bridge);
    noIpv6(outer);
    await ip('link', 'set', outer, 'master', o.bridge);
    await ip('link', 'set', o.bridge, 'up');
    await ip('link', 'set', outer, 'up');
    writeFileSync(o.ownerFile, JSON.stringify({ netns: o.netns, bridge: o.bridge, pid: process.pid }) + '\n');
  });
  return { ...o, remove };
}

/** Join a connection the relay accepted in the namespace to a server on loopback (bounded). */
let relayed = 0;
function joinTcp(sock: Socket, to: { host: string; port: number } | undefined): void {
  if (!to || relayed >= 256) return void sock.destroy();
  relayed++;
  const up = connect(to.port, to.host);
  let done = false;
  const end = () => {
    if (done) return;
    done = true;
    relayed--;
    sock.destroy();
    up.destroy();
  };
  for (const s of [sock, up]) s.on('error', end).on('close', end);
  sock.pipe(up).pipe(sock);
}

/** The loopback end of a listen address (a wildcard listener is reached on 127.0.0.1). */
function loopbackOf(listen: string): { host: string; port: number } | undefined {
  const hp = parseHostPort(listen);
  if (!hp) return undefined;
  return { host: hp.host === '0.0.0.0' || hp.host === '::' ? '127.0.0.1' : hp.host, port: hp.port };
}

/**
 * Start the relay in the namespace on the manager's guest address: DHCP
 * packets go to the manager's DHCP service, DNS queries (UDP, and TCP
 * connections) to its DNS server on loopback (config.dnsListen), connections
 * to the appliance API's port to the API on loopback; replies come back the
 * same way. The API is relayed only while it serves.
 */
export async function startRelay(m: Manager, net: GuestNetwork, log: Logger): Promise<{ stop: () => Promise<void> }> {
  const addr = net.address.split('/')[0]!;
  const dns = loopbackOf(m.config.dnsListen);
  if (!dns) throw new Error(`the guest network needs the DNS server on loopback (dnsListen is ${JSON.stringify(m.config.dnsListen)})`);
  const apiPort = m.applianceApi.port;
  const api = apiPort !== undefined ? { host: loopbackOf(m.config.apiListen)?.host ?? '127.0.0.1', port: apiPort } : undefined;
  const targets: Record<string, { host: string; port: number } | undefined> = { dns, api };
  const args = ['--dhcp', '0.0.0.0:67', '--dns', `${addr}:53`, '--tcp', `dns=${addr}:53`, ...(api ? ['--tcp', `api=${addr}:${api.port}`] : [])];
  const child: ChildProcess = spawn('ip', ['netns', 'exec', net.netns, process.execPath, '--import', 'tsx', RELAY, ...args], {
    cwd: PACKAGE_ROOT,
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => void (stderr = (stderr + d).slice(-2000)));
  const reply = (k: 'dhcp' | 'dns', b: Buffer, to: { address: string; port: number }) => {
    if (child.connected) child.send({ k, b: b.toString('base64'), to });
  };
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the netsvc relay exited (${code}): ${stderr.trim()}`)));
    child.on('message', (raw: unknown, handle: unknown) => {
      const msg = raw as { k: string; b?: string; from?: { address: string; port: number }; to?: string; message?: string };
      if (msg.k === 'ready') return resolve();
      if (msg.k === 'error') return reject(new Error(`the netsvc relay: ${msg.message}`));
      if (msg.k === 'tcp') return handle instanceof Socket ? joinTcp(handle, targets[msg.to ?? '']) : undefined;
      if (typeof msg.b !== 'string' || !msg.from) return;
      const pkt = Buffer.from(msg.b, 'base64');
      if (msg.k === 'dhcp') {
        m.dhcp.handle(pkt).then((out) => out && reply('dhcp', out.reply, out.to), (e: Error) => log.warn('dhcp relay', { error: e.message }));
      } else if (msg.k === 'dns') {
        // One loopback socket per query: the embedded default's DNS load is a few guests.
        const s = createSocket('udp4');
        const timer = setTimeout(() => s.close(), 5000);
        s.on('error', () => (clearTimeout(timer), s.close()));
        s.once('message', (ans) => (clearTimeout(timer), s.close(), reply('dns', ans, msg.from!)));
        s.send(pkt, dns.port, dns.host);
      }
    });
  });
  child.removeAllListeners('exit');
  child.on('exit', (code, sig) => log.warn('netsvc relay exited', { code, signal: sig }));
  m.dhcp.serveRelayed(addr, `${net.bridge} via ${net.netns}`);
  log.info('guest network serving', { netns: net.netns, bridge: net.bridge, address: net.address, api: api ? `${addr}:${api.port}` : 'not serving' });
  return {
    stop: () => stopChild(child, 3000),
  };
}
