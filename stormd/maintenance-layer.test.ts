// The maintenance side of stormd without a boot (libvirt's test driver): a
// maintenance domain gets the deployment layer as a writable qcow2 overlay on
// the cached layer, never the cache file itself; maintenanceLayer.read returns
// it flattened, in chunks; removing the instance layer removes it.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { StormError } from '../lib/errors.ts';
import { freePort } from '../test/helpers/ports.ts';
import { tempDir } from '../test/helpers/tmp.ts';
import { writeLabelledDisk } from '../test/helpers/boot-initrd.ts';
import { LibvirtDriver } from './hypervisor/libvirt/libvirt-driver.ts';
import { HYPERVISOR_METHODS as M, hypervisorMethods } from './hypervisor-methods.ts';
import { LocalHostAgent } from './host-agent.ts';
import { MethodTable, type MethodContext } from './server/methods.ts';

const ctx: MethodContext = { peer: { serial: '01', role: 'manager', commonName: 'manager' } };

test('maintenance domain: the deployment layer is a writable overlay; maintenanceLayer.read returns it flattened, in chunks', async (t) => {
  const dir = tempDir(t);
  const files = new Map<string, Buffer>();
  for (const role of ['substrate', 'deployment']) {
    writeLabelledDisk(join(dir, role), `storm-${role}`);
    files.set(role, readFileSync(join(dir, role)));
  }
  const server = http.createServer((q, s) => s.end(files.get((q.url ?? '/').slice(1))));
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const driver = new LibvirtDriver({ uri: 'test:///default' });
  t.after(async () => {
    await driver.undefine('storm-maint-t').catch(() => undefined);
    await driver.close();
    await new Promise<void>((r) => server.close(() => r()));
  });
  const agent = new LocalHostAgent({ host: 'hv', stateDir: join(dir, 'state'), driver });
  const table = new MethodTable().addAll(hypervisorMethods(agent));
  const call = (name: string, p: Record<string, unknown> = {}) => table.call(name, [p], ctx);
  const code = async (p: Promise<unknown>, c: string) => assert.rejects(p, (e: unknown) => e instanceof StormError && e.code === c);
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const layers: Record<string, string> = {};
  for (const [role, body] of files) {
    layers[role] = sha(body);
    await call(M.layerEnsure, { url: `http://127.0.0.1:${port}/${role}`, sha256: sha(body), size: body.length });
  }
  await call(M.instanceLayerCreate, { id: 'maint-1', spec: { hostname: 'corp-maint', domain: 'storm.test', files: {}, sizeMiB: 32 } });
  await code(call(M.maintenanceLayerRead, { id: 'maint-1', offset: 0, length: 1024 }), 'not_found');
  const request = { name: 'storm-maint-t', memoryMiB: 64, vcpus: 1, kernel: '/boot/k', initrd: '/boot/i', cmdline: 'console=ttyS0 storm.maintenance', layers, instanceLayer: 'maint-1', mac: '52:54:00:00:00:09', maintenance: true };
  await code(call(M.domainDefine, { request: { ...request, layers: { substrate: layers.substrate } } }), 'invalid');
  await call(M.domainDefine, { request });
  const spec = await driver.inspect('storm-maint-t');
  const dep = spec.disks.find((d) => d.role === 'deployment')!;
  assert.equal(dep.readonly, false, 'writable in maintenance');
  assert.equal(dep.format, 'qcow2');
  assert.equal(dep.backing?.path, join(dir, 'state', 'layers', layers.deployment!), 'an overlay on the cached layer');
  assert.ok(spec.disks.find((d) => d.role === 'substrate')!.readonly);

  // Read back in chunks: the flattened overlay is the cached layer's bytes (nothing was written).
  const want = files.get('deployment')!;
  const chunk = 1 << 20;
  const parts: Buffer[] = [];
  for (let off = 0; off < want.length; off += chunk) {
    const c = (await call(M.maintenanceLayerRead, { id: 'maint-1', offset: off, length: chunk })) as { base64: string; size: number };
    assert.equal(c.size, want.length);
    parts.push(Buffer.from(c.base64, 'base64'));
  }
  assert.ok(Buffer.concat(parts).equals(want));
  assert.equal(sha(readFileSync(join(dir, 'state', 'layers', layers.deployment!))), layers.deployment, 'the cache file is untouched');
  await code(call(M.maintenanceLayerRead, { id: 'maint-1', offset: 0, length: 0 }), 'invalid');
  await code(call(M.maintenanceLayerRead, { id: 'maint-1', offset: -1, length: 10 }), 'invalid');
  await code(call(M.maintenanceLayerRead, { id: 'maint-1', offset: 0, length: 5 * 1024 * 1024 }), 'invalid');

  await call(M.domainUndefine, { name: 'storm-maint-t' });
  const overlay = dep.path;
  assert.ok(existsSync(overlay));
  await call(M.instanceLayerRemove, { id: 'maint-1' });
  assert.ok(!existsSync(dirname(overlay)), 'removed with the instance layer');
});
