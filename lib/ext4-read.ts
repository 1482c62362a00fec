/**
 * Read ext4 layer images without mounting them: debugfs (e2fsprogs) lists
 * directories (`ls -p`), dumps files and reads extended attributes. A
 * partitioned disk (an instance disk: MBR, ext4 in partition 1) is read at its
 * partition's offset (`image?offset=N`).
 */
import { open } from 'node:fs/promises';
import { run } from './exec.ts';
import { internal, invalid, notFound, unavailable } from './errors.ts';

export type EntryType = 'file' | 'dir' | 'symlink' | 'whiteout' | 'other';

export interface TreeEntry {
  type: EntryType;
  mode: number;
  size: number;
  uid: number;
  gid: number;
}

/** Where an image's ext filesystem starts and what it is labelled. */
export interface Ext4Source {
  file: string;
  offset: number;
  label: string;
  /** The string debugfs opens. */
  spec: string;
  /**
   * A copy of a filesystem in use (a running guest's): its allocation bitmaps may not match
   * their checksums yet, so debugfs reads it without them (-c); listing needs none.
   */
  live?: boolean;
}

async function readAt(file: string, pos: number, len: number): Promise<Buffer> {
  const f = await open(file, 'r');
  try {
    const b = Buffer.alloc(len);
    const { bytesRead } = await f.read(b, 0, len, pos);
    return b.subarray(0, bytesRead);
  } finally {
    await f.close();
  }
}

async function extAt(file: string, offset: number): Promise<string | undefined> {
  const sb = await readAt(file, offset + 1024, 1024);
  if (sb.length < 136 || sb.readUInt16LE(56) !== 0xef53) return undefined;
  return sb.subarray(120, 136).toString('latin1').replace(/\0.*$/s, '');
}

/** Find the ext filesystem in a layer image: the whole file, or partition 1 of an MBR disk. */
export async function openExt4(file: string): Promise<Ext4Source> {
  const head = await readAt(file, 0, 512).catch((e: NodeJS.ErrnoException) => {
    throw e.code === 'ENOENT' ? notFound(`layer image ${file} does not exist`) : invalid(`cannot read ${file}: ${e.message}`);
  });
  let label = await extAt(file, 0);
  if (label !== undefined) return { file, offset: 0, label, spec: file };
  if (head.length === 512 && head.readUInt16LE(510) === 0xaa55) {
    // MBR: four 16-byte entries from 446; LBA start at +8 (little-endian, 512-byte sectors).
    for (let i = 0; i < 4; i++) {
      const start = head.readUInt32LE(446 + i * 16 + 8);
      if (!start) continue;
      label = await extAt(file, start * 512);
      if (label !== undefined) return { file, offset: start * 512, label, spec: `${file}?offset=${start * 512}` };
    }
  }
  throw invalid(`${file} holds no ext2/3/4 filesystem (neither whole nor in an MBR partition)`, { hint: 'give a layer image made by storm layer build, or an instance disk' });
}

