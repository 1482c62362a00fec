/**
 * Instance layers: the one writable, per-instance disk (sdd). An MBR disk with
 * partition 1 ext4 labelled `storm-instance` holding what the manager gives
 * (hostname, config files, the instance's certificate) in the layer format
 * (the tree under root/, an empty work/: the overlay's upper layer) and partition 4 swap.
 * Built without root, loop devices or mounts: files go into a staging dir,
 * `mke2fs -d` writes the filesystem straight into the image at partition 1's
 * offset, and we write the MBR and the swap signature ourselves. Nothing here
 * reads or copies the appliance, so the cost does not depend on its size.
 *
 * Stored as qcow2 (`<dir>/<instanceId>/instance.qcow2`) so snapshots are
 * qcow2 internal snapshots (`qemu-img snapshot`): O(1) to take, one file per
 * instance (what migrates), but only while the instance is shut off.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, normalize } from 'node:path';
import { StormError, conflict, invalid, notFound } from '../../lib/errors.ts';
import { run, type Runner } from '../../lib/exec.ts';
import { fsyncPath } from '../../lib/fsync.ts';
import { SECTOR, buildMbr, buildSwapHeader } from './disk-image.ts';
import { fileExtents } from './file-extents.ts';
import { writeCompressedQcow2 } from './qcow2-compressed.ts';

export const INSTANCE_LABEL = 'storm-instance';
const MiB = 1024 * 1024;
/** qcow2 cluster size of instance layers (see create). */
export const CLUSTER = 4096;
const ID_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
const HOST_RE = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const SNAP_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const VOLUME_RE = /^[A-Za-z0-9_-]{1,5}$/;
const MAX_FILES = 1000;
const MAX_CONTENT = 16 * MiB;

export interface InstanceContent {
  hostname: string;
  /** Absolute path inside the instance filesystem → UTF-8 contents. */
  files?: Record<string, string>;
  /** The instance's TLS identity, written under /etc/storm/tls/ (key mode 0600). */
  tls?: { cert: string; key: string; ca: string };
}

export interface InstanceLayerOptions {
  /** Whole disk size (default 256 MiB). */
  sizeMiB?: number;
  /** Swap partition size (default 32 MiB). */
  swapMiB?: number;
}

export interface InstanceLayerInfo {
  instanceId: string;
  path: string;
  format: 'qcow2';
  sizeBytes: number;
  partitions: { number: number; type: 'ext4' | 'swap'; startBytes: number; sizeBytes: number; label?: string }[];
}

export interface SnapshotInfo {
  name: string;
  createdAt: string;
}

export function checkInstanceId(id: unknown): string {
  if (typeof id !== 'string' || !ID_RE.test(id)) throw invalid(`instance id ${JSON.stringify(id)} is not valid`, { hint: 'use 1-63 characters of a-z, 0-9 and -' });
  return id;
}

/** Map an absolute in-guest path to the staging dir; refuse anything that escapes it. */
function stagedPath(root: string, p: string): string {
  if (typeof p !== 'string' || !p.startsWith('/') || p.length > 1024 || p.includes('\0') || p.split('/').includes('..')) {
    throw invalid(`file path ${JSON.stringify(p)} must be absolute inside the instance, without '..'`);
  }
  const n = normalize(p);
  if (n === '/' || n.endsWith('/')) throw invalid(`file path ${JSON.stringify(p)} names a directory`);
  return join(root, n);
}

