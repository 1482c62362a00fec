/**
 * The hypervisor's content-addressed layer cache. A layer is a file named by
 * its SHA-256 (`<dir>/<sha256>`, mode 0444). ensure() streams it over
 * HTTP(S) into `<dir>/.tmp/`, hashing while writing, fsyncs, and renames it
 * into place only when digest (and size, when given) match: a mismatch,
 * truncation or error leaves nothing behind. Concurrent ensure() calls for one
 * digest share one download.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StormError, invalid, unreachable } from '../../lib/errors.ts';
import { openGet, type FetchOptions } from './fetch.ts';

export const SHA256_RE = /^[0-9a-f]{64}$/;
const TMP = '.tmp';

export interface LayerInfo {
  sha256: string;
  size: number;
  path: string;
}

export interface Progress {
  sha256: string;
  received: number;
  /** Expected size when known (given or Content-Length). */
  total: number | undefined;
}

export interface EnsureResult extends LayerInfo {
  /** False when the layer was already cached (or another caller fetched it). */
  downloaded: boolean;
}

export interface LayerCacheOptions extends FetchOptions {
  /** Refuse layers larger than this even when no size is given (default 1 TiB). */
  maxBytes?: number;
  /** Least interval between progress calls. */
  progressEveryMs?: number;
}

export function checkDigest(sha256: unknown): string {
  if (typeof sha256 !== 'string' || !SHA256_RE.test(sha256)) throw invalid(`${JSON.stringify(sha256)} is not a SHA-256 digest (64 lower-case hex characters)`);
  return sha256;
}

interface Inflight {
  promise: Promise<EnsureResult>;
  listeners: Set<(p: Progress) => void>;
  /** The latest progress, for callers that poll (RPC) instead of listening. */
  last: Progress;
}

export class LayerCache {
  readonly dir: string;
  readonly #opts: LayerCacheOptions;
  readonly #inflight = new Map<string, Inflight>();
  #ready: Promise<void> | undefined;

  constructor(dir: string, opts: LayerCacheOptions = {}) {
    this.dir = dir;
    this.#opts = opts;
  }

