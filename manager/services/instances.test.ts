import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../lib/logger.ts';
import { EventBus } from '../events.ts';
import { MemoryHostAgent } from '../instances/memory-host-agent.ts';
import type { ApplianceSpec, InstanceRecord } from '../instances/model.ts';
import { InstanceService } from '../instances/service.ts';
import { Store } from '../store/store.ts';
import { sha } from '../../test/conformance/host-agent.case.ts';
import { registerInstances } from './instances.ts';
import { Registry } from './registry.ts';

const APP: ApplianceSpec = {
  id: 'db', version: '1.0', memoryMiB: 128, vcpus: 1,
  kernel: { role: 'kernel', sha256: sha('k'), size: 1, url: 'http://x/k' }, initrd: { role: 'initrd', sha256: sha('i'), size: 1, url: 'http://x/i' },
  layers: [{ role: 'appliance', sha256: sha('db'), size: 1, url: 'http://x/db' }],
  parameters: [{ name: 'user', type: 'string', required: false, default: 'app' }, { name: 'password', type: 'secret', required: true }],
};

test("a secret parameter's value never leaves the manager but for the guest: create, show, list and actions show (secret)", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'svc-inst-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = await Store.open(join(dir, 'db'));
  t.after(() => store.close());
  const agent = new MemoryHostAgent('h1');
  const svc = new InstanceService(store, { list: async () => [{ name: 'h1', online: true }], agent: () => agent }, { resolve: async () => APP }, new EventBus(), silentLogger);
  const reg = new Registry();
  registerInstances(reg, svc, silentLogger);
  const ctx = { actor: 'test', readOnly: false };
  const hidden = { user: 'app', password: '(secret)' };
  const made = (await reg.call('instance.create', { name: 'db1', appliance: 'db', params: { password: 'hunter2' } }, ctx)) as InstanceRecord;
  assert.deepEqual(made.params, hidden);
  assert.deepEqual(((await reg.call('instance.show', { name: 'db1' }, ctx)) as InstanceRecord).params, hidden);
  assert.deepEqual(((await reg.call('instance.list', {}, ctx)) as InstanceRecord[])[0]!.params, hidden);
  for (let i = 0; i < 100 && (await svc.get('db1')).state !== 'running'; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(((await reg.call('instance.stop', { name: 'db1' }, ctx)) as InstanceRecord).params, hidden);
  // The guest gets the value (its instance layer; config.get reads the record).
  assert.equal((await svc.get('db1')).params.password, 'hunter2');
  assert.match(agent.instanceLayers.get(made.id)!.files['/etc/storm/instance.json'] ?? '', /"password":"hunter2"/);
  // A bad secret is refused without echoing it.
  await assert.rejects(reg.call('instance.create', { name: 'db2', appliance: 'db', params: { password: 'x'.repeat(5000) } }, ctx), (e: Error) => /parameter password: expected at most 4096 characters$/.test(e.message));
});

test('instance.list filters by host, state and appliance (ID, ID@VERSION); a state that is none is invalid', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'svc-inst-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = await Store.open(join(dir, 'db'));
  t.after(() => store.close());
  const agents = new Map([['h1', new MemoryHostAgent('h1')], ['h2', new MemoryHostAgent('h2')]]);
  const plain: ApplianceSpec = { ...APP, parameters: [] };
  const svc = new InstanceService(store, { list: async () => [...agents.keys()].map((name) => ({ name, online: true })), agent: (n) => agents.get(n)! }, { resolve: async () => plain }, new EventBus(), silentLogger);
  const reg = new Registry();
  registerInstances(reg, svc, silentLogger);
  const ctx = { actor: 'test', readOnly: false };
  for (const [name, host] of [['b1', 'h2'], ['a1', 'h1'], ['a2', 'h1']]) await svc.provision((await svc.create({ name: name!, appliance: 'db', host: host! })).id);
  await svc.stop('a2');
  const names = async (p: Record<string, unknown>) => ((await reg.call('instance.list', p, ctx)) as InstanceRecord[]).map((i) => i.name);
  assert.deepEqual(await names({}), ['a1', 'a2', 'b1']);
  assert.deepEqual(await names({ host: 'h1' }), ['a1', 'a2']);
  assert.deepEqual(await names({ host: 'h1', state: 'running' }), ['a1']);
  assert.deepEqual(await names({ appliance: 'db' }), ['a1', 'a2', 'b1']);
  assert.deepEqual(await names({ appliance: 'db@1.0', state: 'stopped' }), ['a2']);
  assert.deepEqual(await names({ appliance: 'db@2.0' }), []);
  assert.deepEqual(await names({ host: 'nohost' }), []);
  await assert.rejects(reg.call('instance.list', { state: 'runing' }, ctx), (e: Error & { code?: string }) => e.code === 'invalid' && /state "runing" is not one of pending, provisioning, running/.test(e.message));
});
