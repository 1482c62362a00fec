import { isIPv4, isIPv6 } from 'node:net';
import { invalid } from '../../../lib/errors.ts';
import { RCODE, TYPE, type RData, type RR } from './wire.ts';

/** Record types the admin and appliances may register (SOA/NS are the server's own). */
export const RECORD_TYPES = ['A', 'AAAA', 'MX', 'TXT', 'PTR'] as const;
export type RecordType = (typeof RECORD_TYPES)[number];

/** A record as stored and listed: fully-qualified lower-case name, no trailing dot. */
export interface DnsRecord {
  name: string;
  type: RecordType;
  /** Address (A/AAAA), target name (MX/PTR), text (TXT). */
  value: string;
  /** MX preference. */
  priority?: number;
  ttl?: number;
  /** Who registered it: "admin" or "instance:NAME". */
  owner: string;
}

/** An instance's name and address: gives `NAME.<domain>` A and the matching PTR. */
export interface HostEntry {
  name: string;
  ip: string;
}

export interface ZoneConfig {
  /** The cloud's domain, e.g. storm.internal. */
  domain: string;
  /** What storm.local (and ns.<domain>) resolve to. */
  managerAddress: string;
  /** Reverse zones we are authoritative for, e.g. 77.10.in-addr.arpa. */
  reverseZones: string[];
  ttl: number;
  serial: number;
}

/** The manager's reserved name. */
export const MANAGER_NAME = 'storm.local';

export interface Answer {
  rcode: number;
  aa: boolean;
  answers: RR[];
  authority: RR[];
  additional: RR[];
}

const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;

/** A host name is LDH labels (plus '_' for service names), ≤ 253 characters. */
export function validName(name: string): boolean {
  return name.length > 0 && name.length <= 253 && name.split('.').every((l) => LABEL.test(l));
}

/** The reverse-lookup name of an IPv4 address. */
export function reverseName(ip: string): string {
  return ip.split('.').reverse().join('.') + '.in-addr.arpa';
}

/** Reverse zone for an IPv4 CIDR, widened to an octet boundary (/20 → /16). */
export function reverseZoneFor(cidr: string): string | undefined {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(cidr);
  if (!m || !isIPv4(m[1]!)) return undefined;
  const octets = Math.floor(Number(m[2]) / 8);
  if (octets < 1) return undefined;
  return m[1]!.split('.').slice(0, Math.min(octets, 3)).reverse().join('.') + '.in-addr.arpa';
}

/**
 * Turn what an admin typed into a stored name: "@" is the domain, a trailing dot
 * means absolute, a name already inside one of our zones is kept, anything else
 * is relative to the domain.
 */
export function qualify(name: string, zones: string[], domain: string): string {
  const n = name.trim().toLowerCase();
  if (n === '@' || n === '') return domain;
  if (n.endsWith('.')) return n.slice(0, -1);
  if (zones.some((z) => n === z || n.endsWith('.' + z))) return n;
  return `${n}.${domain}`;
}

/** Validate one record; throws `invalid` naming what is wrong. */
export function checkRecord(r: DnsRecord, zones: string[]): void {
  if (!RECORD_TYPES.includes(r.type)) throw invalid(`record type "${r.type}" is not supported`, { hint: `use one of ${RECORD_TYPES.join(', ')}` });
  if (!validName(r.name)) throw invalid(`"${r.name}" is not a valid DNS name`, { hint: 'letters, digits, hyphens and dots; labels of at most 63 characters' });
  if (!zones.some((z) => r.name === z || r.name.endsWith('.' + z))) throw invalid(`"${r.name}" is outside the zones this server is authoritative for`, { hint: `names must end in ${zones.join(' or ')}` });
  if (r.ttl !== undefined && (!Number.isInteger(r.ttl) || r.ttl < 0 || r.ttl > 604800)) throw invalid(`ttl ${r.ttl} is out of range`, { hint: 'a whole number of seconds, 0..604800' });
  switch (r.type) {
    case 'A':
      if (!isIPv4(r.value)) throw invalid(`A record value "${r.value}" is not an IPv4 address`);
      break;
    case 'AAAA':
      if (!isIPv6(r.value)) throw invalid(`AAAA record value "${r.value}" is not an IPv6 address`);
      break;
    case 'MX':
    case 'PTR':
      if (!validName(r.value.replace(/\.$/, ''))) throw invalid(`${r.type} target "${r.value}" is not a valid DNS name`);
      if (r.type === 'MX' && (!Number.isInteger(r.priority) || r.priority! < 0 || r.priority! > 65535)) throw invalid(`MX priority ${r.priority} must be 0..65535`, { hint: 'pass --priority N' });
      break;
    case 'TXT':
      if (Buffer.byteLength(r.value) > 2048) throw invalid('TXT value is longer than 2048 bytes');
      break;
  }
}

function rdataOf(r: DnsRecord): RData {
  switch (r.type) {
    case 'A':
      return { type: 'A', address: r.value };
    case 'AAAA':
      return { type: 'AAAA', address: r.value };
    case 'MX':
      return { type: 'MX', preference: r.priority ?? 10, exchange: r.value.replace(/\.$/, '') };
    case 'PTR':
      return { type: 'PTR', target: r.value.replace(/\.$/, '') };
    case 'TXT': {
      const b = Buffer.from(r.value, 'utf8');
      const strings: string[] = [];
      for (let i = 0; i < b.length || i === 0; i += 255) strings.push(b.subarray(i, i + 255).toString('utf8'));
      return { type: 'TXT', strings };
    }
  }
}

