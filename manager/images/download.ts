/**
 * Layer downloads into the image store: hashed while streaming, resumed with
 * Range after a cut, spread over mirrors with fail-over, coalesced per digest,
 * bounded in parallelism, and checked for free disk before they start.
 * Nothing enters the store unless its SHA-256 matched.
 */
import { bytes as fmtBytes } from '../../lib/format.ts';
import { writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { invalid, notFound, StormError, toStormError, unavailable } from '../../lib/errors.ts';
import { openStream, type StreamResponse } from '../channels/http-stream.ts';
import type { ImageStore } from './store.ts';
import { streamHash, type StreamHash } from './stream-hash.ts';

/** One file to fetch: its digest, size, and where (the channel's href first, then mirrors). */
export interface BlobSource {
  sha256: string;
  size: number;
  urls: string[];
  /** For messages: "substrate jeos 1.0", "kernel". */
  what?: string;
}

export interface DownloadResult {
  sha256: string;
  size: number;
  path: string;
  /** Body bytes received over the network for this call (0 when already stored). */
  received: number;
  /** Bytes already on disk (a partial from an earlier cut) when this download started. */
  resumedFrom: number;
  /** Already in the store: nothing was fetched. */
  cached: boolean;
}

export type DownloadEvent =
  | { kind: 'started'; sha256: string; what: string; size: number; from: number }
  | { kind: 'progress'; sha256: string; what: string; bytes: number; size: number; url: string }
  | { kind: 'retry'; sha256: string; what: string; bytes: number; url: string; reason: string }
  | { kind: 'stored'; sha256: string; what: string; size: number; received: number }
  | { kind: 'failed'; sha256: string; what: string; error: string };

export interface DownloaderOptions {
  store: ImageStore;
  /** Downloads running at once; more wait their turn. */
  parallel?: number;
  /** Free disk that must remain after a download. */
  reserveBytes?: number;
  idleMs?: number;
  /** Attempts that make no progress before giving up. */
  maxStalls?: number;
  onEvent?: (e: DownloadEvent) => void;
  /** Delay before retrying after a failure with no progress. */
  backoffMs?: (attempt: number) => number;
}

/** A failure that rules out this mirror (404, lies about sizes) rather than one worth retrying. */
class MirrorError extends Error {
  constructor(readonly err: StormError) {
    super(err.message);
  }
}

export class Downloader {
  readonly #store: ImageStore;
  readonly #parallel: number;
  readonly #reserve: number;
  readonly #idleMs: number;
  readonly #maxStalls: number;
  readonly #onEvent: (e: DownloadEvent) => void;
  readonly #backoff: (attempt: number) => number;
  readonly #inflight = new Map<string, Promise<DownloadResult>>();
  readonly #queue: (() => void)[] = [];
  #running = 0;
  #rr = 0;

  constructor(opts: DownloaderOptions) {
    this.#store = opts.store;
    this.#parallel = Math.max(1, opts.parallel ?? 3);
    this.#reserve = opts.reserveBytes ?? 256 * 1024 * 1024;
    this.#idleMs = opts.idleMs ?? 30_000;
    this.#maxStalls = opts.maxStalls ?? 4;
    this.#onEvent = opts.onEvent ?? (() => {});
    this.#backoff = opts.backoffMs ?? ((a) => Math.min(2000, 100 * 2 ** a));
  }

  /** Downloads of a digest in progress (for status views). */
  active(): string[] {
    return [...this.#inflight.keys()];
  }

  /**
   * Make sure `src` is in the store. Concurrent calls for one digest share
   * one download; the result says whether this call found it already stored.
   */
  ensure(src: BlobSource): Promise<DownloadResult> {
    const cur = this.#inflight.get(src.sha256);
    if (cur) return cur;
    const p = this.#slot(() => this.#download(src)).finally(() => this.#inflight.delete(src.sha256));
    this.#inflight.set(src.sha256, p);
    return p;
  }

  async #slot<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#parallel) await new Promise<void>((r) => this.#queue.push(r));
    this.#running++;
    try {
      return await fn();
    } finally {
      this.#running--;
      this.#queue.shift()?.();
    }
  }

  async #download(src: BlobSource): Promise<DownloadResult> {
    const what = src.what ?? src.sha256.slice(0, 12);
    const final = this.#store.path(src.sha256);
    const have = await this.#store.get(src.sha256);
    if (have) return { sha256: src.sha256, size: have.size, path: final, received: 0, resumedFrom: 0, cached: true };
    if (!src.urls.length) throw invalid(`${what}: no URL to download it from`);
    if (!Number.isSafeInteger(src.size) || src.size <= 0) throw invalid(`${what}: declared size ${src.size} is not a positive integer`);

    const part = this.#store.partialPath(src.sha256);
    const fh = await open(part, 'a+').then(async (h) => (await h.close(), open(part, 'r+')));
    let ok = false;
    let hash: StreamHash | undefined;
    try {
      let pos = (await fh.stat()).size;
      if (pos > src.size) {
        await fh.truncate(0);
        pos = 0;
      }
      const free = await this.#store.freeBytes();
      const need = src.size - pos;
      if (free - need < this.#reserve) {
        throw unavailable(`not enough free disk for ${what}: it needs ${fmtBytes(need)} more and ${fmtBytes(free)} is free on ${this.#store.root} (keeping ${fmtBytes(this.#reserve)} in reserve)`, {
          hint: 'free some space (storm image gc removes layers nothing uses) and retry',
        });
      }
      hash = streamHash(src.size, part);
      if (pos > 0) await hash.prefix(fh, pos);
      const resumedFrom = pos;
      this.#onEvent({ kind: 'started', sha256: src.sha256, what, size: src.size, from: pos });

      let received = 0;
      let stalls = 0;
      let attempts = 0;
      let lastErr: StormError | undefined;
      const ruledOut = new Set<string>();
      const start = this.#rr++;
      // At most one progress event a second and per percent: a slow download must not flood the event ring.
      let lastEmit = 0;
      let lastPct = -1;
      while (pos < src.size) {
        const candidates = src.urls.filter((u) => !ruledOut.has(u));
        if (!candidates.length) throw lastErr ?? unavailable(`${what}: no usable source`);
        if (stalls >= this.#maxStalls || attempts >= 1000) {
          throw unavailable(`${what}: download failed after ${attempts} attempts with ${fmtBytes(pos)} of ${fmtBytes(src.size)}: ${lastErr?.message ?? 'no progress'}`, {
            hint: 'the partial download is kept; retry later to resume it',
          });
        }
        const url = candidates[(start + attempts) % candidates.length]!;
        attempts++;
        const before = pos;
        try {
          const r = await this.#fetchInto(fh, url, pos, src.size, hash, (p) => {
            const now = Date.now();
            const pct = Math.floor((p / src.size) * 100);
            if (now - lastEmit >= 1000 && pct > lastPct) {
              lastEmit = now;
              lastPct = pct;
              this.#onEvent({ kind: 'progress', sha256: src.sha256, what, bytes: p, size: src.size, url });
            }
          });
          received += r.received;
          pos = r.pos;
          if (pos < src.size) throw unavailable(`${url}: the body ended after ${pos} of ${src.size} bytes (truncated)`);
        } catch (e) {
          const w = e as { pos?: number; received?: number };
          if (typeof w.pos === 'number') pos = w.pos;
          if (typeof w.received === 'number') received += w.received;
          if (e instanceof DiskError) throw e.err;
          const err = e instanceof MirrorError ? e.err : e instanceof FetchFailure ? e.err : toStormError(e);
          lastErr = err;
          if (e instanceof MirrorError || (e instanceof FetchFailure && e.mirror)) ruledOut.add(url);
          if (pos > before) stalls = 0;
          else stalls++;
          this.#onEvent({ kind: 'retry', sha256: src.sha256, what, bytes: pos, url, reason: err.message });
          if (pos <= before) await sleep(this.#backoff(stalls));
        }
      }
      const digest = await hash.digest();
      if (digest !== src.sha256) {
        await fh.close().catch(() => {});
        await this.#store.removePartial(src.sha256);
        throw invalid(`${what}: digest mismatch: expected sha256 ${src.sha256}, got ${digest} (from ${src.urls[0]})`, {
          hint: 'the image server holds a different file than the channel announced; nothing was stored',
        });
      }
      await fh.close();
      // Durable without waiting: see ImageStore.enter (a marker first, the flush in the background).
      await this.#store.enter(src.sha256);
      ok = true;
      this.#onEvent({ kind: 'stored', sha256: src.sha256, what, size: src.size, received });
      return { sha256: src.sha256, size: src.size, path: final, received, resumedFrom, cached: false };
    } catch (e) {
      const err = toStormError(e);
      this.#onEvent({ kind: 'failed', sha256: src.sha256, what, error: err.message });
      throw err;
    } finally {
      hash?.close();
      if (!ok) await fh.close().catch(() => {});
    }
  }

  /** One HTTP exchange appending to the partial file from `pos`. */
  async #fetchInto(fh: FileHandle, url: string, pos: number, size: number, hash: StreamHash, onBytes: (p: number) => void): Promise<{ pos: number; received: number; restarted: boolean }> {
    let restarted = false;
    const slot = hash.slot?.bind(hash);
    const res = await openStream(url, { headers: pos > 0 ? { Range: `bytes=${pos}-` } : {}, idleMs: this.#idleMs, ...(slot ? { slots: slot } : {}) }).catch((e) => {
      throw new FetchFailure(toStormError(e), e instanceof StormError && e.code === 'invalid');
    });
    const { status, url: final } = res;
    const cl = res.headers['content-length'] === undefined ? undefined : Number(res.headers['content-length']);
    if (status === 206) {
      const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? ''));
      if (!cr || Number(cr[1]) !== pos) {
        res.destroy();
        throw new MirrorError(invalid(`${final}: asked for bytes from ${pos}, the server answered Content-Range "${res.headers['content-range'] ?? ''}"`));
      }
      if (cr[3] !== '*' && Number(cr[3]) !== size) {
        res.destroy();
        throw new MirrorError(invalid(`${final}: the server says the file is ${cr[3]} bytes, the appliance declares ${size}`));
      }
      if (cl !== undefined && cl !== Number(cr[2]) - Number(cr[1]) + 1) {
        res.destroy();
        throw new MirrorError(invalid(`${final}: Content-Length ${cl} does not match Content-Range ${res.headers['content-range']}`));
      }
    } else if (status === 200) {
      if (cl !== undefined && cl !== size) {
        res.destroy();
        throw new MirrorError(invalid(`${final}: Content-Length ${cl} does not match the declared size ${size}`, { hint: 'the server is serving a different file than the channel announced' }));
      }
      if (pos > 0) {
        // The server ignored Range: start over from byte 0, never append a whole body to a partial.
        await fh.truncate(0);
        hash.reset();
        pos = 0;
        restarted = true;
      }
    } else {
      res.destroy();
      if (status === 416) {
        await fh.truncate(0);
        hash.reset();
        throw Object.assign(new FetchFailure(unavailable(`${final}: HTTP 416 for bytes from ${pos}; starting over`), false), { pos: 0 });
      }
      if (status === 404 || status === 410) throw new MirrorError(notFound(`${final}: HTTP ${status}`));
      throw new FetchFailure(unavailable(`${final}: HTTP ${status}`), status >= 400 && status < 500);
    }
    const from = pos;
    const rx = await receive(res, fh, pos, hash, size, final, onBytes);
    if (rx.error) {
      await fh.truncate(rx.pos);
      const e = rx.error;
      const err = e instanceof MirrorError || e instanceof DiskError ? e : new FetchFailure(e instanceof StormError ? e : unavailable(`${final}: the connection closed after ${rx.pos} of ${size} bytes (truncated)`), false);
      throw Object.assign(err, { pos: rx.pos, received: rx.pos - from });
    }
    return { pos: rx.pos, received: rx.pos - from, restarted };
  }
}

