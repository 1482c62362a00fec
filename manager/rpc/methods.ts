/**
 * The appliances' XML-RPC methods. The caller is always the instance its
 * certificate was issued to (by serial); no method takes an argument naming
 * an instance, and unknown struct members are refused, so a forged "id" or
 * "name" never reaches a lookup. Every input is validated before use.
 */
import { X509Certificate } from 'node:crypto';
import { invalid, StormError, unauthorized, unavailable } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import { MethodTable, type MethodContext, type RpcMethod } from '../../lib/xmlrpc/methods.ts';
import type { EventBus } from '../events.ts';
import { reportLevel, type InstanceRecord, type InstanceReport } from '../instances/model.ts';
import type { CreateRequest } from '../instances/service.ts';
import type { DnsRecord } from '../netsvc/dns/zone.ts';
import type { Collection, Store } from '../store/store.ts';
import type { Credentials } from './credentials.ts';
import { DOMAIN_MX, type Grants } from './grants.ts';

/** Where the directory services are, once the LDAP/Kerberos providers are wired. */
export interface DirectoryEndpoints {
  ldap?: { uri: string; baseDn: string };
  kerberos?: { realm: string; kdc: string; adminServer?: string };
}

/** Makes an instance's host keytab (the Kerberos provider implements it). */
export interface KeytabProvider {
  /** The keytab file bytes for host/FQDN@REALM, creating the principal when needed. */
  hostKeytab(inst: { id: string; name: string; fqdn: string }): Promise<{ principal: string; keytab: Buffer }>;
}

/** What an instance reported last (status.report). */
export type StatusReport = InstanceReport;

/** The reports, one per instance id (the newest): the API writes them, `storm api reports` and update health checks read them. */
export const statusReports = (store: Store): Collection<StatusReport> => store.collection<StatusReport>('api.status');

/** The parts of the manager the API reaches. */
export interface ApiDeps {
  store: Store;
  bus: EventBus;
  log: Logger;
  creds: Credentials;
  grants: Grants;
  instances: {
    get(ref: string): Promise<InstanceRecord>;
    list(): Promise<InstanceRecord[]>;
    create(req: CreateRequest): Promise<InstanceRecord>;
    provision(ref: string): Promise<InstanceRecord>;
  };
  dns: {
    ensureRecord(r: { name: string; type: string; value: string; priority?: number; owner?: string }): Promise<{ record: DnsRecord; added: boolean }>;
    removeRecord(r: { name: string; type?: string; value?: string; owner?: string }): Promise<DnsRecord[]>;
    listRecords(): Promise<DnsRecord[]>;
  };
  domain: string;
  /** Live instances one instance may have created over the API. */
  createLimit: number;
  /** The manager as instances reach it. */
  manager: () => { address: string; api: string; dns: { host: string; port: number } | undefined };
  directory: () => DirectoryEndpoints;
  keytab: () => KeytabProvider | undefined;
}

/** Longest status message kept. */
export const MAX_STATUS_MESSAGE = 1024;
const STATUS = /^[a-z][a-z0-9-]{0,31}$/;
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

