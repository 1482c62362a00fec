/**
 * Layer images: an ext4 filesystem labelled `storm-<role>` made from a directory
 * with `mke2fs -d` (no mounting, no root). The directory's tree lands under
 * `root/` in the image, beside an empty `work/` (overlayfs needs both on the same
 * filesystem when the layer is the writable upper). Deletions of lower-layer
 * files become real overlayfs whiteouts (char device 0/0), written with debugfs.
 * Same inputs give the same bytes: fixed UUID, hash seed, times. See docs/layers.md.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdtemp, readdir, readFile, rm, stat, unlink, lutimes, writeFile, mkdir, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { run } from '../../lib/exec.ts';
import { readEnv } from '../../lib/env.ts';
import { invalid, internal, notFound, unavailable } from '../../lib/errors.ts';

export const LAYER_ROLES = ['substrate', 'appliance', 'deployment', 'instance'] as const;
export type LayerRole = (typeof LAYER_ROLES)[number];

/** The name of the file (at the top of a layer's source directory) that lists deleted paths, one a line. */
export const DELETIONS_FILE = '.storm-deletions';
/** `.wh.NAME` beside NAME's place: NAME is deleted; `.wh..wh..opq` in a directory: the directory is opaque. */
export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
/** Times written into every image (2000-01-01): e2fsprogs treats 0 as "unset". */
export const LAYER_EPOCH = 946684800;

export interface LayerBuildOptions {
  dir: string;
  /** A traditional single-disk image: the tree at the filesystem's root, this label (no storm-* label). */
  plain?: { label: string };
  role: LayerRole;
  name: string;
  version: string;
  /** Output file; default `<name>-<version>-<role>.img` in the current directory. */
  out?: string;
  /** Free space to leave, MiB; default 1 for read-only roles, 16 for deployment, 64 for instance. */
  freeMiB?: number;
}

export interface LayerBuildResult {
  path: string;
  role: LayerRole;
  name: string;
  version: string;
  label: string;
  sha256: string;
  size: number;
  files: number;
  /** Paths (from the layer's root) written as whiteouts. */
  whiteouts: string[];
  /** Directories marked opaque (they hide everything below them in lower layers). */
  opaque: string[];
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;

export function isLayerRole(v: unknown): v is LayerRole {
  return typeof v === 'string' && (LAYER_ROLES as readonly string[]).includes(v);
}

/** A deterministic UUID from the layer's identity, so rebuilds give the same bytes. */
function uuidFor(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** sha256 and size of a file, streamed. */
export async function digestFile(path: string): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    h.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: h.digest('hex'), size };
}

/** Normalise a listed path: relative to the layer root, no `..`, no empty parts. */
function cleanPath(p: string, where: string): string {
  const parts = p.trim().split('/').filter((x) => x !== '' && x !== '.');
  if (parts.length === 0 || parts.some((x) => x === '..')) throw invalid(`${where}: "${p}" is not a path inside the layer`, { hint: 'write paths like /etc/old.conf' });
  return parts.join('/');
}

interface Walk {
  entries: string[]; // every path under root/, relative, sorted
  bytes: number;
}

