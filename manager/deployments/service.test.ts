import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { StormError } from '../../lib/errors.ts';
import { EventBus } from '../events.ts';
import { digestFile } from '../images/layer-build.ts';
import { ImageStore } from '../images/store.ts';
import type { ApplianceSpec } from '../instances/model.ts';
import { Store } from '../store/store.ts';
import { DeploymentService, deploymentAwareSource } from './service.ts';

const FIXTURE = new URL('../../fixtures/build/wiki-example-corp-1.0-deployment.img', import.meta.url).pathname;
const b64 = (s: string) => Buffer.from(s).toString('base64');

async function setup(t: import('node:test').TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'deploy-svc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = await Store.open(join(dir, 'db'));
  t.after(() => store.close());
  const images = new ImageStore(join(dir, 'images'));
  const own = await digestFile(FIXTURE);
  const wiki: ApplianceSpec = {
    id: 'wiki', version: '1.0', memoryMiB: 256, vcpus: 1, formats: { substrate: 'raw', appliance: 'raw', deployment: 'raw' },
    layers: [
      { role: 'substrate', sha256: 'a'.repeat(64), size: 1, url: 'http://ch/sub' },
      { role: 'deployment', sha256: own.sha256, size: own.size, url: 'http://ch/dep' },
      { role: 'appliance', sha256: 'b'.repeat(64), size: 1, url: 'http://ch/app' },
    ],
  };
  const classic: ApplianceSpec = { id: 'classic', version: '1', memoryMiB: 256, vcpus: 1, layers: [{ role: 'disk', sha256: 'c'.repeat(64), size: 1, url: 'http://ch/disk' }] };
  const catalog = { resolve: async (ref: string) => { const a = { wiki, classic }[ref.split('@')[0] as 'wiki' | 'classic']; if (!a) throw new StormError('not_found', `appliance "${ref}" not found`); return a; } };
  const fetched: string[] = [];
  let serving = true;
  const users = new Set<string>();
  const svc = new DeploymentService({
    store, appliances: catalog, images, bus: new EventBus(),
    ensureImage: async (ref) => {
      fetched.push(ref.url);
      if (!(await images.has(ref.sha256))) copyFileSync(FIXTURE, images.path(ref.sha256));
    },
    layerUrl: (sha) => (serving ? `http://manager/layers/${sha}` : undefined),
    users: async () => [...users],
  });
  return { svc, wiki, images, fetched, users, source: deploymentAwareSource(catalog, () => svc), stopServing: () => (serving = false) };
}

test('deployments: versions in the image store, spec for deployment:NAME[@N], every version kept for gc', async (t) => {
  const { svc, wiki, images, fetched, source } = await setup(t);
  const d1 = await svc.create({ name: 'corp', appliance: 'wiki' });
  assert.deepEqual(fetched, ['http://ch/dep'], "the appliance's own deployment layer is fetched once");
  assert.equal(d1.base, wiki.layers[1]!.sha256);
  assert.ok(await images.has(d1.versions[0]!.sha256));
  const d2 = await svc.edit('corp', { edits: { files: [{ path: '/etc/motd', base64: b64('hi\n') }] }, note: 'motd' });
  assert.deepEqual(d2.versions.map((v) => [v.version, v.via, v.changedCount]), [[1, 'create', 0], [2, 'files', 1]]);
  assert.deepEqual(d2.versions[1]!.changed, [{ path: '/etc/motd', change: 'added' }]);
  await assert.rejects(svc.edit('corp', { edits: { files: [{ path: '/etc/motd', base64: b64('hi\n') }] } }), (e: StormError) => e.code === 'invalid' && /changes nothing/.test(e.message));

  const newest = await source.resolve('deployment:corp');
  assert.equal(newest.id, 'deployment:corp');
  assert.equal(newest.version, '2');
  assert.deepEqual(newest.layers.map((l) => l.role), ['substrate', 'appliance', 'deployment']);
  assert.deepEqual(newest.layers[2], { role: 'deployment', sha256: d2.versions[1]!.sha256, size: d2.versions[1]!.size, url: `http://manager/layers/${d2.versions[1]!.sha256}` });
  assert.equal((await source.resolve('deployment:corp@1')).layers[2]!.sha256, d1.versions[0]!.sha256);
  assert.equal((await source.resolve('wiki')).id, 'wiki', 'other references go to the catalog');
  await assert.rejects(source.resolve('deployment:corp@7'), (e: StormError) => e.code === 'not_found');
  await assert.rejects(source.resolve('deployment:nope'), (e: StormError) => e.code === 'not_found');
  assert.deepEqual([...(await svc.digests()).values()].sort(), ['deployment/corp@1', 'deployment/corp@2']);
});

test('deployments: bad names, traditional appliances, duplicates, removal while used, no layer server', async (t) => {
  const { svc, users, source, stopServing } = await setup(t);
  await assert.rejects(svc.create({ name: 'Bad_Name', appliance: 'wiki' }), (e: StormError) => e.code === 'invalid');
  await assert.rejects(svc.create({ name: 'old', appliance: 'classic' }), (e: StormError) => e.code === 'invalid' && /traditional/.test(e.message));
  await assert.rejects(svc.create({ name: 'x', appliance: 'deployment:corp' }), (e: StormError) => e.code === 'invalid');
  await assert.rejects(svc.create({ name: 'x', appliance: 'missing' }), (e: StormError) => e.code === 'not_found');
  await svc.create({ name: 'corp', appliance: 'wiki', edits: { delete: ['/etc/wiki/site.conf'] } });
  await assert.rejects(svc.create({ name: 'corp', appliance: 'wiki' }), (e: StormError) => e.code === 'conflict');
  await assert.rejects(svc.edit('corp', { edits: {} }), (e: StormError) => e.code === 'invalid');
  stopServing();
  await assert.rejects(source.resolve('deployment:corp'), (e: StormError) => e.code === 'unavailable');
  users.add('web1');
  await assert.rejects(svc.remove('corp'), (e: StormError) => e.code === 'conflict' && /web1/.test(e.message));
  users.clear();
  assert.deepEqual(await svc.remove('corp'), { removed: 'corp' });
  assert.deepEqual(await svc.list(), []);
  await assert.rejects(svc.remove('corp'), (e: StormError) => e.code === 'not_found');
});
