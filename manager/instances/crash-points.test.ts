// The crash matrix in memory: an operation frozen at a crash point stands for
// a manager killed there (it never writes again); a second InstanceService on
// the same store is the restarted manager. Every point must end finished or
// undone, with one record or none and an empty journal.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../lib/logger.ts';
import { sha } from '../../test/conformance/host-agent.case.ts';
import { EventBus } from '../events.ts';
import { Store } from '../store/store.ts';
import { CRASH_POINTS, crashAt, crashPointNames, type Checkpoint, type CrashOp } from './crash-points.ts';
import { Journal } from './journal.ts';
import { MemoryHostAgent } from './memory-host-agent.ts';
import { domainName, type ApplianceSpec, type InstanceRecord } from './model.ts';
import { InstanceService, type HostDirectory, type InstanceServiceOptions } from './service.ts';

const APP: ApplianceSpec = {
  id: 'wiki', version: '1.0', memoryMiB: 128, vcpus: 1,
  kernel: { role: 'kernel', sha256: sha('k'), size: 1, url: 'http://x/k' }, initrd: { role: 'initrd', sha256: sha('i'), size: 1, url: 'http://x/i' },
  layers: [{ role: 'substrate', sha256: sha('s'), size: 1, url: 'http://x/s' }],
};

async function world(t: TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'crash-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = await Store.open(join(dir, 'db'));
  t.after(() => store.close());
  const h1 = new MemoryHostAgent('h1');
  const hosts: HostDirectory = { list: async () => [{ name: 'h1', online: true }], agent: () => h1 };
  // The CA as the manager wires it: issued per instance id, revocable by id.
  const live = new Map<string, string>();
  let serial = 0;
  const identity: NonNullable<InstanceServiceOptions['identity']> = {
    issue: async (i) => {
      const s = live.get(i.id) ?? String(++serial);
      live.set(i.id, s);
      return { key: 'K', cert: 'C', ca: 'CA', serial: s };
    },
    revoke: async ({ id }) => void live.delete(id),
  };
  const service = (checkpoint?: Checkpoint) => new InstanceService(store, hosts, { resolve: async () => APP }, new EventBus(), silentLogger, { domain: 'd', identity, ...(checkpoint ? { checkpoint } : {}) });
  return { store, h1, live, service, journal: () => store.collection('journal').values() };
}

/** A checkpoint that freezes the operation at `at` (a killed process never writes again) and says when. */
function freezeAt(op: CrashOp, point: string): { checkpoint: Checkpoint; reached: Promise<void> } {
  let reached!: () => void;
  const p = new Promise<void>((r) => (reached = r));
  return { checkpoint: (o, pt) => (o === op && pt === point ? (reached(), new Promise<void>(() => {})) : undefined), reached: p };
}

test('the service passes every crash point, in the order listed', async (t) => {
  const w = await world(t);
  const seen: string[] = [];
  const svc = w.service((op, point) => void seen.push(`${op}:${point}`));
  await svc.provision((await svc.create({ name: 'a1', appliance: 'wiki' })).id);
  await svc.destroy('a1');
  assert.deepEqual(seen, crashPointNames());
});

for (const point of CRASH_POINTS.provision) {
  test(`crash at provision:${point}: the restarted manager finishes or undoes it`, async (t) => {
    const w = await world(t);
    const f = freezeAt('provision', point);
    const dead = w.service(f.checkpoint);
    void dead.create({ name: 'p1', appliance: 'wiki' }).then((i) => dead.provision(i.id));
    await f.reached;
    const rep = await w.service().reconcile();
    const recs = await w.service().list();
    assert.equal(recs.length, 1, 'one record, not lost, not duplicated');
    const inst = recs[0]!;
    assert.deepEqual(await w.journal(), [], 'no open journal entry');
    const name = domainName(inst.id);
    if (inst.state === 'running') {
      assert.equal(await w.h1.state(name), 'running');
      assert.ok(w.h1.instanceLayers.has(inst.id));
      assert.ok(w.live.has(inst.id), 'its certificate is valid');
    } else {
      assert.equal(inst.state, 'failed');
      assert.match(inst.error ?? '', /interrupted/);
      assert.deepEqual(rep.undone, [inst.id]);
      assert.equal(await w.h1.state(name), 'absent', 'no orphan domain');
      assert.ok(!w.h1.instanceLayers.has(inst.id), 'no instance layer');
      assert.ok(!w.live.has(inst.id), 'no certificate left valid');
    }
    // Past "start" the work was all done: it is finished, not thrown away.
    const finished = point === 'started' || point === 'running';
    assert.equal(inst.state, finished ? 'running' : 'failed');
    await w.service().destroy(inst.id);
    assert.deepEqual([await w.service().list(), await w.h1.domains(), w.h1.instanceLayers.size, w.live.size], [[], [], 0, 0]);
  });
}

