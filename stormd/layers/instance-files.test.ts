import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { StormError } from '../../lib/errors.ts';
import { run } from '../../lib/exec.ts';
import { boundListing, checkLimit, listInstanceLayerFiles } from './instance-files.ts';
import { InstanceLayers } from './instance.ts';

/** What a guest does to its upper layer: delete a lower file (whiteout), replace a directory (opaque). */
async function guestEdits(qcow2: string, dir: string, mounted = false): Promise<void> {
  const raw = join(dir, 'edit.raw');
  assert.equal((await run('qemu-img', ['convert', '-q', '-f', 'qcow2', '-O', 'raw', qcow2, raw])).code, 0);
  const cmds = join(dir, 'cmds');
  await writeFile(cmds, ['mkdir /root/etc/motd.d', 'cd /root/etc', 'mknod issue c 0 0', 'sif /root/etc/issue mode 020000', 'mkdir /root/var', 'mkdir /root/var/cache', 'ea_set /root/var/cache trusted.overlay.opaque y'].join('\n') + '\n');
  const r = await run('debugfs', ['-w', '-f', cmds, `${raw}?offset=${1024 * 1024}`]);
  assert.equal(r.code, 0, r.stderr);
  // A guest that has it mounted: the bitmaps on disk and their checksums disagree until its journal is
  // written home (alone in its run: debugfs recomputes the checksum when it writes bitmaps it changed).
  if (mounted) assert.equal((await run('debugfs', ['-w', '-R', 'set_bg 0 block_bitmap_csum 0x1234', `${raw}?offset=${1024 * 1024}`])).code, 0);
  assert.equal((await run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, qcow2])).code, 0);
}

test('instance layer files: files, dirs, whiteouts and opaque dirs read from the qcow2 without mounting', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'storm-ilf-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const layers = new InstanceLayers(join(dir, 'instances'));
  const info = await layers.create('i-files', { hostname: 'web1', files: { '/etc/app.conf': 'a=1\n' } }, { sizeMiB: 32, swapMiB: 4 });
  await guestEdits(info.path, dir);
  const got = await listInstanceLayerFiles(info.path);
  const kinds = Object.fromEntries(got.entries.map((e) => [e.path, e.kind]));
  assert.deepEqual(kinds, {
    '/etc': 'dir',
    '/etc/app.conf': 'file',
    '/etc/hostname': 'file',
    '/etc/issue': 'whiteout',
    '/etc/motd.d': 'dir',
    '/var': 'dir',
    '/var/cache': 'opaque-dir',
  });
  assert.equal(got.truncated, false);
  const cut = await listInstanceLayerFiles(info.path, 3);
  assert.deepEqual(cut, { entries: got.entries.slice(0, 3), total: 7, truncated: true });
});

test('instance layer files: a missing layer is not_found, a bad limit invalid', async () => {
  await assert.rejects(listInstanceLayerFiles('/nonexistent/instance.qcow2'), (e: StormError) => e.code === 'not_found');
  for (const bad of [0, -1, 1.5, 100_001, '10']) assert.throws(() => checkLimit(bad), (e: StormError) => e.code === 'invalid');
  assert.equal(checkLimit(undefined), 10_000);
});

test('instance layer files: boundListing sorts by path bytes and counts what it cut', () => {
  const r = boundListing([{ path: '/b', kind: 'file' }, { path: '/a/z', kind: 'file' }, { path: '/a', kind: 'dir' }], 2);
  assert.deepEqual(r, { entries: [{ path: '/a', kind: 'dir' }, { path: '/a/z', kind: 'file' }], total: 3, truncated: true });
});

test("instance layer files: a running guest's layer, whose bitmaps do not match their checksums yet, is still listed", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'storm-ilf-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const layers = new InstanceLayers(join(dir, 'instances'));
  const info = await layers.create('i-live', { hostname: 'web1', files: { '/etc/app.conf': 'a=1\n' } }, { sizeMiB: 32, swapMiB: 4 });
  await guestEdits(info.path, dir, true);
  const got = await listInstanceLayerFiles(info.path);
  assert.equal(Object.fromEntries(got.entries.map((e) => [e.path, e.kind]))['/etc/issue'], 'whiteout');
  assert.equal(got.total, 7);
});
