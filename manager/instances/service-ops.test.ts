import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../store/store.ts';
import { EventBus, type StormEvent } from '../events.ts';
import { silentLogger } from '../../lib/logger.ts';
import { StormError } from '../../lib/errors.ts';
import { MemoryHostAgent } from './memory-host-agent.ts';
import { InstanceService, type HostDirectory } from './service.ts';
import { domainName, type ApplianceSpec, type InstanceReport } from './model.ts';
import { sha } from '../../test/conformance/host-agent.case.ts';

const app = (version: string, substrate: string): ApplianceSpec => ({
  id: 'wiki', version, kernel: { role: 'kernel', sha256: sha('kernel'), size: 10, url: 'http://x/k' }, initrd: { role: 'initrd', sha256: sha('initrd'), size: 10, url: 'http://x/i' }, memoryMiB: 256, vcpus: 1,
  layers: [
    { role: 'substrate', sha256: sha(substrate), size: 1_000_000, url: `http://x/${substrate}` },
    { role: 'appliance', sha256: sha('wiki'), size: 500_000, url: 'http://x/wiki' },
  ],
});
const VERSIONS: Record<string, ApplianceSpec> = { '1.0': app('1.0', 'sub-1'), '1.1': app('1.1', 'sub-2') };

async function setup(t: import('node:test').TestContext, latest = '1.0') {
  const dir = mkdtempSync(join(tmpdir(), 'inst-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = await Store.open(join(dir, 'db'));
  t.after(() => store.close());
  const agents = new Map([['h1', new MemoryHostAgent('h1')], ['h2', new MemoryHostAgent('h2')]]);
  const hosts: HostDirectory = { list: async () => [...agents.keys()].map((name) => ({ name, online: true })), agent: (n) => agents.get(n)! };
  const cat = { latest };
  const apps = { resolve: async (ref: string) => VERSIONS[ref.split('@')[1] ?? cat.latest]! };
  const bus = new EventBus();
  const svc = new InstanceService(store, hosts, apps, bus, silentLogger);
  return { svc, agents, cat, store, hosts, apps, bus };
}

test('snapshot, change, restore, delete an instance layer', async (t) => {
  const { svc, agents } = await setup(t);
  const i = await svc.create({ name: 'w1', appliance: 'wiki', host: 'h1' });
  await svc.provision('w1');
  // qcow2 internal snapshots: the instance layer must not be in use.
  await assert.rejects(svc.snapshot('w1', 'before'), (e: StormError) => e.code === 'conflict' && /it is running/.test(e.message));
  await svc.stop('w1');
  await svc.snapshot('w1', 'before');
  await assert.rejects(svc.snapshot('w1', 'bad name!'), (e: StormError) => e.code === 'invalid');
  agents.get('h1')!.instanceLayers.get(i.id)!.files['/etc/changed'] = 'yes';
  await svc.start('w1');
  await assert.rejects(svc.restore('w1', 'before'), (e: StormError) => e.code === 'conflict' && /it is running/.test(e.message));
  await svc.stop('w1');
  await assert.rejects(svc.restore('w1', 'nosuch'), (e: StormError) => e.code === 'not_found' && /instance w1 has no snapshot "nosuch"/.test(e.message));
  await svc.restore('w1', 'before');
  assert.equal(agents.get('h1')!.instanceLayers.get(i.id)!.files['/etc/changed'], undefined);
  assert.deepEqual((await svc.snapshots('w1')).map((s) => s.name), ['before']);
  await svc.deleteSnapshot('w1', 'before');
  assert.deepEqual(await svc.snapshots('w1'), []);
  await assert.rejects(svc.deleteSnapshot('w1', 'before'), (e: StormError) => e.code === 'not_found' && /w1/.test(e.message));
});

test('migration moves only the instance layer when the target holds the shared layers', async (t) => {
  const { svc, agents } = await setup(t);
  const i = await svc.create({ name: 'w2', appliance: 'wiki', host: 'h1' });
  await svc.provision('w2');
  const v = VERSIONS['1.0']!;
  for (const l of [...v.layers, v.kernel!, v.initrd!]) await agents.get('h2')!.ensureLayer(l); // boot files travel like layers
  const rep = await svc.migrate('w2', 'h2');
  assert.equal(rep.layerBytes, 0);
  assert.equal(rep.bytesMoved, rep.instanceLayerBytes);
  const after = await svc.get('w2');
  assert.equal(after.host, 'h2');
  assert.equal(after.state, 'running');
  assert.equal(after.mac, i.mac, 'same identity');
  assert.equal(await agents.get('h2')!.state(domainName(i.id)), 'running');
  assert.equal(await agents.get('h1')!.state(domainName(i.id)), 'absent');
  assert.equal(agents.get('h1')!.instanceLayers.size, 0);
  // A target lacking the layers fetches them too; a failure before the switch is undone.
  agents.get('h1')!.failNext.add('define');
  await assert.rejects(svc.migrate('w2', 'h1'), /injected failure in define/);
  assert.equal((await svc.get('w2')).host, 'h2');
  assert.equal(await agents.get('h2')!.state(domainName(i.id)), 'running', 'started again on the source');
  assert.equal(agents.get('h1')!.instanceLayers.size, 0);
});

test('a traditional (one-disk) instance is not migrated: its overlay would not travel', async (t) => {
  const { svc, store } = await setup(t);
  const i = await svc.create({ name: 'old1', appliance: 'wiki', host: 'h1' });
  await svc.provision('old1');
  await store.collection('instances').put(i.id, { ...(await svc.get('old1')), layers: { disk: sha('disk') } });
  await assert.rejects(svc.migrate('old1', 'h2'), (e: StormError) => e.code === 'invalid' && /traditional/.test(e.message));
  assert.equal((await svc.get('old1')).host, 'h1');
});

test('update: canary first, then the rest; each keeps its instance layer; rollback restores', async (t) => {
  const { svc, agents, cat, bus } = await setup(t);
  for (const n of ['a1', 'a2', 'a3']) {
    await svc.create({ name: n, appliance: 'wiki', host: 'h1' });
    await svc.provision(n);
  }
  const before = new Map([...agents.get('h1')!.instanceLayers].map(([k, v]) => [k, JSON.stringify(v)]));
  cat.latest = '1.1';
  const plan = await svc.updatePlan('wiki');
  assert.equal(plan.length, 3);
  assert.deepEqual(plan[0]!.changes.map((c) => c.role), ['substrate']);
  assert.equal(plan[0]!.appliance, 'wiki');
  // No ref: every appliance with instances, at its newest version.
  assert.deepEqual(await svc.updatePlan(), plan);
  const events: StormEvent[] = [];
  const off = bus.subscribe((e) => e.kind.startsWith('instance.') && events.push(e));
  const rep = await svc.updateApply('wiki', { concurrency: 2 });
  off();
  // One event per instance, saying what changed; no "is running" for instances that stayed running.
  assert.deepEqual(events.map((e) => [e.kind, e.message]).sort(), [['instance.updated', 'a1: wiki 1.0 → 1.1'], ['instance.updated', 'a2: wiki 1.0 → 1.1'], ['instance.updated', 'a3: wiki 1.0 → 1.1']]);
  assert.equal(rep.canary, 'a1');
  assert.deepEqual(rep.updated.sort(), ['a1', 'a2', 'a3']);
  for (const i of await svc.list()) {
    assert.equal(i.version, '1.1');
    assert.equal(i.layers.substrate, sha('sub-2'));
    assert.equal(i.state, 'running');
    assert.equal(JSON.stringify(agents.get('h1')!.instanceLayers.get(i.id)), before.get(i.id), 'instance layer kept');
  }
  assert.deepEqual(await svc.updatePlan('wiki'), []);
  await svc.rollback('a2');
  assert.equal((await svc.get('a2')).layers.substrate, sha('sub-1'));
});

test('a failing canary stops the rollout and is rolled back', async (t) => {
  const { svc, agents, cat, bus } = await setup(t);
  for (const n of ['b1', 'b2']) {
    await svc.create({ name: n, appliance: 'wiki', host: 'h1' });
    await svc.provision(n);
  }
  cat.latest = '1.1';
  agents.get('h1')!.failNext.add('start');
  const failed: StormEvent[] = [];
  bus.subscribe((e) => e.level === 'error' && failed.push(e));
  await assert.rejects(svc.updateApply('wiki'), (e: StormError) => e.code === 'conflict' && /canary b1 failed/.test(e.message) && /1 instance\(s\) untouched/.test(e.message) && /storm instance console b1/.test(e.hint ?? ''));
  // The failure's event says why.
  assert.match(failed[0]?.message ?? '', /^b1 failed: update to wiki@1\.1 failed: /);
  assert.equal((await svc.get('b2')).version, '1.0');
});

test('reconcile after a crash mid-migration: before the switch undone, after it finished', async (t) => {
  const { svc, agents, store, hosts, apps } = await setup(t);
  const i = await svc.create({ name: 'm1', appliance: 'wiki', host: 'h1' });
  await svc.provision('m1');
  // Crash after the target got the instance layer and the definition, before the switch.
  const h2 = agents.get('h2')!;
  for (const l of VERSIONS['1.0']!.layers) await h2.ensureLayer(l);
  await h2.importInstanceLayer(i.id, await agents.get('h1')!.exportInstanceLayer(i.id));
  await h2.define({ name: domainName(i.id), memoryMiB: 1, vcpus: 1, kernel: '', initrd: '', cmdline: '', layers: {}, instanceLayer: i.id, mac: i.mac });
  await agents.get('h1')!.shutdown(domainName(i.id));
  await store.collection('journal').put('op', { opId: 'op', op: 'migrate', instance: i.id, host: 'h1', done: ['stopped', 'layers', 'instance-layer', 'define'], startedAt: '', data: { target: 'h2', wasRunning: true } });
  const rep = await new InstanceService(store, hosts, apps, new EventBus(), silentLogger).reconcile();
  assert.deepEqual(rep.undone, [i.id]);
  assert.equal(await h2.state(domainName(i.id)), 'absent');
  assert.equal(h2.instanceLayers.size, 0);
  assert.equal(await agents.get('h1')!.state(domainName(i.id)), 'running');
  assert.equal((await svc.get('m1')).host, 'h1');
});

test('update plan without a ref: an appliance the catalog no longer has gives no plan, the others still do', async (t) => {
  const { svc, store, cat, apps } = await setup(t);
  for (const n of ['c1', 'c2']) {
    await svc.create({ name: n, appliance: 'wiki', host: 'h1' });
    await svc.provision(n);
  }
  const c2 = await svc.get('c2');
  await store.collection('instances').put(c2.id, { ...c2, appliance: 'gone' });
  const resolve = apps.resolve;
  apps.resolve = async (ref: string) => {
    if (ref.startsWith('gone')) throw new StormError('not_found', `no appliance ${ref}`);
    return resolve(ref);
  };
  cat.latest = '1.1';
  assert.deepEqual((await svc.updatePlan()).map((e) => [e.instance, e.appliance, e.to]), [['c1', 'wiki', '1.1']]);
  await assert.rejects(svc.updatePlan('gone'), (e: StormError) => e.code === 'not_found');
});

test("an update's health check: an instance that reports its status must report ready again; failing, or silent past the timeout, stops the rollout", async (t) => {
  const { store, hosts, apps, bus, cat } = await setup(t);
  // The guests' reports as the API stores them; each updated guest "boots" and says what `says` tells it to.
  const reports = new Map<string, InstanceReport>();
  const says = new Map<string, { status: string; message?: string } | 'nothing'>();
  bus.subscribe((e) => {
    if (e.kind !== 'instance.updated') return;
    const name = String(e.object).replace('instance/', '');
    const what = says.get(name) ?? { status: 'ready' };
    const id = [...reports.values()].find((r) => r.instance === name)?.id;
    if (what !== 'nothing' && id) setTimeout(() => reports.set(id, { instance: name, id, status: what.status, message: what.message ?? '', at: new Date().toISOString() }), 20);
  });
  const svc = new InstanceService(store, hosts, apps, bus, silentLogger, { domain: 'd', reports: { last: async (id) => reports.get(id) }, readyTimeoutMs: 300, reportPollMs: 5 });
  for (const n of ['r1', 'r2', 'r3', 'z-quiet']) {
    const i = await svc.create({ name: n, appliance: 'wiki', host: 'h1' });
    await svc.provision(n);
    // All but one have a guest agent that reported at boot.
    if (n !== 'z-quiet') reports.set(i.id, { instance: n, id: i.id, status: 'ready', message: '', at: '2026-01-01T00:00:00.000Z' });
  }
  cat.latest = '1.1';
  // Each reports ready after its update: all go; the one that never reports is judged by its domain.
  const rep = await svc.updateApply('wiki');
  assert.deepEqual(rep.updated.sort(), ['r1', 'r2', 'r3', 'z-quiet']);

  // The canary reports failed: the rollout stops, the canary goes back, the rest stay.
  cat.latest = '1.0';
  const order = (await svc.updatePlan('wiki')).map((p) => p.instance);
  says.set(order[0]!, { status: 'failed', message: 'wiki database did not start' });
  await assert.rejects(svc.updateApply('wiki'), (e: StormError) => e.code === 'conflict' && e.message.includes(`canary ${order[0]} failed`) && e.message.includes('reported failed after the update: wiki database did not start'));
  assert.equal((await svc.get(order[0]!)).version, '1.1', 'the canary is back on its version');
  for (const n of order.slice(1)) assert.equal((await svc.get(n)).version, '1.1', `${n} untouched`);

  // A canary that reports nothing within the timeout fails too, saying so.
  says.set(order[0]!, 'nothing');
  await new Promise((r) => setTimeout(r, 50)); // the rolled-back canary's own boot report lands first
  await assert.rejects(svc.updateApply('wiki'), (e: StormError) => e.code === 'conflict' && e.message.includes(`${order[0]} did not report ready within 0 s of the update`));
});
