/**
 * The CA's certificate and CRL minting: node-forge lays them out, Node's crypto
 * signs them (signDer), and keys are Node's too, handed to forge as PEM. RSA
 * 2048 because forge reads and verifies RSA only (CSRs).
 */
import { randomBytes } from 'node:crypto';
import forge from 'node-forge';
import { STORM_O, type Role } from '../../lib/tls/x509.ts';
import { signDer } from '../../lib/tls/keys.ts';
export { newKeyPair, type KeyPair } from '../../lib/tls/keys.ts';

const { pki, asn1 } = forge;

/** 16 random bytes, positive and without a leading zero byte (one spelling everywhere). */
export function newSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x40;
  return b.toString('hex');
}

export interface SubjectAltName {
  dns?: string[];
  ip?: string[];
  uri?: string[];
}

export interface MintOptions {
  serial: string;
  role: Role | 'ca';
  commonName: string;
  publicKeyPem: string;
  notBefore: Date;
  notAfter: Date;
  san?: SubjectAltName;
  /** Issuer; omitted for the self-signed CA. */
  issuer?: { certPem: string; keyPem: string };
  /** The CA's own private key when self-signing. */
  selfKeyPem?: string;
}

/** Mint a certificate; the subject is ours (role in OU), never copied from a request. */
export function mintCertificate(o: MintOptions): string {
  const cert = pki.createCertificate();
  cert.serialNumber = o.serial;
  cert.publicKey = pki.publicKeyFromPem(o.publicKeyPem);
  cert.validity.notBefore = o.notBefore;
  cert.validity.notAfter = o.notAfter;
  const subject = [
    { name: 'organizationName', value: STORM_O },
    { name: 'organizationalUnitName', value: o.role === 'ca' ? 'ca' : o.role },
    { name: 'commonName', value: o.commonName },
  ];
  cert.setSubject(subject);
  const issuerCert = o.issuer ? pki.certificateFromPem(o.issuer.certPem) : undefined;
  cert.setIssuer(issuerCert ? issuerCert.subject.attributes : subject);
  const exts: Record<string, unknown>[] = [];
  if (o.role === 'ca') {
    exts.push({ name: 'basicConstraints', cA: true, critical: true });
    exts.push({ name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true });
  } else {
    exts.push({ name: 'basicConstraints', cA: false, critical: true });
    exts.push({ name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true });
    // Instances are clients only; the manager and stormd both serve and call.
    exts.push(o.role === 'instance' ? { name: 'extKeyUsage', clientAuth: true } : { name: 'extKeyUsage', serverAuth: true, clientAuth: true });
    const alt: Record<string, unknown>[] = [];
    for (const d of o.san?.dns ?? []) alt.push({ type: 2, value: d });
    for (const ip of o.san?.ip ?? []) alt.push({ type: 7, ip });
    for (const u of o.san?.uri ?? []) alt.push({ type: 6, value: u });
    if (alt.length) exts.push({ name: 'subjectAltName', altNames: alt });
  }
  exts.push({ name: 'subjectKeyIdentifier' });
  if (issuerCert) {
    const ski = issuerCert.generateSubjectKeyIdentifier().getBytes();
    exts.push({ name: 'authorityKeyIdentifier', keyIdentifier: ski });
  }
  cert.setExtensions(exts);
  cert.signatureOid = cert.siginfo.algorithmOid = pki.oids.sha256WithRSAEncryption!;
  cert.tbsCertificate = (pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }).getTBSCertificate(cert);
  cert.signature = signDer(cert.tbsCertificate, o.issuer ? o.issuer.keyPem : (o.selfKeyPem as string));
  return pki.certificateToPem(cert);
}

/** Check a PEM CSR's self-signature and return its public key (the only thing we take from it). */
export function csrPublicKey(csrPem: string): string {
  let csr: ReturnType<typeof pki.certificationRequestFromPem>;
  try {
    csr = pki.certificationRequestFromPem(csrPem);
  } catch (e) {
    throw new Error(`not a PEM certificate request (${(e as Error).message})`);
  }
  const pub = csr.publicKey as forge.pki.rsa.PublicKey | null;
  if (!pub || typeof pub.n?.bitLength !== 'function') throw new Error('CSR key is not RSA');
  if (pub.n.bitLength() < 2048) throw new Error(`CSR key is ${pub.n.bitLength()} bits; at least 2048 are required`);
  // Bounds before any arithmetic on the key: no giant moduli or exponents.
  if (pub.n.bitLength() > 8192 || pub.e.bitLength() > 32) throw new Error('CSR key is outside RSA 2048..8192 with a 32-bit exponent');
  let ok = false;
  try {
    ok = csr.verify();
  } catch {
    ok = false;
  }
  if (!ok) throw new Error('CSR signature does not verify');
  return pki.publicKeyToPem(pub);
}

const SHA256_RSA = '1.2.840.113549.1.1.11';
const seq = (v: forge.asn1.Asn1[]) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, v);
const int = (hex: string) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, forge.util.hexToBytes(hex.length % 2 ? '0' + hex : hex));
const time = (d: Date) =>
  d.getUTCFullYear() < 2050
    ? asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(d))
    : asn1.create(asn1.Class.UNIVERSAL, asn1.Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(d));
const algId = () => seq([asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(SHA256_RSA).getBytes()), asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, '')]);

/** An X.509 v2 CRL signed by the CA (forge has no CRL writer: RFC 5280 §5.1 by hand). */
export function mintCrl(o: { caCertPem: string; caKeyPem: string; number: number; thisUpdate: Date; nextUpdate: Date; revoked: { serial: string; at: Date }[] }): string {
  const ca = pki.certificateFromPem(o.caCertPem);
  const fields: forge.asn1.Asn1[] = [int('01'), algId(), pki.distinguishedNameToAsn1(ca.subject), time(o.thisUpdate), time(o.nextUpdate)];
  if (o.revoked.length) fields.push(seq(o.revoked.map((r) => seq([int(r.serial), time(r.at)]))));
  const crlNumber = seq([
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer('2.5.29.20').getBytes()),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, asn1.toDer(int(o.number.toString(16))).getBytes()),
  ]);
  const aki = seq([
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer('2.5.29.35').getBytes()),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, asn1.toDer(seq([asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, false, ca.generateSubjectKeyIdentifier().getBytes())])).getBytes()),
  ]);
  fields.push(asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [seq([aki, crlNumber])]));
  const tbs = seq(fields);
  const der = asn1.toDer(seq([tbs, algId(), asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, '\x00' + signDer(tbs, o.caKeyPem))])).getBytes();
  const b64 = Buffer.from(der, 'binary').toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN X509 CRL-----\n${b64.trimEnd()}\n-----END X509 CRL-----\n`;
}
