/**
 * The appliances' configuration API: XML-RPC over mutual TLS on its own port,
 * the manager's certificate on our side and an instance certificate on
 * theirs (role `instance` only; stormd and manager certificates are refused in
 * the handshake check). Follows the CA (renewed certificate, new CRL), issues
 * each instance's certificate when it is created and revokes it when it is
 * destroyed. Every call is an event: who, what, when, and the outcome.
 */
import { healthy, undetected, unhealthy, type Health } from '../../lib/health.ts';
import { RPC_PATH, RpcServer } from '../../lib/xmlrpc/server.ts';
import type { NetService } from '../netsvc/service.ts';
import type { Pki } from '../pki/pki.ts';
import { Credentials, type InstanceCredentials } from './credentials.ts';
import { Grants } from './grants.ts';
import { apiMethods, forgetInstance, printable, type ApiDeps, type DirectoryEndpoints, type KeytabProvider } from './methods.ts';

/** A method name as an event shows it: as is when it looks like one, quoted and cut otherwise. */
const methodLabel = (m: string | undefined) => (m === undefined ? '(undecodable request)' : /^[A-Za-z0-9._-]{1,64}$/.test(m) ? m : JSON.stringify(printable(m, 64)));

/** Requests larger than this are refused with 413 (the API's calls are small). */
export const API_MAX_BODY_BYTES = 64 * 1024;

export interface ApplianceApiOptions extends Omit<ApiDeps, 'creds' | 'grants' | 'manager' | 'directory' | 'keytab'> {
  pki: Pki;
  /** undefined: the API is off (credentials are still issued). */
  listen: { host: string; port: number } | undefined;
  /** The manager's address as instances see it. */
  managerAddress: string;
  /** Fixed API URL for instances; '' = https://<managerAddress>:<port>/RPC2. */
  apiUrl: string;
  dns: ApiDeps['dns'];
  dnsListen: { host: string; port: number } | undefined;
}

export class ApplianceApi implements NetService {
  readonly name = 'api';
  readonly creds: Credentials;
  readonly grants: Grants;
  readonly #o: ApplianceApiOptions;
  #server: RpcServer | undefined;
  #url: string | undefined;
  #error: string | undefined;
  #calls = 0;
  #refused = 0;
  #directory: () => DirectoryEndpoints = () => ({});
  #keytab: KeytabProvider | undefined;
  #unsubscribe: (() => void)[] = [];
  #chain: Promise<unknown> = Promise.resolve();

  private constructor(o: ApplianceApiOptions, creds: Credentials) {
    this.#o = o;
    this.creds = creds;
    this.grants = new Grants(o.store);
  }

  static async open(o: ApplianceApiOptions): Promise<ApplianceApi> {
    return new ApplianceApi(o, await Credentials.open(o.store, o.pki, o.log));
  }

  /** Wire the directory (LDAP/Kerberos endpoints for config.get, read per call, and the keytab maker). */
  setDirectory(endpoints: DirectoryEndpoints | (() => DirectoryEndpoints), keytab?: KeytabProvider): void {
    this.#directory = typeof endpoints === 'function' ? endpoints : () => endpoints;
    this.#keytab = keytab;
  }

