/**
 * Reading X.509 CRLs (RFC 5280 CertificateList) issued by our CA: the list of
 * revoked serials and the CRL number, accepted only when the CA's signature
 * verifies. Input is bounded and hostile input yields an `invalid` error.
 */
import { verify, X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import { invalid, StormError } from '../errors.ts';
import { normSerial } from './x509.ts';

const { asn1 } = forge;
export const MAX_CRL_BYTES = 4 * 1024 * 1024;
const SHA256_RSA = '1.2.840.113549.1.1.11';
const CRL_NUMBER = '2.5.29.20';

export interface CrlFacts {
  /** Monotonic CRL number (RFC 5280 §5.2.3); a newer list has a higher one. */
  number: number;
  thisUpdate: Date;
  nextUpdate: Date | undefined;
  serials: Set<string>;
}

function pemToDer(pem: string): Buffer {
  const m = /-----BEGIN X509 CRL-----([A-Za-z0-9+/=\s]+)-----END X509 CRL-----/.exec(pem);
  if (!m) throw invalid('not a PEM X509 CRL');
  return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
}

const children = (n: forge.asn1.Asn1 | undefined): forge.asn1.Asn1[] => (n && Array.isArray(n.value) ? (n.value as forge.asn1.Asn1[]) : []);
const bytes = (n: forge.asn1.Asn1 | undefined): string => (n && typeof n.value === 'string' ? n.value : '');
const isTime = (n: forge.asn1.Asn1 | undefined) => n?.tagClass === asn1.Class.UNIVERSAL && (n.type === asn1.Type.UTCTIME || n.type === asn1.Type.GENERALIZEDTIME);
const toDate = (n: forge.asn1.Asn1) => (n.type === asn1.Type.UTCTIME ? asn1.utcTimeToDate(bytes(n)) : asn1.generalizedTimeToDate(bytes(n)));

/** Parse and verify a CRL against the CA certificate; throws `invalid` when either fails. */
export function readCrl(pem: string, caPem: string): CrlFacts {
  if (typeof pem !== 'string' || pem.length > MAX_CRL_BYTES) throw invalid('CRL missing or too large');
  const der = pemToDer(pem);
  let root: forge.asn1.Asn1;
  try {
    root = asn1.fromDer(forge.util.createBuffer(der.toString('binary')), { strict: true, parseAllBytes: true, decodeBitStrings: false } as never);
  } catch (e) {
    throw invalid(`CRL is not valid DER: ${(e as Error).message}`);
  }
  const [tbs, alg, sig] = children(root);
  if (!tbs || !alg || !sig) throw invalid('CRL structure is wrong (expected tbsCertList, algorithm, signature)');
  let oid = '';
  try {
    oid = asn1.derToOid(bytes(children(alg)[0]));
  } catch {
    /* reported below */
  }
  if (oid !== SHA256_RSA) throw invalid('CRL signature algorithm is not sha256WithRSAEncryption');
  let ok = false;
  try {
    const tbsDer = Buffer.from(asn1.toDer(tbs).getBytes(), 'binary');
    const sigBytes = Buffer.from(bytes(sig).slice(1), 'binary'); // first byte: unused bits
    ok = verify('sha256', tbsDer, new X509Certificate(caPem).publicKey, sigBytes);
  } catch {
    ok = false;
  }
  if (!ok) throw invalid('CRL signature does not verify against the CA certificate');

  try {
    return fields(tbs);
  } catch (e) {
    throw e instanceof StormError ? e : invalid(`CRL fields unreadable: ${(e as Error).message}`);
  }
}

function fields(tbs: forge.asn1.Asn1): CrlFacts {
  const f = children(tbs);
  let i = 0;
  if (f[i]?.type === asn1.Type.INTEGER && f[i]?.tagClass === asn1.Class.UNIVERSAL) i++; // version
  i++; // signature algorithm
  i++; // issuer
  const thisU = f[i++];
  if (!thisU || !isTime(thisU)) throw invalid('CRL thisUpdate missing');
  const thisUpdate = toDate(thisU);
  let nextUpdate: Date | undefined;
  if (isTime(f[i])) nextUpdate = toDate(f[i++]!);
  const serials = new Set<string>();
  if (f[i]?.tagClass === asn1.Class.UNIVERSAL && f[i]?.type === asn1.Type.SEQUENCE) {
    for (const entry of children(f[i++])) serials.add(normSerial(forge.util.bytesToHex(bytes(children(entry)[0]))));
  }
  let number = 0;
  const extWrap = f[i];
  if (extWrap && extWrap.tagClass === asn1.Class.CONTEXT_SPECIFIC) {
    for (const ext of children(children(extWrap)[0])) {
      const [oid, ...rest] = children(ext);
      if (asn1.derToOid(bytes(oid)) !== CRL_NUMBER) continue;
      const inner = asn1.fromDer(bytes(rest.at(-1)));
      number = parseInt(forge.util.bytesToHex(bytes(inner)) || '0', 16);
    }
  }
  return { number, thisUpdate, nextUpdate, serials };
}