const NUM: Record<RData['type'], number> = { A: TYPE.A, AAAA: TYPE.AAAA, NS: TYPE.NS, PTR: TYPE.PTR, CNAME: TYPE.CNAME, MX: TYPE.MX, TXT: TYPE.TXT, SOA: TYPE.SOA };

/**
 * The authoritative data, immutable once built: a map of owner name → RRs,
 * the empty non-terminals (which exist: NODATA, not NXDOMAIN), and each zone's
 * SOA. Rebuilt on every change; the server's answer cache is cleared with it.
 */
export class Authority {
  readonly zones: string[];
  readonly #nodes = new Map<string, RR[]>();
  readonly #ents = new Set<string>();
  readonly #soa = new Map<string, RR>();
  readonly config: ZoneConfig;

  constructor(config: ZoneConfig, records: DnsRecord[], hosts: HostEntry[]) {
    this.config = config;
    const domain = config.domain;
    // Longest first, so the most specific zone wins.
    this.zones = [...new Set([domain, MANAGER_NAME, ...config.reverseZones])].sort((a, b) => b.length - a.length);
    const ttl = config.ttl;
    const ns = `ns.${domain}`;
    for (const z of this.zones) {
      const mname = z === MANAGER_NAME ? MANAGER_NAME : ns;
      const soa: RR = { name: z, ttl, data: { type: 'SOA', mname, rname: `hostmaster.${z === MANAGER_NAME ? MANAGER_NAME : domain}`, serial: config.serial, refresh: 3600, retry: 600, expire: 86400, minimum: ttl } };
      this.#soa.set(z, soa);
      this.#add(soa);
      this.#add({ name: z, ttl, data: { type: 'NS', target: mname } });
    }
    if (isIPv4(config.managerAddress)) {
      this.#add({ name: MANAGER_NAME, ttl, data: { type: 'A', address: config.managerAddress } });
      this.#add({ name: ns, ttl, data: { type: 'A', address: config.managerAddress } });
      this.#add({ name: reverseName(config.managerAddress), ttl, data: { type: 'PTR', target: MANAGER_NAME } });
    }
    for (const h of hosts) {
      const fqdn = h.name.includes('.') ? h.name : `${h.name}.${domain}`;
      this.#add({ name: fqdn, ttl, data: { type: 'A', address: h.ip } });
      this.#add({ name: reverseName(h.ip), ttl, data: { type: 'PTR', target: fqdn } });
    }
    for (const r of records) this.#add({ name: r.name, ttl: r.ttl ?? ttl, data: rdataOf(r) });
    for (const name of this.#nodes.keys()) {
      const zone = this.zoneOf(name);
      if (!zone) continue;
      let n = name;
      while (n !== zone && n.includes('.')) {
        n = n.slice(n.indexOf('.') + 1);
        if (!this.#nodes.has(n)) this.#ents.add(n);
      }
    }
  }

  #add(rr: RR): void {
    const list = this.#nodes.get(rr.name);
    if (!list) this.#nodes.set(rr.name, [rr]);
    else if (!list.some((x) => JSON.stringify(x.data) === JSON.stringify(rr.data))) list.push(rr);
  }

  /** The zone a name falls in, or undefined when it is not ours. */
  zoneOf(name: string): string | undefined {
    return this.zones.find((z) => name === z || name.endsWith('.' + z));
  }

  /**
   * The authoritative answer for a question, or undefined when the name is not
   * ours (the server then forwards or refuses). A PTR for an instance outside the
   * configured reverse zones is still answered, for that exact name.
   */
  answer(qname: string, qtype: number, qclass: number): Answer | undefined {
    const zone = this.zoneOf(qname);
    const node = this.#nodes.get(qname);
    if (!zone && !node) return undefined;
    if (qclass !== 1 && qclass !== 255) return { rcode: RCODE.REFUSED, aa: false, answers: [], authority: [], additional: [] };
    const soa = this.#soa.get(zone ?? this.config.domain)!;
    // RFC 2308: the negative TTL is min(SOA TTL, SOA minimum).
    const negative = { ...soa, ttl: Math.min(soa.ttl, (soa.data as { minimum: number }).minimum) };
    if (!node && !this.#ents.has(qname)) return { rcode: RCODE.NXDOMAIN, aa: true, answers: [], authority: [negative], additional: [] };
    const answers = (node ?? []).filter((rr) => qtype === TYPE.ANY || NUM[rr.data.type] === qtype);
    if (answers.length === 0) return { rcode: RCODE.NOERROR, aa: true, answers: [], authority: [negative], additional: [] };
    const additional: RR[] = [];
    for (const rr of answers) {
      const target = rr.data.type === 'MX' ? rr.data.exchange : rr.data.type === 'NS' ? rr.data.target : undefined;
      if (target === undefined || target === qname) continue;
      for (const a of this.#nodes.get(target) ?? []) if (a.data.type === 'A' || a.data.type === 'AAAA') additional.push(a);
    }
    return { rcode: RCODE.NOERROR, aa: true, answers, authority: [], additional };
  }

  /** Number of owner names (for status). */
  get size(): number {
    return this.#nodes.size;
  }
}