async function debugfs(src: Ext4Source, cmds: string[]): Promise<string> {
  const { writeFile, rm, mkdtemp } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = await mkdtemp(join(tmpdir(), 'storm-debugfs-'));
  try {
    await writeFile(join(dir, 'cmds'), cmds.join('\n') + '\n');
    const r = await run('debugfs', [...(src.live ? ['-c'] : []), '-f', join(dir, 'cmds'), src.spec], { timeoutMs: 300_000 });
    if (r.spawnError) throw unavailable('debugfs is not installed', { hint: 'apt-get install e2fsprogs' });
    if (r.code !== 0) throw internal(`debugfs ${src.spec}: ${r.stderr.trim()}`);
    return r.stdout;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const q = (p: string) => {
  if (/["\n\\]/.test(p)) throw invalid(`path ${JSON.stringify(p)} cannot be read with debugfs`);
  return `"${p}"`;
};

function typeOf(mode: number): EntryType {
  switch (mode & 0o170000) {
    case 0o100000: return 'file';
    case 0o040000: return 'dir';
    case 0o120000: return 'symlink';
    case 0o020000: return 'other'; // a character device; a whiteout when its device number is 0/0
    default: return 'other';
  }
}

/**
 * Every entry under `top` (e.g. "/root"), keyed by path relative to it ("etc/motd").
 * One debugfs run per directory depth; whiteouts (char 0/0) are confirmed with `stat`.
 */
export async function listTree(src: Ext4Source, top: string): Promise<Map<string, TreeEntry>> {
  const out = new Map<string, TreeEntry>();
  let level = [''];
  const chars: string[] = [];
  while (level.length) {
    const text = await debugfs(src, level.map((d) => `ls -p ${q(d ? `${top}/${d}` : top)}`));
    const next: string[] = [];
    let cur: string | undefined;
    for (const line of text.split('\n')) {
      const cmd = /^debugfs: ls -p "(.*)"$/.exec(line);
      if (cmd) {
        const abs = cmd[1]!;
        cur = abs === top ? '' : abs.slice(top.length + 1);
        continue;
      }
      const m = /^\/(\d+)\/(\d+)\/(\d+)\/(\d+)\/(.*)\/(\d*)\/$/.exec(line);
      if (!m || cur === undefined) {
        if (/File not found|not a directory/i.test(line) && cur === '') throw invalid(`${src.file} has no ${top} directory (not a storm layer?)`);
        continue;
      }
      const name = m[5]!;
      if (name === '.' || name === '..' || (cur === '' && top === '' && name === 'lost+found')) continue;
      const rel = cur ? `${cur}/${name}` : name;
      const mode = parseInt(m[2]!, 8);
      const e: TreeEntry = { type: typeOf(mode), mode: mode & 0o7777, size: Number(m[6] || 0), uid: Number(m[3]), gid: Number(m[4]) };
      out.set(rel, e);
      if (e.type === 'dir') next.push(rel);
      if ((mode & 0o170000) === 0o020000) chars.push(rel);
    }
    if (level.length === 1 && level[0] === '' && out.size === 0 && !/^\/\d+\//m.test(text)) throw invalid(`${src.file} has no ${top} directory (not a storm layer?)`);
    level = next;
  }
  if (chars.length) {
    const text = await debugfs(src, chars.map((c) => `stat ${q(`${top}/${c}`)}`));
    const parts = text.split(/^debugfs: stat /m).slice(1);
    for (const p of parts) {
      const path = /^"(.*)"/.exec(p)?.[1];
      if (!path) continue;
      const rel = path.slice(top.length + 1);
      const dev = /Device major\/minor number: ([0-9a-f]+):([0-9a-f]+)/i.exec(p);
      const e = out.get(rel);
      if (e && dev && Number(dev[1]) === 0 && Number(dev[2]) === 0) e.type = 'whiteout';
    }
  }
  return out;
}

/** Directories (from `dirs`) that carry overlayfs's opaque xattr. */
export async function opaqueDirs(src: Ext4Source, top: string, dirs: string[]): Promise<Set<string>> {
  const res = new Set<string>();
  if (!dirs.length) return res;
  const text = await debugfs(src, dirs.map((d) => `ea_list ${q(`${top}/${d}`)}`));
  for (const p of text.split(/^debugfs: ea_list /m).slice(1)) {
    const path = /^"(.*)"/.exec(p)?.[1];
    if (path && /trusted\.overlay\.opaque \(\d+\) = "y"/.test(p)) res.add(path.slice(top.length + 1));
  }
  return res;
}

/**
 * Copy the tree under `top` (e.g. "/root") into `dest` (created): regular
 * files, directories and symlinks with their modes. Whiteouts and other
 * special files are skipped (read them with listTree).
 */
export async function extractTree(src: Ext4Source, top: string, dest: string): Promise<void> {
  const { mkdir, mkdtemp, readdir, rename, rm } = await import('node:fs/promises');
  const { join, basename } = await import('node:path');
  await mkdir(dest, { recursive: true });
  const scratch = await mkdtemp(join(dest, '.rdump-'));
  try {
    await debugfs(src, [`rdump ${q(top)} ${q(scratch)}`]);
    const got = join(scratch, basename(top));
    for (const n of await readdir(got).catch(() => [] as string[])) await rename(join(got, n), join(dest, n));
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** SHA-256 of regular files under `top` (paths relative to it), read with one debugfs `dump` pass. */
export async function fileDigests(src: Ext4Source, top: string, paths: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (!paths.length) return out;
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { createReadStream } = await import('node:fs');
  const { createHash } = await import('node:crypto');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = await mkdtemp(join(tmpdir(), 'storm-dump-'));
  try {
    await debugfs(src, paths.map((p, i) => `dump ${q(`${top}/${p}`)} ${q(join(dir, String(i)))}`));
    for (const [i, p] of paths.entries()) {
      const h = createHash('sha256');
      try {
        for await (const c of createReadStream(join(dir, String(i)))) h.update(c as Buffer);
        out.set(p, h.digest('hex'));
      } catch {
        // Not dumped (not a regular file): no digest; the caller treats it as changed.
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}
