// The instances' network from inside a guest. The embedded default's parts
// (bin/embedded.ts: manager, relay in the namespace, local stormd with
// --bridge, example channel), on a namespace and address-less bridge this test
// makes. One wiki boots under libvirt (QEMU TCG) on the bridge; its substrate's
// storm-agent prints each step on the serial console, read back with
// `storm instance console`: an address from STORM's DHCP, storm.local through
// STORM's DNS, its own config over the XML-RPC API with its certificate (TLS
// through the relay), an MX record registered. Real `dig` then sees the MX
// through the relay (UDP and TCP) and on the manager's loopback DNS port.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, openSync, readdirSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { readEnv, type EnvSnapshot } from '../../lib/env.ts';
import { createLogger } from '../../lib/logger.ts';
import { parseHostPort } from '../../lib/config.ts';
import { embeddedConfig, startEmbedded, type Embedded } from '../../bin/embedded.ts';
import { addBridge, createNetns } from '../helpers/netns.ts';
import { freePort, freeTcpUdpPort } from '../helpers/ports.ts';
import { STORM_BIN } from '../helpers/storm.ts';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';
import { buildFixtures } from '../helpers/qemu.ts';

const URI = 'qemu:///system';
const ADDRESS = '10.77.0.1/16';
const NAME = 'gst-web';

before(buildFixtures);

const virsh = (...args: string[]) => spawnSync('virsh', ['-c', URI, ...args], { encoding: 'utf8' });

/** The CLI as a process, without blocking this process (the manager answering it lives here). */
function storm(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [STORM_BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d));
    c.stderr.on('data', (d: Buffer) => (stderr += d));
    c.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A command's output, run without blocking this process. */
function runAsync(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d));
    c.stderr.on('data', (d: Buffer) => (out += d));
    c.on('exit', () => resolve(out));
  });
}

