/**
 * An instance disk as the initrd expects it on `sdd`: an MBR with partition 1 an
 * ext4 layer labelled `storm-instance` (root/ and work/) and partition 4 swap.
 * Built without root or loop devices: the filesystem is made with mke2fs -d into
 * its own file and copied into place; the swap header is made by mkswap likewise.
 */
import { mkdtemp, rm, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { run } from '../../lib/exec.ts';
import { internal, invalid, unavailable } from '../../lib/errors.ts';
import { buildLayer, digestFile } from './layer-build.ts';

export interface InstanceDiskOptions {
  /** Initial content of the instance layer (files the instance starts with); empty when absent. */
  dir?: string;
  out: string;
  name?: string;
  version?: string;
  /** Free space in the instance filesystem, MiB (default 64). */
  freeMiB?: number;
  /** Swap partition size, MiB (default 16); 0 for no partition 4. */
  swapMiB?: number;
}

const MiB = 1024 * 1024;

async function copyInto(src: string, dst: string, offset: number): Promise<void> {
  const r = await run('dd', [`if=${src}`, `of=${dst}`, 'bs=1M', `seek=${offset / MiB}`, 'conv=notrunc,sparse', 'status=none'], { timeoutMs: 300_000 });
  if (r.code !== 0) throw internal(`dd ${src} into ${dst}: ${r.stderr.trim()}`);
}

/** Build the partitioned instance disk; returns its path, digest and size. */
export async function buildInstanceDisk(opts: InstanceDiskOptions): Promise<{ path: string; sha256: string; size: number }> {
  const out = resolve(opts.out);
  const tmp = await mkdtemp(join(tmpdir(), 'storm-instance-'));
  try {
    let src = opts.dir;
    if (!src) {
      src = join(tmp, 'empty');
      await (await import('node:fs/promises')).mkdir(src);
    }
    const fs = await buildLayer({ dir: src, role: 'instance', name: opts.name ?? 'instance', version: opts.version ?? '1', out: join(tmp, 'fs.img'), freeMiB: opts.freeMiB ?? 64 });
    const swapMiB = opts.swapMiB ?? 16;
    const fsMiB = Math.ceil(fs.size / MiB);
    const total = 1 + fsMiB + swapMiB + 1;
    const f = await open(out, 'w');
    await f.truncate(total * MiB);
    await f.close();
    const lines = ['label: dos', 'label-id: 0x53544f52', `${out}1 : start=${2048}, size=${fsMiB * 2048}, type=83`];
    if (swapMiB > 0) lines.push(`${out}4 : start=${(1 + fsMiB) * 2048}, size=${swapMiB * 2048}, type=82`);
    const sf = await run('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', out], { input: lines.join('\n') + '\n' });
    if (sf.spawnError) throw unavailable('sfdisk is not installed', { hint: 'apt-get install fdisk' });
    if (sf.code !== 0) throw internal(`sfdisk ${out}: ${sf.stderr.trim()}`);
    await copyInto(fs.path, out, MiB);
    if (swapMiB > 0) {
      const sw = join(tmp, 'swap.img');
      const sfile = await open(sw, 'w');
      await sfile.truncate(swapMiB * MiB);
      await sfile.close();
      const mk = await run('mkswap', ['-q', '-L', 'storm-swap', '-U', '53544f52-4d00-4000-8000-000000000004', sw]);
      if (mk.code !== 0) throw internal(`mkswap: ${mk.stderr.trim()}`);
      await copyInto(sw, out, (1 + fsMiB) * MiB);
    }
    return { path: out, ...(await digestFile(out)) };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** A data volume: a plain ext4 disk labelled `storm-data-NAME`, mounted by the initrd outside the union. */
export async function buildDataVolume(opts: { out: string; name: string; sizeMiB?: number }): Promise<{ path: string; label: string }> {
  if (!/^[A-Za-z0-9_-]{1,5}$/.test(opts.name)) throw invalid(`data volume name "${opts.name}" must be 1-5 letters, digits, _ or - (the ext4 label storm-data-NAME holds 16 characters)`);
  const out = resolve(opts.out);
  const label = `storm-data-${opts.name}`;
  const f = await open(out, 'w');
  await f.truncate((opts.sizeMiB ?? 32) * MiB);
  await f.close();
  const mk = await run('mke2fs', ['-q', '-F', '-t', 'ext4', '-L', label, '-m', '0', '-E', 'nodiscard,root_owner=0:0', out]);
  if (mk.spawnError) throw unavailable('mke2fs is not installed', { hint: 'apt-get install e2fsprogs' });
  if (mk.code !== 0) throw internal(`mke2fs ${out}: ${mk.stderr.trim()}`);
  return { path: out, label };
}
