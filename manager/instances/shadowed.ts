/**
 * The shadowed-files report of `storm update plan`: for an instance that an
 * update would move to new layer versions, the paths in its own instance
 * layer that would hide what the update changed. The changed paths come from
 * the old and new layer images (the manager's image store, diffed once per
 * pair); the instance layer's paths from its host (`instanceLayerFiles`).
 * Overlayfs shows the instance layer's file, whiteout or opaque directory
 * over any lower change at that path: the admin should look at those.
 */
import { toStormError } from '../../lib/errors.ts';
import type { PathChange } from '../images/layer-changes.ts';
import type { DiskRole, HostAgent, LayerFileKind, LayerRef } from './host-agent.ts';

export interface ShadowedFile {
  /** The path the update changes (absolute, in the guest). */
  path: string;
  /** What the instance layer has there: a file, symlink, whiteout, directory, or `opaque-dir` (an opaque ancestor, see `via`). */
  kind: LayerFileKind;
  /** What the update does to the path in its layer. */
  change: PathChange;
  /** The layer role the change is in. */
  role: DiskRole;
  /** For kind `opaque-dir`: the instance layer's opaque directory that hides the path. */
  via?: string;
}

export interface ShadowReport {
  shadowed: ShadowedFile[];
  /** The instance layer listing was cut at the host's limit: there may be more. */
  truncated?: boolean;
  /** Why no report could be made (host unreachable, image unavailable…); the plan still stands. */
  error?: string;
}

/** One role's move: the layer the instance has now (by digest, with a URL when known) and the one it gets. */
export interface RoleChange {
  role: DiskRole;
  from?: { sha256: string; size?: number; url?: string };
  to: LayerRef;
}

export interface ShadowFinderOptions {
  /** Local path of a layer image in the manager's store, fetching it from `url` when missing. */
  image: (ref: { sha256: string; size?: number; url?: string }) => Promise<string>;
  /** Paths changed between two images (debugfs); injected for tests. */
  changed: (oldImage: string | undefined, newImage: string) => Promise<Map<string, PathChange>>;
  /** Entries asked of the host (its bound). */
  limit?: number;
}

export class ShadowFinder {
  readonly #o: ShadowFinderOptions;
  /** Diffs by `from→to`: many instances share one update. Bounded: old pairs drop out. */
  readonly #diffs = new Map<string, Promise<Map<string, PathChange>>>();

  constructor(o: ShadowFinderOptions) {
    this.#o = o;
  }

  #diff(c: RoleChange): Promise<Map<string, PathChange>> {
    const key = `${c.from?.sha256 ?? '-'}:${c.to.sha256}`;
    let p = this.#diffs.get(key);
    if (!p) {
      p = (async () => this.#o.changed(c.from ? await this.#o.image(c.from) : undefined, await this.#o.image(c.to)))();
      p.catch(() => this.#diffs.delete(key));
      this.#diffs.set(key, p);
      if (this.#diffs.size > 64) this.#diffs.delete(this.#diffs.keys().next().value!);
    }
    return p;
  }

  /** The report for one instance; never throws (errors are in `error`). */
  async report(agent: HostAgent, instanceId: string, changes: RoleChange[]): Promise<ShadowReport> {
    try {
      const listing = await agent.instanceLayerFiles(instanceId, this.#o.limit);
      const mine = new Map(listing.entries.map((e) => [e.path, e.kind]));
      const opaque = listing.entries.filter((e) => e.kind === 'opaque-dir').map((e) => e.path);
      const out = new Map<string, ShadowedFile>();
      for (const c of changes) {
        for (const [rel, change] of await this.#diff(c)) {
          const path = `/${rel}`;
          const kind = mine.get(path);
          // A directory in both merges in overlayfs: it hides nothing itself (its files are checked on their own).
          if (kind !== undefined && kind !== 'dir') {
            out.set(path, { path, kind, change, role: c.role });
            continue;
          }
          const via = opaque.find((o) => path.startsWith(`${o}/`));
          if (via) out.set(path, { path, kind: 'opaque-dir', change, role: c.role, via });
        }
      }
      const shadowed = [...out.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
      return { shadowed, ...(listing.truncated ? { truncated: true } : {}) };
    } catch (e) {
      return { shadowed: [], error: toStormError(e).message };
    }
  }
}
