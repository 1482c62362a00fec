import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../test/helpers/tmp.ts';
import { StormError } from '../../lib/errors.ts';
import { buildLayer } from './layer-build.ts';
import { listTree, opaqueDirs, openExt4 } from './ext4-read.ts';
import { diffLayer } from './layer-diff.ts';
import { buildInstanceDisk } from './instance-disk.ts';

function tree(root: string, files: Record<string, string>): string {
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(join(root, p, '..'), { recursive: true });
    if (p.endsWith('/')) mkdirSync(join(root, p), { recursive: true });
    else writeFileSync(join(root, p), text);
  }
  return root;
}

const code = (e: unknown) => (e instanceof StormError ? e.code : String(e));

test('a layer image: labelled ext4, tree under root/, work/ beside it, whiteouts and opaque dirs, same bytes twice', async (t) => {
  const dir = tempDir(t);
  const src = tree(join(dir, 'src'), {
    'etc/app.conf': 'x=1\n',
    'etc/.wh.old.conf': '',
    'usr/share/doc/.wh..wh..opq': '',
    'usr/share/doc/README': 'only this\n',
    '.storm-deletions': '# comment\n/var/cache/junk\nbin/gone\n',
  });
  symlinkSync('app.conf', join(src, 'etc', 'link'));
  const a = await buildLayer({ dir: src, role: 'appliance', name: 'demo', version: '1.2', out: join(dir, 'a.img') });
  const b = await buildLayer({ dir: src, role: 'appliance', name: 'demo', version: '1.2', out: join(dir, 'b.img') });
  assert.equal(a.sha256, b.sha256, 'reproducible');
  assert.equal(a.label, 'storm-appliance');
  assert.deepEqual(a.whiteouts, ['/bin/gone', '/etc/old.conf', '/var/cache/junk']);
  assert.deepEqual(a.opaque, ['/usr/share/doc']);
  assert.match(a.sha256, /^[0-9a-f]{64}$/);
  const img = await openExt4(a.path);
  assert.equal(img.label, 'storm-appliance');
  const top = await listTree(img, '');
  assert.equal(top.get('work')?.type, 'dir');
  assert.equal(top.get('root')?.type, 'dir');
  const t1 = await listTree(img, '/root');
  assert.equal(t1.get('etc/app.conf')?.type, 'file');
  assert.equal(t1.get('etc/link')?.type, 'symlink');
  assert.equal(t1.get('etc/old.conf')?.type, 'whiteout');
  assert.equal(t1.get('bin/gone')?.type, 'whiteout');
  assert.equal(t1.get('etc/.wh.old.conf'), undefined, 'the marker itself is not in the image');
  assert.equal(t1.get('.storm-deletions'), undefined);
  assert.equal(t1.get('etc/app.conf')?.uid, 0, 'owned by root whoever built it');
  assert.deepEqual([...(await opaqueDirs(img, '/root', ['usr/share/doc', 'etc']))], ['usr/share/doc']);
  // A different version is a different image (its UUID is derived from the identity).
  const c = await buildLayer({ dir: src, role: 'appliance', name: 'demo', version: '1.3', out: join(dir, 'c.img') });
  assert.notEqual(c.sha256, a.sha256);
});

test('layer build refuses what would make a wrong image, with typed errors', async (t) => {
  const dir = tempDir(t);
  const src = tree(join(dir, 'src'), { 'etc/a': '1', 'etc/.wh.a': '' });
  await assert.rejects(buildLayer({ dir: src, role: 'appliance', name: 'x', version: '1', out: join(dir, 'x.img') }), (e) => code(e) === 'invalid' && /both holds and deletes \/etc\/a/.test((e as Error).message));
  const ok = tree(join(dir, 'ok'), { 'a': '1' });
  await assert.rejects(buildLayer({ dir: ok, role: 'bogus' as never, name: 'x', version: '1' }), (e) => code(e) === 'invalid');
  await assert.rejects(buildLayer({ dir: ok, role: 'substrate', name: 'bad name', version: '1' }), (e) => code(e) === 'invalid');
  await assert.rejects(buildLayer({ dir: join(dir, 'nope'), role: 'substrate', name: 'x', version: '1' }), (e) => code(e) === 'not_found');
  const esc = tree(join(dir, 'esc'), { '.storm-deletions': '../../etc/passwd\n' });
  await assert.rejects(buildLayer({ dir: esc, role: 'deployment', name: 'x', version: '1', out: join(dir, 'e.img') }), (e) => code(e) === 'invalid');
  await assert.rejects(buildLayer({ dir: ok, role: 'substrate', name: 'x', version: '1', plain: { label: 'storm-substrate' } }), (e) => code(e) === 'invalid');
});

test('layer diff: added, modified (shadowing the topmost lower that has it), deleted by whiteout, replaced directories', async (t) => {
  const dir = tempDir(t);
  const sub = await buildLayer({ dir: tree(join(dir, 's'), { 'etc/motd': 's', 'etc/issue': 's', 'usr/lib/x': 's', 'usr/lib/y': 's', 'srv/old': 's' }), role: 'substrate', name: 's', version: '1', out: join(dir, 's.img') });
  const app = await buildLayer({ dir: tree(join(dir, 'a'), { 'etc/motd': 'a', 'opt/app/bin': 'a', 'srv/.wh.old': '' }), role: 'appliance', name: 'a', version: '1', out: join(dir, 'a.img') });
  // The instance layer as overlayfs would leave it: copy-ups, new files, whiteouts, an opaque dir.
  const inst = await buildInstanceDisk({
    dir: tree(join(dir, 'i'), { 'etc/motd': 'i', 'etc/issue': 'i', 'etc/new': 'i', 'opt/app/.wh.bin': '', 'usr/lib/.wh..wh..opq': '', 'usr/lib/z': 'i', 'srv/.wh.old': '', 'home/me/notes': 'i' }),
    out: join(dir, 'inst.img'),
  });
  const d = await diffLayer(inst.path, [app.path, sub.path]);
  const got = d.changes.map((c) => `${c.change} ${c.type} ${c.path} ${c.shadows ?? '-'}`);
  assert.deepEqual(got, [
    'modified file /etc/issue substrate',
    'modified file /etc/motd appliance',
    'added file /etc/new -',
    'added dir /home -',
    'added dir /home/me -',
    'added file /home/me/notes -',
    'deleted file /opt/app/bin appliance',
    'deleted other /srv/old -', // already hidden by the appliance's whiteout: nothing to shadow
    'replaced dir /usr/lib substrate',
    'added file /usr/lib/z -',
  ]);
  assert.deepEqual(d.summary, { added: 5, modified: 2, deleted: 2, replaced: 1, shadowing: 4 });
  assert.deepEqual(d.lowers.map((l) => l.name), ['appliance', 'substrate']);
  await assert.rejects(diffLayer(inst.path, []), (e) => code(e) === 'invalid');
  await assert.rejects(diffLayer(join(dir, 'missing.img'), [sub.path]), (e) => code(e) === 'not_found');
  writeFileSync(join(dir, 'junk.img'), Buffer.alloc(8192, 7));
  await assert.rejects(diffLayer(join(dir, 'junk.img'), [sub.path]), (e) => code(e) === 'invalid');
});
