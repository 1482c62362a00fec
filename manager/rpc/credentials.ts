/**
 * Each instance's client certificate for the appliance API: issued by the CA
 * when the instance is created, kept (key included) until provisioning writes
 * it into the instance layer, revoked when the instance is destroyed. The
 * serial is how the API knows who is calling.
 */
import { notFound } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import { normSerial } from '../../lib/tls/x509.ts';
import type { Pki } from '../pki/pki.ts';
import type { Collection, Store } from '../store/store.ts';

/** One instance's certificate as the store keeps it (the state directory is owner-only). */
export interface CredentialRecord {
  /** Instance id. */
  id: string;
  /** Instance name (the certificate's CN). */
  name: string;
  serial: string;
  key: string;
  cert: string;
  notAfter: string;
  issuedAt: string;
  revokedAt?: string;
}

/** What an instance layer carries to call the API. */
export interface InstanceCredentials {
  key: string;
  cert: string;
  ca: string;
}

export class Credentials {
  readonly #c: Collection<CredentialRecord>;
  readonly #pki: Pki;
  readonly #log: Logger;
  /** Issuance in flight per instance id, so create and provision never issue twice. */
  readonly #pending = new Map<string, Promise<CredentialRecord>>();
  /** serial → record, for the per-request identity lookup. */
  readonly #bySerial = new Map<string, CredentialRecord>();

  private constructor(store: Store, pki: Pki, log: Logger) {
    this.#c = store.collection<CredentialRecord>('api.credentials');
    this.#pki = pki;
    this.#log = log;
  }

  static async open(store: Store, pki: Pki, log: Logger): Promise<Credentials> {
    const c = new Credentials(store, pki, log);
    for (const r of await c.#c.values()) c.#bySerial.set(r.serial, r);
    return c;
  }

  /** The instance's current credentials, issuing them first when it has none usable. */
  ensure(inst: { id: string; name: string }): Promise<CredentialRecord> {
    const inflight = this.#pending.get(inst.id);
    if (inflight) return inflight;
    const p = this.#ensure(inst).finally(() => this.#pending.delete(inst.id));
    this.#pending.set(inst.id, p);
    return p;
  }

  async #ensure(inst: { id: string; name: string }): Promise<CredentialRecord> {
    const have = await this.#c.get(inst.id);
    if (have && !have.revokedAt && have.name === inst.name && this.#pki.check(have.cert, 'instance').ok) return have;
    if (have && !have.revokedAt && !this.#pki.isRevoked(have.serial)) await this.#pki.revoke(have.serial, 'superseded');
    const issued = await this.#pki.issueInstance(inst.name);
    const rec: CredentialRecord = { id: inst.id, name: inst.name, serial: normSerial(issued.serial), key: issued.key, cert: issued.cert, notAfter: issued.notAfter, issuedAt: new Date().toISOString() };
    await this.#c.put(inst.id, rec);
    if (have) this.#bySerial.delete(have.serial);
    this.#bySerial.set(rec.serial, rec);
    this.#log.info('issued an instance certificate', { instance: inst.name, serial: rec.serial, notAfter: rec.notAfter });
    return rec;
  }

  /** key + cert + CA for the instance layer (`instanceCredentials(id)`). */
  async forInstance(id: string): Promise<InstanceCredentials> {
    const r = await this.#c.get(id);
    if (!r || r.revokedAt) throw notFound(`instance ${id} has no API certificate`, { hint: 'it is issued when the instance is created; provisioning issues one if missing' });
    return { key: r.key, cert: r.cert, ca: this.#pki.caCertPem };
  }

  /** Who holds this serial, if it is a live instance certificate of ours. */
  bySerial(serial: string): CredentialRecord | undefined {
    const r = this.#bySerial.get(normSerial(serial));
    return r && !r.revokedAt && !this.#pki.isRevoked(r.serial) ? r : undefined;
  }

  /** Name of whoever was issued this serial, revoked or not (for audit lines). */
  nameOf(serial: string): string | undefined {
    return this.#bySerial.get(normSerial(serial))?.name;
  }

  /** The instance is gone: revoke its certificate and forget the key. */
  async revoke(id: string, reason = 'instance destroyed'): Promise<CredentialRecord | undefined> {
    await this.#pending.get(id)?.catch(() => undefined);
    const r = await this.#c.get(id);
    if (!r) return undefined;
    if (!this.#pki.isRevoked(r.serial)) await this.#pki.revoke(r.serial, reason);
    await this.#c.del(id);
    // Keep the serial → name mapping so audit lines for late callers still name them.
    this.#bySerial.set(r.serial, { ...r, key: '', revokedAt: new Date().toISOString() });
    this.#log.info('revoked an instance certificate', { instance: r.name, serial: r.serial, reason });
    return r;
  }

  list(): Promise<CredentialRecord[]> {
    return this.#c.values();
  }
}
