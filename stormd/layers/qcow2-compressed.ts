/**
 * A qcow2 (version 3, 4 KiB clusters, zlib-compressed clusters) written in one
 * go from the data extents of a sparse raw image: what
 * `qemu-img convert -c -O qcow2 -o cluster_size=4096` makes of it, without
 * the process (its start-up and block layer are most of the ~20 ms an
 * instance layer used to take to build). All-zero clusters stay unallocated;
 * a cluster that does not shrink is stored plain. `qemu-img check` and
 * `qemu-img compare` against the raw image vouch for it in the tests.
 *
 * Layout: header | refcount table | refcount blocks | L1 | L2 tables |
 * plain clusters | compressed clusters packed byte by byte.
 */
import { open, writeFile } from 'node:fs/promises';
import { deflateRawSync } from 'node:zlib';
import { invalid } from '../../lib/errors.ts';
import type { Extent } from './file-extents.ts';

const BITS = 12;
const CLUSTER = 1 << BITS;
const L2_ENTRIES = CLUSTER / 8;
const REFS_PER_BLOCK = CLUSTER / 2; // refcount_order 4: 16-bit refcounts
const HEADER_LENGTH = 104;
const COPIED = 1n << 63n;
const COMPRESSED = 1n << 62n;
const CSIZE_SHIFT = BigInt(62 - (BITS - 8)); // the spec's x: sector count above the offset bits
const MAX_VIRTUAL = 2 ** 50;
const ZERO = Buffer.alloc(CLUSTER);

interface Data {
  guest: number; // guest cluster index
  bytes: Buffer;
  compressed: boolean;
  host?: number; // byte offset in the image
}

/** Guest clusters holding non-zero bytes, read from `raw` where `extents` say there is data. */
async function readClusters(raw: string, size: number, extents: Extent[]): Promise<Map<number, Buffer>> {
  const out = new Map<number, Buffer>();
  const fh = await open(raw, 'r');
  try {
    for (const e of extents) {
      if (!Number.isSafeInteger(e.offset) || !Number.isSafeInteger(e.length) || e.offset < 0 || e.length < 0) throw invalid('bad extent');
      // One read per extent, widened to whole clusters.
      const first = Math.floor(e.offset / CLUSTER);
      const end = Math.min(Math.ceil((e.offset + e.length) / CLUSTER), size / CLUSTER);
      if (end <= first) continue;
      const buf = Buffer.alloc((end - first) * CLUSTER);
      await fh.read(buf, 0, buf.length, first * CLUSTER);
      for (let c = first; c < end; c++) {
        const cl = buf.subarray((c - first) * CLUSTER, (c - first + 1) * CLUSTER);
        if (!out.has(c) && !cl.equals(ZERO)) out.set(c, Buffer.from(cl));
      }
    }
  } finally {
    await fh.close();
  }
  return out;
}

/**
 * Write `out` as a qcow2 of `size` virtual bytes holding what `raw` holds in
 * `extents` (everything else reads as zeros).
 */
