import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventBus } from '../events.ts';
import type { HostView } from './model.ts';
import { DirectorySync, type SyncDirectory } from './sync.ts';

const DOMAIN = 'storm.test';

/** A gate the test opens by hand. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

/**
 * A directory in memory that checks what the real one guarantees: never two
 * operations on one host at once (the real one answers `busy`).
 */
class FakeDirectory implements SyncDirectory {
  readonly hosts = new Map<string, { fqdn: string; instance?: string; addresses: string[] }>();
  readonly busy = new Set<string>();
  readonly overlaps: string[] = [];
  bulkCalls = 0;
  readonly ops: string[] = [];
  /** Each addHosts call waits for this, when set. */
  hold: Promise<void> | undefined;
  failing = new Set<string>();

  #enter(f: string) {
    if (this.busy.has(f)) this.overlaps.push(f);
    this.busy.add(f);
  }
  async addHost(i: { fqdn: string; instance?: string; addresses?: string[] }): Promise<HostView> {
    this.ops.push(`add ${i.fqdn}`);
    this.#enter(i.fqdn);
    await new Promise((r) => setImmediate(r));
    const prev = this.hosts.get(i.fqdn);
    const h = { fqdn: i.fqdn, addresses: i.addresses ?? prev?.addresses ?? [], ...(i.instance ? { instance: i.instance } : {}) };
    this.hosts.set(i.fqdn, h);
    this.busy.delete(i.fqdn);
    return { ...h, createdAt: '', dn: '' };
  }
  async removeHost(fqdn: string): Promise<void> {
    this.#enter(fqdn);
    await new Promise((r) => setImmediate(r));
    this.hosts.delete(fqdn);
    this.busy.delete(fqdn);
  }
  async addHosts(inputs: { fqdn: string; instance?: string }[]) {
    this.bulkCalls++;
    this.ops.push(`bulk ${inputs.length}`);
    for (const i of inputs) this.#enter(i.fqdn);
    if (this.hold) await this.hold;
    await new Promise((r) => setImmediate(r));
    const failed: { fqdn: string; error: string }[] = [];
    for (const i of inputs) {
      if (this.failing.has(i.fqdn)) failed.push({ fqdn: i.fqdn, error: 'kadmin said no' });
      else this.hosts.set(i.fqdn, { fqdn: i.fqdn, addresses: [], ...(i.instance ? { instance: i.instance } : {}) });
      this.busy.delete(i.fqdn);
    }
    return { added: inputs.filter((i) => !this.failing.has(i.fqdn)).map((i) => i.fqdn), failed };
  }
  async removeHosts(fqdns: string[]) {
    for (const f of fqdns) this.#enter(f);
    await new Promise((r) => setImmediate(r));
    for (const f of fqdns) (this.hosts.delete(f), this.busy.delete(f));
    return { removed: fqdns, failed: [] };
  }
  listHosts(): HostView[] {
    return [...this.hosts.values()].map((h) => ({ ...h, createdAt: '', dn: '' }));
  }
}

const ev = (bus: EventBus, kind: string, name: string, data?: Record<string, unknown>) => bus.emit({ kind, object: `instance/${name}`, message: kind, ...(data ? { data } : {}) });
const fq = (n: string) => `${n}.${DOMAIN}`;

test('start returns before the bulk sync; status goes syncing N/M → healthy; one bulk call per chunk', async () => {
  const bus = new EventBus();
  const dir = new FakeDirectory();
  const g = gate();
  dir.hold = g.wait;
  const names = Array.from({ length: 10 }, (_, i) => `web${i}`);
  const sync = new DirectorySync({ bus, directory: dir, instances: { list: async () => names.map((name) => ({ name })) }, domain: DOMAIN, chunk: 4, concurrency: 2 });
  const kinds: string[] = [];
  bus.subscribe((e) => kinds.push(e.kind));
  await sync.start();
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(sync.status().status, 'healthy');
  assert.match(sync.status().reason, /^syncing 0\/10/);
  g.open();
  await sync.idle();
  assert.equal(dir.bulkCalls, 3, '10 hosts in chunks of 4');
  assert.deepEqual([...dir.hosts.keys()].sort(), names.map(fq).sort());
  assert.equal(sync.status().status, 'healthy');
  assert.match(sync.status().reason, /in step: 10/);
  assert.ok(kinds.includes('directory.sync.started') && kinds.includes('directory.sync.done'), kinds.join(','));
  await sync.stop();
});

