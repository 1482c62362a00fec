import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, statSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { run } from '../../lib/exec.ts';
import { tempDir } from '../../test/helpers/tmp.ts';
import { fileExtents, parseFilefrag } from './file-extents.ts';
import { writeCompressedQcow2 } from './qcow2-compressed.ts';

const MiB = 1024 * 1024;

async function sh(file: string, args: string[]): Promise<{ code: number; out: string }> {
  const r = await run(file, args, { timeoutMs: 120_000 });
  return { code: r.code ?? -1, out: r.stdout + r.stderr };
}

/** A sparse raw image with `writes` at the given offsets. */
function sparse(path: string, size: number, writes: [number, Buffer][]): void {
  const fd = openSync(path, existsSync(path) ? 'r+' : 'w');
  try {
    for (const [at, buf] of writes) writeSync(fd, buf, 0, buf.length, at);
  } finally {
    closeSync(fd);
  }
  truncateSync(path, size);
}

/** qemu-img's own verdict: a consistent image with the raw image's exact bytes. */
async function assertSameAsRaw(raw: string, qcow: string): Promise<void> {
  const check = await sh('qemu-img', ['check', '-f', 'qcow2', qcow]);
  assert.equal(check.code, 0, `qemu-img check: ${check.out}`);
  const cmp = await sh('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', raw, qcow]);
  assert.equal(cmp.code, 0, `qemu-img compare: ${cmp.out}`);
}

test('compressed qcow2: text, random and zero clusters, several L2 tables, read back by qemu-img byte for byte', async (t) => {
  const dir = tempDir(t);
  const raw = join(dir, 'disk.raw');
  const text = Buffer.from('storm instance layer\n'.repeat(400));
  sparse(raw, 64 * MiB, [
    [0, text], // compressible, and straddles into cluster 2
    [5 * 4096 + 100, randomBytes(9000)], // incompressible: stored plain
    [3 * MiB, text], // another L2 table
    [6 * MiB, Buffer.alloc(4096)], // written zeros: stays unallocated
    [64 * MiB - 4096, Buffer.from('last cluster')],
  ]);
  const qcow = join(dir, 'disk.qcow2');
  await writeCompressedQcow2(raw, qcow, 64 * MiB, (await fileExtents(raw))!);
  await assertSameAsRaw(raw, qcow);
  const info = JSON.parse((await sh('qemu-img', ['info', '--output=json', qcow])).out);
  assert.equal(info['cluster-size'], 4096);
  assert.equal(info['virtual-size'], 64 * MiB);
  assert.equal(info['format-specific'].data.compat, '1.1');
  // Zeros cost nothing; compressible clusters much less than their size.
  assert.ok(statSync(qcow).size < 64 * 1024, `${statSync(qcow).size} bytes`);
  // A guest's write over compressed clusters (QEMU's own write path) leaves a consistent image.
  const w = await sh('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x55 2048 8192', qcow]);
  assert.equal(w.code, 0, w.out);
  sparse(raw, 64 * MiB, [[2048, Buffer.alloc(8192, 0x55)]]);
  await assertSameAsRaw(raw, qcow);
});

test('compressed qcow2: more than one refcount block (image over 8 MiB) and an empty image', async (t) => {
  const dir = tempDir(t);
  const raw = join(dir, 'big.raw');
  sparse(raw, 32 * MiB, [[MiB, randomBytes(10 * MiB)]]);
  const qcow = join(dir, 'big.qcow2');
  await writeCompressedQcow2(raw, qcow, 32 * MiB, [{ offset: 0, length: 32 * MiB }]);
  await assertSameAsRaw(raw, qcow);
  const empty = join(dir, 'empty.raw');
  sparse(empty, 16 * MiB, []);
  await writeCompressedQcow2(empty, join(dir, 'empty.qcow2'), 16 * MiB, []);
  await assertSameAsRaw(empty, join(dir, 'empty.qcow2'));
});

test('compressed qcow2: refuses a size that is not whole clusters, and never overwrites a file', async (t) => {
  const dir = tempDir(t);
  const raw = join(dir, 'r.raw');
  sparse(raw, MiB, []);
  await assert.rejects(writeCompressedQcow2(raw, join(dir, 'x.qcow2'), 1000, []), /multiple of 4096/);
  await writeCompressedQcow2(raw, join(dir, 'y.qcow2'), MiB, []);
  await assert.rejects(writeCompressedQcow2(raw, join(dir, 'y.qcow2'), MiB, []), /EEXIST/);
  assert.equal(readFileSync(join(dir, 'y.qcow2')).subarray(0, 4).toString('latin1'), 'QFI\xfb');
});

test('filefrag output: extents in bytes; malformed or hostile output is not trusted', () => {
  const ok = [
    'Filesystem type is: ef53',
    'File size of /x/raw is 234881024 (57344 blocks of 4096 bytes)',
    ' ext:     logical_offset:        physical_offset: length:   expected: flags:',
    '   0:        0..       4:   18907651..  18907655:      5:            ',
    '   1:     3590..    3595:   18912774..  18912779:      6:   18911263:',
    '   6:    57328..   57343:   18907664..  18907679:     16:   18939888: last,unwritten,eof',
    '/x/raw: 3 extents found',
  ].join('\n');
  assert.deepEqual(parseFilefrag(ok), {
    size: 234881024,
    extents: [
      { offset: 0, length: 5 * 4096 },
      { offset: 3590 * 4096, length: 6 * 4096 },
      { offset: 57328 * 4096, length: 16 * 4096 },
    ],
  });
  assert.equal(parseFilefrag('/x: FIBMAP/FIEMAP unsupported'), undefined);
  assert.equal(parseFilefrag(ok.replace('0..       4:', '4..       0:')), undefined, 'a range that ends before it starts');
  // Written but not yet allocated (delalloc): the length column says 0, the range is what counts.
  const delalloc = ok.replace('   18907651..  18907655:      5:            ', '          0..         0:      0:             unknown_loc,delalloc');
  assert.deepEqual(parseFilefrag(delalloc)!.extents[0], { offset: 0, length: 5 * 4096 });
  assert.equal(parseFilefrag(ok.replace('4096 bytes', '3 bytes')), undefined, 'an absurd block size');
  assert.equal(parseFilefrag('x'.repeat(5 * 1024 * 1024)), undefined, 'oversized');
  // An extent past the end of the file is cut to the file.
  const past = parseFilefrag(ok.replace('57328..   57343', '57340..   57355'))!;
  assert.deepEqual(past.extents.at(-1), { offset: 57340 * 4096, length: 4 * 4096 });
});
