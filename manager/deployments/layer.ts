/**
 * Deployment layer versions: each edit copies the previous version's tree out
 * of its image (debugfs, no mounting), applies the file set (files written,
 * paths deleted as whiteouts) and builds a new `storm-deployment` layer with
 * `buildLayer`.
 */
import { chmod, lstat, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { internal, invalid, unavailable } from '../../lib/errors.ts';
import { extractTree, listTree, opaqueDirs, openExt4 } from '../../lib/ext4-read.ts';
import { DELETIONS_FILE, OPAQUE_MARKER, buildLayer, type LayerBuildResult } from '../images/layer-build.ts';

/** One file a deployment edit writes. */
export interface FileEdit {
  /** Absolute in-guest path. */
  path: string;
  /** Contents, base64 (binary-safe over the control socket). */
  base64: string;
  /** Permission bits (default 0644). */
  mode?: number;
}

/** What one edit does: files to write, paths to delete (whiteouts over the appliance's files). */
export interface EditSet {
  files?: FileEdit[];
  delete?: string[];
}

export const MAX_EDIT_FILES = 10_000;
/** One edit crosses the control socket as one message (4 MiB, base64): larger content belongs in the appliance. */
export const MAX_EDIT_BYTES = 2 * 1024 * 1024;

/** `/etc/x` → `etc/x`; refuses relative paths, `..`, the root itself and names debugfs cannot quote. */
export function guestPath(p: unknown, what: string): string {
  if (typeof p !== 'string' || !p.startsWith('/') || p.length > 1024 || p.includes('\0')) throw invalid(`${what}: ${JSON.stringify(p)} must be an absolute path inside the guest`, { hint: 'e.g. /etc/wiki/site.conf' });
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  if (parts.length === 0 || parts.some((x) => x === '..')) throw invalid(`${what}: ${JSON.stringify(p)} is not a file path inside the guest`);
  if (/["\n\\]/.test(p)) throw invalid(`${what}: ${JSON.stringify(p)} has a quote, backslash or newline`);
  if (parts.some((x) => x.startsWith('.wh.')) || parts[0] === DELETIONS_FILE) throw invalid(`${what}: ${JSON.stringify(p)} uses a name reserved for whiteouts`);
  return parts.join('/');
}

/** Check an edit set's shape and bounds before any work; returns it normalised. */
export function checkEdits(e: unknown): Required<EditSet> {
  if (e === undefined) return { files: [], delete: [] };
  if (!e || typeof e !== 'object' || Array.isArray(e)) throw invalid('edits must be an object {files, delete}');
  const { files = [], delete: del = [] } = e as EditSet;
  if (!Array.isArray(files) || !Array.isArray(del)) throw invalid('edits.files and edits.delete must be lists');
  if (files.length + del.length > MAX_EDIT_FILES) throw invalid(`one edit may touch at most ${MAX_EDIT_FILES} paths`);
  let bytes = 0;
  const seen = new Set<string>();
  for (const f of files) {
    if (!f || typeof f !== 'object' || typeof f.base64 !== 'string') throw invalid('each edited file needs {path, base64}');
    if (f.mode !== undefined && (!Number.isInteger(f.mode) || f.mode < 0 || f.mode > 0o7777)) throw invalid(`${f.path}: mode must be permission bits (0..07777)`);
    const p = guestPath(f.path, 'file');
    if (seen.has(p)) throw invalid(`/${p} is given twice`);
    seen.add(p);
    bytes += Math.floor((f.base64.length * 3) / 4);
  }
  for (const d of del) {
    const p = guestPath(d, 'delete');
    if (seen.has(p)) throw invalid(`/${p} is both written and deleted`);
    seen.add(p);
  }
  if (bytes > MAX_EDIT_BYTES) throw invalid(`the files of one edit exceed ${MAX_EDIT_BYTES / 1048576} MiB`, { hint: 'ship large content in the appliance, not the deployment' });
  return { files, delete: del };
}

/** The source tree of a layer image (files, plus its whiteouts and opaque dirs written back as markers). */
async function sourceFromImage(image: string, dest: string): Promise<Set<string>> {
  const src = await openExt4(image);
  await extractTree(src, '/root', dest);
  const tree = await listTree(src, '/root');
  const deleted = new Set([...tree].filter(([, e]) => e.type === 'whiteout').map(([p]) => p));
  const opaque = await opaqueDirs(src, '/root', [...tree].filter(([, e]) => e.type === 'dir').map(([p]) => p));
  for (const o of opaque) await writeFile(join(dest, o, OPAQUE_MARKER), '');
  return deleted;
}

export interface BuildVersion {
  name: string;
  version: number;
  /** The image this version starts from (the previous version, or the appliance's deployment layer). */
  base?: string;
  edits: EditSet;
  /** Output file (renamed into the image store by the caller). */
  out: string;
  /** Top-level names of the base tree that are not content (a maintenance boot's `.layers` mount points). */
  drop?: string[];
}

/** Build one deployment layer version: base tree + edits → a `storm-deployment` image. */
export async function buildDeploymentVersion(b: BuildVersion): Promise<LayerBuildResult> {
  const edits = checkEdits(b.edits);
  const stage = await mkdtemp(join(tmpdir(), 'storm-deployment-'));
  try {
    const deleted = b.base ? await sourceFromImage(b.base, stage) : new Set<string>();
    for (const d of b.drop ?? []) {
      await rm(join(stage, guestPath(`/${d}`, 'drop')), { recursive: true, force: true });
      for (const p of [...deleted]) if (p === d || p.startsWith(`${d}/`)) deleted.delete(p);
    }
    for (const f of edits.files) {
      const p = guestPath(f.path, 'file');
      deleted.delete(p);
      const dst = join(stage, p);
      const st = await lstat(dst).catch(() => undefined);
      if (st?.isDirectory()) throw invalid(`/${p} is a directory in this deployment; cannot write a file over it`);
      await mkdir(dirname(dst), { recursive: true, mode: 0o755 });
      await rm(dst, { force: true });
      await writeFile(dst, Buffer.from(f.base64, 'base64'));
      await chmod(dst, f.mode ?? 0o644);
    }
    for (const d of edits.delete) {
      const p = guestPath(d, 'delete');
      await rm(join(stage, p), { recursive: true, force: true });
      deleted.add(p);
    }
    if (deleted.size) await writeFile(join(stage, DELETIONS_FILE), [...deleted].sort().map((p) => `/${p}`).join('\n') + '\n');
    return await buildLayer({ dir: stage, role: 'deployment', name: b.name, version: String(b.version), out: b.out });
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

export { changedPaths, type PathChange } from '../images/layer-changes.ts';

/**
 * Make an ext4 image a guest wrote consistent before reading it with debugfs
 * (which does not replay the journal): `e2fsck -fy` on the file, no root
 * needed. Exit 0-2 means clean or repaired; more is an error.
 */
export async function repairImage(file: string): Promise<void> {
  const { run } = await import('../../lib/exec.ts');
  const r = await run('e2fsck', ['-fy', file], { timeoutMs: 300_000 });
  if (r.spawnError) throw unavailable('e2fsck is not installed', { hint: 'apt-get install e2fsprogs' });
  if (r.code > 2) throw internal(`the layer read back is damaged: e2fsck exited ${r.code}: ${(r.stdout + r.stderr).trim().split('\n').slice(-3).join(' | ')}`);
}