test('a booted wiki on the bridge: DHCP lease, storm.local, its config over the API with its certificate, an MX that dig sees', { timeout: 300_000 }, async (t) => {
  if (process.getuid?.() !== 0) return t.skip('namespaces, bridges and libvirt guests need root');
  // One hook, registered first so it runs before the namespace and the state directory go.
  const undo: (() => unknown)[] = [];
  t.after(async () => {
    for (const f of undo.reverse()) await f();
  });
  const net = createNetns(t, { address: ADDRESS, bridge: true, prefix: 'gst' });
  const state = join(tempDir(t, 'gst-guestnet-'), 'state');
  const env: EnvSnapshot = { ...readEnv(), STORM_HOST_POLL_SECONDS: '2', STORM_CHANNEL_REFRESH: '0' };
  const hp = async () => `127.0.0.1:${await freePort()}`;
  const flags = {
    state, 'log-level': 'info', 'libvirt-uri': URI, 'api-listen': await hp(), 'enroll-listen': await hp(),
    'ldap-listen': '', 'ldaps-listen': '',
    'kdc-listen': `127.0.0.1:${await freeTcpUdpPort()}`, 'kadmind-listen': await hp(), 'kpasswd-listen': `127.0.0.1:${await freeTcpUdpPort()}`,
  };
  const guestNet = { netns: net.name, bridge: net.bridge!, address: ADDRESS, remove: async () => undefined };
  const config = await embeddedConfig(env, flags, guestNet);
  mkdirSync(state, { recursive: true, mode: 0o700 });
  const fd = openSync(join(state, 'manager.log'), 'a');
  const log = createLogger({ level: 'info', write: (l) => void writeSync(fd, l) });
  let embedded: Embedded = await startEmbedded({ config, log, path: env.PATH ?? '', net: guestNet });
  undo.push(() => embedded.stop());
  let api = embedded.m.api({ actor: 'test', readOnly: false });
  const cli = { ...process.env, STORM_STATE: state };

  // The local hypervisor online and the wiki's layers pulled (as storm up does in the background).
  await until('the local host online', () => api.call<{ name: string; state: string }[]>('host.list'), (h) => h.some((x) => x.name === 'local' && x.state === 'online'));
  await until('the wiki pulled', () => api.call<{ stored: boolean[] }>('appliance.show', { ref: 'wiki' }).catch(() => ({ stored: [false] })), (a) => a.stored.every(Boolean));

  // Boot one wiki on the bridge.
  undo.push(async () => {
    for (const i of await api.call<{ id: string }[]>('instance.list').catch(() => [])) {
      virsh('destroy', `storm-${i.id}`);
      virsh('undefine', `storm-${i.id}`);
    }
  });
  // Of a site deployment of the wiki, so that the end of the test can roll a new version of it out.
  const dep = await storm(['deployment', 'create', 'gst', '--appliance', 'wiki'], cli);
  assert.equal(dep.code, 0, dep.stderr);
  const created = await storm(['instance', 'create', NAME, '--deployment', 'gst', '--timeout', '110', '-o', 'json'], cli);
  assert.equal(created.code, 0, created.stderr);
  const inst = JSON.parse(created.stdout) as { id: string; state: string; mac?: string };
  assert.equal(inst.state, 'running');

  // Each step on the guest's console, through manager → stormd.
  const done = /STORM-GUEST: (reported ready|report \S+ failed|mx register failed|config fetch failed|storm\.local did not resolve|agent:)/;
  const boot = await until('the agent finished', async () => (await storm(['instance', 'console', NAME], cli)).stdout, (s) => done.test(s), 150);
  const lines = boot.split(/\r?\n/).filter((l) => /STORM-GUEST/.test(l)).join('\n');
  t.diagnostic(lines);
  const lease = /STORM-GUEST: eth0 (10\.77\.\d+\.\d+)\/16/.exec(lines);
  assert.ok(lease, `the guest has an address from STORM's DHCP:\n${lines}`);
  assert.match(lines, /STORM-GUEST: resolved storm\.local = 10\.77\.0\.1/);
  const fqdn = `${NAME}.${config.dnsDomain}`;
  assert.match(lines, new RegExp(`STORM-GUEST: config fetched: name ${NAME}, fqdn ${fqdn.replace(/\./g, '\\.')}, appliance deployment:gst`));
  assert.match(lines, new RegExp(`STORM-GUEST: mx registered: ${fqdn.replace(/\./g, '\\.')}\\.? MX 10 ${fqdn.replace(/\./g, '\\.')}`));
  // Its services up, it told the manager so over the API (status.report): what an update's canary check waits for.
  assert.match(lines, /STORM-GUEST: reported ready/);
  const readyAt = (await api.call<{ instance: string; status: string; at: string }[]>('api.reports')).find((r) => r.instance === NAME);
  assert.equal(readyAt?.status, 'ready', JSON.stringify(readyAt));
  // The lease is the instance's reservation, in the manager's store.
  const leases = await api.call<{ ip: string; state: string }[]>('dhcp.lease.list');
  assert.ok(leases.some((l) => l.ip === lease[1] && l.state === 'bound'), `lease of ${lease[1]} stored: ${JSON.stringify(leases)}`);
  // The admin sees that address: in the wide list's ADDRESS column and in show.
  const wide = (await storm(['instance', 'list', '-o', 'wide'], cli)).stdout.split('\n');
  const col = wide[0]!.indexOf('ADDRESS');
  assert.ok(col > 0, `an ADDRESS column:\n${wide.join('\n')}`);
  assert.equal(wide.find((l) => l.startsWith(`${NAME} `))?.slice(col).split(/\s+/)[0], lease[1], wide.join('\n'));
  const shown = (await storm(['instance', 'show', NAME], cli)).stdout;
  assert.match(shown, new RegExp(`^address: +${lease[1]!.replace(/\./g, '\\.')} `, 'm'));
  assert.match(shown, /^reported: +ready: services started \(\d+s ago\)$/m, 'what the guest said of itself');

  // dig sees the MX: through the relay as a guest asks (UDP, and TCP), and on the manager's loopback port.
  const inNs = (...a: string[]) => runAsync('ip', ['netns', 'exec', net.name, 'dig', '+short', '+time=2', '+tries=2', '@10.77.0.1', ...a]);
  const want = `10 ${fqdn}.`;
  assert.equal((await inNs('MX', fqdn)).trim(), want);
  assert.equal((await inNs('+tcp', 'MX', fqdn)).trim(), want);
  const dns = parseHostPort(config.dnsListen)!;
  assert.equal((await runAsync('dig', ['+short', '+time=2', '+tries=2', '-p', String(dns.port), `@${dns.host}`, 'MX', fqdn])).trim(), want);
  // The API saw the calls from the instance's certificate.
  const { records } = await api.call<{ records: { name: string; type: string; owner?: string }[] }>('dns.record.list');
  assert.ok(records.some((r) => r.type === 'MX' && r.owner === `instance:${NAME}`), `the MX is the instance's own: ${JSON.stringify(records)}`);
  // The relay does not weaken the API's mutual TLS: without a certificate, from the guest network, no answer.
  const apiPort = embedded.m.applianceApi.port!;
  const call = '<?xml version="1.0"?><methodCall><methodName>config.get</methodName><params></params></methodCall>';
  const anon = await new Promise<{ out: string; err: string }>((resolve) => {
    const c = spawn('ip', ['netns', 'exec', net.name, 'timeout', '20', 'openssl', 's_client', '-quiet', '-connect', `10.77.0.1:${apiPort}`], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, OPENSSL_CONF: '/dev/null' } });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d));
    c.stderr.on('data', (d: Buffer) => (err += d));
    c.on('exit', () => resolve({ out, err }));
    c.stdin.end(`POST /RPC2 HTTP/1.0\r\nContent-Type: text/xml\r\nContent-Length: ${call.length}\r\n\r\n${call}`);
  });
  assert.match(anon.err, /depth=\d[^\n]*STORM/, `the relay reached the API (its certificate came back): ${anon.err}`);
  assert.doesNotMatch(anon.out, /methodResponse|HTTP\/1/, 'no certificate: refused in the handshake');
  // The root namespace has no address on the guest network.
  for (const dev of [net.bridge!, net.outer]) assert.doesNotMatch(spawnSync('ip', ['-4', '-o', 'addr', 'show', 'dev', dev], { encoding: 'utf8' }).stdout, /inet /);

  // storm up quits and starts again while the guest runs on: its guest network is made anew (a new
  // bridge has no ports), and the local stormd, as it starts, puts the guest's tap back on the bridge.
  await embedded.stop();
  const tap = virsh('domiflist', `storm-${inst.id}`).stdout.match(/^\s*(vnet\d+)\s+bridge\s/m)?.[1];
  assert.ok(tap, 'the guest has a tap');
  spawnSync('ip', ['link', 'del', net.bridge!]);
  addBridge(net.bridge!, [net.outer]);
  const ports = () => readdirSync(`/sys/class/net/${net.bridge!}/brif`);
  assert.deepEqual(ports(), [net.outer], 'the new bridge holds only the namespace end');
  embedded = await startEmbedded({ config, log, path: env.PATH ?? '', net: guestNet });
  api = embedded.m.api({ actor: 'test', readOnly: false });
  await until('the guest back on the bridge', async () => ports(), (p) => p.includes(tap!), 100);
  // The guest answers on its address again, and still has its records.
  const ping = await runAsync('ip', ['netns', 'exec', net.name, 'busybox', 'ping', '-c', '1', '-W', '5', lease[1]!]);
  assert.match(ping, /1 packets received/, ping);
  assert.equal((await inNs('MX', fqdn)).trim(), want);

  // A new version of its deployment, rolled out: the canary (the only instance) restarts on it, and the
  // rollout waits for its fresh ready report before it calls the update done.
  const edit = await storm(['deployment', 'edit', 'gst', '--set', '/etc/motd=version 2'], cli);
  assert.equal(edit.code, 0, edit.stderr);
  const rollout = await storm(['update', 'apply', '--deployment', 'gst', '-o', 'json'], cli);
  assert.equal(rollout.code, 0, rollout.stderr);
  assert.deepEqual(JSON.parse(rollout.stdout), { appliance: 'deployment:gst', to: '2', canary: NAME, updated: [NAME], failed: [] });
  const again = (await api.call<{ instance: string; status: string; at: string }[]>('api.reports')).find((r) => r.instance === NAME);
  assert.equal(again?.status, 'ready');
  assert.ok(again!.at > readyAt!.at, `a ready report after the update: ${again!.at} > ${readyAt!.at}`);
  assert.match((await storm(['instance', 'console', NAME], cli)).stdout, /STORM-GUEST: reported ready/);

  // Destroy: the domain goes, its MX with it.
  const destroyed = await storm(['instance', 'destroy', NAME, '--yes'], cli);
  assert.equal(destroyed.code, 0, destroyed.stderr);
  assert.equal((await inNs('MX', fqdn)).trim(), '');
});
