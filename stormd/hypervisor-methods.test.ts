import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { StormError } from '../lib/errors.ts';
import { freePort } from '../test/helpers/ports.ts';
import { tempDir } from '../test/helpers/tmp.ts';
import { LibvirtDriver } from './hypervisor/libvirt/libvirt-driver.ts';
import { HYPERVISOR_METHODS as M, hypervisorMethods } from './hypervisor-methods.ts';
import { LocalHostAgent } from './host-agent.ts';
import { MethodTable, type MethodContext } from './server/methods.ts';

const ctx: MethodContext = { peer: { serial: '01', role: 'manager', commonName: 'manager' } };

test('hypervisor methods through a method table: structs in, data out, codes on errors', async (t) => {
  const dir = tempDir(t);
  const body = Buffer.from('a substrate layer');
  const sha = createHash('sha256').update(body).digest('hex');
  const server = http.createServer((_q, s) => s.end(body));
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const driver = new LibvirtDriver({ uri: 'test:///default' });
  t.after(async () => {
    await driver.close();
    await new Promise<void>((r) => server.close(() => r()));
  });
  const agent = new LocalHostAgent({ host: 'hv', stateDir: join(dir, 'state'), driver });
  const table = new MethodTable().addAll(hypervisorMethods(agent));
  const call = (name: string, p: Record<string, unknown> = {}) => table.call(name, [p], ctx);
  const code = async (p: Promise<unknown>, c: string) => assert.rejects(p, (e: unknown) => e instanceof StormError && e.code === c);

  assert.deepEqual(await call(M.layerEnsure, { url: `http://127.0.0.1:${port}/s`, sha256: sha, size: body.length }), { ok: true });
  assert.deepEqual(await call(M.layerList), [sha]);
  assert.deepEqual(await call(M.layerDownloads), []);
  const made = (await call(M.instanceLayerCreate, { id: 'web-1', spec: { hostname: 'web-1', domain: 'storm.test', files: { '/etc/x': 'y' }, sizeMiB: 64 } })) as { bytes: number };
  assert.ok(made.bytes > 0);
  const request = { name: 'storm-hv-rpc', memoryMiB: 64, vcpus: 1, kernel: '/boot/k', initrd: '/boot/i', cmdline: 'console=ttyS0', layers: { substrate: sha }, instanceLayer: 'web-1', mac: '52:54:00:00:00:07' };
  assert.deepEqual(await call(M.domainDefine, { request }), { ok: true });
  assert.deepEqual(await call(M.domainState, { name: 'storm-hv-rpc' }), { state: 'stopped' });
  await call(M.domainStart, { name: 'storm-hv-rpc' });
  assert.ok(((await call(M.domainList)) as { name: string; state: string }[]).some((d) => d.name === 'storm-hv-rpc' && d.state === 'running'));
  const tail = (await call(M.domainConsoleTail, { name: 'storm-hv-rpc', bytes: 100 })) as { boot?: string };
  assert.deepEqual(tail, { text: '', from: 0, next: 0, boot: tail.boot });
  assert.match(tail.boot ?? '', /^\d+$/, 'a running domain names its run');
  assert.deepEqual(await call(M.domainConsoleTail, { name: 'storm-hv-rpc', bytes: 100, from: 0, boot: tail.boot }), tail);
  await code(call(M.domainUndefine, { name: 'storm-hv-rpc' }), 'conflict');
  await call(M.domainPoweroff, { name: 'storm-hv-rpc' });
  await call(M.domainUndefine, { name: 'storm-hv-rpc' });
  assert.deepEqual(await call(M.domainState, { name: 'storm-hv-rpc' }), { state: 'absent' });
  await call(M.instanceLayerSnapshot, { id: 'web-1', snapshot: 's1' });
  assert.deepEqual(((await call(M.instanceLayerSnapshots, { id: 'web-1' })) as { name: string }[]).map((s) => s.name), ['s1']);
  await call(M.instanceLayerRestore, { id: 'web-1', snapshot: 's1' });
  await call(M.instanceLayerDeleteSnapshot, { id: 'web-1', snapshot: 's1' });
  assert.deepEqual(await call(M.layerRemoveUnreferenced, { referenced: [] }), { removed: [sha], freedBytes: body.length });
  await call(M.instanceLayerRemove, { id: 'web-1' });
  const cap = (await call(M.capacity)) as { vcpus: number };
  assert.ok(cap.vcpus >= 1);

  // Bad structs and unknown objects carry codes.
  await code(call(M.domainStart, {}), 'invalid');
  await code(call(M.domainStart, { name: 'storm-hv-ghost' }), 'not_found');
  await code(call(M.domainConsoleTail, { name: 'x', bytes: 0 }), 'invalid');
  await code(call(M.domainConsoleTail, { name: 'storm-hv-rpc', bytes: 10, from: -1 }), 'invalid');
  await code(call(M.layerEnsure, { url: 'ftp://x', sha256: sha, size: 1 }), 'invalid');
  await code(call(M.layerEnsure, { url: 'http://127.0.0.1/', sha256: 'nope', size: 1 }), 'invalid');
  await code(call(M.domainDefine, { request: '<domain/>' }), 'invalid');
  await code(call(M.domainDefine, { request: { ...request, name: "bad name'" } }), 'invalid');
  await code(call(M.instanceLayerCreate, { id: '../x', spec: { hostname: 'a' } }), 'invalid');
  await code(call(M.layerRemoveUnreferenced, { referenced: 'all' }), 'invalid');
});
