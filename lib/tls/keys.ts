/** Key pairs (Node's crypto) and CSRs (node-forge): what both the CA and an enrolling stormd need. */
import { generateKeyPairSync } from 'node:crypto';
import forge from 'node-forge';

const { pki } = forge;

export interface KeyPair {
  privateKeyPem: string;
  publicKeyPem: string;
}

/** A fresh RSA 2048 key pair (PKCS#1 private key PEM, which forge reads). */
export function newKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

/** A CSR signed by the holder's key (stormd join). */
export function makeCsr(keys: KeyPair, commonName: string): string {
  const csr = pki.createCertificationRequest();
  csr.publicKey = pki.publicKeyFromPem(keys.publicKeyPem);
  csr.setSubject([{ name: 'commonName', value: commonName }]);
  csr.sign(pki.privateKeyFromPem(keys.privateKeyPem), forge.md.sha256.create());
  return pki.certificationRequestToPem(csr);
}

