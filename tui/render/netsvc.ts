import type { RowSpec } from './table.ts';

/** A served DNS record as the CLI lists it (stored records and instance hosts alike). */
export interface DnsRow {
  name: string;
  type: string;
  value: string;
  priority?: number;
  ttl?: number;
  owner: string;
}

export const dnsRecordRows: RowSpec<DnsRow> = {
  name: (r) => r.name,
  columns: [
    { header: 'NAME', get: (r) => r.name },
    { header: 'TYPE', get: (r) => r.type },
    { header: 'VALUE', get: (r) => (r.priority !== undefined ? `${r.priority} ${r.value}` : r.value) },
    { header: 'TTL', get: (r) => (r.ttl === undefined ? '' : String(r.ttl)), wide: true },
    { header: 'OWNER', get: (r) => r.owner },
  ],
};

/**
 * dns.record.list answers `{zones, records, hosts}`: the rows to show are one
 * A per instance host (NAME.<cloud domain>) and the stored records, sorted by
 * name and type. A plain list of rows is taken as it is.
 */
export function dnsListRows(l: unknown): DnsRow[] {
  if (Array.isArray(l)) return l as DnsRow[];
  if (!l || typeof l !== 'object') return [];
  const o = l as { zones?: unknown; records?: unknown; hosts?: unknown };
  const zones = Array.isArray(o.zones) ? o.zones.filter((z): z is string => typeof z === 'string') : [];
  const domain = zones.find((z) => z !== 'storm.local' && !z.endsWith('.arpa')) ?? '';
  const hosts: DnsRow[] = (Array.isArray(o.hosts) ? o.hosts : [])
    .filter((h): h is { name: string; ip: string } => !!h && typeof h.name === 'string' && typeof h.ip === 'string')
    .map((h) => ({ name: domain ? `${h.name}.${domain}` : h.name, type: 'A', value: h.ip, owner: `instance:${h.name}` }));
  const records = (Array.isArray(o.records) ? o.records : []).filter((r): r is DnsRow => !!r && typeof r.name === 'string' && typeof r.type === 'string');
  return [...hosts, ...records].sort((a, b) => a.name.localeCompare(b.name) || a.type.localeCompare(b.type));
}

export interface LeaseRow {
  ip: string;
  mac: string;
  hostname?: string;
  expires: number;
  state: string;
  active: boolean;
}

export const leaseRows: RowSpec<LeaseRow> = {
  name: (l) => l.ip,
  columns: [
    { header: 'ADDRESS', get: (l) => l.ip },
    { header: 'MAC', get: (l) => l.mac || '-' },
    { header: 'HOSTNAME', get: (l) => l.hostname ?? '' },
    { header: 'STATE', get: (l) => (l.state === 'bound' && !l.active ? 'expired' : l.state) },
    { header: 'EXPIRES', get: (l) => new Date(l.expires).toISOString().replace(/\.\d+Z$/, 'Z') },
  ],
};

export interface ReservationRow {
  mac: string;
  ip: string;
  hostname?: string;
}

export const reservationRows: RowSpec<ReservationRow> = {
  name: (r) => r.mac,
  columns: [
    { header: 'MAC', get: (r) => r.mac },
    { header: 'ADDRESS', get: (r) => r.ip },
    { header: 'HOSTNAME', get: (r) => r.hostname ?? '' },
  ],
};

export interface PoolRow {
  subnet: string;
  start: string;
  end: string;
  size: number;
  router: string;
  dns: string[];
  leaseTime: number;
  interface: string;
  serverId: string | null;
}

export const poolRows: RowSpec<PoolRow> = {
  name: (p) => `${p.start}-${p.end}`,
  columns: [
    { header: 'SUBNET', get: (p) => p.subnet },
    { header: 'POOL', get: (p) => `${p.start}-${p.end}` },
    { header: 'SIZE', get: (p) => String(p.size) },
    { header: 'ROUTER', get: (p) => p.router || '(server)' },
    { header: 'DNS', get: (p) => (p.dns.length ? p.dns.join(',') : '(server)') },
    { header: 'LEASE', get: (p) => `${p.leaseTime}s` },
    { header: 'INTERFACE', get: (p) => p.interface || '(off)', wide: true },
    { header: 'SERVER', get: (p) => p.serverId ?? '-', wide: true },
  ],
};
