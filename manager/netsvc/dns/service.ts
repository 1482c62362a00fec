import { isIPv4 } from 'node:net';
import { conflict, invalid, notFound } from '../../../lib/errors.ts';
import { healthy, undetected, unhealthy, type Health } from '../../../lib/health.ts';
import type { Logger } from '../../../lib/logger.ts';
import type { Collection, Store } from '../../store/store.ts';
import type { NetService } from '../service.ts';
import { DnsServer } from './server.ts';
import { Authority, checkRecord, qualify, validName, type DnsRecord, type HostEntry, type RecordType } from './zone.ts';

export interface DnsServiceOptions {
  store: Store;
  log: Logger;
  domain: string;
  managerAddress: string;
  reverseZones: string[];
  ttl: number;
  /** undefined: records are kept and served by nobody (DNS off). */
  listen?: { host: string; port: number } | undefined;
  upstream?: { host: string; port: number } | undefined;
}

/** The id of a stored record: one per (name, type, value). */
const recordId = (r: Pick<DnsRecord, 'name' | 'type' | 'value'>) => `${r.name} ${r.type} ${r.value}`;

/**
 * DNS as a NetService plus the API the rest of the manager calls: records
 * (admin, appliances) and hosts (instances: setHost/removeHost). Every change
 * is written to the store first, then the Authority is rebuilt and swapped in.
 */
export class DnsService implements NetService {
  readonly name = 'dns';
  readonly #o: DnsServiceOptions;
  readonly #records: Collection<DnsRecord>;
  readonly #hosts: Collection<HostEntry>;
  #server: DnsServer | undefined;
  #authority: Authority;
  #serial = 0;
  #error: string | undefined;
  /** Serialises changes so two writers never rebuild from a half-applied state. */
  #chain: Promise<unknown> = Promise.resolve();

  constructor(o: DnsServiceOptions) {
    this.#o = o;
    this.#records = o.store.collection<DnsRecord>('dns.records');
    this.#hosts = o.store.collection<HostEntry>('dns.hosts');
    this.#authority = this.#build([], []);
  }

  get zones(): string[] {
    return this.#authority.zones;
  }

  get server(): DnsServer | undefined {
    return this.#server;
  }

