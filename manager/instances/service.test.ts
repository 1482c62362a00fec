import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../store/store.ts';
import { EventBus } from '../events.ts';
import { silentLogger } from '../../lib/logger.ts';
import { StormError } from '../../lib/errors.ts';
import { MemoryHostAgent } from './memory-host-agent.ts';
import { InstanceService, type ApplianceSource, type HostDirectory } from './service.ts';
import { domainName, type ApplianceSpec } from './model.ts';
import { sha } from '../../test/conformance/host-agent.case.ts';

const APP: ApplianceSpec = {
  id: 'wiki', version: '1.0', kernel: { role: 'kernel', sha256: sha('kernel'), size: 10, url: 'http://x/k' }, initrd: { role: 'initrd', sha256: sha('initrd'), size: 10, url: 'http://x/i' }, memoryMiB: 256, vcpus: 1,
  layers: [
    { role: 'substrate', sha256: sha('sub'), size: 100, url: 'http://x/sub' },
    { role: 'appliance', sha256: sha('wiki'), size: 50, url: 'http://x/wiki' },
  ],
};

async function setup(t: import('node:test').TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'inst-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = await Store.open(join(dir, 'db'));
  t.after(() => store.close());
  const agents = new Map([['h1', new MemoryHostAgent('h1')], ['h2', new MemoryHostAgent('h2')]]);
  const hosts: HostDirectory = { list: async () => [...agents.keys()].map((name) => ({ name, online: true })), agent: (n) => agents.get(n)! };
  const apps: ApplianceSource = { resolve: async () => APP };
  const bus = new EventBus();
  const svc = new InstanceService(store, hosts, apps, bus, silentLogger);
  return { store, agents, hosts, apps, bus, svc };
}

test('create, provision, stop, start, destroy: state machine and host agree', async (t) => {
  const { svc, agents } = await setup(t);
  const inst = await svc.create({ name: 'web1', appliance: 'wiki' });
  assert.equal(inst.state, 'pending');
  const up = await svc.provision('web1');
  assert.equal(up.state, 'running');
  const a = agents.get(up.host)!;
  assert.equal(await a.state(domainName(up.id)), 'running');
  await assert.rejects(svc.start('web1'), (e: StormError) => e.code === 'conflict' && /it is running/.test(e.message));
  assert.equal((await svc.stop('web1')).state, 'stopped');
  assert.equal((await svc.start('web1')).state, 'running');
  await assert.rejects(svc.create({ name: 'web1', appliance: 'wiki' }), (e: StormError) => e.code === 'conflict');
  await assert.rejects(svc.create({ name: 'Bad_Name', appliance: 'wiki' }), (e: StormError) => e.code === 'invalid');
  await svc.destroy('web1');
  assert.deepEqual(await a.domains(), []);
  assert.equal(a.instanceLayers.size, 0);
  assert.deepEqual(await svc.list(), []);
});

test('create on a named host: unknown is not_found, one that does not answer unavailable, neither leaves a record', async (t) => {
  const { store, hosts, apps, bus } = await setup(t);
  // Neither h2 nor h3 was online at the last poll; h3 answers now (it just joined), h2 does not.
  const down = new Proxy({}, { get: () => async () => Promise.reject(new StormError('unreachable', 'connection refused')) });
  const dir: HostDirectory = {
    list: async () => [...(await hosts.list()).map((h) => ({ ...h, online: h.name === 'h1' })), { name: 'h3', online: false }],
    agent: (n) => (n === 'h2' ? (down as never) : n === 'h3' ? hosts.agent('h1') : hosts.agent(n)),
  };
  const svc = new InstanceService(store, dir, apps, bus, silentLogger);
  await assert.rejects(svc.create({ name: 'web1', appliance: 'wiki', host: 'nohost' }), (e: StormError) => e.code === 'not_found' && /host "nohost"/.test(e.message));
  await assert.rejects(svc.create({ name: 'web1', appliance: 'wiki', host: 'h2' }), (e: StormError) => e.code === 'unavailable' && /not online: connection refused/.test(e.message));
  assert.deepEqual(await svc.list(), []);
  assert.equal((await svc.create({ name: 'web1', appliance: 'wiki', host: 'h3' })).host, 'h3', 'asked now, it answers');
});

