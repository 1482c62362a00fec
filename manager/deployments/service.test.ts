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
import { DeploymentService, deploymentAwareSource, type MaintenanceBackend } from './service.ts';
import { buildDeploymentVersion } from './layer.ts';
import { readFileSync } from 'node:fs';

const FIXTURE = new URL('../../fixtures/build/wiki-example-corp-1.0-deployment.img', import.meta.url).pathname;
const b64 = (s: string) => Buffer.from(s).toString('base64');

/** A maintenance backend whose "guest" wrote `written` (an image) into its deployment layer. */
function fakeMaintenance() {
  const log: string[] = [];
  const state = { written: undefined as Buffer | undefined, running: false };
  const backend: MaintenanceBackend = {
    start: async (req) => (log.push(`start ${req.name} ${req.appliance}`), (state.running = true), { name: req.name, host: 'h1' }),
    stop: async (name) => void (log.push(`stop ${name}`), (state.running = false)),
    read: async (name, offset, length) => {
      if (state.running) throw new StormError('conflict', 'running');
      if (!state.written) throw new StormError('not_found', `no layer for ${name}`);
      return { base64: state.written.subarray(offset, offset + length).toString('base64'), size: state.written.length };
    },
    destroy: async (name) => void log.push(`destroy ${name}`),
  };
  return { backend, log, state };
}

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
  const maint = fakeMaintenance();
  const svc = new DeploymentService({
    maintenance: maint.backend,
    store, appliances: catalog, images, bus: new EventBus(),
    ensureImage: async (ref) => {
      fetched.push(ref.url);
      if (!(await images.has(ref.sha256))) copyFileSync(FIXTURE, images.path(ref.sha256));
    },
    layerUrl: (sha) => (serving ? `http://manager/layers/${sha}` : undefined),
    users: async () => [...users],
  });
  return { svc, wiki, images, fetched, users, maint, dir, source: deploymentAwareSource(catalog, () => svc), stopServing: () => (serving = false) };
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
  // What a crash mid-build leaves behind is swept at start; downloads in progress are not touched.
  const { writeFileSync, readdirSync } = await import('node:fs');
  writeFileSync(join(images.partials, 'deployment-corp-3-abcd.img'), 'x');
  writeFileSync(join(images.partials, 'deployment-corp-3-abcd.img.tmp-123'), 'x');
  writeFileSync(join(images.partials, `${'f'.repeat(64)}.part`), 'x');
  assert.equal(await svc.sweep(), 2);
  assert.deepEqual(readdirSync(images.partials), [`${'f'.repeat(64)}.part`]);
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

test('maintenance: a writable boot of the newest version; finish keeps what the guest wrote as a new version, abort keeps nothing', async (t) => {
  const { svc, maint, source, images, dir } = await setup(t);
  const d1 = await svc.create({ name: 'corp', appliance: 'wiki' });
  const started = await svc.startMaintenance('corp', { append: 'storm.rescue' });
  assert.deepEqual(started.maintenance && { instance: started.maintenance.instance, from: started.maintenance.from, append: started.maintenance.append }, { instance: 'corp-maint', from: 1, append: 'storm.rescue' });
  assert.deepEqual(maint.log, ['start corp-maint maintenance:corp@1']);
  const spec = await source.resolve('maintenance:corp@1');
  assert.equal(spec.id, 'maintenance:corp');
  assert.equal(spec.maintenance, true);
  assert.match(spec.cmdline ?? '', /storm\.maintenance storm\.rescue$/);
  assert.equal(spec.layers.find((l) => l.role === 'deployment')!.sha256, d1.versions[0]!.sha256);
  await assert.rejects(svc.startMaintenance('corp'), (e: StormError) => e.code === 'conflict');
  await assert.rejects(svc.edit('corp', { edits: { files: [{ path: '/x', base64: '' }] } }), (e: StormError) => e.code === 'conflict' && /maintenance/.test(e.message));
  await assert.rejects(svc.remove('corp'), (e: StormError) => e.code === 'conflict');

  // What the guest wrote: version 1 plus a motd (built as an image, as the host would read it back).
  const written = await buildDeploymentVersion({ name: 'guest', version: 9, base: images.path(d1.versions[0]!.sha256), edits: { files: [{ path: '/etc/motd', base64: b64('maintained\n') }] }, out: join(dir, 'written.img') });
  maint.state.written = readFileSync(written.path);
  const d2 = await svc.finishMaintenance('corp', { note: 'by hand' });
  assert.equal(d2.maintenance, undefined);
  assert.equal(d2.version, 2);
  assert.deepEqual(d2.versions[1]!.changed, [{ path: '/etc/motd', change: 'added' }]);
  assert.equal(d2.versions[1]!.via, 'maintenance');
  assert.equal(d2.versions[1]!.note, 'by hand');
  assert.deepEqual(maint.log.slice(1), ['stop corp-maint', 'destroy corp-maint']);
  await assert.rejects(svc.finishMaintenance('corp'), (e: StormError) => e.code === 'conflict');

  // A session that changes nothing leaves the version; abort destroys and keeps nothing.
  await svc.startMaintenance('corp');
  maint.state.written = readFileSync(images.path(d2.versions[1]!.sha256));
  assert.equal((await svc.finishMaintenance('corp')).version, 2);
  await svc.startMaintenance('corp');
  const aborted = await svc.abortMaintenance('corp');
  assert.equal(aborted.version, 2);
  assert.equal(aborted.maintenance, undefined);
  assert.equal(maint.log.at(-1), 'destroy corp-maint');

  // A host that fails to start it leaves no maintenance behind.
  maint.backend.start = async () => { throw new StormError('unavailable', 'no host'); };
  await assert.rejects(svc.startMaintenance('corp'), (e: StormError) => e.code === 'unavailable');
  assert.equal((await svc.get('corp')).maintenance, undefined);
});

test("revert: an earlier version's layer as a new version, with what it changes; refused for a version that is not there or already current", async (t) => {
  const { svc, source } = await setup(t);
  const d1 = await svc.create({ name: 'corp', appliance: 'wiki' });
  await svc.edit('corp', { edits: { files: [{ path: '/etc/motd', base64: b64('broken\n') }] }, note: 'bad' });
  const d3 = await svc.revert('corp', 1);
  assert.equal(d3.version, 3);
  const v3 = d3.versions[2]!;
  assert.deepEqual([v3.via, v3.from, v3.note, v3.sha256, v3.changed], ['revert', 1, 'version 1 again', d1.versions[0]!.sha256, [{ path: '/etc/motd', change: 'removed' }]]);
  assert.equal((await source.resolve('deployment:corp')).layers.find((l) => l.role === 'deployment')!.sha256, d1.versions[0]!.sha256, 'new instances and update apply get it');
  await assert.rejects(svc.revert('corp', 1), (e: StormError) => e.code === 'invalid' && /already has version 1's layer/.test(e.message));
  await assert.rejects(svc.revert('corp', 9), (e: StormError) => e.code === 'not_found' && /no version 9/.test(e.message) && /1, 2, 3/.test(e.hint ?? ''));
  await assert.rejects(svc.revert('nope', 1), (e: StormError) => e.code === 'not_found');
  assert.equal((await svc.revert('corp', 2, { note: 'once more' })).versions[3]!.note, 'once more');
});
