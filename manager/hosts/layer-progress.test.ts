import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventBus, type StormEvent } from '../events.ts';
import type { HostAgent, LayerRef } from '../instances/host-agent.ts';
import { withLayerProgress } from './layer-progress.ts';

const REF: LayerRef = { role: 'substrate', sha256: 'a'.repeat(64), size: 1000, url: 'http://127.0.0.1:1/x' };

function fakeAgent(o: { received: () => number; total?: number; fail?: boolean }) {
  let release!: () => void;
  const done = new Promise<void>((r) => (release = r));
  const agent = {
    host: 'hv1',
    capacity: async () => ({ memoryMiB: 1, freeMemoryMiB: 1, vcpus: 1, freeDiskBytes: 1 }),
    ensureLayer: async () => {
      await done;
      if (o.fail) throw new Error('digest mismatch');
    },
    downloads: async () => [{ sha256: REF.sha256, received: o.received(), total: o.total }],
  };
  return { agent: agent as unknown as HostAgent, release };
}

const collect = (bus: EventBus) => {
  const seen: StormEvent[] = [];
  bus.subscribe((e) => seen.push(e));
  return seen;
};
const until = async (f: () => boolean) => {
  for (let i = 0; i < 500 && !f(); i++) await new Promise((r) => setTimeout(r, 5));
};

test('a layer being fetched reports progress by bytes, in steps, then 100 when cached', async () => {
  const bus = new EventBus();
  const seen = collect(bus);
  let received = 0;
  const { agent, release } = fakeAgent({ received: () => received, total: 1000 });
  const a = withLayerProgress(agent, bus, { quietMs: 1, pollMs: 5 });
  const p = a.ensureLayer(REF);
  await until(() => seen.length === 1);
  received = 20; // under 5 points more: nothing new
  await new Promise((r) => setTimeout(r, 30));
  received = 450;
  await until(() => seen.length === 2);
  release();
  await p;
  assert.deepEqual(seen.map((e) => e.data?.progress), [0, 45, 100]);
  assert.deepEqual(seen[1]!.data, { operation: `layer:hv1:${REF.sha256}`, progress: 45, label: 'fetch substrate → hv1', sha256: REF.sha256 });
  assert.equal(seen[1]!.kind, 'layer.fetch');
  assert.match(seen[1]!.message, /hv1: fetching substrate aaaaaaaaaaaa \(0\.0 of 0\.0 MiB\)/);
  // Other methods pass through to the agent.
  assert.equal((await a.capacity()).vcpus, 1);
  assert.equal(a.host, 'hv1');
});

test('a cached layer (quick) makes no event; a failed fetch ends its gauge in error and still throws', async () => {
  const bus = new EventBus();
  const seen = collect(bus);
  const quick = fakeAgent({ received: () => 0 });
  quick.release();
  await withLayerProgress(quick.agent, bus, { quietMs: 50 }).ensureLayer(REF);
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(seen.length, 0);

  const bad = fakeAgent({ received: () => 300, fail: true });
  const p = withLayerProgress(bad.agent, bus, { quietMs: 1, pollMs: 5 }).ensureLayer(REF);
  await until(() => seen.length === 1);
  bad.release();
  await assert.rejects(p, /digest mismatch/);
  assert.equal(seen.at(-1)!.level, 'error');
  assert.equal(seen.at(-1)!.data?.progress, 30);
  const n = seen.length;
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(seen.length, n, 'no event after the end');
});