test('destroying an instance whose host was removed forgets it, and says nothing was removed there', async (t) => {
  const { svc, agents, bus } = await setup(t);
  const inst = await svc.provision((await svc.create({ name: 'web1', appliance: 'wiki', host: 'h2' })).id);
  const events: string[] = [];
  bus.subscribe((e) => e.kind === 'instance.destroyed' && events.push(e.message));
  agents.delete('h2');
  await svc.destroy(inst.id);
  assert.deepEqual(await svc.list(), []);
  assert.deepEqual(events, ['web1 destroyed (host h2 is no longer enrolled: nothing was removed there)']);
});

test('names: found through the index, freed by destroy, one create per name at a time; an older store gets its index built', async (t) => {
  const { store, hosts, apps, bus, svc } = await setup(t);
  // A record written before the index existed (as an older manager left it).
  const old = { ...(await svc.create({ name: 'web0', appliance: 'wiki', host: 'h1' })), id: 'old0id', name: 'legacy' };
  await store.collection('instances').put(old.id, old);
  await store.collection('instances.meta').del('names');
  await store.collection('instances.names').del('web0');
  const fresh = new InstanceService(store, hosts, apps, bus, silentLogger);
  assert.equal((await fresh.get('legacy')).id, 'old0id');
  assert.equal((await fresh.get('web0')).name, 'web0');
  await assert.rejects(fresh.create({ name: 'legacy', appliance: 'wiki' }), (e: StormError) => e.code === 'conflict');
  // Two creates of one name at once: one record, the other refused (busy or conflict), never two.
  const both = await Promise.allSettled([fresh.create({ name: 'twin', appliance: 'wiki' }), fresh.create({ name: 'twin', appliance: 'wiki' })]);
  assert.equal(both.filter((r) => r.status === 'fulfilled').length, 1);
  assert.ok(both.some((r) => r.status === 'rejected' && ['busy', 'conflict'].includes((r.reason as StormError).code)));
  assert.equal((await fresh.list()).filter((i) => i.name === 'twin').length, 1);
  await fresh.destroy('twin');
  await assert.rejects(fresh.get('twin'), (e: StormError) => e.code === 'not_found');
  assert.equal(await store.collection('instances.names').get('twin'), undefined, 'the name is freed with the record');
  assert.equal((await fresh.create({ name: 'twin', appliance: 'wiki' })).name, 'twin', 'and can be used again');
});

test('a failed step undoes the steps before it and leaves the instance failed', async (t) => {
  const { svc, agents, store } = await setup(t);
  const inst = await svc.create({ name: 'web2', appliance: 'wiki', host: 'h1' });
  agents.get('h1')!.failNext.add('start');
  await assert.rejects(svc.provision(inst.id), /injected failure in start/);
  const after = await svc.get('web2');
  assert.equal(after.state, 'failed');
  assert.match(after.error ?? '', /injected/);
  assert.equal(after.errorCode, 'conflict', "the cause's code is kept");
  assert.deepEqual(await agents.get('h1')!.domains(), []);
  assert.equal(agents.get('h1')!.instanceLayers.size, 0);
  // Started again from failed: running, and the error and its code are gone.
  const up = await svc.start('web2');
  assert.equal(up.state, 'running');
  assert.equal('error' in up || 'errorCode' in up, false);

  // Failed with its instance layer still there (an update that failed after undefining): start is not a
  // retry of the provisioning, whose undo could remove that layer; the layer is kept.
  const h1 = agents.get('h1')!;
  await h1.poweroff(domainName(up.id));
  await h1.undefine(domainName(up.id));
  await store.collection('instances').put(up.id, { ...up, state: 'failed', error: 'update failed' });
  await assert.rejects(svc.start('web2'), (e: StormError) => e.code === 'not_found');
  assert.ok(h1.instanceLayers.has(up.id), 'its instance layer is kept');
});

test('concurrent actions on one instance: the second is busy', async (t) => {
  const { svc } = await setup(t);
  await svc.create({ name: 'web3', appliance: 'wiki' });
  // Whichever takes the lock first runs; the other is refused at once, not queued.
  const results = await Promise.allSettled([svc.provision('web3'), svc.destroy('web3')]);
  const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  assert.equal(rejected.length, 1);
  assert.equal((rejected[0]!.reason as StormError).code, 'busy');
});