test('race: creates and destroys while the sync runs end with exactly the right entries', async () => {
  const bus = new EventBus();
  const dir = new FakeDirectory();
  // A stale entry whose instance is gone, and one enrolled without an instance (left alone).
  dir.hosts.set(fq('gone'), { fqdn: fq('gone'), instance: 'gone', addresses: [] });
  dir.hosts.set('ldap.example.org', { fqdn: 'ldap.example.org', addresses: [] });
  const alive = new Set(Array.from({ length: 12 }, (_, i) => `a${i}`));
  const listGate = gate();
  const listed = [...alive];
  const sync = new DirectorySync({
    bus, directory: dir, domain: DOMAIN, chunk: 3, concurrency: 2,
    // The list is a snapshot taken before the events below (stale by the time it returns).
    instances: { list: async () => (await listGate.wait, listed.map((name) => ({ name }))) },
  });
  const hold = gate();
  dir.hold = hold.wait;
  await sync.start();
  // Before the list returns: a1 destroyed (the stale list still has it), n0 created.
  alive.delete('a1');
  ev(bus, 'instance.destroyed', 'a1');
  alive.add('n0');
  ev(bus, 'instance.created', 'n0');
  listGate.open();
  await new Promise((r) => setTimeout(r, 10));
  // Chunks are queued (first ones held inside addHosts): events for names in them, and others.
  alive.delete('a0'); // in the first chunk, running
  ev(bus, 'instance.destroyed', 'a0');
  alive.delete('a10'); // in a chunk not yet run
  ev(bus, 'instance.destroyed', 'a10');
  alive.add('n1'); // created then destroyed while syncing
  ev(bus, 'instance.created', 'n1');
  alive.delete('n1');
  ev(bus, 'instance.destroyed', 'n1');
  alive.add('gone'); // the stale entry's name comes back
  ev(bus, 'instance.created', 'gone');
  ev(bus, 'instance.network', 'a5', { ip: '10.0.0.5' });
  hold.open();
  await sync.idle();
  const want = [...alive].map(fq).concat('ldap.example.org').sort();
  assert.deepEqual([...dir.hosts.keys()].sort(), want);
  assert.deepEqual(dir.hosts.get(fq('a5'))?.addresses, ['10.0.0.5']);
  assert.deepEqual(dir.overlaps, [], 'never two operations on one host at once');
  assert.equal(sync.status().status, 'healthy');
  await sync.stop();
});

test('race, many rounds: random creates/destroys interleaved with the sync always converge', async () => {
  for (let round = 0; round < 25; round++) {
    const bus = new EventBus();
    const dir = new FakeDirectory();
    const names = Array.from({ length: 40 }, (_, i) => `i${i}`);
    const alive = new Set(names.filter((_, i) => i % 3 !== 0));
    for (const n of names.filter((_, i) => i % 5 === 0)) dir.hosts.set(fq(n), { fqdn: fq(n), instance: n, addresses: [] });
    const sync = new DirectorySync({ bus, directory: dir, instances: { list: async () => [...alive].map((name) => ({ name })) }, domain: DOMAIN, chunk: 1 + (round % 7), concurrency: 1 + (round % 3) });
    await sync.start();
    for (let k = 0; k < 60; k++) {
      const n = names[Math.floor(Math.random() * names.length)]!;
      if (alive.has(n)) (alive.delete(n), ev(bus, 'instance.destroyed', n));
      else (alive.add(n), ev(bus, 'instance.created', n));
      if (k % 7 === 0) await new Promise((r) => setImmediate(r));
    }
    await sync.idle();
    assert.deepEqual([...dir.hosts.keys()].sort(), [...alive].map(fq).sort(), `round ${round}`);
    assert.deepEqual(dir.overlaps, [], `round ${round}`);
    await sync.stop();
  }
});

test('an instance created during a long sync is enrolled before the queued chunks', async () => {
  const bus = new EventBus();
  const dir = new FakeDirectory();
  const g = gate();
  dir.hold = g.wait;
  const sync = new DirectorySync({ bus, directory: dir, instances: { list: async () => Array.from({ length: 5 }, (_, i) => ({ name: `q${i}` })) }, domain: DOMAIN, chunk: 1, concurrency: 1 });
  await sync.start();
  await new Promise((r) => setTimeout(r, 10));
  ev(bus, 'instance.created', 'fresh');
  g.open();
  await sync.idle();
  assert.deepEqual(dir.ops.slice(0, 3), ['bulk 1', `add ${fq('fresh')}`, 'bulk 1'], dir.ops.join(', '));
  assert.equal(dir.hosts.size, 6);
  await sync.stop();
});

test('failures are listed in status with the fix, and as events', async () => {
  const bus = new EventBus();
  const dir = new FakeDirectory();
  dir.failing.add(fq('bad1'));
  const sync = new DirectorySync({ bus, directory: dir, instances: { list: async () => ['ok1', 'bad1', 'ok2'].map((name) => ({ name })) }, domain: DOMAIN });
  const failedEvents: string[] = [];
  bus.subscribe((e) => e.kind === 'instance.directory.failed' && failedEvents.push(e.object ?? ''));
  await sync.start();
  await sync.idle();
  const st = sync.status();
  assert.equal(st.status, 'unhealthy');
  assert.match(st.reason, /1 of 3 .*bad1: kadmin said no/);
  assert.match(st.fix ?? '', /restart the manager/);
  assert.deepEqual(failedEvents, ['instance/bad1']);
  assert.deepEqual([...dir.hosts.keys()].sort(), [fq('ok1'), fq('ok2')]);
  await sync.stop();
});

test('stop skips queued work and leaves nothing running', async () => {
  const bus = new EventBus();
  const dir = new FakeDirectory();
  const g = gate();
  dir.hold = g.wait;
  const sync = new DirectorySync({ bus, directory: dir, instances: { list: async () => Array.from({ length: 20 }, (_, i) => ({ name: `s${i}` })) }, domain: DOMAIN, chunk: 5, concurrency: 1 });
  await sync.start();
  await new Promise((r) => setTimeout(r, 10));
  const stopping = sync.stop();
  g.open();
  await stopping;
  assert.equal(dir.bulkCalls, 1, 'only the chunk already running');
  ev(bus, 'instance.created', 'late');
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(dir.hosts.has(fq('late')), false, 'no longer subscribed');
});
