/**
 * The manager's certificate authority. Created on first start under STATE/pki;
 * the CA key (mode 0600) never leaves this process. Issues role-bearing
 * certificates, renews the manager's own before expiry, and keeps the
 * revocation list (records in the store, a signed X.509 CRL on disk).
 */
import { existsSync, readFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { writeFileAtomic } from '../../lib/atomic-file.ts';
import { invalid, notFound, internal } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import { readCrl } from '../../lib/tls/crl.ts';
import { KeyPool, newKeyPairAsync } from '../../lib/tls/keys.ts';
import { certFacts, normSerial, pinOf, type Role } from '../../lib/tls/x509.ts';
import type { Collection, Store } from '../store/store.ts';
import { csrPublicKey, mintCertificate, mintCrl, newSerial, type SubjectAltName } from './forge-util.ts';

const DAY = 86_400_000;

/** Lifetimes in days; tests shorten them. */
export interface Validity {
  ca: number;
  manager: number;
  stormd: number;
  instance: number;
  crl: number;
}
export const DEFAULT_VALIDITY: Validity = { ca: 3650, manager: 365, stormd: 365, instance: 90, crl: 365 };

/** One certificate this CA issued (the store's record; the PEM travels to the holder). */
export interface IssuedCert {
  serial: string;
  role: Role;
  commonName: string;
  san: SubjectAltName;
  notBefore: string;
  notAfter: string;
  issuedAt: string;
  revokedAt?: string;
  reason?: string;
}

/** What a TLS endpoint or client of ours needs. */
export interface TlsMaterial {
  key: string;
  cert: string;
  ca: string;
  /** The current CRL (PEM): give it to Node's `crl` option so OpenSSL refuses revoked peers in the handshake. */
  crl: string;
}

export interface PkiOptions {
  dir: string;
  store: Store;
  log: Logger;
  /** DNS names and IP addresses the manager's certificate covers. */
  managerNames: readonly string[];
  validity?: Partial<Validity>;
  now?: () => Date;
}

/** Renew when less than a third of the lifetime is left. */
export function needsRenewal(notBefore: Date, notAfter: Date, now: Date): boolean {
  const life = notAfter.getTime() - notBefore.getTime();
  return notAfter.getTime() - now.getTime() < life / 3;
}

/** Split names into DNS and IP SANs. */
export function sanFor(names: readonly string[]): SubjectAltName {
  const ip = names.filter((n) => /^[\d.]+$/.test(n) || n.includes(':'));
  const dns = names.filter((n) => !ip.includes(n));
  return { dns: [...new Set(dns)], ip: [...new Set(ip)] };
}

export class Pki {
  readonly dir: string;
  readonly #certs: Collection<IssuedCert>;
  readonly #meta: Collection<number>;
  readonly #log: Logger;
  readonly #validity: Validity;
  readonly #now: () => Date;
  readonly #managerNames: readonly string[];
  #caCert = '';
  #caKey = '';
  #manager: { key: string; cert: string } = { key: '', cert: '' };
  #crl = { pem: '', number: 0 };
  #revoked = new Set<string>();
  readonly #listeners = new Set<() => void>();
  // Instance certificates come with their key: made ahead, so provisioning does not wait for one.
  readonly #keys = new KeyPool();

  private constructor(o: PkiOptions) {
    this.dir = o.dir;
    this.#certs = o.store.collection<IssuedCert>('pki.certs');
    this.#meta = o.store.collection<number>('pki.meta');
    this.#log = o.log;
    this.#validity = { ...DEFAULT_VALIDITY, ...o.validity };
    this.#now = o.now ?? (() => new Date());
    this.#managerNames = o.managerNames;
  }

  /** Open the CA under `dir`, creating it (and the manager's certificate) on first start. */
  static async open(o: PkiOptions): Promise<Pki> {
    const p = new Pki(o);
    await p.#load();
    return p;
  }

  get caCertPem(): string {
    return this.#caCert;
  }

  /** SHA-256 of the CA certificate (base64url): what join tokens pin. */
  get caPin(): string {
    return pinOf(this.#caCert);
  }

  get crlNumber(): number {
    return this.#crl.number;
  }

  get crlPem(): string {
    return this.#crl.pem;
  }

  /** Called after the manager's certificate or the CRL changed (rebuild TLS contexts). */
  onChange(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** The manager's server/client TLS material. */
  managerTls(): TlsMaterial {
    return { key: this.#manager.key, cert: this.#manager.cert, ca: this.#caCert, crl: this.#crl.pem };
  }

  isRevoked(serial: string): boolean {
    return this.#revoked.has(normSerial(serial));
  }

  #path(name: string): string {
    return join(this.dir, name);
  }

  async #load(): Promise<void> {
    const caKeyPath = this.#path('ca.key');
    const caPath = this.#path('ca.pem');
    if (!existsSync(caKeyPath) || !existsSync(caPath)) {
      if (existsSync(caPath) || existsSync(caKeyPath)) {
        throw internal(`the CA in ${this.dir} is half present (ca.pem or ca.key missing)`, { hint: 'restore the missing file from a backup; a new CA would orphan every enrolled hypervisor' });
      }
      const keys = await newKeyPairAsync();
      const now = this.#now();
      const cert = mintCertificate({
        serial: newSerial(), role: 'ca', commonName: 'STORM CA', publicKeyPem: keys.publicKeyPem,
        notBefore: new Date(now.getTime() - 60_000), notAfter: new Date(now.getTime() + this.#validity.ca * DAY), selfKeyPem: keys.privateKeyPem,
      });
      writeFileAtomic(caKeyPath, keys.privateKeyPem, 0o600);
      writeFileAtomic(caPath, cert, 0o644);
      this.#log.info('created the CA', { dir: this.dir });
    }
    chmodSync(caKeyPath, 0o600);
    this.#caKey = readFileSync(caKeyPath, 'utf8');
    this.#caCert = readFileSync(caPath, 'utf8');

    for (const { value } of await this.#certs.list()) if (value.revokedAt) this.#revoked.add(value.serial);
    const number = (await this.#meta.get('crlNumber')) ?? 0;
    let loaded = false;
    try {
      const pem = readFileSync(this.#path('crl.pem'), 'utf8');
      const facts = readCrl(pem, this.#caCert);
      if (facts.number === number && [...this.#revoked].every((s) => facts.serials.has(s))) {
        this.#crl = { pem, number };
        loaded = true;
      }
    } catch {
      /* missing or stale: mint below */
    }
    if (!loaded) await this.#publishCrl();
    await this.maintain();
  }

  /** Renew what is due: the manager's certificate (and its names), the CRL before nextUpdate. */
  async maintain(): Promise<{ managerRenewed: boolean; crlRenewed: boolean }> {
    const now = this.#now();
    let managerRenewed = false;
    let crlRenewed = false;
    const keyPath = this.#path('manager.key');
    const certPath = this.#path('manager.pem');
    let current: X509Certificate | undefined;
    try {
      current = new X509Certificate(readFileSync(certPath, 'utf8'));
      if (!existsSync(keyPath)) current = undefined;
    } catch {
      current = undefined;
    }
    const wanted = sanFor(this.#managerNames);
    const rec = current ? await this.#certs.get(normSerial(current.serialNumber)) : undefined;
    const sameNames = rec !== undefined && JSON.stringify(rec.san) === JSON.stringify(wanted);
    const revoked = current !== undefined && this.isRevoked(current.serialNumber);
    if (!current || !sameNames || revoked || needsRenewal(new Date(current.validFrom), new Date(current.validTo), now) || !current.checkIssued(new X509Certificate(this.#caCert))) {
      const keys = await newKeyPairAsync();
      const issued = await this.#issue({ role: 'manager', commonName: 'storm-manager', san: wanted, publicKeyPem: keys.publicKeyPem });
      writeFileAtomic(keyPath, keys.privateKeyPem, 0o600);
      writeFileAtomic(certPath, issued.certPem, 0o644);
      managerRenewed = true;
      this.#log.info('issued the manager certificate', { serial: issued.serial, notAfter: issued.notAfter });
    }
    chmodSync(keyPath, 0o600);
    this.#manager = { key: readFileSync(keyPath, 'utf8'), cert: readFileSync(certPath, 'utf8') };
    const crl = readCrl(this.#crl.pem, this.#caCert);
    if (crl.nextUpdate && needsRenewal(crl.thisUpdate, crl.nextUpdate, now)) {
      await this.#publishCrl();
      crlRenewed = true;
    }
    if (managerRenewed || crlRenewed) this.#changed();
    return { managerRenewed, crlRenewed };
  }

  #changed(): void {
    for (const fn of this.#listeners) {
      try {
        fn();
      } catch (e) {
        this.#log.error('pki change listener failed', { error: (e as Error).message });
      }
    }
  }

  async #issue(o: { role: Role; commonName: string; san: SubjectAltName; publicKeyPem: string; days?: number }): Promise<IssuedCert & { certPem: string }> {
    const now = this.#now();
    const days = o.days ?? this.#validity[o.role];
    const notBefore = new Date(now.getTime() - 60_000); // tolerate small clock skew
    const notAfter = new Date(now.getTime() + days * DAY);
    const serial = newSerial();
    const certPem = mintCertificate({ serial, role: o.role, commonName: o.commonName, publicKeyPem: o.publicKeyPem, notBefore, notAfter, san: o.san, issuer: { certPem: this.#caCert, keyPem: this.#caKey } });
    const rec: IssuedCert = { serial: normSerial(serial), role: o.role, commonName: o.commonName, san: o.san, notBefore: notBefore.toISOString(), notAfter: notAfter.toISOString(), issuedAt: now.toISOString() };
    await this.#certs.put(rec.serial, rec);
    return { ...rec, certPem };
  }

  /** Issue a certificate for a CSR: only its public key is used; subject, role and names are ours. */
  async issueFromCsr(csrPem: string, o: { role: Role; commonName: string; san: SubjectAltName; days?: number }): Promise<IssuedCert & { certPem: string }> {
    let publicKeyPem: string;
    try {
      publicKeyPem = csrPublicKey(csrPem);
    } catch (e) {
      throw invalid(`certificate request refused: ${(e as Error).message}`);
    }
    return this.#issue({ ...o, publicKeyPem });
  }

  /** A key and certificate made here, e.g. an instance's client certificate for its instance layer. */
  async issueWithKey(o: { role: Role; commonName: string; san?: SubjectAltName; days?: number }): Promise<{ key: string; cert: string; ca: string; serial: string; notAfter: string }> {
    const keys = await this.#keys.take();
    const issued = await this.#issue({ role: o.role, commonName: o.commonName, san: o.san ?? {}, publicKeyPem: keys.publicKeyPem, ...(o.days ? { days: o.days } : {}) });
    return { key: keys.privateKeyPem, cert: issued.certPem, ca: this.#caCert, serial: issued.serial, notAfter: issued.notAfter };
  }

  /** An instance's client certificate (CN = instance name, role instance). */
  issueInstance(name: string, days?: number) {
    return this.issueWithKey({ role: 'instance', commonName: name, ...(days ? { days } : {}) });
  }

  /** Revoke by serial; the new CRL is published before this returns. Revoking twice is a no-op. */
  async revoke(serial: string, reason = 'unspecified'): Promise<IssuedCert> {
    const s = normSerial(serial);
    const rec = await this.#certs.get(s);
    if (!rec) throw notFound(`no certificate with serial ${s} was issued by this CA`);
    if (rec.revokedAt) return rec;
    const next = { ...rec, revokedAt: this.#now().toISOString(), reason };
    await this.#certs.put(s, next);
    this.#revoked.add(s);
    await this.#publishCrl();
    this.#log.info('revoked a certificate', { serial: s, role: rec.role, cn: rec.commonName, reason });
    if (this.#manager.cert && this.isRevoked(new X509Certificate(this.#manager.cert).serialNumber)) await this.maintain();
    this.#changed();
    return next;
  }

  async get(serial: string): Promise<IssuedCert | undefined> {
    return this.#certs.get(normSerial(serial));
  }

  async list(): Promise<IssuedCert[]> {
    return this.#certs.values();
  }

  /** Is this certificate ours, unexpired and unrevoked, with the role asked for? */
  check(certPem: string, role?: Role): { ok: true } | { ok: false; why: string } {
    const x = new X509Certificate(certPem);
    const f = certFacts(x);
    if (!x.checkIssued(new X509Certificate(this.#caCert)) || !x.verify(new X509Certificate(this.#caCert).publicKey)) return { ok: false, why: 'not issued by this CA' };
    const now = this.#now();
    if (f.notAfter < now) return { ok: false, why: `expired at ${f.notAfter.toISOString()}` };
    if (f.notBefore > now) return { ok: false, why: 'not yet valid' };
    if (this.isRevoked(f.serial)) return { ok: false, why: 'revoked' };
    if (role && f.role !== role) return { ok: false, why: `role is ${f.role ?? 'none'}, expected ${role}` };
    return { ok: true };
  }

  async #publishCrl(): Promise<void> {
    const number = ((await this.#meta.get('crlNumber')) ?? 0) + 1;
    const now = this.#now();
    const revoked = (await this.#certs.values()).filter((c) => c.revokedAt).map((c) => ({ serial: c.serial, at: new Date(c.revokedAt as string) }));
    const pem = mintCrl({ caCertPem: this.#caCert, caKeyPem: this.#caKey, number, thisUpdate: new Date(now.getTime() - 60_000), nextUpdate: new Date(now.getTime() + this.#validity.crl * DAY), revoked });
    writeFileAtomic(this.#path('crl.pem'), pem, 0o644);
    await this.#meta.put('crlNumber', number);
    this.#crl = { pem, number };
  }
}

