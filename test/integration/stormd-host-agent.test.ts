// stormd's LocalHostAgent (driver + layer cache + instance layers) runs the
// manager's HostAgent conformance suite: against libvirt's test driver (fast)
// and against qemu:///system, where the domain really starts.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { StormError } from '../../lib/errors.ts';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { LibvirtDriver } from '../../stormd/hypervisor/libvirt/libvirt-driver.ts';
import { LocalHostAgent } from '../../stormd/host-agent.ts';
import { hostAgentConformance } from '../conformance/host-agent.case.ts';
import { buildBootInitrd, findCloudKernel, writeLabelledDisk } from '../helpers/boot-initrd.ts';
import { freePort } from '../helpers/ports.ts';

async function fixture(uri: string) {
  const dir = mkdtempSync(join(tmpdir(), 'storm-hv-agent-'));
  chmodSync(dir, 0o755);
  writeLabelledDisk(join(dir, 'substrate.img'), 'storm-substrate');
  const body = readFileSync(join(dir, 'substrate.img'));
  const server = http.createServer((req, res) => {
    if (req.url !== '/substrate') {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const k = findCloudKernel();
  const real = uri.startsWith('qemu') && k;
  const driver = new LibvirtDriver({ uri });
  const agent = new LocalHostAgent({ host: 'hv-test', stateDir: join(dir, 'state'), driver });
  // Clean up only the domains this agent defined (qemu:///system is shared with others).
  const defined: string[] = [];
  const define = agent.define.bind(agent);
  agent.define = async (req) => {
    defined.push(req.name);
    return define(req);
  };
  return {
    agent,
    layer: { role: 'substrate' as const, sha256: createHash('sha256').update(body).digest('hex'), size: body.length, url: `http://127.0.0.1:${port}/substrate` },
    kernel: real ? k.kernel : '/boot/vmlinuz-fake',
    initrd: real ? await buildBootInitrd(dir, k.version) : '/boot/initrd-fake',
    cleanup: async () => {
      for (const name of defined) {
        await driver.poweroff(name).catch(() => undefined);
        await driver.undefine(name).catch(() => undefined);
      }
      await driver.close();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

hostAgentConformance('stormd LocalHostAgent on libvirt test:///default', () => fixture('test:///default'));
hostAgentConformance('stormd LocalHostAgent on qemu:///system', () => fixture('qemu:///system'));

test('LocalHostAgent: idempotent instance layer, snapshots, export → import between hosts, traditional disk copied per instance', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'storm-hv-agent2-'));
  chmodSync(dir, 0o755);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const drvA = new LibvirtDriver({ uri: 'test:///default' });
  const drvB = new LibvirtDriver({ uri: 'test:///default' });
  t.after(() => drvA.close());
  t.after(() => drvB.close());
  const a = new LocalHostAgent({ host: 'a', stateDir: join(dir, 'a'), driver: drvA, exportBaseUrl: `http://127.0.0.1:${port}/export` });
  const b = new LocalHostAgent({ host: 'b', stateDir: join(dir, 'b'), driver: drvB });
  // A's server offers exported instance layers, as stormd's HTTPS endpoint would.
  const disk = Buffer.alloc(1024 * 1024, 7);
  const diskSha = createHash('sha256').update(disk).digest('hex');
  const server = http.createServer(async (req, res) => {
    const m = /^\/export\/([a-z0-9-]+)\/([0-9a-f]{64})$/.exec(req.url ?? '');
    try {
      if (req.url === '/disk') {
        res.writeHead(200, { 'content-length': disk.length });
        return res.end(disk);
      }
      if (!m) throw new Error('no route');
      const file = await a.exportedFile(m[1]!, m[2]!);
      res.writeHead(200);
      res.end(readFileSync(file));
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));

  const first = await a.createInstanceLayer('web-1', { hostname: 'web-1', domain: 'cloud.storm', files: { '/etc/x': 'x\n' }, sizeMiB: 64 });
  assert.deepEqual(await a.createInstanceLayer('web-1', { hostname: 'web-1', domain: 'cloud.storm', files: {}, sizeMiB: 64 }), first, 'idempotent for one id');
  await a.snapshot('web-1', 'clean');
  assert.deepEqual((await a.snapshots('web-1')).map((s) => s.name), ['clean']);
  await a.restore('web-1', 'clean');
  await a.deleteSnapshot('web-1', 'clean');

  const ref = await a.exportInstanceLayer('web-1');
  assert.match(ref.url, /\/export\/web-1\/[0-9a-f]{64}$/);
  await b.importInstanceLayer('web-1', ref);
  await b.importInstanceLayer('web-1', ref); // idempotent
  assert.equal(createHash('sha256').update(readFileSync(b.instances.path('web-1'))).digest('hex'), ref.sha256);
  // The bytes do not match the digest asked for: refused, nothing lands.
  await assert.rejects(b.importInstanceLayer('web-2', { ...ref, sha256: diskSha }), (e: unknown) => e instanceof StormError && e.code === 'invalid');
  await assert.rejects(b.snapshots('web-2'), (e: unknown) => e instanceof StormError && e.code === 'not_found');

  // A traditional appliance: one cached disk, and each instance its own full, writable copy of it.
  await b.ensureLayer({ role: 'disk', sha256: diskSha, size: disk.length, url: `http://127.0.0.1:${port}/disk` });
  await b.define({ name: 'storm-hv-trad', memoryMiB: 64, vcpus: 1, kernel: '/boot/k', initrd: '/boot/i', cmdline: '', layers: { disk: diskSha }, instanceLayer: 'trad-1', mac: '52:54:00:00:00:09' });
  const spec = await drvB.inspect('storm-hv-trad');
  assert.deepEqual(spec.disks.map((d) => [d.role, d.format, d.readonly]), [['traditional', 'raw', false]]);
  const copy = spec.disks[0]!.path;
  assert.equal(copy, join(dirname(b.instances.path('trad-1')), 'disk.img'));
  assert.ok(readFileSync(copy).equals(disk), 'the copy holds the image, byte for byte');
  assert.equal(statSync(copy).mode & 0o777, 0o644, 'writable by its guest');
  assert.notEqual(statSync(copy).ino, statSync(b.cache.path(diskSha)).ino, 'its own file, not a link to the cache');
  // Defining again (a redefine after an update, a reconcile) keeps the instance's disk as it is.
  writeFileSync(copy, 'written by the guest');
  await b.undefine('storm-hv-trad');
  await b.define({ name: 'storm-hv-trad', memoryMiB: 64, vcpus: 1, kernel: '/boot/k', initrd: '/boot/i', cmdline: '', layers: { disk: diskSha }, instanceLayer: 'trad-1', mac: '52:54:00:00:00:09' });
  assert.equal(readFileSync(copy, 'utf8'), 'written by the guest');
  assert.deepEqual(readdirSync(dirname(copy)).filter((f) => f.endsWith('.tmp')), [], 'no temporary copy left');
  assert.equal(await b.state('storm-hv-nothing'), 'absent');
  // No domain reads the cached image (each instance has its copy): it stays while the manager references it.
  assert.deepEqual(await b.removeUnreferencedLayers([diskSha]), { removed: [], freedBytes: 0 });
  assert.deepEqual(await b.layers(), [diskSha]);
  const cap = await b.capacity();
  assert.ok(cap.vcpus >= 1 && cap.memoryMiB > 0 && cap.freeDiskBytes > 0);
  // Layer formats come from the request (the appliance XML), never from probing the file.
  await b.define({ name: 'storm-hv-fmt', memoryMiB: 64, vcpus: 1, kernel: '/boot/k', initrd: '/boot/i', cmdline: '', layers: { substrate: diskSha }, formats: { substrate: 'qcow2' }, instanceLayer: 'web-1', mac: '52:54:00:00:00:0b' });
  assert.deepEqual((await drvB.inspect('storm-hv-fmt')).disks.map((d) => [d.role, d.format, d.readonly]), [['substrate', 'qcow2', true], ['instance', 'qcow2', false]]);
  await b.undefine('storm-hv-fmt');
  const hostInfo = await b.info();
  assert.equal(hostInfo.hypervisor.status, 'healthy');
  assert.equal(hostInfo.virtType, 'qemu');
  assert.deepEqual(hostInfo.layerCache, { layers: 1, bytes: disk.length });
  assert.deepEqual(JSON.parse(JSON.stringify(hostInfo)), hostInfo, 'plain JSON');
  await b.undefine('storm-hv-trad'); // test:///default forgets it anyway when the session closes
  assert.deepEqual(await b.removeUnreferencedLayers([]), { removed: [diskSha], freedBytes: disk.length });
});

test('a traditional appliance on qemu:///system boots from its own copy; the cached image stays root-owned and read-only', async (t) => {
  const k = findCloudKernel();
  if (!k) return t.skip('no Debian cloud kernel under /boot');
  const f = await fixture('qemu:///system');
  t.after(() => f.cleanup());
  const a = f.agent;
  await a.ensureLayer({ ...f.layer, role: 'disk' });
  const name = `storm-hv-${Date.now().toString(36)}`;
  await a.define({ name, memoryMiB: 128, vcpus: 1, kernel: f.kernel, initrd: f.initrd, cmdline: 'console=ttyS0', layers: { disk: f.layer.sha256 }, instanceLayer: 'trad-1', mac: '52:54:00:00:00:0a' });
  await a.start(name);
  const base = a.cache.path(f.layer.sha256);
  assert.equal(statSync(base).uid, 0, 'not chowned to libvirt-qemu while running');
  const copy = join(dirname(a.instances.path('trad-1')), 'disk.img');
  assert.equal(statSync(copy).size, statSync(base).size, 'the guest runs on its own copy');
  await a.poweroff(name);
  await a.undefine(name);
  assert.equal(statSync(base).uid, 0);
  assert.equal(statSync(base).mode & 0o777, 0o444);
});