test('reconcile undoes an interrupted provision, finishes a destroy, reports orphans', async (t) => {
  const { svc, agents, store, hosts, apps, bus } = await setup(t);
  const inst = await svc.create({ name: 'web4', appliance: 'wiki', host: 'h1' });
  // Simulate a crash after "define": journal entry open, domain defined, instance layer present.
  const journal = store.collection<{ opId: string; op: string; instance: string; host: string; done: string[]; startedAt: string }>('journal');
  // create wrote the entry with the record; the crashed run had advanced it to "define".
  for (const { id } of await journal.list()) await journal.del(id);
  await journal.put('op1', { opId: 'op1', op: 'provision', instance: inst.id, host: 'h1', done: ['layers', 'instance-layer', 'define'], startedAt: '' });
  const h1 = agents.get('h1')!;
  for (const l of APP.layers) await h1.ensureLayer(l);
  await h1.createInstanceLayer(inst.id, { hostname: 'web4', domain: 'd', files: {}, sizeMiB: 1 });
  await h1.define({ name: domainName(inst.id), memoryMiB: 1, vcpus: 1, kernel: '', initrd: '', cmdline: '', layers: {}, instanceLayer: inst.id, mac: '' });
  // A domain that looks like ours but is unknown, and one that is not ours at all.
  await h1.createInstanceLayer('zzz', { hostname: 'x', domain: 'd', files: {}, sizeMiB: 1 });
  await h1.define({ name: 'storm-ghost', memoryMiB: 1, vcpus: 1, kernel: '', initrd: '', cmdline: '', layers: {}, instanceLayer: 'zzz', mac: '' });
  await h1.define({ name: 'someone-elses-vm', memoryMiB: 1, vcpus: 1, kernel: '', initrd: '', cmdline: '', layers: {}, instanceLayer: 'zzz', mac: '' });

  const fresh = new InstanceService(store, hosts, apps, bus, silentLogger);
  const rep = await fresh.reconcile();
  assert.deepEqual(rep.undone, [inst.id]);
  assert.deepEqual(rep.orphans, [{ host: 'h1', domain: 'storm-ghost' }]);
  assert.equal((await fresh.get('web4')).state, 'failed');
  assert.equal(await h1.state(domainName(inst.id)), 'absent');
  assert.equal(await h1.state('someone-elses-vm'), 'stopped', 'never touched');
  assert.deepEqual(await journal.values(), []);
  assert.equal((await fresh.list()).length, 1, 'no lost or duplicated record');
});

test('a periodic reconcile leaves a live operation alone and defers what an unreachable host blocks', async (t) => {
  const { svc, agents, store, hosts } = await setup(t);
  const h1 = agents.get('h1')!;
  await svc.create({ name: 'web5', appliance: 'wiki', host: 'h1' });
  // Hold provisioning inside its first step while reconcile runs.
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const ensure = h1.ensureLayer.bind(h1);
  h1.ensureLayer = async (l) => (await gate, ensure(l));
  const provisioning = svc.provision('web5');
  await new Promise((r) => setImmediate(r));
  const rep = await svc.reconcile();
  assert.deepEqual([rep.undone, rep.finished, rep.deferred], [[], [], []]);
  release();
  assert.equal((await provisioning).state, 'running');

  // An interrupted destroy on a host that does not answer: deferred, the entry stays for the next pass.
  const rec = await svc.provision((await svc.create({ name: 'web6', appliance: 'wiki', host: 'h1' })).id);
  await store.collection('instances').put(rec.id, { ...rec, host: 'h9', state: 'deleting' });
  const journal = store.collection<{ opId: string }>('journal');
  await journal.put('op2', { opId: 'op2', op: 'destroy', instance: rec.id, host: 'h9', done: [], startedAt: '' } as never);
  const unreachable = new Proxy({}, { get: () => async () => Promise.reject(new StormError('unreachable', 'h9 is down')) });
  // h9 is enrolled but offline (a removed host would be forgotten instead: see the test above).
  const down: HostDirectory = { list: async () => [...(await hosts.list()), { name: 'h9', online: false }], agent: (n) => (n === 'h9' ? (unreachable as never) : hosts.agent(n)) };
  const svc2 = new InstanceService(store, down, { resolve: async () => APP }, new EventBus(), silentLogger);
  const rep2 = await svc2.reconcile();
  assert.deepEqual(rep2.deferred, [{ instance: rec.id, op: 'destroy', error: 'h9 is down' }]);
  assert.equal((await journal.values()).length, 1, 'kept for the next pass');
  assert.equal((await svc2.get('web6')).state, 'deleting');
});

