// Provisioning for real, end to end, every part a process: the example
// channel (fixtures/build) published and served on loopback, a manager, a
// stormd enrolled with a one-time token and serving qemu:///system, and the
// CLI. `storm instance create` boots the wiki under libvirtd (QEMU TCG); the
// console shows the guest up under its own hostname; stop (ACPI), start and
// destroy leave no domain and no instance layer behind.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { startProcess } from '../helpers/child.ts';
import { freePort } from '../helpers/ports.ts';
import { STORM_BIN, STORMD_BIN, startManagerProcess, storm, stormJson as jsonAsync, stormOk as okAsync, managerEnv } from '../helpers/storm.ts';
import { joinStormd, startStormdProcess } from '../helpers/stormd.ts';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';
import { FIXTURES as CHANNEL, buildFixtures } from '../helpers/qemu.ts';

const URI = 'qemu:///system';

before(buildFixtures);

const virsh = (...args: string[]) => spawnSync('virsh', ['-c', URI, ...args], { encoding: 'utf8' });
const domainNames = () => virsh('list', '--all', '--name').stdout.split('\n').map((s) => s.trim()).filter(Boolean);

/** Run the CLI and demand success; returns stdout (JSON parsed when -o json). */
function ok(args: string[], env: NodeJS.ProcessEnv): string {
  const r = storm(args, { env });
  assert.equal(r.code, 0, `storm ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
  return r.stdout;
}
const json = <T>(args: string[], env: NodeJS.ProcessEnv): T => JSON.parse(ok([...args, '-o', 'json'], env)) as T;

test('storm instance create boots the wiki on an enrolled stormd; console, stop, start, destroy leave nothing behind', async (t) => {
  const root = tempDir(t, 'storm-wire-e2e-');
  const state = join(root, 'manager');
  const hv = join(root, 'stormd');
  // Whatever happens, no domain of ours outlives the test (names are storm-<id>; ids learnt below).
  const ours: string[] = [];
  t.after(() => {
    for (const d of ours) {
      virsh('destroy', d);
      virsh('undefine', d);
    }
  });
  const env = await managerEnv(state);

  // The channel: publish the fixture folder, serve it on loopback.
  const cport = await freePort();
  const base = `http://127.0.0.1:${cport}/`;
  assert.match(ok(['channel', 'publish', CHANNEL, '--base-url', base], env), /published 3 appliance versions/);
  await startProcess(t, process.execPath, [STORM_BIN, 'channel', 'serve', CHANNEL, '--listen', `127.0.0.1:${cport}`], { ready: /storm channel server ready/, env });

  // The manager, and a hypervisor enrolled with a token.
  await startManagerProcess(t, state, [], env);
  const sport = await freePort();
  const added = json<{ token: string; joinUrl: string }>(['host', 'add', 'hv1', `127.0.0.1:${sport}`], env);
  const join1 = spawnSync(process.execPath, [STORMD_BIN, 'join', '--manager', added.joinUrl, '--token', added.token, '--state', hv], { encoding: 'utf8' });
  assert.equal(join1.status, 0, join1.stderr);
  await startStormdProcess(t, hv, `127.0.0.1:${sport}`, URI);
  await until('hv1 online', () => json<{ state: string }>(['host', 'show', 'hv1'], env), (h) => h.state === 'online');
  ok(['channel', 'add', `${base}feed.xml`, '--name', 'fixtures'], env);

  // Provision: layers, kernel and initrd by digest from the channel into stormd's cache; the guest boots.
  const created = storm(['instance', 'create', 'web1', '--appliance', 'wiki', '--timeout', '110', '-o', 'json'], { env });
  for (const i of json<{ id: string }[]>(['instance', 'list'], env)) ours.push(`storm-${i.id}`);
  assert.equal(created.code, 0, created.stderr);
  const inst = JSON.parse(created.stdout) as { id: string; state: string; host: string; layers: Record<string, string> };
  assert.equal(inst.state, 'running');
  assert.equal(inst.host, 'hv1');
  const dom = `storm-${inst.id}`;
  assert.ok(domainNames().includes(dom), `libvirt has ${dom}`);
  assert.equal(virsh('domstate', dom).stdout.trim(), 'running');
  const cached = readdirSync(join(hv, 'layers')).filter((f) => /^[0-9a-f]{64}$/.test(f));
  for (const d of Object.values(inst.layers)) assert.ok(cached.includes(d), `layer ${d} is in stormd's cache`);
  assert.equal(cached.length, 5, 'three layers, the kernel and the initrd, each once');

  // The guest's console, through manager → stormd: up, under its own name, services started.
  const boot = await until('the guest is up', () => storm(['instance', 'console', 'web1'], { env }).stdout, (s) => /STORM-GUEST: ready/.test(s));
  const lines = boot.split(/\r?\n/).filter((l) => /STORM-/.test(l)).join('\n');
  assert.match(lines, /STORM-GUEST: substrate .* hostname web1/);
  assert.match(lines, /STORM-GUEST: service 50-wiki started/);
  assert.match(lines, /STORM-GUEST: acpid up/);
  assert.doesNotMatch(lines, /STORM-INIT: error/);

  // Graceful stop (ACPI power button → the guest powers off), then start again.
  assert.equal(json<{ state: string }>(['instance', 'stop', 'web1'], env).state, 'stopped');
  assert.equal(virsh('domstate', dom).stdout.trim(), 'shut off');
  // Filters, through the control socket: by state, host and appliance; the detail names the version.
  assert.equal(storm(['instance', 'list', '--only', 'stopped', '--host', 'hv1', '-a', 'wiki', '-o', 'name'], { env }).stdout, 'web1\n');
  assert.equal(storm(['instance', 'list', '--only', 'running', '-o', 'name'], { env }).stdout, '');
  assert.match(storm(['instance', 'show', 'web1'], { env }).stdout, /^name:\s+web1\nstate:\s+stopped\nappliance:\s+wiki@1\.0\n/);
  // Its instance layer (built by stormd from what the manager sent): the hostname, the manager's
  // address and its own certificate from the CA, in the layer format the guest mounts as its upper layer.
  const raw = join(root, 'instance.raw');
  assert.equal(spawnSync('qemu-img', ['convert', '-U', '-f', 'qcow2', '-O', 'raw', join(hv, 'instances', inst.id, 'instance.qcow2'), raw]).status, 0);
  const cat = (path: string) => spawnSync('debugfs', ['-R', `cat ${path}`, `${raw}?offset=${1024 * 1024}`], { encoding: 'utf8' }).stdout;
  assert.equal(cat('/root/etc/hostname'), 'web1\n');
  // The appliance API the instance calls, at the manager's address.
  assert.match(cat('/root/etc/storm/manager'), /^https:\/\/127\.0\.0\.1:\d+\/RPC2\n$/);
  assert.match(cat('/root/etc/storm/tls/instance.crt'), /BEGIN CERTIFICATE/);
  assert.match(cat('/root/etc/storm/tls/ca.crt'), /BEGIN CERTIFICATE/);
  const certSerial = json<{ certSerial: string }>(['instance', 'show', 'web1'], env).certSerial;
  assert.ok(certSerial, 'the record names its certificate');
  assert.equal(json<{ state: string }>(['instance', 'start', 'web1'], env).state, 'running');
  await until('the guest is up again', () => storm(['instance', 'console', 'web1'], { env }).stdout, (s) => /STORM-GUEST: ready/.test(s));

  // Destroy: no domain, no instance layer, no record; the shared layers stay cached for the next instance.
  assert.equal(storm(['instance', 'destroy', 'web1'], { env }).code, 8, 'destructive verbs need --yes without a terminal');
  ok(['instance', 'destroy', 'web1', '--yes'], env);
  assert.ok(!domainNames().includes(dom), `${dom} is gone from libvirt`);
  assert.ok(!existsSync(join(hv, 'instances', inst.id)), 'the instance layer is gone');
  assert.deepEqual(json<unknown[]>(['instance', 'list'], env), []);
  const cert = json<{ serial: string; revokedAt?: string }[]>(['pki', 'list'], env).find((c) => c.serial === certSerial);
  assert.ok(cert?.revokedAt, 'its certificate is revoked');
  assert.equal(readdirSync(join(hv, 'layers')).filter((f) => /^[0-9a-f]{64}$/.test(f)).length, 5);
});

