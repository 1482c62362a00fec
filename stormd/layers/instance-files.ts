/**
 * What an instance layer holds, read without mounting or root: the qcow2 is
 * converted to a sparse raw copy (`qemu-img convert -U`, so a running guest's
 * image can be read; what the guest has not flushed, or its journal not yet
 * written home, is not seen; its bitmaps are not read), and
 * partition 1's ext4 is listed with debugfs under root/ (the overlay's upper
 * tree). Whiteouts and opaque directories are reported as such, so the
 * manager can tell which updated lower files this instance hides.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StormError, invalid, notFound } from '../../lib/errors.ts';
import { run } from '../../lib/exec.ts';
import { listTree, opaqueDirs, openExt4 } from '../../lib/ext4-read.ts';
import type { AgentLayerFile, AgentLayerFileKind, AgentLayerFiles } from '../api/methods.ts';

/** Default and largest number of entries one listing returns. */
export const FILES_DEFAULT_LIMIT = 10_000;
export const FILES_MAX_LIMIT = 100_000;

export function checkLimit(limit: unknown): number {
  if (limit === undefined) return FILES_DEFAULT_LIMIT;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > FILES_MAX_LIMIT) throw invalid(`limit must be an integer from 1 to ${FILES_MAX_LIMIT}`);
  return limit;
}

/** Sort, cut at `limit`, and say whether anything was left out. */
export function boundListing(all: AgentLayerFile[], limit: number): AgentLayerFiles {
  const sorted = [...all].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { entries: sorted.slice(0, limit), total: sorted.length, truncated: sorted.length > limit };
}

/** List the files of the instance layer at `qcow2` (absolute in-guest paths, sorted, at most `limit`). */
export async function listInstanceLayerFiles(qcow2: string, limit: number = FILES_DEFAULT_LIMIT): Promise<AgentLayerFiles> {
  checkLimit(limit);
  if (!(await stat(qcow2).catch(() => undefined))) throw notFound(`no instance layer at ${qcow2}`);
  const dir = await mkdtemp(join(tmpdir(), 'storm-ilfiles-'));
  try {
    const raw = join(dir, 'disk.raw');
    const r = await run('qemu-img', ['convert', '-U', '-q', '-f', 'qcow2', '-O', 'raw', qcow2, raw], { timeoutMs: 300_000 });
    if (r.spawnError) throw new StormError('unavailable', 'qemu-img is not installed (needed to read an instance layer)', { hint: 'install qemu-utils (scripts/setup)' });
    if (r.code !== 0) throw new StormError('internal', `reading instance layer ${qcow2} failed: ${r.stderr.trim()}`);
    // The guest may have it mounted: what its journal has not written home is not seen either.
    const src = { ...(await openExt4(raw)), live: true };
    const tree = await listTree(src, '/root');
    const dirs = [...tree].filter(([, e]) => e.type === 'dir').map(([p]) => p);
    const opaque = await opaqueDirs(src, '/root', dirs);
    const all: AgentLayerFile[] = [...tree].map(([p, e]) => {
      const kind: AgentLayerFileKind = e.type === 'dir' && opaque.has(p) ? 'opaque-dir' : e.type;
      return { path: `/${p}`, kind };
    });
    return boundListing(all, limit);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
