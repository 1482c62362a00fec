/**
 * Channel subscriptions and the catalog they feed. A refresh fetches the feed
 * (and its signature when a key is trusted), every appliance XML it lists
 * (checked against the digest the feed gives), resolves every href inside
 * the channel, and only then replaces the channel's catalog in one atomic
 * batch. Any failure keeps the last good catalog and records the error.
 */
import { createHash } from 'node:crypto';
import { conflict, invalid, notFound, toStormError, unauthorized, type ErrorData } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import { OperationLocks } from '../../lib/operation-lock.ts';
import type { EventBus } from '../events.ts';
import type { Collection, Store } from '../store/store.ts';
import { applianceBlobs, checkItemMatches, parseAppliance, parseFeed, type Appliance, type FeedItem } from './format.ts';
import { channelBase, channelHref, fetchSmall, httpUrl } from './http.ts';
import { normaliseTrustedKey, SIGNATURE_SUFFIX, verifyFeed } from './sign.ts';
import { ID_RE, MAX_APPLIANCE_BYTES, MAX_FEED_BYTES } from './xml.ts';

export interface ChannelRecord {
  name: string;
  url: string;
  trust?: { pem: string; fingerprint: string };
  addedAt: string;
  title: string;
  description: string;
  lastAttempt?: string;
  lastSuccess?: string;
  /** Set while the latest refresh failed; the catalog is the last good one. */
  lastError?: ErrorData & { at: string };
  feedSha256?: string;
  appliances: number;
  /** The feed's signature verified against the trusted key at the last good refresh. */
  verified: boolean;
}

/** A downloadable file of an appliance, with its URLs resolved (channel href first, then mirrors). */
export interface CatalogBlob {
  sha256: string;
  size: number;
  what: string;
  urls: string[];
}

export interface CatalogEntry {
  channel: string;
  id: string;
  version: string;
  title: string;
  description: string;
  pubDate: string;
  xmlUrl: string;
  xmlSha256: string;
  kind: 'layered' | 'traditional';
  appliance: Appliance;
  blobs: CatalogBlob[];
}

export interface ChannelServiceOptions {
  store: Store;
  bus: EventBus;
  log: Logger;
  /** Seconds between background refreshes; 0 turns them off. */
  refreshSeconds: number;
}

/** Order versions the way people read them: 1.10 after 1.9. */
export function compareVersions(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true, sensitivity: 'base' });
}