for (const point of CRASH_POINTS.destroy) {
  test(`crash at destroy:${point}: the restarted manager finishes it`, async (t) => {
    const w = await world(t);
    const f = freezeAt('destroy', point);
    const dead = w.service(f.checkpoint);
    const inst = await dead.provision((await dead.create({ name: 'd1', appliance: 'wiki' })).id);
    void dead.destroy(inst.id);
    await f.reached;
    await w.service().reconcile();
    assert.deepEqual(await w.service().list(), [], 'the record is gone');
    assert.deepEqual(await w.journal(), []);
    assert.deepEqual(await w.h1.domains(), [], 'no orphan domain');
    assert.equal(w.h1.instanceLayers.size, 0, 'no instance layer');
    assert.equal(w.live.size, 0, 'its certificate is revoked');
  });
}

for (const point of CRASH_POINTS.destroy.filter((p) => p !== 'deleting')) {
  test(`a second crash, at destroy:${point} while the restarted manager finishes a destroy: the next start finishes it`, async (t) => {
    const w = await world(t);
    const first = freezeAt('destroy', 'deleting');
    const dead = w.service(first.checkpoint);
    const inst = await dead.provision((await dead.create({ name: 'r1', appliance: 'wiki' })).id);
    void dead.destroy(inst.id);
    await first.reached;
    const second = freezeAt('destroy', point);
    void w.service(second.checkpoint).reconcile();
    await second.reached;
    await w.service().reconcile();
    assert.deepEqual([await w.service().list(), await w.journal(), await w.h1.domains(), w.h1.instanceLayers.size, w.live.size], [[], [], [], 0, 0]);
  });
}

test('a periodic pass leaves alone an entry create wrote before provisioning took it', async (t) => {
  const w = await world(t);
  const svc = w.service();
  const inst = await svc.create({ name: 'c1', appliance: 'wiki' });
  const rep = await svc.reconcile();
  assert.deepEqual([rep.undone, rep.finished], [[], []]);
  assert.equal((await svc.provision(inst.id)).state, 'running');
  assert.deepEqual(await w.journal(), []);
});

test('a record left transitional without an entry (older data) is repaired', async (t) => {
  const w = await world(t);
  const svc = w.service();
  const up = await svc.provision((await svc.create({ name: 'l1', appliance: 'wiki' })).id);
  const gone = await svc.provision((await svc.create({ name: 'l2', appliance: 'wiki' })).id);
  const recs = w.store.collection<InstanceRecord>('instances');
  // What the old order (end the entry, then save) left behind after a crash in between.
  await recs.put(up.id, { ...up, state: 'provisioning' });
  await recs.put(gone.id, { ...gone, state: 'deleting' });
  const rep = await w.service().reconcile();
  assert.deepEqual(rep.undone, [up.id]);
  assert.deepEqual(rep.finished, [gone.id]);
  assert.deepEqual((await svc.list()).map((i) => [i.name, i.state]), [['l1', 'failed']]);
  assert.deepEqual(await w.h1.domains(), []);
  assert.deepEqual(await w.journal(), []);
});

test('begin and end write the record change in the same batch as the entry', async (t) => {
  const w = await world(t);
  const j = new Journal(w.store);
  const c = w.store.collection<{ v: number }>('x');
  const e = await j.begin('destroy', 'i1', 'h1', undefined, (b) => b.put(c, 'i1', { v: 1 }));
  assert.ok(j.running(e));
  assert.deepEqual([await c.get('i1'), (await j.open()).length], [{ v: 1 }, 1]);
  await j.end(e, (b) => b.del(c, 'i1'));
  assert.ok(!j.running(e));
  assert.deepEqual([await c.get('i1'), (await j.open()).length], [undefined, 0]);
});

test('crashAt: kills only at its point, and refuses an unknown one', () => {
  let killed = 0;
  const cp = crashAt('destroy:undefine', silentLogger, () => void killed++);
  void cp('provision', 'define');
  void cp('destroy', 'poweroff');
  assert.equal(killed, 0);
  void cp('destroy', 'undefine');
  assert.equal(killed, 1);
  assert.throws(() => crashAt('provision:nope', silentLogger), /unknown crash point/);
});
