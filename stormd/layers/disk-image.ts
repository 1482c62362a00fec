/**
 * Byte-level pieces of a disk image that we write ourselves rather than
 * through tools that want a block device or root: an MBR partition table and
 * a Linux swap signature.
 */
import { randomBytes } from 'node:crypto';

export const SECTOR = 512;

export interface MbrPartition {
  /** 1..4 */
  number: number;
  /** MBR type: 0x83 Linux, 0x82 Linux swap. */
  type: number;
  startLba: number;
  sectors: number;
}

/** A 512-byte MBR holding the given primary partitions (others empty), with a random disk id. */
export function buildMbr(parts: MbrPartition[], diskId: Buffer = randomBytes(4)): Buffer {
  const mbr = Buffer.alloc(SECTOR);
  diskId.copy(mbr, 440, 0, 4);
  for (const p of parts) {
    if (p.number < 1 || p.number > 4) throw new RangeError(`MBR partition number ${p.number} out of 1..4`);
    if (p.startLba + p.sectors > 0xffffffff) throw new RangeError('MBR cannot address beyond 2 TiB');
    const o = 446 + (p.number - 1) * 16;
    mbr[o] = 0x00;
    // CHS fields unused (LBA only): the conventional "beyond CHS" values.
    mbr.writeUIntBE(0xfeffff, o + 1, 3);
    mbr[o + 4] = p.type;
    mbr.writeUIntBE(0xfeffff, o + 5, 3);
    mbr.writeUInt32LE(p.startLba, o + 8);
    mbr.writeUInt32LE(p.sectors, o + 12);
  }
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  return mbr;
}

/** Parse the primary partitions of an MBR (non-empty entries only); undefined if there is no signature. */
export function parseMbr(sector: Buffer): MbrPartition[] | undefined {
  if (sector.length < SECTOR || sector[510] !== 0x55 || sector[511] !== 0xaa) return undefined;
  const out: MbrPartition[] = [];
  for (let i = 0; i < 4; i++) {
    const o = 446 + i * 16;
    const type = sector[o + 4]!;
    const sectors = sector.readUInt32LE(o + 12);
    if (type !== 0 && sectors !== 0) out.push({ number: i + 1, type, startLba: sector.readUInt32LE(o + 8), sectors });
  }
  return out;
}

/**
 * The first page of a Linux swap area (version 1, what mkswap writes): the
 * header at byte 1024 and "SWAPSPACE2" at the end of the page.
 */
export function buildSwapHeader(sizeBytes: number, label = 'storm-swap', pageSize = 4096): Buffer {
  const pages = Math.floor(sizeBytes / pageSize);
  if (pages < 10) throw new RangeError('swap area too small (fewer than 10 pages)');
  const page = Buffer.alloc(pageSize);
  page.writeUInt32LE(1, 1024); // version
  page.writeUInt32LE(pages - 1, 1028); // last_page
  page.writeUInt32LE(0, 1032); // nr_badpages
  const uuid = randomBytes(16);
  uuid[6] = (uuid[6]! & 0x0f) | 0x40;
  uuid[8] = (uuid[8]! & 0x3f) | 0x80;
  uuid.copy(page, 1036);
  page.write(label.slice(0, 15), 1052, 'latin1');
  page.write('SWAPSPACE2', pageSize - 10, 'latin1');
  return page;
}