  /** Create the cache directories (0755: libvirt-qemu must traverse them) and drop leftovers of a crash. */
  init(): Promise<void> {
    if (!this.#ready) {
      this.#ready = (async () => {
        await mkdir(join(this.dir, TMP), { recursive: true, mode: 0o755 });
        await chmod(this.dir, 0o755);
        for (const f of await readdir(join(this.dir, TMP))) await rm(join(this.dir, TMP, f), { force: true });
      })();
    }
    return this.#ready;
  }

  path(sha256: string): string {
    return join(this.dir, checkDigest(sha256));
  }

  async get(sha256: string): Promise<LayerInfo | undefined> {
    const p = this.path(sha256);
    try {
      const st = await stat(p);
      return { sha256, size: st.size, path: p };
    } catch {
      return undefined;
    }
  }

  /**
   * Make sure the layer with this digest is in the cache, fetching it from
   * `url` if not. Throws `invalid` on a digest or size mismatch (nothing kept),
   * `not_found`/`unreachable`/`timeout` when the transfer fails.
   */
  async ensure(url: string, sha256: string, opts: { size?: number; onProgress?: (p: Progress) => void } = {}): Promise<EnsureResult> {
    checkDigest(sha256);
    if (opts.size !== undefined && (!Number.isSafeInteger(opts.size) || opts.size < 0)) throw invalid(`size must be a non-negative integer, got ${opts.size}`);
    // Join a download in flight before any await, so concurrent callers coalesce.
    const cur = this.#inflight.get(sha256);
    if (cur) {
      if (opts.onProgress) cur.listeners.add(opts.onProgress);
      const r = await cur.promise;
      return { ...r, downloaded: false };
    }
    const entry: Inflight = { promise: undefined as unknown as Promise<EnsureResult>, listeners: new Set(), last: { sha256, received: 0, total: opts.size } };
    entry.listeners.add((p) => (entry.last = p));
    if (opts.onProgress) entry.listeners.add(opts.onProgress);
    const listeners = entry.listeners;
    const promise = (async (): Promise<EnsureResult> => {
      await this.init();
      const have = await this.get(sha256);
      if (have) {
        if (opts.size !== undefined && have.size !== opts.size) throw invalid(`cached layer ${sha256} has ${have.size} bytes, caller expects ${opts.size}`);
        return { ...have, downloaded: false };
      }
      return this.#download(url, sha256, opts.size, listeners);
    })().finally(() => this.#inflight.delete(sha256));
    entry.promise = promise;
    this.#inflight.set(sha256, entry);
    return promise;
  }

  /** Downloads in progress and how far each has got (for progress gauges polled over RPC). */
  downloads(): Progress[] {
    return [...this.#inflight.values()].map((e) => ({ ...e.last }));
  }

  async #download(url: string, sha256: string, size: number | undefined, listeners: Set<(p: Progress) => void>): Promise<EnsureResult> {
    const opened = await openGet(url, this.#opts);
    const max = size ?? this.#opts.maxBytes ?? 2 ** 40;
    if (opened.length !== undefined && opened.length > max) {
      opened.abort();
      throw invalid(`${url} offers ${opened.length} bytes, expected ${size !== undefined ? size : `at most ${max}`}: refused`, { details: { url, sha256 } });
    }
    const total = size ?? opened.length;
    const tmp = join(this.dir, TMP, `${sha256}.${randomBytes(6).toString('hex')}.part`);
    const hash = createHash('sha256');
    let received = 0;
    let lastReport = 0;
    const every = this.#opts.progressEveryMs ?? 100;
    const report = (force: boolean) => {
      const now = Date.now();
      if (!force && now - lastReport < every) return;
      lastReport = now;
      for (const l of listeners) {
        try {
          l({ sha256, received, total });
        } catch {
          /* a listener's failure is not the download's */
        }
      }
    };
    const meter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        received += chunk.length;
        if (received > max) return cb(invalid(`${url} sent more than ${max} bytes for layer ${sha256}: refused`, { details: { url, sha256 } }));
        hash.update(chunk);
        report(false);
        cb(null, chunk);
      },
    });
    try {
      try {
        await pipeline(opened.res, meter, createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
      } catch (e) {
        opened.abort();
        if (e instanceof StormError) throw e;
        if (opened.timedOut()) throw new StormError('timeout', `download of layer ${sha256} from ${opened.url} stalled after ${received} bytes`, { details: { url, sha256, received } });
        throw unreachable(`download of layer ${sha256} from ${opened.url} was interrupted after ${received} bytes: ${(e as Error).message}`, { details: { url, sha256, received }, cause: e });
      }
      if (opened.length !== undefined && received !== opened.length) {
        throw unreachable(`download of layer ${sha256} from ${opened.url} is truncated: ${received} of ${opened.length} bytes`, { details: { url, sha256, received, expected: opened.length } });
      }
      if (size !== undefined && received !== size) {
        throw invalid(`layer ${sha256} from ${opened.url} has ${received} bytes, expected ${size}: refused`, { details: { url, sha256, received, expected: size } });
      }
      const got = hash.digest('hex');
      if (got !== sha256) {
        throw invalid(`layer from ${opened.url} has SHA-256 ${got}, expected ${sha256}: refused, nothing cached`, { details: { url, expected: sha256, actual: got } });
      }
      // Durable before it gets its name: fsync the data, rename, fsync the directory.
      const fh = await open(tmp, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      // Read-only for everyone: libvirt attaches it shared and read-only without relabelling it.
      await chmod(tmp, 0o444);
      const final = join(this.dir, sha256);
      await rename(tmp, final);
      await syncDir(this.dir);
      report(true);
      return { sha256, size: received, path: final, downloaded: true };
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
  }

  /** Every cached layer. */
  /** The digests held, from one directory read (provisioning and placement ask this often). */
  async digests(): Promise<string[]> {
    await this.init();
    return (await readdir(this.dir, { withFileTypes: true }))
      .filter((e) => e.isFile() && SHA256_RE.test(e.name))
      .map((e) => e.name)
      .sort();
  }

  async list(): Promise<LayerInfo[]> {
    await this.init();
    const out: LayerInfo[] = [];
    for (const f of (await readdir(this.dir)).sort()) {
      if (!SHA256_RE.test(f)) continue;
      const st = await stat(join(this.dir, f)).catch(() => undefined);
      if (st?.isFile()) out.push({ sha256: f, size: st.size, path: join(this.dir, f) });
    }
    return out;
  }

  /** Remove every cached layer whose digest is not in `referenced` (and not being fetched). */
  async removeUnreferenced(referenced: Iterable<string>): Promise<{ removed: string[]; freedBytes: number }> {
    const keep = new Set(referenced);
    const removed: string[] = [];
    let freedBytes = 0;
    for (const l of await this.list()) {
      if (keep.has(l.sha256) || this.#inflight.has(l.sha256)) continue;
      await unlink(l.path);
      removed.push(l.sha256);
      freedBytes += l.size;
    }
    if (removed.length) await syncDir(this.dir);
    return { removed, freedBytes };
  }

  /** Re-hash a cached layer; a file that no longer matches its name is removed (returns false). */
  async verify(sha256: string): Promise<boolean> {
    const p = this.path(sha256);
    const h = createHash('sha256');
    const fh = await open(p, 'r');
    try {
      for await (const chunk of fh.createReadStream({ autoClose: false })) h.update(chunk as Buffer);
    } finally {
      await fh.close();
    }
    if (h.digest('hex') === sha256) return true;
    await unlink(p);
    return false;
  }
}

async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
