import assert from 'node:assert/strict';
import { existsSync, openSync, readSync, closeSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { StormError } from '../../lib/errors.ts';
import { run } from '../../lib/exec.ts';
import { ShellRunner } from '../../lib/shell-runner.ts';
import { tempDir } from '../../test/helpers/tmp.ts';
import { SECTOR, parseMbr } from './disk-image.ts';
import { CLUSTER, INSTANCE_LABEL, InstanceLayers } from './instance.ts';

async function sh(file: string, args: string[]): Promise<string> {
  const r = await run(file, args);
  assert.equal(r.code, 0, `${file} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Convert the qcow2 layer to raw and cut out partition N with dd: checked with the real tools. */
async function partition(dir: string, qcow: string, n: number): Promise<string> {
  const raw = join(dir, 'check.raw');
  await sh('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', qcow, raw]);
  const fd = openSync(raw, 'r');
  const mbr = Buffer.alloc(SECTOR);
  readSync(fd, mbr, 0, SECTOR, 0);
  closeSync(fd);
  const p = parseMbr(mbr)!.find((x) => x.number === n)!;
  const out = join(dir, `p${n}.img`);
  await sh('dd', [`if=${raw}`, `of=${out}`, `bs=${SECTOR}`, `skip=${p.startLba}`, `count=${p.sectors}`, 'status=none']);
  return out;
}

async function rejectsCode(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof StormError && e.code === code);
}

test('an instance layer: MBR with ext4 storm-instance on partition 1 holding the files, swap on partition 4', async (t) => {
  const dir = tempDir(t);
  const layers = new InstanceLayers(join(dir, 'instances'));
  const info = await layers.create(
    'web-1',
    {
      hostname: 'web-1.example.org',
      files: { '/etc/storm/config.json': '{"role":"web"}\n', '/etc/motd': 'hello\n' },
      tls: { cert: 'CERT\n', key: 'KEY\n', ca: 'CA\n' },
    },
    { sizeMiB: 128, swapMiB: 16 },
  );
  assert.equal(info.path, join(dir, 'instances', 'web-1', 'instance.qcow2'));
  assert.equal(info.format, 'qcow2');
  const img = JSON.parse(await sh('qemu-img', ['info', '--output=json', info.path]));
  assert.equal(img.format, 'qcow2');
  assert.equal(img['virtual-size'], 128 * 1024 * 1024);

  // The partition table as fdisk reads it.
  const raw = join(dir, 'full.raw');
  await sh('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', info.path, raw]);
  const table = JSON.parse(await sh('sfdisk', ['--json', raw])).partitiontable;
  assert.equal(table.label, 'dos');
  assert.deepEqual(
    table.partitions.map((p: { node: string; type: string }) => [p.node.slice(-1), p.type]),
    [['1', '83'], ['4', '82']],
  );

  const p1 = await partition(dir, info.path, 1);
  const blk1 = await sh('blkid', ['-o', 'export', p1]);
  assert.match(blk1, /^TYPE=ext4$/m);
  assert.match(blk1, new RegExp(`^LABEL=${INSTANCE_LABEL}$`, 'm'));
  assert.equal(await sh('debugfs', ['-R', 'cat /root/etc/hostname', p1]), 'web-1.example.org\n');
  assert.equal(await sh('debugfs', ['-R', 'cat /root/etc/storm/config.json', p1]), '{"role":"web"}\n');
  assert.equal(await sh('debugfs', ['-R', 'cat /root/etc/storm/tls/instance.key', p1]), 'KEY\n');
  assert.match(await sh('debugfs', ['-R', 'stat /root/etc/storm/tls/instance.key', p1]), /Mode:\s+0600/);
  const fsck = await run('e2fsck', ['-fn', p1]);
  assert.equal(fsck.code, 0, `e2fsck: ${fsck.stdout}${fsck.stderr}`);

  const p4 = await partition(dir, info.path, 4);
  assert.match(await sh('blkid', ['-o', 'export', p4]), /^TYPE=swap$/m);

  // Nothing left behind but the layer itself.
  assert.deepEqual(readdirSync(join(dir, 'instances', 'web-1')), ['instance.qcow2']);
  await rejectsCode(layers.create('web-1', { hostname: 'web-1' }), 'conflict');
});

test('a fresh instance layer is small on disk: compressed 4 KiB qcow2 clusters, no resize inode', async (t) => {
  const dir = tempDir(t);
  const layers = new InstanceLayers(join(dir, 'instances'));
  const info = await layers.create('web-2', { hostname: 'web-2', files: { '/etc/storm/instance.json': '{"id":"x"}' }, tls: { cert: 'CERT\n', key: 'KEY\n', ca: 'CA\n' } });
  const img = JSON.parse(await sh('qemu-img', ['info', '--output=json', info.path]));
  assert.equal(img['cluster-size'], CLUSTER);
  // Every instance (and every migration) pays this: metadata and the few files, not the layer's size.
  assert.ok(statSync(info.path).blocks * 512 < 64 * 1024, `instance layer allocates ${statSync(info.path).blocks * 512} bytes`);
  const p1 = await partition(dir, info.path, 1);
  assert.doesNotMatch(await sh('dumpe2fs', ['-h', p1]), /resize_inode/);
  const fsck = await run('e2fsck', ['-fn', p1]);
  assert.equal(fsck.code, 0, `e2fsck: ${fsck.stdout}${fsck.stderr}`);
});

test('the in-process qcow2 (tools by a ShellRunner) and qemu-img (the path without FIEMAP) make the same disk', async (t) => {
  const dir = tempDir(t);
  const content = { hostname: 'same-1', files: { '/etc/storm/instance.json': '{"id":"same"}' }, tls: { cert: 'CERT\n', key: 'KEY\n', ca: 'CA\n' } };
  const shells = new ShellRunner();
  t.after(() => shells.close());
  // stormd's way: tools started by a ShellRunner, the qcow2 written here.
  const ours = await new InstanceLayers(join(dir, 'a'), { run: (f, a, o) => shells.run(f, a, o) }).create('same-1', content);
  const theirs = await new InstanceLayers(join(dir, 'b'), { convert: 'qemu-img' }).create('same-1', content);
  // Filesystem and swap UUIDs differ by design; what the guest reads must not.
  assert.equal((await run('qemu-img', ['check', ours.path])).code, 0);
  const p1 = await partition(dir, ours.path, 1);
  const q1 = await partition(join(dir, 'b'), theirs.path, 1);
  const fsck = await run('e2fsck', ['-fn', p1]);
  assert.equal(fsck.code, 0, `e2fsck: ${fsck.stdout}${fsck.stderr}`);
  for (const f of ['/root/etc/hostname', '/root/etc/storm/instance.json', '/root/etc/storm/tls/instance.key']) {
    assert.equal(await sh('debugfs', ['-R', `cat ${f}`, p1]), await sh('debugfs', ['-R', `cat ${f}`, q1]), f);
  }
  const parts = async (p: string) => JSON.parse(await sh('sfdisk', ['--json', p])).partitiontable.partitions.map((x: { start: number; size: number; type: string }) => [x.start, x.size, x.type]);
  assert.deepEqual(await parts(join(dir, 'check.raw')), await parts(join(dir, 'b', 'check.raw')));
});

test('bad instance content is refused as invalid and leaves nothing', async (t) => {
  const dir = tempDir(t);
  const layers = new InstanceLayers(join(dir, 'instances'));
  await rejectsCode(layers.create('../x', { hostname: 'a' }), 'invalid');
  await rejectsCode(layers.create('i1', { hostname: 'Bad_Host!' }), 'invalid');
  await rejectsCode(layers.create('i1', { hostname: 'a', files: { '../../etc/passwd': 'x' } }), 'invalid');
  await rejectsCode(layers.create('i1', { hostname: 'a', files: { '/etc/../../x': 'x' } }), 'invalid');
  await rejectsCode(layers.create('i1', { hostname: 'a', files: { 'relative': 'x' } }), 'invalid');
  await rejectsCode(layers.create('i1', { hostname: 'a', files: { '/x': 42 as unknown as string } }), 'invalid');
  await rejectsCode(layers.create('i1', { hostname: 'a' }, { sizeMiB: 4 }), 'invalid');
  assert.equal(existsSync(join(dir, 'instances', 'i1', 'instance.qcow2')), false);
  const left = existsSync(join(dir, 'instances', 'i1')) ? readdirSync(join(dir, 'instances', 'i1')) : [];
  assert.deepEqual(left, []);
});

test('snapshot and restore an instance layer', async (t) => {
  const dir = tempDir(t);
  const layers = new InstanceLayers(join(dir, 'instances'));
  const info = await layers.create('db-1', { hostname: 'db-1', files: { '/etc/state': 'before\n' } }, { sizeMiB: 64, swapMiB: 8 });
  assert.deepEqual(await layers.snapshots('db-1'), []);
  const s = await layers.snapshot('db-1', 'clean');
  assert.equal(s.name, 'clean');
  await rejectsCode(layers.snapshot('db-1', 'clean'), 'conflict');

  // Change the layer as a guest would: write the last 4 KiB of the disk (unused swap, zeros until now).
  const off = String(info.sizeBytes - 4096);
  await sh('qemu-io', ['-f', 'qcow2', '-c', `read -P 0 ${off} 4k`, info.path]);
  await sh('qemu-io', ['-f', 'qcow2', '-c', `write -P 0xab ${off} 4k`, info.path]);
  const changed = await run('qemu-io', ['-f', 'qcow2', '-c', `read -P 0xab ${off} 4k`, info.path]);
  assert.doesNotMatch(changed.stdout + changed.stderr, /Pattern verification failed/);

  await layers.restore('db-1', 'clean');
  const back = await run('qemu-io', ['-f', 'qcow2', '-c', `read -P 0 ${off} 4k`, info.path]);
  assert.doesNotMatch(back.stdout + back.stderr, /Pattern verification failed/, 'restore brings the old bytes back');
  const p1 = await partition(dir, info.path, 1);
  assert.equal(await sh('debugfs', ['-R', 'cat /root/etc/state', p1]), 'before\n');

  await rejectsCode(layers.restore('db-1', 'nope'), 'not_found');
  await rejectsCode(layers.snapshot('ghost', 'x'), 'not_found');
  await layers.deleteSnapshot('db-1', 'clean');
  assert.deepEqual(await layers.snapshots('db-1'), []);
  await layers.remove('db-1');
  assert.equal(existsSync(info.path), false);
});

test('data volumes: an empty ext4 labelled storm-data-NAME beside the instance layer, kept when made again, removed with the instance', async (t) => {
  const dir = tempDir(t);
  const layers = new InstanceLayers(join(dir, 'instances'));
  const p = await layers.createVolume('blog-1', 'posts', 16);
  assert.equal(p, join(dir, 'instances', 'blog-1', 'data-posts.img'));
  assert.equal((await sh('e2label', [p])).trim(), 'storm-data-posts');
  assert.equal(await layers.createVolume('blog-1', 'posts', 16), p, 'idempotent');
  assert.deepEqual(readdirSync(join(dir, 'instances', 'blog-1')), ['data-posts.img'], 'no temporary file left');
  await assert.rejects(layers.createVolume('blog-1', 'toolong', 16), (e: StormError) => e.code === 'invalid');
  await assert.rejects(layers.createVolume('blog-1', 'x', 1), (e: StormError) => e.code === 'invalid');
  await layers.remove('blog-1');
  assert.ok(!existsSync(p));
});
