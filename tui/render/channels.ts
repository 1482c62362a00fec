import type { CatalogEntry } from '../../manager/channels/catalog.ts';
import type { ImageRow } from '../../manager/images/service.ts';
import type { ChannelView } from '../../manager/services/channels.ts';
import type { RowSpec } from './table.ts';

import { bytes } from '../../lib/format.ts';

export { bytes };

const ago = (iso: string | undefined) => (iso ? iso.replace('T', ' ').slice(0, 19) : 'never');

/** A channel's state in one word: ok, or failing (with the last good catalog kept). */
export function channelStatus(c: ChannelView): string {
  return c.lastError ? 'failing' : c.lastSuccess ? 'ok' : 'new';
}

export const channelRows: RowSpec<ChannelView> = {
  name: (c) => c.name,
  columns: [
    { header: 'NAME', get: (c) => c.name },
    { header: 'STATUS', get: channelStatus },
    { header: 'APPLIANCES', get: (c) => String(c.appliances) },
    { header: 'TRUST', get: (c) => (c.trusted ? (c.verified ? `signed ${c.trusted.slice(0, 16)}` : `key ${c.trusted.slice(0, 16)}`) : 'unsigned') },
    { header: 'REFRESHED', get: (c) => ago(c.lastSuccess) },
    { header: 'URL', get: (c) => c.url },
    { header: 'TITLE', get: (c) => c.title, wide: true },
    { header: 'ERROR', get: (c) => c.lastError?.message ?? '', wide: true },
  ],
};

export const applianceRows: RowSpec<CatalogEntry> = {
  name: (e) => `${e.channel}/${e.id}@${e.version}`,
  columns: [
    { header: 'CHANNEL', get: (e) => e.channel },
    { header: 'ID', get: (e) => e.id },
    { header: 'VERSION', get: (e) => e.version },
    { header: 'KIND', get: (e) => e.kind },
    { header: 'SIZE', get: (e) => bytes(e.blobs.reduce((n, b) => n + b.size, 0)) },
    { header: 'TITLE', get: (e) => e.title },
    { header: 'MEMORY', get: (e) => `${e.appliance.memoryMiB} MiB`, wide: true },
    { header: 'VCPUS', get: (e) => String(e.appliance.vcpus), wide: true },
    { header: 'PUBLISHED', get: (e) => ago(e.pubDate), wide: true },
  ],
};

/** One row per file of an appliance (what `appliance show` lists under it). */
export interface ApplianceFileRow {
  what: string;
  sha256: string;
  size: number;
  stored: boolean;
  url: string;
}

export const applianceFileRows: RowSpec<ApplianceFileRow> = {
  name: (f) => f.sha256,
  columns: [
    { header: 'FILE', get: (f) => f.what },
    { header: 'SHA256', get: (f) => f.sha256.slice(0, 16) },
    { header: 'SIZE', get: (f) => bytes(f.size) },
    { header: 'STORED', get: (f) => (f.stored ? 'yes' : 'no') },
    { header: 'URL', get: (f) => f.url, wide: true },
  ],
};

export const imageRows: RowSpec<ImageRow> = {
  name: (i) => i.sha256,
  columns: [
    { header: 'SHA256', get: (i) => i.sha256.slice(0, 16) },
    { header: 'SIZE', get: (i) => bytes(i.size) },
    { header: 'USED BY', get: (i) => (i.usedBy.length ? i.usedBy.join(', ') : '(unreferenced)') },
    { header: 'STORED', get: (i) => ago(i.storedAt), wide: true },
    { header: 'DIGEST', get: (i) => i.sha256, wide: true },
  ],
};

/** A catalog entry with what the console adds: how many of its files are in the image store, and how many it shares with other appliances. */
export type CatalogRow = CatalogEntry & { cached: string; shared: string };

/**
 * The appliance catalog as the console shows it: per entry, its files in the
 * manager's image store ("2/5", "all", "none") and how many of its files
 * other catalog entries use too (layers stored once, shared).
 */
export function catalogRows(entries: readonly CatalogEntry[], stored: readonly { sha256: string }[]): CatalogRow[] {
  const have = new Set(stored.map((i) => i.sha256));
  const users = new Map<string, number>();
  for (const e of entries) for (const sha of new Set((e.blobs ?? []).map((b) => b.sha256))) users.set(sha, (users.get(sha) ?? 0) + 1);
  return entries.map((e) => {
    const shas = [...new Set((e.blobs ?? []).map((b) => b.sha256))];
    const n = shas.filter((s) => have.has(s)).length;
    const shared = shas.filter((s) => (users.get(s) ?? 0) > 1).length;
    return { ...e, cached: shas.length === 0 ? '' : n === shas.length ? 'all' : n === 0 ? 'none' : `${n}/${shas.length}`, shared: shared ? `${shared} of ${shas.length}` : 'none' };
  });
}

export const catalogRowSpec: RowSpec<CatalogRow> = {
  name: applianceRows.name,
  columns: [...applianceRows.columns.slice(0, 5), { header: 'CACHED', get: (e) => e.cached }, { header: 'SHARED', get: (e) => e.shared }, ...applianceRows.columns.slice(5)],
};
