/**
 * Hypervisors the manager commands: enrolment by one-time token, a stormd
 * client per host, health polled with backoff, state as data
 * (pending | online | offline | untrusted), certificate renewal before expiry,
 * and CRL pushes when a host's list lags ours. Records live in the store.
 */
import { parseHostPort } from '../../lib/config.ts';
import { conflict, invalid, notFound, toStormError, type ErrorData } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import type { JoinResponse } from '../../stormd/api/join.ts';
import { METHODS, STORMD_DEFAULT_PORT, type CrlUpdateResult, type CsrResult, type HostInfo } from '../../stormd/api/methods.ts';
import type { EventBus } from '../events.ts';
import { csrPublicKey } from '../pki/forge-util.ts';
import { needsRenewal, sanFor, type Pki } from '../pki/pki.ts';
import type { Collection, Store } from '../store/store.ts';
import { StormdClient } from './client.ts';
import { JoinTokens } from './tokens.ts';

export type HostState = 'pending' | 'online' | 'offline' | 'untrusted';

export interface HostRecord {
  name: string;
  /** HOST:PORT where its stormd listens. */
  address: string;
  state: HostState;
  addedAt: string;
  tokenExpiresAt?: string;
  enrolledAt?: string;
  certSerial?: string;
  certNotAfter?: string;
  lastSeen?: string;
  /** Why it is not online, as data. */
  lastError?: ErrorData;
  info?: HostInfo;
  /** CPU usage (info.cpuPercent) of the last polls, oldest first, at most CPU_HISTORY: the console's sparkline. */
  cpuHistory?: number[];
}

/** Samples of CPU usage kept per host (10 minutes at the default 10 s poll). */
export const CPU_HISTORY = 60;

export interface HostAddResult {
  host: HostRecord;
  token: string;
  expiresAt: string;
  /** The command to run on the hypervisor; absent when the enrolment endpoint is not serving. */
  joinCommand?: string;
  joinUrl?: string;
}

export interface HostsOptions {
  store: Store;
  pki: Pki;
  bus: EventBus;
  log: Logger;
  tokenTtlSeconds: number;
  pollSeconds: number;
  /** How long a host online before the start may fail its polls before it is reported offline (default START_GRACE_MS). */
  startGraceMs?: number;
  /** The enrolment URL, once its server listens. */
  joinUrl: () => string | undefined;
}

const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const MAX_BACKOFF_S = 60;
/** A host online before the manager (re)started has this long to answer before it is reported offline: its stormd may be starting beside it. */
export const START_GRACE_MS = 15_000;

export function parseAddress(address: string): { host: string; port: number } {
  const hp = parseHostPort(address);
  if (hp) return hp;
  if (/^[A-Za-z0-9.-]+$/.test(address)) return { host: address, port: STORMD_DEFAULT_PORT };
  throw invalid(`address "${address}" is not HOST or HOST:PORT`, { hint: `e.g. 192.0.2.10:${STORMD_DEFAULT_PORT}` });
}

export class Hosts {
  readonly #o: HostsOptions;
  readonly #c: Collection<HostRecord>;
  readonly tokens: JoinTokens;
  readonly #clients = new Map<string, StormdClient>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #failures = new Map<string, number>();
  readonly #pushing = new Map<string, Promise<CrlUpdateResult | undefined>>();
  #stopped = false;
  /** Hosts enrolled at start whose first poll has not finished yet. */
  readonly #firstPoll = new Map<string, () => void>();
  readonly #polling = new Map<string, Promise<HostRecord>>();
  readonly #pollNext = new Map<string, Promise<HostRecord>>();
  #firstPolls: Promise<void> = Promise.resolve();
  /** Hosts online at start → until when their scheduled polls may fail without reporting them offline. */
  readonly #graceUntil = new Map<string, number>();