async function mustRun(runner: Runner, file: string, args: string[], what: string): Promise<string> {
  const r = await runner(file, args, { timeoutMs: 120_000 });
  if (r.spawnError) throw new StormError('unavailable', `${file} is not installed (needed to ${what})`, { hint: 'install e2fsprogs and qemu-utils (scripts/setup)' });
  if (r.code !== 0) throw new StormError('internal', `${what} failed: ${file} exited ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return r.stdout;
}

export class InstanceLayers {
  readonly dir: string;
  readonly #convert: 'auto' | 'qemu-img';
  readonly #run: Runner;
  /** Build directories still being removed. */
  readonly #cleaning = new Set<Promise<void>>();

  /**
   * `convert: 'qemu-img'` always converts with qemu-img (the path taken where FIEMAP is
   * missing); `run` starts the tools (stormd passes a ShellRunner: cheaper than forking itself).
   */
  constructor(dir: string, opts: { convert?: 'auto' | 'qemu-img'; run?: Runner } = {}) {
    this.dir = dir;
    this.#convert = opts.convert ?? 'auto';
    this.#run = opts.run ?? run;
  }

  path(instanceId: string): string {
    return join(this.dir, checkInstanceId(instanceId), 'instance.qcow2');
  }

  /** A data volume of the instance: `<dir>/<id>/data-<name>.img` (raw ext4, removed with the instance). */
  volumePath(instanceId: string, name: string): string {
    if (typeof name !== 'string' || !VOLUME_RE.test(name)) throw invalid(`data volume name ${JSON.stringify(name)}: use 1-5 letters, digits, _ or - (the label storm-data-NAME holds 16 characters)`);
    return join(this.dir, checkInstanceId(instanceId), `data-${name}.img`);
  }

  /** Make an empty data volume labelled `storm-data-NAME` (sparse; idempotent: an existing one is kept, data and all). */
  async createVolume(instanceId: string, name: string, sizeMiB: number): Promise<string> {
    const final = this.volumePath(instanceId, name);
    if (!Number.isInteger(sizeMiB) || sizeMiB < 8 || sizeMiB > 16 * 1024 * 1024) throw invalid('data volume sizeMiB must be an integer from 8 to 16777216');
    if (await exists(final)) return final;
    await mkdir(dirname(final), { recursive: true, mode: 0o755 });
    const tmp = `${final}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await mustRun(this.#run, 'mke2fs', ['-q', '-F', '-t', 'ext4', '-L', `storm-data-${name}`, tmp, `${sizeMiB}M`], `make data volume ${name}`);
      await chmod(tmp, 0o644);
      await rename(tmp, final);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    return final;
  }

  /**
   * Create the instance layer; `conflict` if one exists. All or nothing: on
   * any failure no file is left behind.
   */
  async create(instanceId: string, content: InstanceContent, opts: InstanceLayerOptions = {}): Promise<InstanceLayerInfo> {
    checkInstanceId(instanceId);
    const sizeMiB = opts.sizeMiB ?? 256;
    const swapMiB = opts.swapMiB ?? 32;
    if (!Number.isInteger(sizeMiB) || sizeMiB < 16 || sizeMiB > 1024 * 1024) throw invalid('sizeMiB must be an integer from 16 to 1048576');
    if (!Number.isInteger(swapMiB) || swapMiB < 1 || swapMiB > sizeMiB / 2) throw invalid('swapMiB must be an integer from 1 to half of sizeMiB');
    if (!content || typeof content !== 'object') throw invalid('instance content must be an object');
    if (typeof content.hostname !== 'string' || !HOST_RE.test(content.hostname)) throw invalid(`hostname ${JSON.stringify(content.hostname)} is not a valid lower-case host name`);
    const files = content.files ?? {};
    if (typeof files !== 'object' || Array.isArray(files)) throw invalid('files must be an object of path → contents');
    const entries = Object.entries(files);
    if (entries.length > MAX_FILES) throw invalid(`at most ${MAX_FILES} files`);
    let total = 0;
    for (const [, v] of entries) {
      if (typeof v !== 'string') throw invalid('file contents must be strings');
      total += Buffer.byteLength(v);
    }
    if (total > MAX_CONTENT) throw invalid(`file contents exceed ${MAX_CONTENT} bytes`);

    const final = this.path(instanceId);
    const idir = dirname(final);
    if (await exists(final)) throw conflict(`instance layer for ${instanceId} already exists`, { hint: 'remove it first, or restore a snapshot' });
    await mkdir(this.dir, { recursive: true, mode: 0o755 });
    await mkdir(idir, { recursive: true, mode: 0o755 });
    const work = await mkdtemp(join(idir, '.build-'));
    try {
      // 1. Stage the filesystem contents in the layer format the initrd mounts as the
      //    overlay's upper layer: the tree under root/, beside an empty work/.
      const fsdir = join(work, 'fs');
      // Synchronous: a few small files (at most MAX_FILES, MAX_CONTENT bytes), where each
      // round trip through the thread pool costs more than the write (~4 ms against ~0.3 ms).
      const root = join(fsdir, 'root');
      mkdirSync(root, { recursive: true, mode: 0o755 });
      mkdirSync(join(fsdir, 'work'), { mode: 0o755 });
      const made = new Set<string>([root]);
      const write = (p: string, data: string, mode: number) => {
        const dst = stagedPath(root, p);
        const dir = dirname(dst);
        if (!made.has(dir)) mkdirSync(dir, { recursive: true, mode: 0o755 });
        made.add(dir);
        writeFileSync(dst, data, { mode });
        chmodSync(dst, mode); // exact, whatever the umask
      };
      write('/etc/hostname', `${content.hostname}\n`, 0o644);
      for (const [p, v] of entries) write(p, v, 0o644);
      if (content.tls) {
        const { cert, key, ca } = content.tls;
        if (![cert, key, ca].every((s) => typeof s === 'string' && s.length < 64 * 1024)) throw invalid('tls cert, key and ca must be PEM strings');
        write('/etc/storm/tls/instance.crt', cert, 0o644);
        write('/etc/storm/tls/instance.key', key, 0o600);
        write('/etc/storm/tls/ca.crt', ca, 0o644);
      }
      // 2. A sparse raw image: MBR, partition 1 ext4 from 1 MiB, partition 4 swap at the end.
      const raw = join(work, 'disk.raw');
      const sizeBytes = sizeMiB * MiB;
      const p1Start = MiB;
      const p4Size = swapMiB * MiB;
      const p4Start = sizeBytes - p4Size;
      const p1Size = p4Start - p1Start;
      const fh = await open(raw, 'wx', 0o600);
      try {
        await fh.truncate(sizeBytes);
        await fh.write(
          buildMbr([
            { number: 1, type: 0x83, startLba: p1Start / SECTOR, sectors: p1Size / SECTOR },
            { number: 4, type: 0x82, startLba: p4Start / SECTOR, sectors: p4Size / SECTOR },
          ]),
          0,
          SECTOR,
          0,
        );
        await fh.write(buildSwapHeader(p4Size), 0, 4096, p4Start);
      } finally {
        await fh.close();
      }
      // No resize inode: its reserved GDT blocks are ~110 KiB of metadata in every instance
      // layer, and an instance layer is only ever grown offline (resize2fs works without it).
      // lazy_journal_init: the file is new and sparse, so the journal already reads as zeros
      // (mke2fs would write 16 MiB of them and the convert would read them back).
      await mustRun(
        this.#run,
        'mke2fs',
        ['-q', '-F', '-t', 'ext4', '-b', '4096', '-O', '^resize_inode', '-L', INSTANCE_LABEL, '-d', fsdir, '-E', `offset=${p1Start},nodiscard,root_owner=0:0,lazy_journal_init=1`, raw, `${p1Size / 1024}k`],
        'build the instance filesystem',
      );
      // 3. qcow2 for snapshots; zero areas stay unallocated. 4 KiB clusters: ext4's few
      //    metadata blocks are scattered, and with the default 64 KiB each one costs a whole
      //    cluster (~780 KiB per fresh layer instead of ~150 KiB, times every instance, every
      //    migration). QEMU's default L2 cache still covers 512 MiB at this cluster size.
      //    Compressed: ext4's fresh metadata is mostly zeros (~128 → ~44 KiB per layer); a
      //    guest write to a compressed cluster just allocates a plain one, as for any write.
      //    Written here from the raw image's few data extents; qemu-img where the state
      //    directory's filesystem cannot tell where they are (no FIEMAP: tmpfs).
      const qcow = join(work, 'instance.qcow2');
      const extents = this.#convert === 'auto' ? await fileExtents(raw, this.#run) : undefined;
      if (extents) await writeCompressedQcow2(raw, qcow, sizeBytes, extents);
      else await mustRun(this.#run, 'qemu-img', ['convert', '-q', '-c', '-f', 'raw', '-O', 'qcow2', '-o', `cluster_size=${CLUSTER}`, raw, qcow], 'convert the instance layer to qcow2');
      await fsyncPath(qcow);
      await rename(qcow, final);
      await fsyncPath(idir);
      // The build directory goes after the answer (a sparse 256 MiB file and the staging
      // tree: ~2 ms); remove() waits for it.
      const gone: Promise<void> = rm(work, { recursive: true, force: true })
        .catch(() => undefined)
        .finally(() => this.#cleaning.delete(gone));
      this.#cleaning.add(gone);
      return this.#info(instanceId, sizeBytes, p1Start, p1Size, p4Start, p4Size);
    } catch (e) {
      await rm(final, { force: true });
      await rm(work, { recursive: true, force: true });
      throw e;
    }
  }

  #info(instanceId: string, sizeBytes: number, p1Start: number, p1Size: number, p4Start: number, p4Size: number): InstanceLayerInfo {
    return {
      instanceId,
      path: this.path(instanceId),
      format: 'qcow2',
      sizeBytes,
      partitions: [
        { number: 1, type: 'ext4', startBytes: p1Start, sizeBytes: p1Size, label: INSTANCE_LABEL },
        { number: 4, type: 'swap', startBytes: p4Start, sizeBytes: p4Size },
      ],
    };
  }

  /** Remove an instance's layer and its snapshots. Idempotent. */
  async remove(instanceId: string): Promise<void> {
    await Promise.all(this.#cleaning);
    await rm(dirname(this.path(instanceId)), { recursive: true, force: true });
  }

  async #mustExist(instanceId: string): Promise<string> {
    const p = this.path(instanceId);
    if (!(await exists(p))) throw notFound(`no instance layer for ${instanceId}`);
    return p;
  }

  /** qemu-img refuses an image a running guest holds: that is a `conflict`. */
  async #qemuImg(args: string[], what: string): Promise<string> {
    const r = await this.#run('qemu-img', args, { timeoutMs: 120_000 });
    if (r.spawnError) throw new StormError('unavailable', 'qemu-img is not installed', { hint: 'install qemu-utils (scripts/setup)' });
    if (r.code !== 0) {
      if (/lock/i.test(r.stderr)) throw conflict(`${what}: the instance layer is in use by a running guest; shut the instance off first`);
      if (/Can't find the snapshot|not found/i.test(r.stderr)) throw notFound(`${what}: no such snapshot`);
      throw new StormError('internal', `${what} failed: ${r.stderr.trim()}`);
    }
    return r.stdout;
  }

  /** Take an internal qcow2 snapshot (instance shut off). */
  async snapshot(instanceId: string, name: string): Promise<SnapshotInfo> {
    if (typeof name !== 'string' || !SNAP_RE.test(name)) throw invalid(`snapshot name ${JSON.stringify(name)} is not valid`);
    const p = await this.#mustExist(instanceId);
    if ((await this.snapshots(instanceId)).some((s) => s.name === name)) throw conflict(`instance ${instanceId} already has a snapshot named ${name}`);
    await this.#qemuImg(['snapshot', '-c', name, p], `snapshot ${instanceId}`);
    const s = (await this.snapshots(instanceId)).find((x) => x.name === name);
    return s ?? { name, createdAt: new Date().toISOString() };
  }

  /** Roll the instance layer back to a snapshot (instance shut off). */
  async restore(instanceId: string, name: string): Promise<void> {
    if (typeof name !== 'string' || !SNAP_RE.test(name)) throw invalid(`snapshot name ${JSON.stringify(name)} is not valid`);
    const p = await this.#mustExist(instanceId);
    if (!(await this.snapshots(instanceId)).some((s) => s.name === name)) throw notFound(`instance ${instanceId} has no snapshot named ${name}`);
    await this.#qemuImg(['snapshot', '-a', name, p], `restore ${instanceId} to ${name}`);
  }

  async deleteSnapshot(instanceId: string, name: string): Promise<void> {
    if (typeof name !== 'string' || !SNAP_RE.test(name)) throw invalid(`snapshot name ${JSON.stringify(name)} is not valid`);
    const p = await this.#mustExist(instanceId);
    if (!(await this.snapshots(instanceId)).some((s) => s.name === name)) throw notFound(`instance ${instanceId} has no snapshot named ${name}`);
    await this.#qemuImg(['snapshot', '-d', name, p], `delete snapshot ${name} of ${instanceId}`);
  }

  async snapshots(instanceId: string): Promise<SnapshotInfo[]> {
    const p = await this.#mustExist(instanceId);
    const out = await this.#qemuImg(['info', '--output=json', '-U', p], `read ${instanceId}`);
    const info = JSON.parse(out) as { snapshots?: { name: string; 'date-sec': number }[] };
    return (info.snapshots ?? []).map((s) => ({ name: s.name, createdAt: new Date(s['date-sec'] * 1000).toISOString() }));
  }
}


async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/** Random id for tests and callers that need one. */
export const newInstanceId = (): string => `i-${randomBytes(6).toString('hex')}`;