/**
 * Stream a body into the partial file at `pos`, hashing each slice as it is
 * written. Writes are synchronous: a slice is one socket read (up to 256 KiB,
 * in a buffer the next read reuses) and lands in the page cache; measured
 * here the thread-pool round trip per chunk cost a third more CPU than the
 * write itself. Resolves (never rejects) with how far the file got, so hash
 * and file always agree and a resume loses nothing; a failed write is a
 * DiskError, fatal for the download.
 */
async function receive(res: StreamResponse, fh: FileHandle, start: number, hash: StreamHash, limit: number, url: string, onBytes: (pos: number) => void): Promise<{ pos: number; error?: Error }> {
  let pos = start;
  let failure: Error | undefined;
  const end = await res.pipe((c) => {
    if (pos + c.length > limit) {
      failure = new MirrorError(invalid(`${url}: the server sent more than the declared ${limit} bytes`));
      return false;
    }
    try {
      for (let off = 0; off < c.length; ) off += writeSync(fh.fd, c, off, c.length - off, pos + off);
    } catch (e) {
      failure = new DiskError(unavailable(`cannot write the partial download ${url}: ${(e as Error).message}`, { hint: 'check free space and the state directory' }));
      return false;
    }
    hash.wrote(c);
    pos += c.length;
    onBytes(pos);
    // A hash that is a ring behind pauses reading (the thread is not blocked).
    return hash.room?.() ?? true;
  });
  const error = failure ?? end.error ?? (end.complete ? undefined : new Error('connection closed'));
  return error ? { pos, error } : { pos };
}

/** The local disk failed: no other source will help. */
class DiskError extends Error {
  constructor(readonly err: StormError) {
    super(err.message);
  }
}

class FetchFailure extends Error {
  constructor(readonly err: StormError, readonly mirror: boolean) {
    super(err.message);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