  constructor(o: HostsOptions) {
    this.#o = o;
    this.#c = o.store.collection<HostRecord>('hosts');
    this.tokens = new JoinTokens(o.store);
    o.pki.onChange(() => {
      for (const c of this.#clients.values()) c.reset();
      void this.pushCrlAll();
    });
  }

  /** Begin polling every enrolled host. */
  async start(): Promise<void> {
    const enrolled = (await this.#c.values()).filter((h) => h.certSerial);
    this.#firstPolls = Promise.all(enrolled.map((h) => new Promise<void>((r) => this.#firstPoll.set(h.name, r)))).then(() => undefined);
    for (const h of enrolled) {
      if (h.state === 'online') this.#graceUntil.set(h.name, Date.now() + (this.#o.startGraceMs ?? START_GRACE_MS));
      this.#schedule(h.name, 0);
    }
  }

  /** Resolves once every host enrolled at start has been polled (online or not): then the states are real. */
  firstPolls(): Promise<void> {
    return this.#firstPolls;
  }

  stop(): void {
    this.#stopped = true;
    for (const r of this.#firstPoll.values()) r();
    this.#firstPoll.clear();
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    for (const c of this.#clients.values()) c.reset();
  }

  async add(name: string, address: string, ttlSeconds = this.#o.tokenTtlSeconds): Promise<HostAddResult> {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > 7 * 86400) throw invalid(`token lifetime must be 1..604800 seconds, got ${ttlSeconds}`);
    if (!NAME_RE.test(name)) throw invalid(`host name "${name}" is not a DNS label (a-z, 0-9, -; up to 63)`);
    const { host, port } = parseAddress(address);
    if (await this.#c.get(name)) throw conflict(`host "${name}" already exists`, { hint: `storm host remove ${name} first to enrol it again` });
    const { token, expiresAt } = await this.tokens.create(name, ttlSeconds, this.#o.pki.caPin);
    const rec: HostRecord = { name, address: `${host.includes(':') ? `[${host}]` : host}:${port}`, state: 'pending', addedAt: new Date().toISOString(), tokenExpiresAt: expiresAt };
    await this.#c.put(name, rec);
    this.#o.bus.emit({ kind: 'host.added', object: name, message: `host ${name} added (${rec.address}); waiting for stormd join` });
    const url = this.#o.joinUrl();
    return { host: rec, token, expiresAt, ...(url ? { joinUrl: url, joinCommand: `stormd join --manager ${url} --token ${token}` } : {}) };
  }

  /** The enrolment endpoint's handler: burn the token, sign the CSR for that host. */
  async enroll(token: string, csr: string): Promise<JoinResponse> {
    // A valid token first (no work for strangers), then the CSR, and only then is the token spent.
    await this.tokens.check(token);
    try {
      csrPublicKey(csr);
    } catch (e) {
      throw invalid(`certificate request refused: ${(e as Error).message}`);
    }
    const t = await this.tokens.consume(token);
    const rec = await this.#c.get(t.host);
    if (!rec) throw notFound(`host "${t.host}" was removed after this token was made`, { hint: 'storm host add it again' });
    const { host } = parseAddress(rec.address.replace(/^\[(.*)\]/, '$1'));
    const issued = await this.#o.pki.issueFromCsr(csr, { role: 'stormd', commonName: rec.name, san: sanFor([rec.name, host]) });
    if (rec.certSerial) await this.#o.pki.revoke(rec.certSerial, 'superseded').catch(() => undefined);
    const next: HostRecord = { ...rec, state: 'offline', enrolledAt: new Date().toISOString(), certSerial: issued.serial, certNotAfter: issued.notAfter };
    delete next.tokenExpiresAt;
    await this.#c.put(rec.name, next);
    this.#clients.get(rec.name)?.reset();
    this.#o.bus.emit({ kind: 'host.enrolled', object: rec.name, message: `host ${rec.name} enrolled (certificate ${issued.serial})` });
    this.#schedule(rec.name, 0);
    return { name: rec.name, cert: issued.certPem, ca: this.#o.pki.caCertPem, crl: this.#o.pki.crlPem };
  }

  async list(): Promise<HostRecord[]> {
    return this.#c.values();
  }

  /** One host, polled now when it is enrolled (so show is current). */
  async show(name: string): Promise<HostRecord> {
    const rec = await this.#c.require(name, 'host');
    if (!rec.certSerial) return rec;
    return this.poll(name);
  }

  async remove(name: string): Promise<{ name: string; revoked?: string }> {
    const rec = await this.#c.require(name, 'host');
    clearTimeout(this.#timers.get(name));
    this.#timers.delete(name);
    this.#clients.get(name)?.reset();
    this.#clients.delete(name);
    await this.tokens.removeFor(name);
    await this.#c.del(name);
    if (rec.certSerial) await this.#o.pki.revoke(rec.certSerial, `host ${name} removed`);
    this.#o.bus.emit({ kind: 'host.removed', object: name, message: `host ${name} removed${rec.certSerial ? `; certificate ${rec.certSerial} revoked` : ''}` });
    return { name, ...(rec.certSerial ? { revoked: rec.certSerial } : {}) };
  }

  /** A client for an enrolled host (later: layer.* and domain.* calls go through it). */
  async client(name: string): Promise<StormdClient> {
    const rec = await this.#c.require(name, 'host');
    if (!rec.certSerial) throw invalid(`host ${name} has not joined yet`, { hint: 'run the stormd join command printed by storm host add on that host' });
    return this.#client(rec);
  }

  #client(rec: HostRecord): StormdClient {
    let c = this.#clients.get(rec.name);
    if (!c) {
      const { host, port } = parseAddress(rec.address);
      c = new StormdClient({
        name: rec.name, host, port,
        tls: () => this.#o.pki.managerTls(),
        crlNumber: () => this.#o.pki.crlNumber,
        onCrlNumber: (n) => {
          if (n < this.#o.pki.crlNumber) void this.pushCrl(rec.name);
        },
      });
      this.#clients.set(rec.name, c);
    }
    return c;
  }

  /** Push our CRL to a host; pushes to one host run one after another, each sending the newest list. */
  pushCrl(name: string): Promise<CrlUpdateResult | undefined> {
    const prev = this.#pushing.get(name) ?? Promise.resolve(undefined);
    const next = prev.then(() => this.#pushNow(name));
    this.#pushing.set(name, next);
    void next.finally(() => {
      if (this.#pushing.get(name) === next) this.#pushing.delete(name);
    });
    return next;
  }

  async #pushNow(name: string): Promise<CrlUpdateResult | undefined> {
    try {
      const rec = await this.#c.get(name);
      if (!rec?.certSerial) return undefined;
      const r = await this.#client(rec).call<CrlUpdateResult>(METHODS.crlUpdate, { crl: this.#o.pki.crlPem }, { timeoutMs: 10_000 });
      this.#o.log.info('pushed CRL', { host: name, number: r.number, closed: r.closed });
      return r;
    } catch (e) {
      this.#o.log.warn('CRL push failed', { host: name, error: (e as Error).message });
      return undefined;
    }
  }

  async pushCrlAll(): Promise<void> {
    await Promise.all((await this.#c.values()).filter((h) => h.certSerial && h.state === 'online').map((h) => this.pushCrl(h.name)));
  }

  #schedule(name: string, delayMs: number): void {
    if (this.#stopped) return;
    clearTimeout(this.#timers.get(name));
    const t = setTimeout(() => {
      this.#timers.delete(name);
      if (this.#polling.has(name)) return; // the running poll schedules the next when it ends
      void this.#begin(name, (this.#graceUntil.get(name) ?? 0) > Date.now()).catch(() => undefined);
    }, delayMs);
    t.unref();
    this.#timers.set(name, t);
  }

  /**
   * Poll one host now; reschedules itself (interval when online, backoff when not). One poll
   * per host at a time: two at once would both renew its certificate, and stormd keeps only the
   * last key it made. A caller arriving during a poll gets a fresh one after it (shared with
   * whoever else arrives meanwhile): the running one may have started before what it waits for.
   */
  poll(name: string): Promise<HostRecord> {
    const running = this.#polling.get(name);
    if (running) {
      let next = this.#pollNext.get(name);
      if (!next) {
        next = running.catch(() => undefined).then(() => {
          this.#pollNext.delete(name);
          return this.poll(name);
        });
        this.#pollNext.set(name, next);
      }
      return next;
    }
    return this.#begin(name, false);
  }

  /** Start a poll, registered as the one running; `grace`: a failure keeps a host that was online online (explicit polls never). */
  #begin(name: string, grace: boolean): Promise<HostRecord> {
    const p = this.#poll(name, grace).finally(() => {
      this.#polling.delete(name);
      this.#firstPoll.get(name)?.();
      this.#firstPoll.delete(name);
    });
    this.#polling.set(name, p);
    return p;
  }

  async #poll(name: string, grace: boolean): Promise<HostRecord> {
    const rec = await this.#c.require(name, 'host');
    let next: HostRecord;
    try {
      const info = await this.#client(rec).call<HostInfo>(METHODS.hostInfo, {}, { timeoutMs: 10_000 });
      next = { ...rec, state: 'online', lastSeen: new Date().toISOString(), info };
      if (typeof info.cpuPercent === 'number') next.cpuHistory = [...(rec.cpuHistory ?? []), info.cpuPercent].slice(-CPU_HISTORY);
      delete next.lastError;
      this.#failures.set(name, 0);
      this.#graceUntil.delete(name);
      if (info.crlNumber < this.#o.pki.crlNumber) void this.pushCrl(name);
      if (needsRenewal(new Date(info.certNotBefore), new Date(info.certNotAfter), new Date())) next = await this.#renew(next).catch((e) => (this.#o.log.warn('renewal failed', { host: name, error: (e as Error).message }), next));
    } catch (e) {
      const err = toStormError(e);
      const state = err.details?.trust ? 'untrusted' : grace && rec.state === 'online' ? 'online' : 'offline';
      next = { ...rec, state, lastError: err.toJSON() };
      this.#failures.set(name, (this.#failures.get(name) ?? 0) + 1);
    }
    if (!(await this.#c.get(name))) return next; // removed while we polled
    await this.#c.put(name, next);
    if (next.state !== rec.state) {
      this.#o.bus.emit({ kind: 'host.state', object: name, level: next.state === 'online' ? 'info' : 'warn', message: `host ${name} is ${next.state}${next.lastError ? `: ${next.lastError.message}` : ''}` });
    }
    const f = this.#failures.get(name) ?? 0;
    this.#schedule(name, f === 0 ? this.#o.pollSeconds * 1000 : Math.min(MAX_BACKOFF_S, 2 ** (f - 1)) * 1000);
    return next;
  }

  /** Renew a host's certificate: stormd makes a new key, we sign its CSR, it installs; the old one is revoked. */
  async #renew(rec: HostRecord): Promise<HostRecord> {
    const c = this.#client(rec);
    const { csr } = await c.call<CsrResult>(METHODS.tlsCsr, {});
    const { host } = parseAddress(rec.address);
    const issued = await this.#o.pki.issueFromCsr(csr, { role: 'stormd', commonName: rec.name, san: sanFor([rec.name, host]) });
    await c.call(METHODS.tlsInstall, { cert: issued.certPem });
    const next = { ...rec, certSerial: issued.serial, certNotAfter: issued.notAfter };
    await this.#c.put(rec.name, next);
    if (rec.certSerial) await this.#o.pki.revoke(rec.certSerial, 'superseded');
    this.#o.bus.emit({ kind: 'host.renewed', object: rec.name, message: `host ${rec.name} certificate renewed until ${issued.notAfter}` });
    return next;
  }
}
