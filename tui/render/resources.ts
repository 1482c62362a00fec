/**
 * Row functions for the cloud's objects, shared by the console and the CLI.
 * Objects come from services that may not exist yet, so every getter is
 * tolerant: a missing field shows as empty, a wrong type as its text.
 */

type Obj = Record<string, unknown>;

/** Read `a.b.c` from a plain object. */
export function field(o: unknown, path: string | readonly string[]): unknown {
  let v: unknown = o;
  for (const k of typeof path === 'string' ? path.split('.') : path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Obj)[k];
  }
  return v;
}

/** Text for a cell: arrays joined, objects as compact JSON, nothing as empty. */
export function text(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (Array.isArray(v)) return v.map(text).join(',');
  if (typeof v === 'object') return JSON.stringify(v);
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return String(v);
}

/** First present field of several candidate names (services are still settling theirs). */
const pick = (o: unknown, ...paths: string[]) => {
  for (const p of paths) {
    const v = field(o, p);
    if (v !== undefined && v !== null && v !== '') return v;
  }
  return undefined;
};


/** Human bytes: 1536 → "1.5K". */
export function bytes(v: unknown): string {
  const n = typeof v === 'number' ? v : Number(v);
  if (v === undefined || v === null || v === '' || !Number.isFinite(n)) return '';
  const u = ['B', 'K', 'M', 'G', 'T'];
  let x = n;
  let i = 0;
  while (x >= 1024 && i < u.length - 1) (x /= 1024), i++;
  return i === 0 ? `${x}B` : `${x.toFixed(x < 10 ? 1 : 0)}${u[i]}`;
}

/** A host's usage of one resource as 0..100, from whichever shape the host service reports. */
export function percent(o: unknown, what: 'cpu' | 'mem' | 'disk'): number | undefined {
  const direct = pick(o, `${what}Percent`, `${what}.percent`, `usage.${what}`, `info.${what}Percent`);
  if (typeof direct === 'number' && Number.isFinite(direct)) return Math.max(0, Math.min(100, direct));
  const used = pick(o, `${what}Used`, `${what}.used`);
  const total = pick(o, `${what}Total`, `${what}.total`);
  if (typeof used === 'number' && typeof total === 'number' && total > 0) return Math.max(0, Math.min(100, (used / total) * 100));
  // A host record's stormd info: total and free bytes.
  const [t, f] = what === 'mem' ? ['info.memoryBytes', 'info.freeMemoryBytes'] : what === 'disk' ? ['info.diskTotalBytes', 'info.diskFreeBytes'] : ['', ''];
  const tv = t ? field(o, t) : undefined;
  const fv = f ? field(o, f) : undefined;
  if (typeof tv === 'number' && typeof fv === 'number' && tv > 0) return Math.max(0, Math.min(100, ((tv - fv) / tv) * 100));
  return undefined;
}

/** Instance counts by state, for the dashboard: [["running", 3], ...] most first. */
export function countByState(rows: readonly unknown[]): [string, number][] {
  const m = new Map<string, number>();
  for (const r of rows) {
    const s = text(pick(r, 'state', 'status')) || 'unknown';
    m.set(s, (m.get(s) ?? 0) + 1);
  }
  return [...m.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
}

/**
 * An instance's layers for its detail pane: role → "name version (sha256…)",
 * names and versions from its appliance's catalog entry (`appliance.layers`);
 * a digest the entry does not list (after an update) shows as the digest alone.
 */
export function layerVersions(layers: unknown, entry: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!layers || typeof layers !== 'object') return out;
  const known = field(entry, 'appliance.layers');
  const list = Array.isArray(known) ? known : [];
  for (const [role, sha] of Object.entries(layers as Obj)) {
    const digest = text(sha);
    const l = list.find((x) => field(x, 'sha256') === digest) as Obj | undefined;
    out[role] = l ? `${text(l.name)} ${text(l.version)} (${digest.slice(0, 12)})` : digest.slice(0, 12);
  }
  return out;
}

/** MAC (lower case) → the address its bound lease holds: one pass over the leases, for a whole list. */
export function boundLeases(leases: readonly unknown[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const l of leases) {
    const mac = text(field(l, 'mac')).toLowerCase();
    if (mac !== '' && field(l, 'state') === 'bound' && field(l, 'active') !== false) out.set(mac, text(field(l, 'ip')));
  }
  return out;
}

/** An instance's addresses: its MAC, the address its lease holds, and the DNS names that point at it or are its own. */
export function instanceAddresses(name: string, mac: unknown, leases: readonly unknown[], dns: readonly unknown[]): { mac: string; ip: string; dns: string[] } {
  const ip = boundLeases(leases).get(text(mac).toLowerCase()) ?? '';
  const names = dns.filter((r) => text(field(r, 'owner')) === `instance:${name}` || (ip !== '' && text(field(r, 'value')) === ip)).map((r) => `${text(field(r, 'name'))} ${text(field(r, 'type'))}`);
  return { mac: text(mac), ip: ip || '(no lease)', dns: [...new Set(names)] };
}

/** The image store in one line: how many files, their bytes, and how much no appliance uses any more (`storm image gc` frees it). */
export function cacheSummary(rows: readonly unknown[]): string {
  let total = 0;
  let loose = 0;
  let looseN = 0;
  for (const r of rows) {
    const size = field(r, 'size');
    const n = typeof size === 'number' && Number.isFinite(size) && size > 0 ? size : 0;
    total += n;
    const used = field(r, 'usedBy');
    if (Array.isArray(used) && used.length === 0) (loose += n), looseN++;
  }
  return `${rows.length} file${rows.length === 1 ? '' : 's'}, ${bytes(total) || '0B'} stored${looseN ? `, ${bytes(loose)} in ${looseN} unreferenced` : ''}`;
}
