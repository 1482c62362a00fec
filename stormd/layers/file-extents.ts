/**
 * Where a sparse file holds data, from `filefrag -v` (FIEMAP; e2fsprogs, which
 * stormd needs for mke2fs anyway). Node has no lseek(SEEK_DATA), and reading
 * a 256 MiB mostly-hole image to find its few written blocks costs more than
 * everything else in building an instance layer.
 */
import { run, type Runner } from '../../lib/exec.ts';

export interface Extent {
  /** Byte offset in the file. */
  offset: number;
  length: number;
}

const MAX_OUTPUT = 4 * 1024 * 1024;
const HEAD = /^File size of .* is (\d+) \((\d+) blocks? of (\d+) bytes\)$/m;
const ROW = /^\s*\d+:\s+(\d+)\.\.\s*(\d+):\s+\d+\.\.\s*\d+:\s+\d+:/;

/**
 * Parse `filefrag -v` output into byte extents (unwritten ones included: they
 * read as zeros, which the caller skips anyway). Undefined when the output is
 * not what filefrag prints for a mapped file.
 */
export function parseFilefrag(text: string): { size: number; extents: Extent[] } | undefined {
  if (text.length > MAX_OUTPUT) return undefined;
  const h = HEAD.exec(text);
  if (!h) return undefined;
  const size = Number(h[1]);
  const block = Number(h[3]);
  if (!Number.isSafeInteger(size) || !(block >= 512 && block <= 65536)) return undefined;
  const extents: Extent[] = [];
  for (const line of text.split('\n')) {
    const m = ROW.exec(line);
    if (!m) continue;
    const start = Number(m[1]);
    const end = Number(m[2]);
    // The logical range, not the length column: a delayed-allocation extent (written, not yet
    // on disk) has length 0 there.
    if (!(end >= start)) return undefined;
    const len = end - start + 1;
    const offset = start * block;
    if (!Number.isSafeInteger(offset + len * block) || offset >= size) continue;
    extents.push({ offset, length: Math.min(len * block, size - offset) });
  }
  return { size, extents };
}

/** The data extents of `path`, or undefined where FIEMAP is not available (tmpfs, say). */
export async function fileExtents(path: string, runner: Runner = run): Promise<Extent[] | undefined> {
  // -s: synced first, so no extent is still a delayed allocation (costs nothing measurable here).
  const r = await runner('filefrag', ['-s', '-v', path], { timeoutMs: 30_000 });
  if (r.spawnError || r.code !== 0) return undefined;
  return parseFilefrag(r.stdout)?.extents;
}
