import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../store/store.ts';
import { EventBus } from '../events.ts';
import { silentLogger } from '../../lib/logger.ts';
import { unreachable } from '../../lib/errors.ts';
import type { PathChange } from '../images/layer-changes.ts';
import { MemoryHostAgent } from './memory-host-agent.ts';
import { InstanceService, type HostDirectory } from './service.ts';
import type { ApplianceSpec } from './model.ts';
import { ShadowFinder } from './shadowed.ts';
import { sha } from '../../test/conformance/host-agent.case.ts';

const app = (version: string, substrate: string): ApplianceSpec => ({
  id: 'wiki', version, memoryMiB: 256, vcpus: 1,
  layers: [
    { role: 'substrate', sha256: sha(substrate), size: 1000, url: `http://x/${substrate}` },
    { role: 'appliance', sha256: sha('wiki'), size: 500, url: 'http://x/wiki' },
  ],
});
const VERSIONS: Record<string, ApplianceSpec> = { '1.0': app('1.0', 'sub-1'), '1.1': app('1.1', 'sub-2') };
/** What the substrate update changes (as changedPaths would report it from the two images). */
const SUBSTRATE_CHANGES = new Map<string, PathChange>([
  ['etc/hostname', 'modified'],
  ['etc/issue', 'modified'],
  ['var/cache/apt/pkgcache.bin', 'added'],
  ['usr/bin/wiki', 'modified'],
  ['etc/storm', 'modified'],
]);

async function setup(t: import('node:test').TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'shadow-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = await Store.open(join(dir, 'db'));
  t.after(() => store.close());
  const agents = new Map([['h1', new MemoryHostAgent('h1')], ['h2', new MemoryHostAgent('h2')]]);
  const down = new Set<string>();
  const hosts: HostDirectory = {
    list: async () => [...agents.keys()].map((name) => ({ name, online: true })),
    agent: (n) => {
      const a = agents.get(n)!;
      if (!down.has(n)) return a;
      return new Proxy(a, { get: (o, k) => (k === 'instanceLayerFiles' ? async () => { throw unreachable(`host ${n} does not answer`); } : Reflect.get(o, k)) });
    },
  };
  const cat = { latest: '1.0' };
  const apps = { resolve: async (ref: string) => VERSIONS[ref.split('@')[1] ?? cat.latest]! };
  const diffs: string[] = [];
  const shadows = new ShadowFinder({
    image: async (ref) => `/images/${ref.sha256}`,
    changed: async (oldImage, newImage) => {
      diffs.push(`${oldImage}→${newImage}`);
      return newImage === `/images/${sha('sub-2')}` ? SUBSTRATE_CHANGES : new Map();
    },
  });
  const svc = new InstanceService(store, hosts, apps, new EventBus(), silentLogger, { domain: 'cloud.storm', shadows });
  return { svc, agents, cat, down, diffs };
}

test('update plan: files in each instance layer that hide updated files (file, whiteout, opaque dir), diffed once per layer pair', async (t) => {
  const { svc, agents, cat, diffs } = await setup(t);
  const a = await svc.create({ name: 'w1', appliance: 'wiki', host: 'h1' });
  await svc.provision('w1');
  const b = await svc.create({ name: 'w2', appliance: 'wiki', host: 'h2' });
  await svc.provision('w2');
  // w1's guest deleted /etc/issue (a whiteout) and replaced /var/cache (opaque); w2 did nothing.
  agents.get('h1')!.guestEdits.set(a.id, new Map([['/etc/issue', 'whiteout'], ['/var/cache', 'opaque-dir']]));
  void b;
  cat.latest = '1.1';
  const plan = await svc.updatePlan('wiki');
  assert.deepEqual(plan.map((p) => p.instance), ['w1', 'w2']);
  assert.deepEqual(plan[0]!.shadowed, [
    { path: '/etc/hostname', kind: 'file', change: 'modified', role: 'substrate' },
    { path: '/etc/issue', kind: 'whiteout', change: 'modified', role: 'substrate' },
    { path: '/var/cache/apt/pkgcache.bin', kind: 'opaque-dir', change: 'added', role: 'substrate', via: '/var/cache' },
  ]);
  // /etc/storm is a directory in both: directories merge, they hide nothing themselves.
  assert.deepEqual(plan[1]!.shadowed, [{ path: '/etc/hostname', kind: 'file', change: 'modified', role: 'substrate' }]);
  assert.equal(plan[0]!.shadowedError, undefined);
  assert.deepEqual(diffs, [`/images/${sha('sub-1')}→/images/${sha('sub-2')}`], 'one diff for the two instances');
});

test('update plan: a host that does not answer gives shadowedError, not a failed plan; apply does not list files', async (t) => {
  const { svc, cat, down, diffs } = await setup(t);
  await svc.create({ name: 'w1', appliance: 'wiki', host: 'h1' });
  await svc.provision('w1');
  cat.latest = '1.1';
  down.add('h1');
  const plan = await svc.updatePlan('wiki');
  assert.equal(plan.length, 1);
  assert.deepEqual(plan[0]!.shadowed, []);
  assert.match(plan[0]!.shadowedError ?? '', /does not answer/);
  down.delete('h1');
  diffs.length = 0;
  const rep = await svc.updateApply('wiki');
  assert.deepEqual(rep.updated, ['w1']);
  assert.deepEqual(diffs, [], 'apply computes no report');
  assert.deepEqual(await svc.updatePlan('wiki'), []);
});