/** Caller-controlled text in an event line: no control characters (terminal escapes), bounded. */
export function printable(s: string, max = 200): string {
  const cut = s.length > max ? `${s.slice(0, max)}…` : s;
  return cut.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

/** Refuse struct members a method does not take (a forged "id" is refused, not ignored). */
function only(p: Record<string, unknown>, allowed: readonly string[], method: string): void {
  // A struct member named __proto__ becomes the object's prototype in the decoder: refuse it outright.
  if (Object.getPrototypeOf(p) !== Object.prototype) throw invalid(`${method}: the parameter must be a plain struct`);
  const extra = Object.keys(p).filter((k) => !allowed.includes(k));
  if (extra.length) {
    throw invalid(`${method}: unexpected parameter${extra.length > 1 ? 's' : ''} ${extra.slice(0, 5).map((k) => JSON.stringify(k.slice(0, 40))).join(', ')}`, {
      hint: allowed.length ? `${method} takes ${allowed.join(', ')}; the caller is identified by its certificate, never by a parameter` : `${method} takes no parameters; the caller is identified by its certificate`,
    });
  }
}

function optString(p: Record<string, unknown>, key: string, method: string, max: number): string | undefined {
  const v = p[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw invalid(`${method}: "${key}" must be a string`);
  if (v.length > max) throw invalid(`${method}: "${key}" is longer than ${max} characters`);
  if (CONTROL.test(v)) throw invalid(`${method}: "${key}" contains control characters`);
  return v;
}

function optInt(p: Record<string, unknown>, key: string, method: string, min: number, max: number): number | undefined {
  const v = p[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw invalid(`${method}: "${key}" must be an integer ${min}..${max}`);
  return v;
}

/** What an instance needs to know to renew in time: renew when a third of the lifetime is left. */
const certInfos = new Map<string, { serial: string; notAfter: string; renewAfter: string }>();
function certInfo(r: { serial: string; cert: string; notAfter: string } | undefined): { serial: string; notAfter: string; renewAfter: string } | Record<string, never> {
  if (!r) return {};
  const known = certInfos.get(r.serial);
  if (known) return known;
  if (certInfos.size > 10_000) certInfos.clear();
  const x = new X509Certificate(r.cert);
  const from = Date.parse(x.validFrom);
  const to = Date.parse(x.validTo);
  const info = { serial: r.serial, notAfter: r.notAfter, renewAfter: new Date(to - (to - from) / 3).toISOString() };
  certInfos.set(r.serial, info);
  return info;
}

/** A DNS name as given: lower case, no trailing dot. */
const dnsName = (s: string) => s.trim().toLowerCase().replace(/\.$/, '');

export function apiMethods(d: ApiDeps): MethodTable {
  const statuses = statusReports(d.store);

  /** The calling instance, from its certificate serial only. */
  const caller = async (ctx: MethodContext): Promise<InstanceRecord> => {
    const cred = d.creds.bySerial(ctx.peer.serial);
    if (!cred || cred.name !== ctx.peer.commonName) throw unauthorized(`certificate ${ctx.peer.serial} does not belong to a live instance`, { hint: 'the instance was destroyed or its certificate replaced' });
    let inst: InstanceRecord;
    try {
      inst = await d.instances.get(cred.id);
    } catch {
      throw unauthorized(`certificate ${ctx.peer.serial} belongs to an instance that no longer exists`);
    }
    if (inst.id !== cred.id || inst.name !== cred.name) throw unauthorized(`certificate ${ctx.peer.serial} does not belong to a live instance`);
    await d.creds.used(ctx.peer.serial);
    return inst;
  };
  const fqdnOf = (inst: InstanceRecord) => `${inst.name}.${d.domain}`;
  const ownerOf = (inst: InstanceRecord) => `instance:${inst.name}`;

  const methods: RpcMethod<Record<string, unknown>, unknown>[] = [
    {
      name: 'config.get',
      summary: "the calling instance's configuration: identity, parameters, appliance, manager and service endpoints",
      handler: async (p, ctx) => {
        only(p, [], 'config.get');
        const inst = await caller(ctx);
        const m = d.manager();
        const dir = d.directory();
        return {
          id: inst.id,
          name: inst.name,
          fqdn: fqdnOf(inst),
          domain: d.domain,
          appliance: inst.appliance,
          version: inst.version,
          parameters: inst.params,
          ...(inst.createdBy ? { createdBy: inst.createdBy } : {}),
          certificate: certInfo(d.creds.bySerial(ctx.peer.serial)),
          manager: { address: m.address, name: 'storm.local', api: m.api },
          services: {
            ...(m.dns ? { dns: { server: m.address, port: m.dns.port, domain: d.domain } } : {}),
            ...(dir.ldap ? { ldap: dir.ldap } : {}),
            ...(dir.kerberos ? { kerberos: dir.kerberos } : {}),
          },
        };
      },
    },
    {
      name: 'status.report',
      summary: 'report the instance status (a word such as ready, degraded, failed) and a message',
      handler: async (p, ctx) => {
        only(p, ['status', 'message'], 'status.report');
        const status = optString(p, 'status', 'status.report', 32);
        if (!status || !STATUS.test(status)) throw invalid('status.report: "status" must be a lower-case word (e.g. ready, starting, degraded, failed), at most 32 characters');
        const message = optString(p, 'message', 'status.report', MAX_STATUS_MESSAGE) ?? '';
        const inst = await caller(ctx);
        const rep: StatusReport = { instance: inst.name, id: inst.id, status, message, at: new Date().toISOString() };
        await statuses.put(inst.id, rep);
        const level = reportLevel(status);
        d.bus.emit({ kind: 'instance.report', level, object: `instance/${inst.name}`, message: `${inst.name} reports ${status}${message ? `: ${printable(message)}` : ''}`, data: { ...rep } });
        return rep;
      },
    },
    {
      name: 'mx.register',
      summary: 'add an MX record for the instance’s own name (or the domain, with the @mx grant) pointing at itself',
      handler: async (p, ctx) => {
        only(p, ['name', 'priority', 'exchange'], 'mx.register');
        const inst = await caller(ctx);
        const owner = await mxOwner(inst, optString(p, 'name', 'mx.register', 253));
        const exchange = dnsName(optString(p, 'exchange', 'mx.register', 253) ?? fqdnOf(inst));
        if (exchange !== fqdnOf(inst)) throw unauthorized(`mx.register: the mail exchanger must be this instance (${fqdnOf(inst)}), not "${exchange.slice(0, 80)}"`);
        const priority = optInt(p, 'priority', 'mx.register', 0, 65535) ?? 10;
        // Appliances register at every boot: the same record again is no change, not a conflict.
        const { record: r, added } = await d.dns.ensureRecord({ name: `${owner}.`, type: 'MX', value: `${exchange}.`, priority, owner: ownerOf(inst) });
        if (!added) return r;
        d.bus.emit({ kind: 'dns.record.added', object: r.name, message: `MX ${r.name} → ${r.priority} ${r.value} (registered by ${inst.name})` });
        return r;
      },
    },
    {
      name: 'mx.list',
      summary: 'the MX records this instance registered',
      handler: async (p, ctx) => {
        only(p, [], 'mx.list');
        const inst = await caller(ctx);
        return (await d.dns.listRecords()).filter((r) => r.type === 'MX' && r.owner === ownerOf(inst));
      },
    },
    {
      name: 'mx.remove',
      summary: 'remove MX records this instance registered (for its name, or the domain)',
      handler: async (p, ctx) => {
        only(p, ['name'], 'mx.remove');
        const inst = await caller(ctx);
        const owner = await mxOwner(inst, optString(p, 'name', 'mx.remove', 253));
        const gone = await d.dns.removeRecord({ name: `${owner}.`, type: 'MX', owner: ownerOf(inst) });
        for (const r of gone) d.bus.emit({ kind: 'dns.record.removed', object: r.name, message: `MX ${r.name} → ${r.value} removed by ${inst.name}` });
        return gone;
      },
    },
    {
      name: 'certificate.renew',
      summary: 'a new certificate for the key in a CSR (PEM); the current one works until the new one is first used',
      handler: async (p, ctx) => {
        only(p, ['csr'], 'certificate.renew');
        const csr = optString(p, 'csr', 'certificate.renew', 16 * 1024);
        if (!csr) throw invalid('certificate.renew: "csr" (a PEM certificate request) is required', { hint: 'openssl req -new -key instance.key -subj /CN=x (the subject is ignored: the manager sets it)' });
        const inst = await caller(ctx);
        const rec = await d.creds.renew(inst.id, csr);
        d.bus.emit({ kind: 'api.renewed', object: `instance/${inst.name}`, message: `${inst.name} renewed its API certificate (serial ${rec.serial}, until ${rec.notAfter})` });
        return { cert: rec.cert, ...certInfo(rec) };
      },
    },
    {
      name: 'keytab.get',
      summary: "the instance's Kerberos host keytab (base64), when the directory is running",
      handler: async (p, ctx) => {
        only(p, [], 'keytab.get');
        const inst = await caller(ctx);
        const k = d.keytab();
        if (!k) throw unavailable('no Kerberos service on this manager', { hint: 'the admin enables the directory (LDAP/Kerberos) on the manager' });
        const kt = await k.hostKeytab({ id: inst.id, name: inst.name, fqdn: fqdnOf(inst) });
        d.bus.emit({ kind: 'instance.keytab', object: `instance/${inst.name}`, message: `${inst.name} fetched the keytab for ${kt.principal}` });
        return { principal: kt.principal, keytab: kt.keytab.toString('base64') };
      },
    },
    {
      name: 'instance.create',
      summary: 'ask for a new instance of an appliance this instance was granted (storm grant add)',
      handler: async (p, ctx) => {
        only(p, ['name', 'appliance', 'parameters'], 'instance.create');
        const name = optString(p, 'name', 'instance.create', 63);
        const appliance = optString(p, 'appliance', 'instance.create', 128);
        if (!name || !appliance) throw invalid('instance.create: "name" and "appliance" are required');
        const parameters = p.parameters ?? {};
        if (typeof parameters !== 'object' || parameters === null || Object.getPrototypeOf(parameters) !== Object.prototype) throw invalid('instance.create: "parameters" must be a struct of strings');
        const entries = Object.entries(parameters as Record<string, unknown>);
        if (entries.length > 64) throw invalid('instance.create: at most 64 parameters');
        for (const [k, v] of entries) {
          if (!/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/.test(k)) throw invalid(`instance.create: parameter name ${JSON.stringify(k.slice(0, 40))} is not allowed`);
          if (typeof v !== 'string' || v.length > 4096 || CONTROL.test(v)) throw invalid(`instance.create: parameter "${k}" must be a string of at most 4096 characters without control characters`);
        }
        const inst = await caller(ctx);
        const appId = appliance.split('@')[0]!;
        if (!(await d.grants.has(inst.name, appId))) throw unauthorized(`instance ${inst.name} may not create instances of "${appId.slice(0, 64)}"`, { hint: `the admin grants it with: storm grant add ${inst.name} ${appId.slice(0, 64)}` });
        const mine = (await d.instances.list()).filter((i) => i.createdBy === `instance:${inst.name}`).length;
        if (mine >= d.createLimit) throw new StormError('conflict', `instance ${inst.name} already has ${mine} instances it asked for (the limit is ${d.createLimit})`, { hint: 'destroy some, or the admin raises apiCreateLimit' });
        const created = await d.instances.create({ name, appliance, params: parameters as Record<string, string>, createdBy: `instance:${inst.name}` });
        // The catalog may resolve a ref to another id: the grant must cover what is created.
        if (created.appliance !== appId && !(await d.grants.has(inst.name, created.appliance))) throw unauthorized(`instance ${inst.name} may not create instances of "${created.appliance}"`);
        d.instances.provision(created.id).catch((e) => d.log.warn('provisioning failed', { instance: created.name, createdBy: inst.name, error: (e as Error).message }));
        return { id: created.id, name: created.name, fqdn: `${created.name}.${d.domain}`, appliance: created.appliance, version: created.version, state: created.state, createdBy: created.createdBy };
      },
    },
  ];

  /** The owner name an MX may be registered for: the instance's FQDN, or the domain with the @mx grant. */
  async function mxOwner(inst: InstanceRecord, given: string | undefined): Promise<string> {
    const want = given === undefined || given === '' ? fqdnOf(inst) : given === '@' ? d.domain : dnsName(given);
    if (want === fqdnOf(inst)) return want;
    if (want === d.domain) {
      if (await d.grants.has(inst.name, DOMAIN_MX)) return want;
      throw unauthorized(`instance ${inst.name} may not register MX records for the domain ${d.domain}`, { hint: `the admin grants it with: storm grant add ${inst.name} ${DOMAIN_MX}` });
    }
    throw unauthorized(`instance ${inst.name} may register MX records only for ${fqdnOf(inst)}, not "${want.slice(0, 80)}"`);
  }

  return new MethodTable().addAll(methods);
}

/** Forget everything an instance had through the API (its MX records, last status). */
export async function forgetInstance(d: Pick<ApiDeps, 'dns' | 'store'>, name: string, id: string | undefined): Promise<void> {
  for (const r of (await d.dns.listRecords()).filter((r) => r.owner === `instance:${name}`)) await d.dns.removeRecord({ name: `${r.name}.`, type: r.type, value: r.value, owner: r.owner }).catch(() => undefined);
  if (id) await statusReports(d.store).del(id);
}
