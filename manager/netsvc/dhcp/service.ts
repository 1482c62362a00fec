import { createSocket, type Socket } from 'node:dgram';
import { networkInterfaces } from 'node:os';
import { isIPv4 } from 'node:net';
import { conflict, invalid, notFound, unavailable } from '../../../lib/errors.ts';
import { healthy, undetected, unhealthy, type Health } from '../../../lib/health.ts';
import type { Logger } from '../../../lib/logger.ts';
import type { Collection, Store } from '../../store/store.ts';
import type { NetService } from '../service.ts';
import { encodeReply, ipNum, MSG, MSG_NAME, numIp, parseRequest, type DhcpRequest } from './wire.ts';

/** The dynamic pool and the options every client gets (stored; `storm dhcp pool set`). */
export interface PoolSettings {
  start: string;
  end: string;
  /** Router option; '' = this server's address. */
  router: string;
  /** DNS server option; [] = this server's address (the manager answers DNS). */
  dns: string[];
  leaseTime: number;
}

export interface Lease {
  ip: string;
  mac: string;
  hostname?: string;
  /** ms since the epoch. */
  expires: number;
  state: 'bound' | 'released' | 'declined';
}

export interface Reservation {
  mac: string;
  ip: string;
  hostname?: string;
}

export interface DhcpServiceOptions {
  store: Store;
  log: Logger;
  /** '' = off (settings, reservations and leases can still be managed). */
  interface: string;
  /** Socket address; the port replies go to is this port + 1 (67 → 68). */
  listen: { host: string; port: number };
  /** CIDR of the guest network. */
  subnet: string;
  domain: string;
  defaults: PoolSettings;
  /** How long an offered address is held for the client that was offered it. */
  offerHoldMs?: number;
  /** Change notifications (console events). */
  onEvent?: (kind: string, message: string, data: Record<string, unknown>) => void;
  /** Addresses never handed out (the manager's own, say), besides the server's. */
  exclude?: string[];
  /** For tests: the server's address when no interface is bound. */
  serverIdOverride?: string;
}

/** Where a reply goes (RFC 2131 §4.1). */
export interface Destination {
  address: string;
  port: number;
}

/** A lease write waiting for the next group commit. */
type LeaseOp = { put: Lease } | { del: string };

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

/** The interface's first IPv4 address (in this namespace), or undefined. */
export function interfaceAddress(name: string): string | undefined {
  return networkInterfaces()[name]?.find((a) => a.family === 'IPv4')?.address;
}

/**
 * The DHCPv4 server. Node has no SO_BINDTODEVICE or IP_PKTINFO, so it binds
 * 0.0.0.0:67 inside the network namespace that holds the one interface it
 * serves (docs/netsvc.md) and replies by broadcast on that interface's subnet,
 * unicast to a client that has an address (renewal, INFORM), or to the relay.
 * Packets are handled one at a time; a lease is written to the store before
 * the ACK leaves.
 */
export class DhcpService implements NetService {
  readonly name = 'dhcp';
  readonly #o: DhcpServiceOptions;
  readonly #leaseCol: Collection<Lease>;
  readonly #resCol: Collection<Reservation>;
  readonly #settingsCol: Collection<PoolSettings>;
  #settings: PoolSettings;
  readonly #leases = new Map<string, Lease>();
  readonly #byMac = new Map<string, string>();
  readonly #reservations = new Map<string, Reservation>();
  readonly #reservedIps = new Map<string, string>();
  readonly #offers = new Map<string, { mac: string; expires: number }>();
  /** mac → offered ip, so a DISCOVER never scans every offer. */
  readonly #offerByMac = new Map<string, string>();
  readonly #net: number;
  readonly #mask: number;
  #cursor = 0;
  #socket: Socket | undefined;
  #serverId: string | undefined;
  #error: string | undefined;
  /** Set when a relay in the guest namespace owns the socket and hands packets to handle(). */
  #relayed: string | undefined;
  #chain: Promise<unknown> = Promise.resolve();
  #pendingOps: LeaseOp[] = [];
  #waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  #flushing: Promise<void> | undefined;
  readonly stats = { received: 0, dropped: 0, offers: 0, acks: 0, naks: 0 };

