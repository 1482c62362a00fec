import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAppliance, parseFeed } from '../manager/channels/format.ts';
import { verifyFeed } from '../manager/channels/sign.ts';
import { PACKAGE_ROOT } from '../lib/paths.ts';
import { digestFile } from '../manager/images/layer-build.ts';
import { listTree, openExt4 } from '../manager/images/ext4-read.ts';
import { FIXTURES, fixtureManifest } from '../test/helpers/qemu.ts';

test('build-fixtures: a manifest of labelled layers with true digests; a rerun with unchanged inputs is a no-op', async () => {
  const first = spawnSync('sh', [join(PACKAGE_ROOT, 'scripts', 'build-fixtures')], { encoding: 'utf8' });
  assert.equal(first.status, 0, first.stderr);
  const again = spawnSync('sh', [join(PACKAGE_ROOT, 'scripts', 'build-fixtures')], { encoding: 'utf8' });
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /fixtures: up to date/);
  assert.match(again.stderr, /example channel up to date/);
  const m = fixtureManifest();
  const roles = m.layers.map((l) => `${l.role}:${l.name}`).sort();
  assert.deepEqual(roles, ['appliance:blog', 'appliance:wiki', 'deployment:blog-example-corp', 'deployment:wiki-example-corp', 'substrate:busybox-substrate']);
  for (const l of m.layers) {
    const file = join(FIXTURES, l.path);
    assert.deepEqual(await digestFile(file), { sha256: l.sha256, size: l.size }, l.path);
    assert.equal((await openExt4(file)).label, `storm-${l.role}`);
  }
  const wiki = m.appliances.find((a) => a.id === 'wiki')!;
  assert.deepEqual(wiki.layers, { substrate: 'busybox-substrate@1.0', appliance: 'wiki@1.0', deployment: 'wiki-example-corp@1.0' });
  const classic = m.appliances.find((a) => a.traditional)!;
  const disk = await openExt4(join(FIXTURES, classic.disk!.path));
  assert.doesNotMatch(disk.label, /^storm-/, 'a traditional disk carries no layer label');
  const root = await listTree(disk, '');
  assert.equal(root.get('sbin/init')?.type, 'symlink');
  assert.equal(root.get('usr/share/wiki/pages/Sandbox'), undefined, 'the deployment\'s deletion is applied');
  assert.equal(root.get('.storm-deletions'), undefined);
  for (const k of ['kernel', 'initrd'] as const) assert.match((m.boot[k] as { sha256?: string }).sha256 ?? '', /^[0-9a-f]{64}$/);
});

test('build-fixtures: the example channel is published, signed, and parses with the manager\'s parser', async () => {
  const r = spawnSync('sh', [join(PACKAGE_ROOT, 'scripts', 'build-fixtures')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const dir = join(FIXTURES, 'channel');
  const feedBytes = readFileSync(join(dir, 'feed.xml'));
  verifyFeed(feedBytes, readFileSync(join(dir, 'feed.xml.sig')), readFileSync(join(FIXTURES, 'publisher.pub'), 'utf8'), 'feed.xml');
  const feed = parseFeed(feedBytes, 'feed.xml');
  assert.deepEqual(feed.items.map((i) => i.id).sort(), ['blog', 'wiki', 'wiki-classic']);
  for (const it of feed.items) {
    const app = parseAppliance(readFileSync(join(dir, it.href)), it.href);
    for (const b of [...app.layers, ...(app.disk ? [app.disk] : []), app.boot.kernel!, app.boot.initrd!]) {
      assert.deepEqual(await digestFile(join(dir, b.href)), { sha256: b.sha256, size: b.size }, b.href);
    }
  }
});