test('SIGKILL of the manager mid-provisioning: on restart the operation is undone, one record, no domain, no instance layer', async (t) => {
  const root = tempDir(t, 'storm-wire-kill-');
  const state = join(root, 'manager');
  const hv = join(root, 'stormd');
  const ours: string[] = [];
  t.after(() => {
    for (const d of ours) {
      virsh('destroy', d);
      virsh('undefine', d);
    }
  });
  const env = await managerEnv(state);
  // The channel from a server we control: the deployment layer's download is held until we say so.
  ok(['channel', 'publish', CHANNEL, '--base-url', 'http://127.0.0.1/'], env); // before our server exists: sync is fine
  const held = readdirSync(CHANNEL).find((f) => f.startsWith('wiki-example-corp') && f.endsWith('-deployment.img'))!;
  let armed = false;
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let reached!: () => void;
  const holding = new Promise<void>((r) => (reached = r));
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent((req.url ?? '/').split('?')[0]!.slice(1));
    const file = join(CHANNEL, rel);
    if (rel.includes('..') || !existsSync(file) || !statSync(file).isFile()) return res.writeHead(404).end();
    const send = () => {
      res.writeHead(200, { 'content-length': statSync(file).size });
      if (req.method === 'HEAD') res.end();
      else createReadStream(file).pipe(res);
    };
    if (rel === held && armed && req.method === 'GET') {
      reached();
      void released.then(send);
    } else send();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => (release(), server.closeAllConnections(), server.close(() => r()))));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;

  let manager = await startManagerProcess(t, state, [], env);
  const sport = await freePort();
  const added = await jsonAsync<{ token: string; joinUrl: string }>(['host', 'add', 'hv1', `127.0.0.1:${sport}`], env);
  await joinStormd(added.joinUrl, added.token, hv);
  await startStormdProcess(t, hv, `127.0.0.1:${sport}`, URI);
  await until('hv1 online', () => jsonAsync<{ state: string }>(['host', 'show', 'hv1'], env), (h) => h.state === 'online');
  await okAsync(['channel', 'add', `${base}feed.xml`, '--name', 'fixtures'], env);

  armed = true;
  const created = await jsonAsync<{ id: string; state: string }>(['instance', 'create', 'web2', '--appliance', 'wiki', '--no-wait'], env);
  ours.push(`storm-${created.id}`);
  await holding; // provisioning is inside its "layers" step, journaled
  assert.equal((await jsonAsync<{ state: string }>(['instance', 'show', 'web2'], env)).state, 'provisioning');
  manager.child.kill('SIGKILL');
  await manager.stop();
  release();

  // Restart on the same state: reconciliation runs once hv1 has been polled.
  manager = await startManagerProcess(t, state, [], env);
  const after = await until('web2 reconciled', () => jsonAsync<{ state: string; error?: string }>(['instance', 'show', 'web2'], env), (i) => i.state === 'failed');
  assert.match(after.error ?? '', /interrupted/);
  assert.equal((await jsonAsync<unknown[]>(['instance', 'list'], env)).length, 1, 'no lost or duplicated record');
  assert.ok(!domainNames().includes(`storm-${created.id}`), 'no domain');
  assert.ok(!existsSync(join(hv, 'instances', created.id, 'instance.qcow2')), 'no instance layer');
  // Started, the undone provisioning is tried again (same id, a new domain); then the admin removes it.
  const retried = await jsonAsync<{ state: string; error?: string; errorCode?: string }>(['instance', 'start', 'web2'], env);
  assert.deepEqual([retried.state, retried.error, retried.errorCode], ['running', undefined, undefined]);
  assert.ok(domainNames().includes(`storm-${created.id}`), 'its domain is defined again');
  await okAsync(['instance', 'destroy', 'web2', '--yes'], env);
  assert.deepEqual(await jsonAsync<unknown[]>(['instance', 'list'], env), []);
});