  constructor(o: DhcpServiceOptions) {
    this.#o = o;
    this.#leaseCol = o.store.collection<Lease>('dhcp.leases');
    this.#resCol = o.store.collection<Reservation>('dhcp.reservations');
    this.#settingsCol = o.store.collection<PoolSettings>('dhcp.settings');
    this.#settings = o.defaults;
    const [a, p] = o.subnet.split('/');
    const bits = Number(p);
    this.#mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    this.#net = (ipNum(a!) & this.#mask) >>> 0;
  }

  get subnetMask(): string {
    return numIp(this.#mask);
  }

  inSubnet(ip: string): boolean {
    const n = ipNum(ip);
    return ((n & this.#mask) >>> 0) === this.#net && n !== this.#net && n !== ((this.#net | ~this.#mask) >>> 0);
  }

  async reload(): Promise<void> {
    await this.#serialise(async () => {
      this.#settings = (await this.#settingsCol.get('pool')) ?? this.#o.defaults;
      this.#leases.clear();
      this.#byMac.clear();
      for (const l of await this.#leaseCol.values()) {
        this.#leases.set(l.ip, l);
        if (l.mac) this.#byMac.set(l.mac, l.ip);
      }
      this.#reservations.clear();
      this.#reservedIps.clear();
      for (const r of await this.#resCol.values()) {
        this.#reservations.set(r.mac, r);
        this.#reservedIps.set(r.ip, r.mac);
      }
    });
  }

  async start(): Promise<void> {
    await this.reload();
    if (!this.#o.interface) return;
    const addr = this.#o.serverIdOverride ?? interfaceAddress(this.#o.interface);
    if (!addr) {
      this.#error = `interface ${this.#o.interface} has no IPv4 address in this network namespace`;
      throw unavailable(`DHCP cannot serve ${this.#o.interface}: ${this.#error.slice(this.#o.interface.length + 10)}`, { hint: `give it an address in ${this.#o.subnet}, or run the manager inside the namespace that holds it (ip netns exec NS storm manager start)` });
    }
    const s = createSocket({ type: 'udp4', reuseAddr: true });
    s.on('message', (msg) => void this.#onPacket(msg));
    s.on('error', (e) => this.#o.log.warn('dhcp socket error', { error: e.message }));
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(this.#o.listen.port, this.#o.listen.host, () => (s.off('error', reject), resolve()));
    }).catch((e: NodeJS.ErrnoException) => {
      s.close();
      this.#error = `cannot bind ${this.#o.listen.host}:${this.#o.listen.port}: ${e.code ?? e.message}`;
      throw unavailable(`DHCP ${this.#error}`, { hint: 'another DHCP server (dnsmasq?) holds the port in this namespace: stop it', cause: e });
    });
    s.setBroadcast(true);
    this.#socket = s;
    this.#serverId = addr;
    this.#error = undefined;
    this.#o.log.info('dhcp serving', { interface: this.#o.interface, address: addr, pool: `${this.#settings.start}-${this.#settings.end}` });
  }

  /**
   * Serve through a socket another process owns: a relay inside the guest
   * network namespace passes each packet to handle() and sends the reply
   * (the embedded default, docs/netsvc.md). `serverId` is our address there.
   */
  serveRelayed(serverId: string, where: string): void {
    this.#serverId = serverId;
    this.#relayed = where;
    this.#error = undefined;
  }

  async stop(): Promise<void> {
    this.#relayed = undefined;
    const s = this.#socket;
    this.#socket = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
    await this.#chain;
    await this.#flushing;
  }

  status(): Health {
    if (this.#error) return unhealthy('dhcp', this.#error, `run the manager in the namespace that holds ${this.#o.interface}, with an address in ${this.#o.subnet}`);
    if (!this.#socket && !this.#relayed) return undetected('dhcp', 'the DHCP server is off (leases and reservations are kept)', 'set dhcpInterface (STORM_DHCP_INTERFACE) and start the manager in the namespace that holds it');
    const active = [...this.#leases.values()].filter((l) => l.state === 'bound' && l.expires > Date.now()).length;
    return healthy('dhcp', `serving ${this.#relayed ?? this.#o.interface} (${this.#serverId}), pool ${this.#settings.start}-${this.#settings.end}, ${active} active leases`, { ...this.stats });
  }

  #serialise<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#chain.then(fn, fn);
    this.#chain = next.catch(() => undefined);
    return next;
  }

  async #onPacket(msg: Buffer): Promise<void> {
    this.stats.received++;
    let out: { reply: Buffer; to: Destination } | undefined;
    try {
      out = await this.handle(msg);
    } catch (e) {
      this.#o.log.error('dhcp request failed', { error: (e as Error).message });
    }
    this.#o.log.debug('dhcp packet', { bytes: msg.length, reply: out ? DhcpService.typeName(out.reply[242]!) : null, to: out?.to.address });
    if (!out) return void this.stats.dropped++;
    this.#socket?.send(out.reply, out.to.port, out.to.address, (e) => e && this.#o.log.warn('dhcp send failed', { to: out!.to.address, error: e.message }));
  }

  /** Handle one packet as received: the reply and where it goes, or undefined (drop). Public for fuzz tests. */
  async handle(msg: Buffer): Promise<{ reply: Buffer; to: Destination } | undefined> {
    const req = parseRequest(msg);
    if (!req) return undefined;
    const ops: LeaseOp[] = [];
    const after: (() => void)[] = [];
    // Decisions are taken one at a time (after any admin change in progress)...
    const out = await this.#serialise(async () => this.#decide(req, ops, after));
    // ...and their writes are group-committed: one batch for every packet decided meanwhile.
    if (ops.length) await this.#commit(ops);
    for (const f of after) f();
    return out;
  }

  #commit(ops: LeaseOp[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#pendingOps.push(...ops);
      this.#waiters.push({ resolve, reject });
      this.#flushing ??= this.#flush();
    });
  }

  async #flush(): Promise<void> {
    await new Promise((r) => setImmediate(r)); // let the packets already read join this batch
    while (this.#pendingOps.length) {
      const ops = this.#pendingOps.splice(0);
      const waiters = this.#waiters.splice(0);
      try {
        const b = this.#o.store.batch();
        for (const op of ops) 'del' in op ? b.del(this.#leaseCol, op.del) : b.put(this.#leaseCol, op.put.ip, op.put);
        await b.write();
        for (const w of waiters) w.resolve();
      } catch (e) {
        // Nothing was written: no ACK leaves, and memory goes back to what the store holds.
        this.#o.log.error('dhcp lease write failed', { error: (e as Error).message });
        for (const w of waiters) w.reject(e);
        void this.reload().catch(() => undefined);
      }
    }
    this.#flushing = undefined;
  }

  #dest(req: DhcpRequest, nak: boolean): Destination {
    const clientPort = this.#o.listen.port + 1;
    if (req.giaddr !== '0.0.0.0') return { address: req.giaddr, port: this.#o.listen.port };
    if (!nak && req.ciaddr !== '0.0.0.0') return { address: req.ciaddr, port: clientPort };
    // A client without an address cannot answer ARP: broadcast on the subnet
    // (directed, so the route picks our one interface; 255.255.255.255 needs a default route).
    return { address: numIp((this.#net | ~this.#mask) >>> 0), port: clientPort };
  }

  #reply(req: DhcpRequest, type: number, yiaddr: string, extra: { ciaddr?: string; lease?: boolean; hostname?: string | undefined; message?: string } = {}): { reply: Buffer; to: Destination } {
    const sid = this.#serverId ?? this.#o.serverIdOverride ?? '0.0.0.0';
    const nak = type === MSG.NAK;
    const s = this.#settings;
    const reply = encodeReply({
      type,
      req,
      yiaddr,
      serverId: sid,
      ...(extra.ciaddr ? { ciaddr: extra.ciaddr } : {}),
      ...(nak ? { message: extra.message ?? 'address not available' } : {
        ...(extra.lease ? { leaseTime: s.leaseTime } : {}),
        subnetMask: this.subnetMask,
        router: s.router || sid,
        dns: s.dns.length ? s.dns : [sid],
        domain: this.#o.domain,
        broadcast: numIp((this.#net | ~this.#mask) >>> 0),
        ...(extra.hostname ? { hostname: extra.hostname } : {}),
      }),
    });
    if (type === MSG.OFFER) this.stats.offers++;
    if (type === MSG.ACK) this.stats.acks++;
    if (nak) this.stats.naks++;
    return { reply, to: this.#dest(req, nak) };
  }

  /** May `mac` have `ip` now? */
  #allowed(mac: string, ip: string, now: number): boolean {
    if (!isIPv4(ip) || !this.inSubnet(ip) || this.#excluded(ip)) return false;
    const res = this.#reservations.get(mac);
    if (res) return res.ip === ip;
    const owner = this.#reservedIps.get(ip);
    if (owner && owner !== mac) return false;
    const offer = this.#offers.get(ip);
    if (offer && offer.mac !== mac && offer.expires > now) return false;
    const l = this.#leases.get(ip);
    if (l && l.mac === mac && l.state !== 'declined') return true;
    if (l && l.expires > now) return false; // bound to another, or declined (quarantined)
    return this.#inPool(ip);
  }

  #excluded(ip: string): boolean {
    return ip === this.#serverId || ip === this.#o.serverIdOverride || ip === this.#settings.router || (this.#o.exclude?.includes(ip) ?? false);
  }

  #inPool(ip: string): boolean {
    const n = ipNum(ip);
    return n >= ipNum(this.#settings.start) && n <= ipNum(this.#settings.end);
  }

  #offerFor(mac: string, now: number): string | undefined {
    const ip = this.#offerByMac.get(mac);
    const o = ip ? this.#offers.get(ip) : undefined;
    return o && o.mac === mac && o.expires > now ? ip : undefined;
  }

  #dropOffer(mac: string): void {
    const ip = this.#offerByMac.get(mac);
    if (ip === undefined) return;
    this.#offerByMac.delete(mac);
    if (this.#offers.get(ip)?.mac === mac) this.#offers.delete(ip);
  }

  /** Expired offers go, a few at a time (Map order is insertion order, so oldest first). */
  #sweepOffers(now: number): void {
    let n = 0;
    for (const [ip, o] of this.#offers) {
      if (o.expires > now || n++ > 32) break;
      this.#offers.delete(ip);
      if (this.#offerByMac.get(o.mac) === ip) this.#offerByMac.delete(o.mac);
    }
  }

  /** Pick an address for a DISCOVER. */
  #choose(req: DhcpRequest, now: number): string | undefined {
    const mac = req.mac;
    const res = this.#reservations.get(mac);
    if (res) return this.#allowed(mac, res.ip, now) ? res.ip : undefined;
    for (const ip of [this.#byMac.get(mac), this.#offerFor(mac, now), req.requestedIp]) {
      if (ip && this.#allowed(mac, ip, now)) return ip;
    }
    const lo = ipNum(this.#settings.start);
    const hi = ipNum(this.#settings.end);
    const size = hi - lo + 1;
    if (size <= 0) return undefined;
    // Two passes from a moving cursor: never-leased addresses first, then expired ones.
    for (const fresh of [true, false]) {
      for (let i = 0; i < size; i++) {
        const n = lo + ((this.#cursor + i) % size);
        const ip = numIp(n);
        if (fresh && this.#leases.has(ip)) continue;
        if (this.#allowed(mac, ip, now)) {
          this.#cursor = (n - lo + 1) % size;
          return ip;
        }
      }
    }
    return undefined;
  }

  #bind(req: DhcpRequest, ip: string, now: number, ops: LeaseOp[]): Lease {
    const res = this.#reservations.get(req.mac);
    const lease: Lease = { ip, mac: req.mac, expires: now + this.#settings.leaseTime * 1000, state: 'bound' };
    const hostname = res?.hostname ?? req.hostname;
    if (hostname) lease.hostname = hostname;
    const old = this.#byMac.get(req.mac);
    if (old && old !== ip) ops.push({ del: old });
    ops.push({ put: lease });
    if (old && old !== ip) this.#leases.delete(old);
    const prev = this.#leases.get(ip);
    if (prev && prev.mac !== req.mac) this.#byMac.delete(prev.mac);
    this.#leases.set(ip, lease);
    this.#byMac.set(req.mac, ip);
    this.#dropOffer(req.mac);
    return lease;
  }

  /**
   * Decide on one request: memory is updated at once (the next packet sees it);
   * the store writes are returned in `ops`, and the reply leaves only after they land.
   */
  #decide(req: DhcpRequest, ops: LeaseOp[], after: (() => void)[]): { reply: Buffer; to: Destination } | undefined {
    if (!this.#serverId && !this.#o.serverIdOverride) return undefined;
    const now = Date.now();
    const mine = req.serverId === undefined || req.serverId === (this.#serverId ?? this.#o.serverIdOverride);
    const hostnameFor = (mac: string) => this.#reservations.get(mac)?.hostname;
    switch (req.type) {
      case MSG.DISCOVER: {
        const ip = this.#choose(req, now);
        if (!ip) {
          this.#o.log.warn('dhcp pool exhausted', { mac: req.mac });
          return undefined;
        }
        this.#dropOffer(req.mac);
        this.#offers.set(ip, { mac: req.mac, expires: now + (this.#o.offerHoldMs ?? 30_000) });
        this.#offerByMac.set(req.mac, ip);
        this.#sweepOffers(now);
        return this.#reply(req, MSG.OFFER, ip, { lease: true, hostname: hostnameFor(req.mac) });
      }
      case MSG.REQUEST: {
        if (!mine) {
          // The client chose another server: free what we offered it.
          this.#dropOffer(req.mac);
          return undefined;
        }
        const ip = req.requestedIp ?? (req.ciaddr !== '0.0.0.0' ? req.ciaddr : undefined);
        if (!ip) return this.#reply(req, MSG.NAK, '0.0.0.0', { message: 'no address requested' });
        if (!this.#allowed(req.mac, ip, now)) {
          this.#o.log.info('dhcp nak', { mac: req.mac, ip });
          return this.#reply(req, MSG.NAK, '0.0.0.0', { message: `${ip} is not available to ${req.mac}` });
        }
        const lease = this.#bind(req, ip, now, ops);
        after.push(() => this.#o.onEvent?.('dhcp.lease', `${req.mac} bound ${ip}`, { mac: req.mac, ip, hostname: lease.hostname }));
        return this.#reply(req, MSG.ACK, ip, { lease: true, hostname: lease.hostname, ...(req.ciaddr !== '0.0.0.0' ? { ciaddr: req.ciaddr } : {}) });
      }
      case MSG.RELEASE: {
        const l = this.#leases.get(req.ciaddr);
        if (!mine || !l || l.mac !== req.mac || l.state !== 'bound') return undefined;
        const released: Lease = { ...l, state: 'released', expires: now };
        ops.push({ put: released });
        this.#leases.set(l.ip, released);
        after.push(() => this.#o.onEvent?.('dhcp.release', `${req.mac} released ${l.ip}`, { mac: req.mac, ip: l.ip }));
        return undefined;
      }
      case MSG.DECLINE: {
        const ip = req.requestedIp;
        const l = ip ? this.#leases.get(ip) : undefined;
        if (!mine || !ip || !l || l.mac !== req.mac) return undefined;
        // Someone else answers ARP for it: quarantine the address for one lease time.
        const declined: Lease = { ip, mac: '', expires: now + this.#settings.leaseTime * 1000, state: 'declined' };
        ops.push({ put: declined });
        this.#leases.set(ip, declined);
        this.#byMac.delete(req.mac);
        after.push(() => this.#o.onEvent?.('dhcp.decline', `${req.mac} declined ${ip} (address in use on the network)`, { mac: req.mac, ip }));
        return undefined;
      }
      case MSG.INFORM:
        if (req.ciaddr === '0.0.0.0') return undefined;
        return this.#reply(req, MSG.ACK, '0.0.0.0', { ciaddr: req.ciaddr });
      default:
        return undefined; // OFFER/ACK/NAK sent to a server: not for us
    }
  }

  // ---- the admin's API -------------------------------------------------------

  /**
   * The admin ends a bound lease (a guest gone for good, a card replaced): it
   * stays on record as released, as a RELEASE from the client would leave it,
   * and its address is free for the pool again.
   */
  async releaseLease(ip: string): Promise<Lease> {
    const ops: LeaseOp[] = [];
    const released = await this.#serialise(async () => {
      const l = this.#leases.get(ip);
      if (!l || l.state !== 'bound') throw notFound(`no bound lease for ${ip}`, { hint: 'storm dhcp lease list' });
      const r: Lease = { ...l, state: 'released', expires: Date.now() };
      ops.push({ put: r });
      this.#leases.set(ip, r);
      return r;
    });
    await this.#commit(ops);
    return released;
  }

  async leases(): Promise<(Lease & { active: boolean })[]> {
    const now = Date.now();
    return (await this.#leaseCol.values()).map((l) => ({ ...l, active: l.state === 'bound' && l.expires > now })).sort((a, b) => ipNum(a.ip) - ipNum(b.ip));
  }

  settings(): PoolSettings & { subnet: string; interface: string; serverId: string | null; size: number } {
    const s = this.#settings;
    return { ...s, subnet: this.#o.subnet, interface: this.#o.interface, serverId: this.#serverId ?? null, size: Math.max(0, ipNum(s.end) - ipNum(s.start) + 1) };
  }

  /** Change the pool/options; validated, stored, used from the next packet on. */
  setSettings(patch: Partial<PoolSettings>): Promise<PoolSettings> {
    return this.#serialise(async () => {
      const s: PoolSettings = { ...this.#settings, ...Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) };
      for (const [k, v] of [['start', s.start], ['end', s.end]] as const) if (!isIPv4(v) || !this.inSubnet(v)) throw invalid(`pool ${k} ${v} is not an address inside ${this.#o.subnet}`);
      if (ipNum(s.start) > ipNum(s.end)) throw invalid(`pool start ${s.start} is after its end ${s.end}`);
      if (s.router && !isIPv4(s.router)) throw invalid(`router ${s.router} is not an IPv4 address`);
      if (!Array.isArray(s.dns) || s.dns.some((d) => !isIPv4(d))) throw invalid(`dns servers must be IPv4 addresses, got ${JSON.stringify(s.dns)}`);
      if (!Number.isInteger(s.leaseTime) || s.leaseTime < 60 || s.leaseTime > 31536000) throw invalid(`lease time ${s.leaseTime} must be 60..31536000 seconds`);
      await this.#settingsCol.put('pool', s);
      this.#settings = s;
      this.#cursor = 0;
      return s;
    });
  }

  async reservations(): Promise<Reservation[]> {
    return (await this.#resCol.values()).sort((a, b) => ipNum(a.ip) - ipNum(b.ip));
  }

  addReservation(r: Reservation): Promise<Reservation> {
    return this.#serialise(async () => {
      const mac = r.mac.toLowerCase().replace(/-/g, ':');
      if (!MAC.test(mac)) throw invalid(`"${r.mac}" is not a MAC address`, { hint: 'six hex pairs, e.g. 52:54:00:12:34:56' });
      if (!isIPv4(r.ip) || !this.inSubnet(r.ip)) throw invalid(`${r.ip} is not a host address inside ${this.#o.subnet}`);
      if (this.#excluded(r.ip)) throw invalid(`${r.ip} is the server's, the router's or the manager's own address`, { hint: 'pick another address' });
      if (r.hostname !== undefined && !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(r.hostname)) throw invalid(`host name "${r.hostname}" is not a valid label`);
      if (this.#reservations.has(mac)) throw conflict(`${mac} already has a reservation (${this.#reservations.get(mac)!.ip})`, { hint: 'remove it first' });
      const holder = this.#reservedIps.get(r.ip);
      if (holder) throw conflict(`${r.ip} is already reserved for ${holder}`);
      const l = this.#leases.get(r.ip);
      if (l && l.mac !== mac && l.state === 'bound' && l.expires > Date.now()) throw conflict(`${r.ip} is leased to ${l.mac} until ${new Date(l.expires).toISOString()}`, { hint: 'pick another address, or wait for (or release) that lease' });
      const res: Reservation = { mac, ip: r.ip, ...(r.hostname ? { hostname: r.hostname.toLowerCase() } : {}) };
      await this.#resCol.put(mac, res);
      this.#reservations.set(mac, res);
      this.#reservedIps.set(res.ip, mac);
      return res;
    });
  }

  /**
   * Reserve the first free address outside the dynamic pool for `mac` (an
   * instance at provisioning). Idempotent: a MAC that has a reservation keeps it.
   * Skips the server's address and .0/.255 host parts (some guests dislike them).
   */
  async reserveNext(mac: string, hostname?: string): Promise<Reservation> {
    const m = mac.toLowerCase().replace(/-/g, ':');
    const have = this.#reservations.get(m);
    if (have) return have;
    const lo = this.#net + 1;
    const hi = (this.#net | ~this.#mask) >>> 0;
    const now = Date.now();
    for (let n = lo; n < hi; n++) {
      const ip = numIp(n);
      if ((n & 255) === 0 || (n & 255) === 255 || this.#inPool(ip) || this.#excluded(ip) || this.#reservedIps.has(ip)) continue;
      const l = this.#leases.get(ip);
      if (l && l.mac !== m && l.expires > now) continue;
      try {
        return await this.addReservation({ mac: m, ip, ...(hostname ? { hostname } : {}) });
      } catch (e) {
        if ((e as { code?: string }).code !== 'conflict') throw e; // raced with another reservation: try the next
      }
    }
    throw conflict(`no free address left outside the dynamic pool in ${this.#o.subnet}`, { hint: 'shrink the pool (storm dhcp pool set) or remove unused reservations' });
  }

  removeReservation(mac: string): Promise<Reservation> {
    return this.#serialise(async () => {
      const m = mac.toLowerCase().replace(/-/g, ':');
      const r = this.#reservations.get(m);
      if (!r) throw notFound(`no reservation for ${m}`, { hint: 'see storm dhcp reservation list' });
      await this.#resCol.del(m);
      this.#reservations.delete(m);
      this.#reservedIps.delete(r.ip);
      return r;
    });
  }

  /** Message-type name, for logs and tests. */
  static typeName(t: number): string {
    return MSG_NAME[t] ?? String(t);
  }
}
