/**
 * What an instance layer changed relative to the layers below it, read from the
 * images without mounting: every path in the upper layer's root/ is added (no
 * lower has it), modified (it shadows a lower file: a copy-up) or deleted (a
 * whiteout over a lower file); opaque directories replace the lower directory.
 */
import { basename } from 'node:path';
import { invalid } from '../../lib/errors.ts';
import { listTree, opaqueDirs, openExt4, type EntryType, type TreeEntry } from './ext4-read.ts';

export type ChangeKind = 'added' | 'modified' | 'deleted' | 'replaced';

export interface LayerChange {
  path: string;
  change: ChangeKind;
  /** What the path is in the upper layer (for a deletion: what it was in the lower layer). */
  type: EntryType;
  /** The topmost lower layer whose file this change shadows (its role, or file name when unlabelled). */
  shadows?: string;
}

export interface LayerDiff {
  layer: { file: string; label: string };
  lowers: { file: string; label: string; name: string }[];
  changes: LayerChange[];
  summary: { added: number; modified: number; deleted: number; replaced: number; shadowing: number };
}

/** Diff an upper (instance, or deployment in maintenance) layer against its lowers, top-down order. */
export async function diffLayer(upperFile: string, lowerFiles: string[]): Promise<LayerDiff> {
  if (lowerFiles.length === 0) throw invalid('storm layer diff needs at least one --lower layer', { hint: 'e.g. --lower deployment.img --lower appliance.img --lower substrate.img' });
  const upper = await openExt4(upperFile);
  const lowers = await Promise.all(lowerFiles.map(openExt4));
  const upperTree = await listTree(upper, '/root');
  const lowerTrees: Map<string, TreeEntry>[] = [];
  for (const l of lowers) lowerTrees.push(await listTree(l, '/root'));
  const names = lowers.map((l) => (l.label.startsWith('storm-') ? l.label.slice(6) : basename(l.file)));

  // A lower path is visible only if no higher lower layer hides it (whiteout, or an opaque dir above it).
  const lowerOpaque = await Promise.all(lowers.map((l, i) => opaqueDirs(l, '/root', [...lowerTrees[i]!].filter(([, e]) => e.type === 'dir').map(([p]) => p))));
  const visibleIn = (path: string): number => {
    for (let i = 0; i < lowerTrees.length; i++) {
      const e = lowerTrees[i]!.get(path);
      if (e) return e.type === 'whiteout' ? -1 : i;
      // An opaque ancestor in this layer hides everything below from layers further down.
      const parts = path.split('/');
      for (let k = parts.length - 1; k > 0; k--) if (lowerOpaque[i]!.has(parts.slice(0, k).join('/'))) return -1;
    }
    return -1;
  };

  const upperDirs = [...upperTree].filter(([, e]) => e.type === 'dir').map(([p]) => p);
  const opaque = await opaqueDirs(upper, '/root', upperDirs);
  const changes: LayerChange[] = [];
  for (const [path, e] of [...upperTree].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const at = visibleIn(path);
    const shadows = at >= 0 ? names[at] : undefined;
    if (e.type === 'whiteout') {
      const lowerType = at >= 0 ? lowerTrees[at]!.get(path)!.type : 'other';
      changes.push({ path: `/${path}`, change: 'deleted', type: lowerType, ...(shadows ? { shadows } : {}) });
    } else if (e.type === 'dir') {
      // A directory that exists below is only the parent of a copy-up, unless it is opaque.
      if (at < 0) changes.push({ path: `/${path}`, change: 'added', type: 'dir' });
      else if (opaque.has(path)) changes.push({ path: `/${path}`, change: 'replaced', type: 'dir', shadows: shadows! });
    } else {
      changes.push({ path: `/${path}`, change: at >= 0 ? 'modified' : 'added', type: e.type, ...(shadows ? { shadows } : {}) });
    }
  }
  const count = (k: ChangeKind) => changes.filter((c) => c.change === k).length;
  return {
    layer: { file: upperFile, label: upper.label },
    lowers: lowers.map((l, i) => ({ file: l.file, label: l.label, name: names[i]! })),
    changes,
    summary: { added: count('added'), modified: count('modified'), deleted: count('deleted'), replaced: count('replaced'), shadowing: changes.filter((c) => c.shadows).length },
  };
}
