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
  /** After certificate.renew: the certificate it replaces, still accepted until the new one is first used. */
  previousSerial?: string;
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
    if (have && !have.revokedAt && have.key && have.name === inst.name && this.#pki.check(have.cert, 'instance').ok) return have;
    if (have && !have.revokedAt && !this.#pki.isRevoked(have.serial)) await this.#pki.revoke(have.serial, 'superseded');
    if (have?.previousSerial && !this.#pki.isRevoked(have.previousSerial)) await this.#pki.revoke(have.previousSerial, 'superseded');
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
    if (!r || r.revokedAt || !r.key) throw notFound(`instance ${id} has no API certificate whose key the manager holds`, { hint: 'it is issued when the instance is created; provisioning issues one if missing' });
    return { key: r.key, cert: r.cert, ca: this.#pki.caCertPem };
  }

  /** Who holds this serial, if it is a live instance certificate of ours (or the one a renewal is replacing). */
  bySerial(serial: string): CredentialRecord | undefined {
    const s = normSerial(serial);
    const r = this.#bySerial.get(s);
    if (!r || r.revokedAt || this.#pki.isRevoked(s)) return undefined;
    return r.serial === s || r.previousSerial === s ? r : undefined;
  }

  /**
   * A new certificate for the instance's own key (CSR; the key never leaves
   * it). The old one keeps working until the new one is first used (`used`),
   * so an instance that fails to store the new one is not locked out.
   */
  async renew(id: string, csrPem: string): Promise<CredentialRecord> {
    await this.#pending.get(id)?.catch(() => undefined);
    const have = await this.#c.get(id);
    if (!have || have.revokedAt) throw notFound(`instance ${id} has no API certificate`);
    const issued = await this.#pki.issueFromCsr(csrPem, { role: 'instance', commonName: have.name, san: {} });
    // A renewal before the previous one was used replaces it: that one is revoked now.
    if (have.previousSerial && !this.#pki.isRevoked(have.previousSerial)) await this.#pki.revoke(have.previousSerial, 'superseded');
    const rec: CredentialRecord = { id, name: have.name, serial: normSerial(issued.serial), key: '', cert: issued.certPem, notAfter: issued.notAfter, issuedAt: new Date().toISOString(), previousSerial: have.serial };
    await this.#c.put(id, rec);
    this.#bySerial.set(rec.serial, rec);
    this.#bySerial.set(have.serial, rec);
    this.#log.info('renewed an instance certificate', { instance: rec.name, serial: rec.serial, previous: have.serial });
    return rec;
  }

  /** A call came with this serial: if it is a renewed certificate's first use, retire the one it replaced. */
  async used(serial: string): Promise<void> {
    const s = normSerial(serial);
    const r = this.#bySerial.get(s);
    if (!r || r.serial !== s || !r.previousSerial) return;
    const old = r.previousSerial;
    const next = { ...r };
    delete next.previousSerial;
    await this.#c.put(r.id, next);
    this.#bySerial.set(s, next);
    this.#bySerial.set(old, { ...next, revokedAt: new Date().toISOString() });
    if (!this.#pki.isRevoked(old)) await this.#pki.revoke(old, 'superseded by renewal');
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
    if (r.previousSerial && !this.#pki.isRevoked(r.previousSerial)) await this.#pki.revoke(r.previousSerial, reason);
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
