/**
 * Which paths differ between two versions of a layer image, read with debugfs
 * (no mounting): what an update brings to the instances that use the layer.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../lib/exec.ts';
import { fileDigests, listTree, opaqueDirs, openExt4, type TreeEntry } from '../../lib/ext4-read.ts';

export type PathChange = 'added' | 'modified' | 'removed' | 'deleted';

/**
 * Paths that differ between two versions of a layer (relative, no leading
 * slash): `added` (new in the layer), `modified` (kind, mode or contents
 * differ), `removed` (gone from the layer: the lower one shows again),
 * `deleted` (the new version whites it out). Directories count only when
 * they appear, vanish, or turn opaque. No old image: everything is added.
 */
export async function changedPaths(oldImage: string | undefined, newImage: string): Promise<Map<string, PathChange>> {
  const read = async (f: string) => {
    const src = await openExt4(f);
    const tree = await listTree(src, '/root');
    const opaque = await opaqueDirs(src, '/root', [...tree].filter(([, e]) => e.type === 'dir').map(([p]) => p));
    return { src, tree, opaque };
  };
  const nw = await read(newImage);
  const old = oldImage ? await read(oldImage) : undefined;
  const out = new Map<string, PathChange>();
  const sameMeta = (a: TreeEntry, b: TreeEntry) => a.type === b.type && a.mode === b.mode && a.size === b.size;
  const compare: string[] = [];
  for (const [p, e] of nw.tree) {
    const o = old?.tree.get(p);
    if (!o) {
      if (e.type === 'whiteout') out.set(p, 'deleted');
      else out.set(p, 'added');
    } else if (e.type === 'dir') {
      if (o.type !== 'dir' || nw.opaque.has(p) !== old!.opaque.has(p)) out.set(p, 'modified');
    } else if (!sameMeta(e, o)) {
      out.set(p, e.type === 'whiteout' ? 'deleted' : 'modified');
    } else if (e.type === 'file' || e.type === 'symlink') compare.push(p);
  }
  if (old) {
    for (const p of old.tree.keys()) if (!nw.tree.has(p)) out.set(p, 'removed');
    const files = compare.filter((p) => nw.tree.get(p)!.type === 'file');
    const [a, b] = await Promise.all([fileDigests(old.src, '/root', files), fileDigests(nw.src, '/root', files)]);
    for (const p of files) if (!a.get(p) || a.get(p) !== b.get(p)) out.set(p, 'modified');
    // Symlinks of equal length: compare their targets.
    const links = compare.filter((p) => nw.tree.get(p)!.type === 'symlink');
    if (links.length) {
      const [la, lb] = await Promise.all([symlinkTargets(old.src.spec, links), symlinkTargets(nw.src.spec, links)]);
      for (const p of links) if (la.get(p) === undefined || la.get(p) !== lb.get(p)) out.set(p, 'modified');
    }
  }
  return out;
}

async function symlinkTargets(spec: string, paths: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const dir = await mkdtemp(join(tmpdir(), 'storm-links-'));
  try {
    await writeFile(join(dir, 'cmds'), paths.map((p) => `stat "/root/${p}"`).join('\n') + '\n');
    const r = await run('debugfs', ['-f', join(dir, 'cmds'), spec], { timeoutMs: 120_000 });
    for (const part of r.stdout.split(/^debugfs: stat /m).slice(1)) {
      const path = /^"\/root\/(.*)"/.exec(part)?.[1];
      const dest = /Fast link dest: "(.*)"/.exec(part)?.[1];
      if (path !== undefined && dest !== undefined) out.set(path, dest);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}