test('console: the end of the instance domain\'s serial log, from its host', async (t) => {
  const { svc } = await setup(t);
  const inst = await svc.create({ name: 'web7', appliance: 'wiki', host: 'h2' });
  await svc.provision('web7');
  const boot = `boot ${domainName(inst.id)}\n`;
  const first = await svc.console('web7');
  assert.deepEqual(first, { instance: 'web7', host: 'h2', text: boot, from: 0, next: boot.length, boot: first.boot });
  // Following: from the last answer's next, only what came since.
  assert.deepEqual(await svc.console('web7', 100, boot.length, first.boot), { instance: 'web7', host: 'h2', text: '', from: boot.length, next: boot.length, boot: first.boot });
  assert.deepEqual(await svc.console('web7', 4, 5), { instance: 'web7', host: 'h2', text: boot.slice(5, 9), from: 5, next: 9, boot: first.boot });
  // Stopped and started: another run, a new log; asked from the old run's end, it answers from 0.
  await svc.stop('web7');
  await svc.start('web7');
  const again = await svc.console('web7', 100, 4, first.boot);
  assert.notEqual(again.boot, first.boot);
  assert.deepEqual([again.from, again.text], [0, boot]);
  await assert.rejects(svc.console('web7', 0), (e: StormError) => e.code === 'invalid');
  await assert.rejects(svc.console('web7', 10, -1), (e: StormError) => e.code === 'invalid');
});

test('each instance layer carries its own certificate and the manager address; destroy revokes the certificate', async (t) => {
  const { store, agents, hosts, apps, bus } = await setup(t);
  const issued: string[] = [];
  const revoked: string[] = [];
  const identity = {
    issue: async ({ name }: { id: string; name: string }) => (issued.push(name), { key: `KEY ${name}`, cert: `CERT ${name}`, ca: 'CA', serial: `0${issued.length}` }),
    revoke: async ({ serial }: { id: string; serial?: string }) => void (serial && revoked.push(serial)),
  };
  const svc = new InstanceService(store, hosts, apps, bus, silentLogger, { domain: 'cloud.storm', managerAddress: '10.77.0.1', identity });
  const inst = await svc.create({ name: 'web8', appliance: 'wiki', host: 'h1' });
  const up = await svc.provision('web8');
  assert.equal(up.certSerial, '01');
  const layer = agents.get('h1')!.instanceLayers.get(inst.id)!;
  assert.deepEqual(layer.tls, { key: 'KEY web8', cert: 'CERT web8', ca: 'CA' });
  assert.equal(layer.files['/etc/storm/manager'], '10.77.0.1\n');
  await svc.destroy('web8');
  assert.deepEqual(revoked, ['01']);
  // A provisioning that fails after the certificate was issued revokes it while undoing.
  await svc.create({ name: 'web9', appliance: 'wiki', host: 'h1' });
  agents.get('h1')!.failNext.add('start');
  await assert.rejects(svc.provision('web9'));
  assert.deepEqual(revoked, ['01', '02']);
});

test("create checks the parameters against the appliance's: refused with what is wrong, nothing written; defaults filled in", async (t) => {
  const { store, hosts, bus } = await setup(t);
  const declared: ApplianceSpec = { ...APP, parameters: [{ name: 'admin', type: 'email', required: true }, { name: 'tls', type: 'enum', required: false, default: 'off', choices: ['off', 'on'] }] };
  const svc = new InstanceService(store, hosts, { resolve: async () => declared }, bus, silentLogger);
  await assert.rejects(svc.create({ name: 'web1', appliance: 'wiki', params: { admni: 'a@b.c' } }), (e: StormError) => e.code === 'invalid' && /^wiki@1\.0: there is no parameter "admni" \(it takes: admin, tls\)$/.test(e.message) && /storm appliance show wiki/.test(e.hint ?? ''));
  await assert.rejects(svc.create({ name: 'web1', appliance: 'wiki' }), (e: StormError) => e.code === 'invalid' && /parameters required: admin/.test(e.message));
  assert.deepEqual(await svc.list(), []);
  assert.deepEqual((await svc.create({ name: 'web1', appliance: 'wiki', params: { admin: 'a@b.c' } })).params, { admin: 'a@b.c', tls: 'off' });
});

test('instances are listed by name', async (t) => {
  const { svc } = await setup(t);
  for (const n of ['web2', 'db1', 'web10', 'app']) await svc.create({ name: n, appliance: 'wiki', host: 'h1' });
  assert.deepEqual((await svc.list()).map((i) => i.name), ['app', 'db1', 'web10', 'web2']);
});
