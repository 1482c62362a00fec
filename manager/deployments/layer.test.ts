import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { StormError } from '../../lib/errors.ts';
import { extractTree, listTree, openExt4 } from '../../lib/ext4-read.ts';
import { readFile } from 'node:fs/promises';
import { buildDeploymentVersion, changedPaths, checkEdits } from './layer.ts';

const FIXTURE = new URL('../../fixtures/build/wiki-example-corp-1.0-deployment.img', import.meta.url).pathname;
const b64 = (s: string) => Buffer.from(s).toString('base64');

test('deployment versions: the base tree (with its whiteouts) plus edits; changedPaths between versions', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'storm-dep-layer-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const v1 = await buildDeploymentVersion({ name: 'corp', version: 1, base: FIXTURE, edits: {}, out: join(dir, 'v1.img') });
  assert.equal(v1.label, 'storm-deployment');
  const baseTree = await listTree(await openExt4(FIXTURE), '/root');
  const v1Tree = await listTree(await openExt4(v1.path), '/root');
  assert.deepEqual([...v1Tree.keys()].sort(), [...baseTree.keys()].sort(), 'version 1 keeps every path of the base, whiteouts included');
  assert.ok([...v1Tree.values()].some((e) => e.type === 'whiteout'));
  assert.equal((await changedPaths(FIXTURE, v1.path)).size, 0, 'same tree: nothing changed');

  const v2 = await buildDeploymentVersion({
    name: 'corp', version: 2, base: v1.path, out: join(dir, 'v2.img'),
    edits: { files: [{ path: '/etc/wiki/site.conf', base64: b64('title=Edited\n') }, { path: '/etc/motd', base64: b64('hello\n'), mode: 0o600 }], delete: ['/etc/storm/deployment'] },
  });
  const ch = await changedPaths(v1.path, v2.path);
  assert.deepEqual(Object.fromEntries([...ch].sort()), { 'etc/motd': 'added', 'etc/storm/deployment': 'deleted', 'etc/wiki/site.conf': 'modified' });
  const out = join(dir, 'x');
  await extractTree(await openExt4(v2.path), '/root', out);
  assert.equal(await readFile(join(out, 'etc/wiki/site.conf'), 'utf8'), 'title=Edited\n');

  // Writing the path back drops its whiteout; the file comes back as modified (it was a whiteout).
  const v3 = await buildDeploymentVersion({ name: 'corp', version: 3, base: v2.path, out: join(dir, 'v3.img'), edits: { files: [{ path: '/etc/storm/deployment', base64: b64('back\n') }] } });
  assert.equal((await changedPaths(v2.path, v3.path)).get('etc/storm/deployment'), 'modified');
  assert.equal((await changedPaths(undefined, v3.path)).get('etc/motd'), 'added');
});

test('deployment edits are checked before any work: paths, duplicates, reserved names, bounds', () => {
  const bad = [
    { files: [{ path: 'etc/x', base64: '' }] },
    { files: [{ path: '/etc/../x', base64: '' }] },
    { files: [{ path: '/', base64: '' }] },
    { files: [{ path: '/etc/.wh.x', base64: '' }] },
    { files: [{ path: '/etc/x', base64: '' }], delete: ['/etc/x'] },
    { files: [{ path: '/a', base64: '' }, { path: '/a/', base64: '' }] },
    { files: [{ path: '/a', base64: '', mode: 0o10000 }] },
    { files: [{ path: '/a"b', base64: '' }] },
    { delete: ['relative'] },
    [],
    'x',
  ];
  for (const e of bad) assert.throws(() => checkEdits(e), (err: StormError) => err.code === 'invalid', JSON.stringify(e));
  assert.deepEqual(checkEdits(undefined), { files: [], delete: [] });
});