async function walk(root: string): Promise<Walk> {
  const entries: string[] = [];
  let bytes = 0;
  const visit = async (rel: string) => {
    const names = (await readdir(join(root, rel))).sort();
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      if (/["\n\\]/.test(r)) throw invalid(`layer source: file name ${JSON.stringify(r)} has a quote, backslash or newline`, { hint: 'rename it' });
      entries.push(r);
      const st = await lstat(join(root, r));
      bytes += Math.ceil(st.size / 4096) * 4096 + 4096;
      if (st.isDirectory()) await visit(r);
    }
  };
  await visit('');
  return { entries, bytes };
}

/** Build a layer image from a directory. Throws StormError (invalid, not_found, unavailable, internal). */
export async function buildLayer(opts: LayerBuildOptions): Promise<LayerBuildResult> {
  if (!isLayerRole(opts.role)) throw invalid(`unknown layer role "${String(opts.role)}"`, { hint: `one of ${LAYER_ROLES.join(', ')}` });
  if (!NAME_RE.test(opts.name)) throw invalid(`layer name "${opts.name}" must be letters, digits, . _ + - (at most 64)`);
  if (!NAME_RE.test(opts.version)) throw invalid(`layer version "${opts.version}" must be letters, digits, . _ + - (at most 64)`);
  const src = resolve(opts.dir);
  const st = await stat(src).catch(() => undefined);
  if (!st?.isDirectory()) throw notFound(`layer source ${src} is not a directory`);
  const out = resolve(opts.out ?? `${opts.name}-${opts.version}-${opts.role}.img`);
  const label = opts.plain ? opts.plain.label : `storm-${opts.role}`;
  if (opts.plain && (/^storm-/.test(label) || !/^[A-Za-z0-9._-]{0,16}$/.test(label))) throw invalid(`traditional image label "${label}" must be at most 16 letters, digits, . _ - and not start with storm-`);

  const stage = await mkdtemp(join(tmpdir(), 'storm-layer-'));
  try {
    const root = opts.plain ? stage : join(stage, 'root');
    const cp = await run('cp', ['-a', '--no-preserve=ownership', `${src}/.`, root], { timeoutMs: 300_000 });
    if (cp.code !== 0) {
      // --no-preserve needs GNU cp; fall back to plain -a.
      const cp2 = await run('cp', ['-a', `${src}/.`, root], { timeoutMs: 300_000 });
      if (cp2.code !== 0) throw internal(`copying ${src}: ${cp2.stderr.trim() || cp.stderr.trim()}`);
    }
    if (!opts.plain) await mkdir(join(stage, 'work'));

    // Deletions: the listed file, then .wh. names anywhere in the tree.
    const whiteouts = new Set<string>();
    const opaque = new Set<string>();
    const listed = join(root, DELETIONS_FILE);
    const listedText = await readFile(listed, 'utf8').catch(() => undefined);
    if (listedText !== undefined) {
      for (const line of listedText.split('\n')) {
        const l = line.replace(/#.*/, '').trim();
        if (l) whiteouts.add(cleanPath(l, DELETIONS_FILE));
      }
      await unlink(listed);
    }
    for (const rel of (await walk(root)).entries) {
      // Skip what an earlier marker removed (a `.wh.` directory and everything in it).
      if (!(await lstat(join(root, rel)).catch(() => undefined))) continue;
      const base = basename(rel);
      const dir = dirname(rel) === '.' ? '' : dirname(rel);
      if (base === OPAQUE_MARKER) {
        if (!dir) throw invalid(`${OPAQUE_MARKER} at the top of a layer would hide every lower layer`);
        opaque.add(dir);
        await unlink(join(root, rel));
      } else if (base.startsWith(WHITEOUT_PREFIX)) {
        const target = base.slice(WHITEOUT_PREFIX.length);
        if (!target) throw invalid(`layer source: ${rel} names no file`);
        whiteouts.add(dir ? `${dir}/${target}` : target);
        await rm(join(root, rel), { recursive: true, force: true });
      }
    }
    for (const w of whiteouts) {
      if (/["\n\\]/.test(w)) throw invalid(`deletion ${JSON.stringify(w)} has a quote, backslash or newline`);
      if (await lstat(join(root, w)).catch(() => undefined)) throw invalid(`layer source both holds and deletes /${w}`, { hint: `remove /${w} or its deletion` });
      // The whiteout's directory must exist in this layer (as a plain directory, not opaque).
      await mkdir(join(root, dirname(w)), { recursive: true });
    }

    const tree = await walk(stage);
    const all = ['', ...tree.entries];
    for (const rel of all) await lutimes(join(stage, rel), LAYER_EPOCH, LAYER_EPOCH);

    const free = (opts.freeMiB ?? (opts.role === 'instance' ? 64 : opts.role === 'deployment' ? 16 : 1)) * 1024 * 1024;
    const rw = opts.role === 'instance' || opts.role === 'deployment';
    const inodes = all.length + whiteouts.size + 64 + Math.ceil(free / 65536);
    let sizeK = Math.ceil((tree.bytes * 1.15 + inodes * 256 + free + (rw ? 4 << 20 : 0) + (2 << 20)) / 1024);
    const uuid = uuidFor(`${label}/${opts.name}/${opts.version}`);
    const env = { ...readEnv(), E2FSPROGS_FAKE_TIME: String(LAYER_EPOCH) };
    const tmp = `${out}.tmp-${process.pid}`;
    await mkdir(dirname(out), { recursive: true });
    try {
      for (let attempt = 0; ; attempt++) {
        await rm(tmp, { force: true });
        const args = ['-q', '-F', '-t', 'ext4', '-L', label, '-U', uuid, '-E', `hash_seed=${uuid},root_owner=0:0,nodiscard`, '-m', '0', '-N', String(inodes), '-d', stage];
        if (!rw) args.push('-O', '^has_journal');
        args.push(tmp, `${sizeK}k`);
        const mk = await run('mke2fs', args, { env, timeoutMs: 300_000 });
        if (mk.spawnError) throw unavailable('mke2fs is not installed', { hint: 'apt-get install e2fsprogs' });
        if (mk.code === 0) break;
        if (attempt < 3 && /allocate|space|inode/i.test(mk.stderr)) {
          sizeK *= 2;
          continue;
        }
        throw internal(`mke2fs -d ${src} failed: ${mk.stderr.trim()}`);
      }
      const top = opts.plain ? '' : '/root';
      // One debugfs pass: whiteouts, opaque dirs, owners (root), and fixed ctimes.
      const cmds: string[] = [];
      for (const w of [...whiteouts].sort()) {
        const d = dirname(w) === '.' ? '' : dirname(w);
        cmds.push(`cd "${top}/${d}"`, `mknod "${basename(w)}" c 0 0`, `sif "${top}/${w}" mode 020000`);
      }
      for (const o of [...opaque].sort()) cmds.push(`ea_set "${top}/${o}" trusted.overlay.opaque y`);
      const everything = ['/', '/lost+found', ...tree.entries.map((e) => `/${e}`), ...[...whiteouts].map((w) => `${top}/${w}`)];
      // Owners are always root: the builder's uid must not leak into the image (or its digest).
      for (const p of everything) cmds.push(`sif "${p}" ctime @${LAYER_EPOCH}`, `sif "${p}" uid 0`, `sif "${p}" gid 0`);
      const cmdFile = join(stage, '..', `${basename(stage)}.debugfs`);
      await writeFile(cmdFile, cmds.join('\n') + '\n');
      try {
        const dfs = await run('debugfs', ['-w', '-f', cmdFile, tmp], { env, timeoutMs: 300_000 });
        const errs = dfs.stderr.split('\n').filter((l) => l.trim() && !/^debugfs \d/.test(l));
        if (dfs.code !== 0 || errs.length) throw internal(`debugfs on ${tmp} failed: ${errs.join('; ') || `exit ${dfs.code}`}`);
      } finally {
        await rm(cmdFile, { force: true });
      }
      await rename(tmp, out);
    } finally {
      await rm(tmp, { force: true });
    }
    const { sha256, size } = await digestFile(out);
    const files = opts.plain ? tree.entries.length : tree.entries.filter((e) => e.startsWith('root/')).length;
    return { path: out, role: opts.role, name: opts.name, version: opts.version, label, sha256, size, files, whiteouts: [...whiteouts].sort().map((w) => `/${w}`), opaque: [...opaque].sort().map((o) => `/${o}`) };
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}
