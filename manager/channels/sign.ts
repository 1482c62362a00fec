/**
 * Detached feed signatures: RSA PKCS#1 v1.5 over SHA-256 of the exact feed
 * bytes, base64 in `feed.xml.sig`. Keys are PEM (private: PKCS#8, public: SPKI).
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import forge from 'node-forge';
import { invalid, unauthorized } from '../../lib/errors.ts';

export const SIGNATURE_SUFFIX = '.sig';
const MAX_SIG_BYTES = 8192;

/** A new publisher key pair (Node's crypto generates; node-forge signs and verifies). */
export function generatePublisherKey(bits = 3072): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }) as string,
  };
}

function publicKey(pem: string, what: string): forge.pki.rsa.PublicKey {
  try {
    return forge.pki.publicKeyFromPem(pem) as forge.pki.rsa.PublicKey;
  } catch (e) {
    throw invalid(`${what} is not a PEM RSA public key: ${(e as Error).message}`, { hint: 'use the .pub file `storm channel keygen` wrote' });
  }
}

/** Validate a trusted key and return it normalised (PEM) with its fingerprint. */
export function normaliseTrustedKey(pem: string, what = 'the trusted key'): { pem: string; fingerprint: string } {
  const k = publicKey(pem, what);
  const out = forge.pki.publicKeyToPem(k);
  return { pem: out, fingerprint: fingerprint(out) };
}

/** SHA-256 of the DER SubjectPublicKeyInfo, hex: what `channel list` shows. */
export function fingerprint(publicPem: string): string {
  const der = forge.asn1.toDer(forge.pki.publicKeyToAsn1(publicKey(publicPem, 'key'))).getBytes();
  return createHash('sha256').update(Buffer.from(der, 'binary')).digest('hex');
}

/** Sign the feed bytes; returns the detached signature file's text. */
export function signFeed(feed: Buffer, privatePem: string): string {
  let key: forge.pki.rsa.PrivateKey;
  try {
    key = forge.pki.privateKeyFromPem(privatePem) as forge.pki.rsa.PrivateKey;
  } catch (e) {
    throw invalid(`the publisher key is not a PEM RSA private key: ${(e as Error).message}`, { hint: 'make one with `storm channel keygen`' });
  }
  const md = forge.md.sha256.create();
  md.update(feed.toString('binary'));
  return forge.util.encode64(key.sign(md)) + '\n';
}

/** Verify a detached signature against a trusted public key; `unauthorized` when it does not verify. */
export function verifyFeed(feed: Buffer, sig: Buffer, publicPem: string, where: string): void {
  if (sig.length > MAX_SIG_BYTES) throw unauthorized(`${where}: signature file is ${sig.length} bytes, not a signature`);
  const text = sig.toString('utf8').trim();
  if (!/^[A-Za-z0-9+/=\s]+$/.test(text)) throw unauthorized(`${where}: signature is not base64`, { hint: 'the channel is tampered with or was not signed by this publisher' });
  const md = forge.md.sha256.create();
  md.update(feed.toString('binary'));
  let ok = false;
  try {
    ok = publicKey(publicPem, 'the trusted key').verify(md.digest().bytes(), forge.util.decode64(text.replace(/\s+/g, '')));
  } catch {
    ok = false;
  }
  if (!ok) {
    throw unauthorized(`${where}: the feed's signature does not verify against the trusted key ${fingerprint(publicPem).slice(0, 16)}`, {
      hint: 'the channel was tampered with, or the publisher changed keys: check with the publisher before trusting a new key',
    });
  }
}