  #build(records: DnsRecord[], hosts: HostEntry[]): Authority {
    // The SOA serial moves forward on every change (seconds since the epoch, or +1 when faster).
    this.#serial = Math.max(this.#serial + 1, Math.floor(Date.now() / 1000));
    return new Authority({ domain: this.#o.domain, managerAddress: this.#o.managerAddress, reverseZones: this.#o.reverseZones, ttl: this.#o.ttl, serial: this.#serial >>> 0 }, records, hosts);
  }

  async reload(): Promise<void> {
    this.#authority = this.#build(await this.#records.values(), await this.#hosts.values());
    this.#server?.setAuthority(this.#authority);
  }

  async start(): Promise<void> {
    await this.reload();
    if (!this.#o.listen) return;
    const server = new DnsServer(this.#authority, { ...this.#o.listen, upstream: this.#o.upstream, log: this.#o.log });
    try {
      await server.listen();
    } catch (e) {
      this.#error = (e as Error).message;
      throw e;
    }
    this.#server = server;
    this.#error = undefined;
    this.#o.log.info('dns listening', { address: server.address, zones: this.#authority.zones });
  }

  async stop(): Promise<void> {
    await this.#server?.close();
    this.#server = undefined;
  }

  status(): Health {
    if (this.#error) return unhealthy('dns', this.#error, 'free the port or change dnsListen, then restart the manager');
    if (!this.#server) return undetected('dns', 'the DNS server is off (records are kept)', 'set dnsListen (STORM_DNS_LISTEN=HOST:PORT) and restart the manager');
    return healthy('dns', `answering on ${this.#server.address} (udp, tcp) for ${this.#authority.zones.join(', ')}`, { ...this.#server.stats, names: this.#authority.size, upstream: this.#o.upstream ? `${this.#o.upstream.host}:${this.#o.upstream.port}` : null });
  }

  #serialise<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#chain.then(fn, fn);
    this.#chain = next.catch(() => undefined);
    return next;
  }

  /** Normalise and validate what a caller gave (relative names are in the domain). */
  normalise(input: { name: string; type: string; value: string; priority?: number | undefined; ttl?: number | undefined; owner?: string | undefined }): DnsRecord {
    const type = input.type.toUpperCase() as RecordType;
    const name = qualify(input.name, this.zones, this.#o.domain);
    let value = input.value.trim();
    if (type === 'MX' || type === 'PTR') value = qualify(value.endsWith('.') ? value : value.includes('.') ? value + '.' : value, this.zones, this.#o.domain);
    const r: DnsRecord = { name, type, value, owner: input.owner ?? 'admin' };
    if (type === 'MX') r.priority = input.priority ?? 10;
    if (input.ttl !== undefined) r.ttl = input.ttl;
    checkRecord(r, this.zones);
    return r;
  }

  listRecords(): Promise<DnsRecord[]> {
    return this.#records.values();
  }

  async addRecord(input: Parameters<DnsService['normalise']>[0]): Promise<DnsRecord> {
    return (await this.#add(input, false)).record;
  }

  /** addRecord, where the very same record (owner, priority and TTL too) already there is no change (`added: false`). */
  ensureRecord(input: Parameters<DnsService['normalise']>[0]): Promise<{ record: DnsRecord; added: boolean }> {
    return this.#add(input, true);
  }

  async #add(input: Parameters<DnsService['normalise']>[0], same: boolean): Promise<{ record: DnsRecord; added: boolean }> {
    const r = this.normalise(input);
    return this.#serialise(async () => {
      const id = recordId(r);
      const have = await this.#records.get(id);
      if (have && same && have.owner === r.owner && have.priority === r.priority && have.ttl === r.ttl) return { record: have, added: false };
      if (have) throw conflict(`${r.type} record ${r.name} → ${r.value} already exists`, { hint: 'remove it first to change its priority or TTL' });
      await this.#records.put(id, r);
      await this.reload();
      return { record: r, added: true };
    });
  }

  /** Remove records matching name (and type, value when given); `owner` limits to that owner's. */
  async removeRecord(input: { name: string; type?: string | undefined; value?: string | undefined; owner?: string | undefined }): Promise<DnsRecord[]> {
    const name = qualify(input.name, this.zones, this.#o.domain);
    const type = input.type?.toUpperCase();
    return this.#serialise(async () => {
      const all = await this.#records.values();
      const gone = all.filter((r) => r.name === name && (!type || r.type === type) && (input.value === undefined || r.value === input.value.replace(/\.$/, '') || r.value === qualify(input.value, this.zones, this.#o.domain)) && (!input.owner || r.owner === input.owner));
      if (gone.length === 0) throw notFound(`no ${type ?? ''} record for ${name}${input.value ? ` with value ${input.value}` : ''}`.replace('  ', ' '), { hint: 'see storm dns record list' });
      const b = this.#o.store.batch();
      for (const r of gone) b.del(this.#records, recordId(r));
      await b.write();
      await this.reload();
      return gone;
    });
  }

  listHosts(): Promise<HostEntry[]> {
    return this.#hosts.values();
  }

  /** An instance came (or moved): NAME.<domain> A ip, and the PTR back. */
  async setHost(name: string, ip: string): Promise<HostEntry> {
    const n = name.toLowerCase();
    if (!validName(n) || n.includes('.')) throw invalid(`instance name "${name}" is not a valid DNS label`, { hint: 'letters, digits and hyphens, at most 63' });
    if (!isIPv4(ip)) throw invalid(`"${ip}" is not an IPv4 address`);
    return this.#serialise(async () => {
      const h = { name: n, ip };
      await this.#hosts.put(n, h);
      await this.reload();
      return h;
    });
  }

  /** An instance went: its A and PTR go with it. */
  removeHost(name: string): Promise<void> {
    return this.#serialise(async () => {
      await this.#hosts.del(name.toLowerCase());
      await this.reload();
    });
  }
}
