/**
 * Certificate facts every TLS endpoint of ours needs, without the CA key:
 * the role a certificate carries (subject OU), a normalised serial, fingerprints.
 * The CA (manager/pki) writes roles; stormd and the manager read them here.
 */
import { createHash, X509Certificate } from 'node:crypto';

/** Who a certificate speaks for. Written as the subject's OU by our CA, never taken from a CSR. */
export const ROLES = ['manager', 'stormd', 'instance'] as const;
export type Role = (typeof ROLES)[number];

/** Subject O that every certificate from a STORM CA carries. */
export const STORM_O = 'STORM';

export function isRole(v: unknown): v is Role {
  return typeof v === 'string' && (ROLES as readonly string[]).includes(v);
}

/** Serial as lower-case hex without leading zeros: one spelling for Node, forge and the CRL. */
export function normSerial(hex: string): string {
  const s = hex.replace(/[^0-9a-f]/gi, '').toLowerCase().replace(/^0+/, '');
  return s === '' ? '0' : s;
}

/** The facts of a peer or issued certificate that access decisions use. */
export interface CertFacts {
  serial: string;
  role: Role | undefined;
  commonName: string;
  notBefore: Date;
  notAfter: Date;
  /** SHA-256 of the DER, lower-case hex without colons. */
  fingerprint: string;
}

function subjectField(subject: string, key: string): string | undefined {
  for (const line of subject.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0 && line.slice(0, i) === key) return line.slice(i + 1);
  }
  return undefined;
}

export function certFacts(cert: X509Certificate | string | Buffer): CertFacts {
  const x = cert instanceof X509Certificate ? cert : new X509Certificate(cert);
  const ou = subjectField(x.subject, 'OU');
  const o = subjectField(x.subject, 'O');
  return {
    serial: normSerial(x.serialNumber),
    role: o === STORM_O && isRole(ou) ? ou : undefined,
    commonName: subjectField(x.subject, 'CN') ?? '',
    notBefore: new Date(x.validFrom),
    notAfter: new Date(x.validTo),
    fingerprint: x.fingerprint256.replace(/:/g, '').toLowerCase(),
  };
}

/** SHA-256 fingerprint of a PEM certificate, base64url (what join tokens pin). */
export function pinOf(certPem: string): string {
  return createHash('sha256').update(new X509Certificate(certPem).raw).digest('base64url');
}