export async function writeCompressedQcow2(raw: string, out: string, size: number, extents: Extent[]): Promise<void> {
  if (!Number.isSafeInteger(size) || size <= 0 || size % CLUSTER !== 0 || size > MAX_VIRTUAL) throw invalid(`qcow2 virtual size ${size} must be a positive multiple of ${CLUSTER}`);
  const clusters = await readClusters(raw, size, extents);
  const data: Data[] = [];
  for (const [guest, buf] of clusters) {
    const z = deflateRawSync(buf, { windowBits: BITS });
    data.push(z.length < CLUSTER - 512 ? { guest, bytes: z, compressed: true } : { guest, bytes: buf, compressed: false });
  }
  data.sort((a, b) => a.guest - b.guest);
  const l1Size = Math.ceil(size / (CLUSTER * L2_ENTRIES));
  const l1Clusters = Math.ceil((l1Size * 8) / CLUSTER);
  const l2Index = [...new Set(data.map((d) => Math.floor(d.guest / L2_ENTRIES)))];
  const plain = data.filter((d) => !d.compressed);
  const packed = data.filter((d) => d.compressed);
  const packedBytes = packed.reduce((n, d) => n + d.bytes.length, 0);
  const fixed = l1Clusters + l2Index.length + plain.length + Math.ceil(packedBytes / CLUSTER);
  // Refcount blocks cover the whole image, themselves included: grow until they do.
  let blocks = 1;
  let rtClusters = 1;
  for (;;) {
    rtClusters = Math.ceil((blocks * 8) / CLUSTER);
    if (1 + rtClusters + blocks + fixed <= blocks * REFS_PER_BLOCK) break;
    blocks++;
  }
  const rtAt = 1;
  const rbAt = rtAt + rtClusters;
  const l1At = rbAt + blocks;
  const l2At = l1At + l1Clusters;
  const plainAt = l2At + l2Index.length;
  const packedAt = (plainAt + plain.length) * CLUSTER;
  const total = plainAt + plain.length + Math.ceil(packedBytes / CLUSTER);
  const img = Buffer.alloc(total * CLUSTER);
  const refs = new Uint16Array(total);
  for (let c = 0; c < plainAt + plain.length; c++) refs[c] = 1;
  plain.forEach((d, i) => (d.host = (plainAt + i) * CLUSTER));
  let at = packedAt;
  for (const d of packed) {
    d.host = at;
    at += d.bytes.length;
  }
  // Header (all big-endian); version 3 fields after byte 72; no extensions (end marker is zeros).
  img.write('QFI\xfb', 0, 'latin1');
  img.writeUInt32BE(3, 4);
  img.writeUInt32BE(BITS, 20);
  img.writeBigUInt64BE(BigInt(size), 24);
  img.writeUInt32BE(l1Size, 36);
  img.writeBigUInt64BE(BigInt(l1At * CLUSTER), 40);
  img.writeBigUInt64BE(BigInt(rtAt * CLUSTER), 48);
  img.writeUInt32BE(rtClusters, 56);
  img.writeUInt32BE(4, 96); // refcount_order
  img.writeUInt32BE(HEADER_LENGTH, 100);
  for (let b = 0; b < blocks; b++) img.writeBigUInt64BE(BigInt((rbAt + b) * CLUSTER), rtAt * CLUSTER + b * 8);
  l2Index.forEach((l1, i) => img.writeBigUInt64BE(BigInt((l2At + i) * CLUSTER) | COPIED, l1At * CLUSTER + l1 * 8));
  const l2Of = new Map(l2Index.map((l1, i) => [l1, l2At + i]));
  for (const d of data) {
    const entryAt = l2Of.get(Math.floor(d.guest / L2_ENTRIES))! * CLUSTER + (d.guest % L2_ENTRIES) * 8;
    const host = d.host!;
    d.bytes.copy(img, host);
    if (!d.compressed) {
      img.writeBigUInt64BE(BigInt(host) | COPIED, entryAt);
      continue;
    }
    // Compressed: the byte offset, and how many 512-byte sectors after the first one it spans.
    const extra = Math.floor((host + d.bytes.length - 1) / 512) - Math.floor(host / 512);
    img.writeBigUInt64BE(COMPRESSED | (BigInt(extra) << CSIZE_SHIFT) | BigInt(host), entryAt);
    // Each host cluster the sector range touches counts one reference (what qemu-img check counts).
    const first = Math.floor(host / 512) * 512;
    const last = first + (extra + 1) * 512 - 1;
    for (let c = Math.floor(first / CLUSTER); c <= Math.floor(last / CLUSTER); c++) refs[c]! += 1;
  }
  for (let c = 0; c < total; c++) img.writeUInt16BE(refs[c]!, (rbAt + Math.floor(c / REFS_PER_BLOCK)) * CLUSTER + (c % REFS_PER_BLOCK) * 2);
  await writeFile(out, img, { flag: 'wx', mode: 0o644 });
}
