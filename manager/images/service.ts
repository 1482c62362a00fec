/**
 * The manager's images: pull an appliance's layers from its channel into the
 * content-addressed store, list what is stored and who uses it, collect what
 * nothing references. Instances (issue 6) call `ensure` and `addHolder`.
 */
import { toStormError } from '../../lib/errors.ts';
import type { ChannelService, CatalogEntry } from '../channels/catalog.ts';
import type { EventBus } from '../events.ts';
import { bytes as fmtBytes } from '../../lib/format.ts';
import { Downloader, type BlobSource, type DownloadEvent, type DownloadResult } from './download.ts';
import { ImageStore } from './store.ts';

export interface ImageRow {
  sha256: string;
  size: number;
  storedAt: string;
  /** Appliances in the catalog (CHANNEL/ID@VERSION role) and other holders using it. */
  usedBy: string[];
}

export interface PullResult {
  appliance: string;
  files: (DownloadResult & { what: string })[];
}

export interface GcResult {
  removed: { sha256: string; size: number }[];
  freed: number;
  kept: number;
  partialsRemoved: number;
  dryRun: boolean;
}

/** Something besides the catalog that keeps images alive (e.g. instances): digest → holder label. */
export type Holder = () => Promise<Map<string, string>>;

export class ImageService {
  readonly store: ImageStore;
  readonly downloader: Downloader;
  readonly #channels: ChannelService;
  readonly #bus: EventBus;
  readonly #holders: Holder[] = [];

  constructor(opts: { root: string; channels: ChannelService; bus: EventBus; parallel: number; reserveBytes: number; idleMs?: number }) {
    this.store = new ImageStore(opts.root);
    this.#channels = opts.channels;
    this.#bus = opts.bus;
    this.downloader = new Downloader({
      store: this.store,
      parallel: opts.parallel,
      reserveBytes: opts.reserveBytes,
      ...(opts.idleMs ? { idleMs: opts.idleMs } : {}),
      onEvent: (e) => this.#emit(e),
    });
  }

  addHolder(h: Holder): void {
    this.#holders.push(h);
  }

  #emit(e: DownloadEvent): void {
    const object = `image/${e.sha256.slice(0, 12)}`;
    const data = { ...e } as Record<string, unknown>;
    switch (e.kind) {
      case 'started':
        this.#bus.emit({ kind: 'image.download', object, data, message: `downloading ${e.what} (${fmtBytes(e.size)}${e.from ? `, resuming at ${fmtBytes(e.from)}` : ''})` });
        break;
      case 'progress':
        this.#bus.emit({ kind: 'image.progress', object, data, message: `${e.what}: ${fmtBytes(e.bytes)} of ${fmtBytes(e.size)} (${Math.floor((e.bytes / e.size) * 100)}%)` });
        break;
      case 'retry':
        this.#bus.emit({ kind: 'image.retry', object, data, level: 'warn', message: `${e.what}: ${e.reason}; retrying from ${fmtBytes(e.bytes)}` });
        break;
      case 'stored':
        this.#bus.emit({ kind: 'image.stored', object, data, message: `${e.what} stored (${fmtBytes(e.size)}, sha256 ${e.sha256.slice(0, 12)})` });
        break;
      case 'failed':
        this.#bus.emit({ kind: 'image.failed', object, data, level: 'error', message: `${e.what}: download failed: ${e.error}` });
        break;
    }
  }

  /** Make sure one file is stored (the call instances use). */
  ensure(src: BlobSource): Promise<DownloadResult> {
    return this.downloader.ensure(src);
  }

  /** Download every file of an appliance; all downloads settle before an error is thrown. */
  async pull(ref: string, channel?: string): Promise<PullResult> {
    const entry = await this.#channels.find(ref, channel);
    return this.pullEntry(entry);
  }

  async pullEntry(entry: CatalogEntry): Promise<PullResult> {
    const name = `${entry.channel}/${entry.id}@${entry.version}`;
    const settled = await Promise.allSettled(entry.blobs.map((b) => this.downloader.ensure({ sha256: b.sha256, size: b.size, urls: b.urls, what: `${entry.id}@${entry.version} ${b.what}` })));
    const failed = settled.find((s) => s.status === 'rejected') as PromiseRejectedResult | undefined;
    if (failed) {
      const err = toStormError(failed.reason);
      this.#bus.emit({ kind: 'appliance.pull_failed', object: `appliance/${name}`, level: 'error', message: `pull of ${name} failed: ${err.message}` });
      throw err;
    }
    const files = settled.map((s, i) => ({ ...(s as PromiseFulfilledResult<DownloadResult>).value, what: entry.blobs[i]!.what }));
    const received = files.reduce((n, f) => n + f.received, 0);
    this.#bus.emit({ kind: 'appliance.pulled', object: `appliance/${name}`, message: `${name} is stored (${files.length} files, ${fmtBytes(received)} downloaded)` });
    return { appliance: name, files };
  }

  /** Digest → users: every appliance in the catalog, and every holder. */
  async references(): Promise<Map<string, string[]>> {
    const refs = new Map<string, string[]>();
    const add = (sha: string, who: string) => refs.set(sha, [...(refs.get(sha) ?? []), who]);
    for (const e of await this.#channels.appliances()) for (const b of e.blobs) add(b.sha256, `${e.channel}/${e.id}@${e.version} ${b.what.split(' ')[0]}`);
    for (const h of this.#holders) for (const [sha, who] of await h()) add(sha, who);
    return refs;
  }

  async list(): Promise<ImageRow[]> {
    const refs = await this.references();
    return (await this.store.list()).map((i) => ({ ...i, usedBy: refs.get(i.sha256) ?? [] }));
  }

  /** Remove stored images nothing references, and partial downloads not in progress. */
  async gc(opts: { dryRun?: boolean } = {}): Promise<GcResult> {
    const refs = await this.references();
    const active = new Set(this.downloader.active());
    const out: GcResult = { removed: [], freed: 0, kept: 0, partialsRemoved: 0, dryRun: Boolean(opts.dryRun) };
    for (const img of await this.store.list()) {
      if (refs.has(img.sha256) || active.has(img.sha256)) {
        out.kept++;
        continue;
      }
      if (!opts.dryRun) await this.store.remove(img.sha256);
      out.removed.push({ sha256: img.sha256, size: img.size });
      out.freed += img.size;
    }
    for (const p of await this.store.listPartials()) {
      if (active.has(p.sha256)) continue;
      if (!opts.dryRun) await this.store.removePartial(p.sha256);
      out.partialsRemoved++;
      out.freed += p.bytes;
    }
    if (!opts.dryRun && (out.removed.length || out.partialsRemoved)) {
      this.#bus.emit({ kind: 'image.gc', object: 'images', message: `removed ${out.removed.length} unreferenced images and ${out.partialsRemoved} partial downloads (${fmtBytes(out.freed)} freed)` });
    }
    return out;
  }
}