  /** The URL instances call (written to /etc/storm/manager). */
  get url(): string {
    if (this.#o.apiUrl) return this.#o.apiUrl;
    // Fixed once listening; config.get answers with it on every call (address() is a syscall).
    if (this.#url) return this.#url;
    const port = this.#server?.address().port ?? this.#o.listen?.port ?? 0;
    const h = this.#o.managerAddress;
    return `https://${h.includes(':') ? `[${h}]` : h}:${port}${RPC_PATH}`;
  }

  get port(): number | undefined {
    return this.#server?.address().port;
  }

  /** key + cert + CA of an instance, issued if missing (for the instance layer). */
  async instanceCredentials(id: string): Promise<InstanceCredentials> {
    return this.creds.forInstance(id);
  }

  /** Issue on instance.created, revoke and forget on instance.destroyed (failures are events). */
  follow(): void {
    this.#chain = this.#chain.then(() => this.#forgetGone().catch((err) => this.#o.log.warn('could not forget gone instances', { error: (err as Error).message })));
    this.#unsubscribe.push(
      this.#o.bus.subscribe((e) => {
        const name = e.object?.startsWith('instance/') ? e.object.slice('instance/'.length) : undefined;
        if (!name || (e.kind !== 'instance.created' && e.kind !== 'instance.destroyed')) return;
        this.#chain = this.#chain.then(async () => {
          try {
            if (e.kind === 'instance.created') {
              const inst = await this.#o.instances.get(typeof e.data?.id === 'string' ? e.data.id : name);
              await this.creds.ensure(inst);
            } else {
              const rec = (await this.creds.list()).find((c) => c.name === name);
              let live = false;
              if (rec) live = await this.#o.instances.get(rec.id).then((i) => i.id === rec.id, () => false);
              if (rec && !live) {
                await this.creds.revoke(rec.id);
                this.#o.bus.emit({ kind: 'api.revoked', object: `instance/${name}`, message: `certificate ${rec.serial} of ${name} revoked (instance destroyed)` });
              }
              await this.grants.removeInstance(name);
              await forgetInstance(this.#o, name, rec?.id);
            }
          } catch (err) {
            this.#o.bus.emit({ kind: 'api.credentials.failed', level: 'error', object: `instance/${name}`, message: `API certificate for ${name}: ${(err as Error).message}` });
          }
        });
      }),
    );
  }

  /**
   * Forget what instances that no longer exist still hold here (credentials, grants, DNS
   * records they registered, status): the instance.destroyed event that does it is lost
   * when the manager dies right after a destroy. Each is checked against the store as
   * it goes, so an instance created meanwhile keeps its own.
   */
  async #forgetGone(): Promise<void> {
    const exists = (ref: string) => this.#o.instances.get(ref).then(() => true, () => false);
    for (const c of await this.creds.list()) {
      if (await exists(c.id)) continue;
      await this.creds.revoke(c.id, 'instance gone');
      await this.grants.removeInstance(c.name);
      await forgetInstance(this.#o, c.name, c.id);
    }
    const names = new Set([...(await this.grants.list()).map((g) => g.instance), ...(await this.#o.dns.listRecords()).flatMap((r) => (r.owner.startsWith('instance:') ? [r.owner.slice('instance:'.length)] : []))]);
    for (const name of names) {
      if (await exists(name)) continue;
      await this.grants.removeInstance(name);
      await forgetInstance(this.#o, name, undefined);
    }
  }

  /** Wait for pending issue/revoke work (tests, shutdown). */
  idle(): Promise<unknown> {
    return this.#chain;
  }

  async start(): Promise<void> {
    if (!this.#o.listen) return;
    const tls = this.#o.pki.managerTls();
    const methods = apiMethods({
      ...this.#o,
      creds: this.creds,
      grants: this.grants,
      manager: () => ({ address: this.#o.managerAddress, api: this.url, dns: this.#o.dnsListen }),
      directory: () => this.#directory(),
      keytab: () => this.#keytab,
    });
    try {
      this.#server = await RpcServer.start({
        host: this.#o.listen.host,
        port: this.#o.listen.port,
        tls,
        methods,
        log: this.#o.log,
        allow: ['instance'],
        maxBodyBytes: API_MAX_BODY_BYTES,
        onCall: (c) => this.#audit(c),
        onRefuse: (r) => {
          this.#refused++;
          this.#o.bus.emit({ kind: 'api.refused', level: 'warn', message: `refused a connection from ${r.remote ?? '?'}: ${printable(r.why)}`, data: { remote: r.remote, why: printable(r.why, 1000) } });
        },
      });
    } catch (e) {
      this.#error = (e as Error).message;
      throw e;
    }
    this.#error = undefined;
    this.#url = this.url;
    let cert = tls.cert;
    this.#unsubscribe.push(
      this.#o.pki.onChange(() => {
        const s = this.#server;
        if (!s) return;
        const t = this.#o.pki.managerTls();
        if (t.cert !== cert) {
          s.updateCert(t.key, t.cert);
          cert = t.cert;
        }
        if (this.#o.pki.crlNumber > s.crlNumber) s.updateCrl(t.crl);
      }),
    );
    this.#o.log.info('appliance API listening', { address: `${this.#server.address().host}:${this.#server.address().port}`, url: this.url });
  }

  #audit(c: Parameters<NonNullable<Parameters<typeof RpcServer.start>[0]['onCall']>>[0]): void {
    this.#calls++;
    if (c.error) this.#refused++;
    const who = this.creds.nameOf(c.peer.serial) ?? c.peer.commonName;
    const what = methodLabel(c.method);
    const outcome = c.error ? `: ${c.error.code} (${printable(c.error.message)})` : '';
    this.#o.bus.emit({
      kind: 'api.call',
      level: c.error ? (c.error.code === 'unauthorized' ? 'warn' : 'info') : 'info',
      object: `instance/${who}`,
      message: `${who} called ${what}${outcome}`,
      data: { instance: who, serial: c.peer.serial, method: what, ok: !c.error, ...(c.error ? { code: c.error.code } : {}) },
    });
    this.#o.log.info('api call', { instance: who, serial: c.peer.serial, method: what, ok: !c.error, ...(c.error ? { code: c.error.code } : {}) });
  }

  async stop(): Promise<void> {
    for (const u of this.#unsubscribe.splice(0)) u();
    await this.#chain.catch(() => undefined);
    await this.#server?.close();
    this.#server = undefined;
    this.#url = undefined;
  }

  async reload(): Promise<void> {
    /* grants and credentials are read per call */
  }

  status(): Health {
    if (this.#error) return unhealthy('api', this.#error, 'free the port or change apiListen (STORM_API_LISTEN), then restart the manager');
    if (!this.#server) return undetected('api', 'the appliance API is off (instance certificates are still issued)', 'set apiListen (STORM_API_LISTEN=HOST:PORT) and restart the manager');
    const a = this.#server.address();
    return healthy('api', `appliance XML-RPC API on ${a.host}:${a.port} (mutual TLS, instance certificates)`, { url: this.url, calls: this.#calls, refused: this.#refused, crlNumber: this.#server.crlNumber, maxBodyBytes: API_MAX_BODY_BYTES });
  }
}