export class ChannelService {
  readonly #channels: Collection<ChannelRecord>;
  readonly #catalog: Collection<CatalogEntry>;
  readonly #store: Store;
  readonly #bus: EventBus;
  readonly #log: Logger;
  readonly #locks = new OperationLocks();
  readonly #refreshSeconds: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: ChannelServiceOptions) {
    this.#store = opts.store;
    this.#channels = opts.store.collection<ChannelRecord>('channels');
    this.#catalog = opts.store.collection<CatalogEntry>('catalog');
    this.#bus = opts.bus;
    this.#log = opts.log;
    this.#refreshSeconds = opts.refreshSeconds;
  }

  /** Start background refreshes. */
  start(): void {
    if (this.#refreshSeconds > 0) {
      this.#timer = setInterval(() => void this.refreshAll().catch(() => {}), this.#refreshSeconds * 1000);
      this.#timer.unref();
    }
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  list(): Promise<ChannelRecord[]> {
    return this.#channels.values();
  }

  get(name: string): Promise<ChannelRecord> {
    return this.#channels.require(name, 'channel');
  }

  /** Subscribe to a channel; the first refresh must succeed or nothing is kept. */
  async add(p: { url: string; name?: string; trust?: string }): Promise<ChannelRecord> {
    const url = httpUrl(p.url, 'channel URL');
    if (url.pathname.endsWith('/')) url.pathname += 'feed.xml';
    const all = await this.list();
    const dup = all.find((c) => c.url === url.href);
    if (dup) throw conflict(`channel ${url.href} is already subscribed as "${dup.name}"`);
    let name = p.name;
    if (name !== undefined) {
      if (!ID_RE.test(name)) throw invalid(`channel name "${name}": expected lower-case letters, digits, . _ - (at most 63)`);
      if (all.some((c) => c.name === name)) throw conflict(`a channel named "${name}" already exists`, { hint: 'pick another --name, or remove the old one' });
    } else {
      const stem = `${url.hostname}${url.port ? '-' + url.port : ''}`.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 56) || 'channel';
      name = stem;
      for (let i = 2; all.some((c) => c.name === name); i++) name = `${stem}-${i}`;
    }
    const trust = p.trust ? normaliseTrustedKey(p.trust, `--trust key for ${url.href}`) : undefined;
    const rec: ChannelRecord = { name, url: url.href, addedAt: new Date().toISOString(), title: '', description: '', appliances: 0, verified: false, ...(trust ? { trust } : {}) };
    return this.#locks.run(`channel ${name}`, 'add', async () => {
      const fresh = await this.#fetch(rec, []);
      await this.#commit(rec, fresh);
      this.#bus.emit({ kind: 'channel.added', object: `channel/${name}`, message: `subscribed to ${url.href} (${fresh.entries.length} appliance versions${trust ? ', signature verified' : ', unsigned'})` });
      return this.get(name);
    });
  }

  async remove(name: string): Promise<{ name: string; removed: number }> {
    await this.get(name);
    return this.#locks.run(`channel ${name}`, 'remove', async () => {
      const entries = await this.#catalog.list({ prefix: name + '/' });
      const b = this.#store.batch();
      for (const e of entries) b.del(this.#catalog, e.id);
      b.del(this.#channels, name);
      await b.write();
      this.#bus.emit({ kind: 'channel.removed', object: `channel/${name}`, message: `unsubscribed from channel ${name} (${entries.length} appliance versions dropped from the catalog)` });
      return { name, removed: entries.length };
    });
  }

  /** Refresh one channel now; throws its error (the last good catalog stays). */
  async refresh(name: string): Promise<ChannelRecord> {
    const rec = await this.get(name);
    return this.#locks.run(`channel ${name}`, 'refresh', async () => {
      const old = await this.#catalog.values({ prefix: name + '/' });
      try {
        const fresh = await this.#fetch(rec, old);
        await this.#commit(rec, fresh);
        this.#bus.emit({ kind: 'channel.refreshed', object: `channel/${name}`, message: `channel ${name}: ${fresh.entries.length} appliance versions${fresh.unchanged ? ' (unchanged)' : ''}` });
      } catch (e) {
        const err = toStormError(e);
        const now = new Date().toISOString();
        await this.#channels.put(name, { ...rec, lastAttempt: now, lastError: { ...err.toJSON(), at: now } });
        this.#bus.emit({ kind: 'channel.refresh_failed', object: `channel/${name}`, level: 'error', message: `channel ${name}: refresh failed, keeping the last good catalog: ${err.message}` });
        this.#log.warn('channel refresh failed', { channel: name, error: err.message });
        throw err;
      }
      return this.get(name);
    });
  }

  /** Refresh every channel; failures are recorded per channel, not thrown. */
  async refreshAll(): Promise<ChannelRecord[]> {
    for (const c of await this.list()) await this.refresh(c.name).catch(() => {});
    return this.list();
  }

  async appliances(channel?: string): Promise<CatalogEntry[]> {
    const all = await this.#catalog.values(channel ? { prefix: channel + '/' } : {});
    return all.sort((a, b) => a.channel.localeCompare(b.channel) || a.id.localeCompare(b.id) || compareVersions(a.version, b.version));
  }

  /** Find an appliance by `ID`, `ID@VERSION` or `CHANNEL/ID[@VERSION]`; no version means the newest. */
  async find(ref: string, channel?: string): Promise<CatalogEntry> {
    const m = /^(?:([^/]+)\/)?([^@/]+)(?:@(.+))?$/.exec(ref);
    if (!m) throw invalid(`appliance "${ref}": expected ID, ID@VERSION or CHANNEL/ID@VERSION`);
    const ch = m[1] ?? channel;
    const [, , id, version] = m;
    let hits = (await this.appliances(ch)).filter((e) => e.id === id && (version === undefined || e.version === version));
    if (!hits.length) throw notFound(`appliance "${ref}" not found in the catalog${ch ? ` of channel ${ch}` : ''}`, { hint: 'run storm appliance list (and storm channel refresh if it was just published)' });
    const chans = [...new Set(hits.map((h) => h.channel))];
    if (chans.length > 1) throw conflict(`appliance ${ref} is offered by several channels (${chans.join(', ')})`, { hint: `name one: ${chans[0]}/${ref}` });
    hits = hits.sort((a, b) => compareVersions(a.version, b.version) || a.pubDate.localeCompare(b.pubDate));
    return hits[hits.length - 1]!;
  }

  async #commit(rec: ChannelRecord, fresh: Fresh): Promise<void> {
    const now = new Date().toISOString();
    const b = this.#store.batch();
    if (!fresh.unchanged) {
      const keep = new Set(fresh.entries.map((e) => `${e.id}@${e.version}`));
      for (const e of await this.#catalog.list({ prefix: rec.name + '/' })) if (!keep.has(e.id.slice(rec.name.length + 1))) b.del(this.#catalog, e.id);
      for (const e of fresh.entries) b.put(this.#catalog, `${rec.name}/${e.id}@${e.version}`, e);
    }
    const { lastError: _drop, ...rest } = rec;
    void _drop;
    b.put(this.#channels, rec.name, { ...rest, title: fresh.title, description: fresh.description, lastAttempt: now, lastSuccess: now, feedSha256: fresh.feedSha256, appliances: fresh.entries.length, verified: fresh.verified });
    await b.write();
  }

  /** Fetch and check everything; returns the new catalog without touching the store. */
  async #fetch(rec: ChannelRecord, old: CatalogEntry[]): Promise<Fresh> {
    const feed = await fetchSmall(rec.url, MAX_FEED_BYTES);
    let verified = false;
    if (rec.trust) {
      const sigUrl = new URL(rec.url);
      sigUrl.pathname += SIGNATURE_SUFFIX;
      let sig: Buffer;
      try {
        sig = (await fetchSmall(sigUrl.href, 8192)).body;
      } catch (e) {
        const err = toStormError(e);
        if (err.code === 'not_found') throw unauthorized(`${rec.url}: the channel is not signed (no ${sigUrl.pathname.replace(/^.*\//, '')}) but key ${rec.trust.fingerprint.slice(0, 16)} is trusted for it`, { hint: 'ask the publisher to sign with `storm channel publish --key`' });
        throw err;
      }
      verifyFeed(feed.body, sig, rec.trust.pem, rec.url);
      verified = true;
    }
    const feedSha256 = createHash('sha256').update(feed.body).digest('hex');
    const parsed = parseFeed(feed.body, rec.url);
    if (feedSha256 === rec.feedSha256 && old.length === parsed.items.length) {
      return { entries: old, title: parsed.title, description: parsed.description, feedSha256, verified, unchanged: true };
    }
    const base = channelBase(feed.url);
    const byKey = new Map(old.map((e) => [`${e.id}@${e.version}`, e]));
    const entries: CatalogEntry[] = new Array(parsed.items.length);
    let next = 0;
    const worker = async () => {
      while (next < parsed.items.length) {
        const i = next++;
        entries[i] = await this.#entry(rec, parsed.items[i]!, base, byKey.get(`${parsed.items[i]!.id}@${parsed.items[i]!.version}`));
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    return { entries, title: parsed.title, description: parsed.description, feedSha256, verified, unchanged: false };
  }

  async #entry(rec: ChannelRecord, item: FeedItem, base: string, prev: CatalogEntry | undefined): Promise<CatalogEntry> {
    const guid = `${item.id}@${item.version}`;
    const xmlUrl = channelHref(item.href, base, `${rec.url}: item ${guid}: <storm:appliance>`);
    if (prev && prev.xmlSha256 === item.sha256 && prev.xmlUrl === xmlUrl) return prev;
    const { body } = await fetchSmall(xmlUrl, MAX_APPLIANCE_BYTES);
    const sha = createHash('sha256').update(body).digest('hex');
    if (sha !== item.sha256 || body.length !== item.size) {
      throw invalid(`${xmlUrl}: digest mismatch: the feed announced sha256 ${item.sha256} (${item.size} bytes), got ${sha} (${body.length} bytes)`, { hint: 'the channel is inconsistent or tampered with; the last good catalog is kept' });
    }
    const app = parseAppliance(body, xmlUrl);
    checkItemMatches(item, app, xmlUrl);
    const blobs = applianceBlobs(app).map((b) => {
      const where = `${xmlUrl}: ${b.what}`;
      return { sha256: b.sha256, size: b.size, what: b.what, urls: [channelHref(b.href, base, where), ...b.mirrors.map((m) => httpUrl(m, `${where}: <mirror>`).href)] };
    });
    return {
      channel: rec.name,
      id: app.id,
      version: app.version,
      title: app.title,
      description: app.description,
      pubDate: item.pubDate,
      xmlUrl,
      xmlSha256: item.sha256,
      kind: app.disk ? 'traditional' : 'layered',
      appliance: app,
      blobs,
    };
  }
}

interface Fresh {
  entries: CatalogEntry[];
  title: string;
  description: string;
  feedSha256: string;
  verified: boolean;
  unchanged: boolean;
}
