/** Key pairs (Node's crypto) and CSRs (node-forge): what both the CA and an enrolling stormd need. */
import { generateKeyPair, generateKeyPairSync, sign } from 'node:crypto';
import forge from 'node-forge';

const { pki } = forge;

export interface KeyPair {
  privateKeyPem: string;
  publicKeyPem: string;
}

const RSA = { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } } as const;

/** A fresh RSA 2048 key pair (PKCS#1 private key PEM, which forge reads). Blocks for 50-200 ms: tools and tests only. */
export function newKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', RSA);
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

/** The same, made on libuv's thread pool: a daemon's event loop (DNS, DHCP, RPC) never waits for the prime search. */
export function newKeyPairAsync(): Promise<KeyPair> {
  return new Promise((resolve, reject) => generateKeyPair('rsa', RSA, (e, publicKey, privateKey) => (e ? reject(e) : resolve({ privateKeyPem: privateKey, publicKeyPem: publicKey }))));
}

/**
 * Key pairs made ahead of need, so issuing a certificate does not wait 50-200 ms for one.
 * Filled after first use (nothing is made for a CA that never issues), one key at a time, kept
 * in memory only, each handed out once.
 */
export class KeyPool {
  readonly #size: number;
  readonly #make: () => Promise<KeyPair>;
  readonly #ready: KeyPair[] = [];
  readonly #delayMs: number;
  #timer: NodeJS.Timeout | undefined;
  #filling = false;

  constructor(opts: { size?: number; delayMs?: number; make?: () => Promise<KeyPair> } = {}) {
    this.#size = opts.size ?? 2;
    this.#delayMs = opts.delayMs ?? 2000;
    this.#make = opts.make ?? newKeyPairAsync;
  }

  /** A ready key pair if there is one, else one made now; either way the pool refills after a pause. */
  async take(): Promise<KeyPair> {
    const k = this.#ready.shift();
    // Not at once: the key is wanted for work (a guest start) that needs the CPU more just now.
    if (!this.#timer) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#fill();
      }, this.#delayMs);
      this.#timer.unref();
    }
    return k ?? this.#make();
  }

  #fill(): void {
    if (this.#filling || this.#ready.length >= this.#size) return;
    this.#filling = true;
    this.#make().then(
      (k) => {
        this.#filling = false;
        this.#ready.push(k);
        this.#fill();
      },
      // A failed background key is not an error anyone waits on: take() makes its own.
      () => void (this.#filling = false),
    );
  }
}

/**
 * The SHA-256 RSA signature of `info`'s DER, as forge's binary string: forge lays out
 * certificates, CSRs and CRLs, Node signs them (native RSA: ~1 ms where forge's takes ~25 ms).
 */
export function signDer(info: forge.asn1.Asn1, keyPem: string): string {
  return sign('sha256', Buffer.from(forge.asn1.toDer(info).getBytes(), 'binary'), keyPem).toString('binary');
}

/** A CSR signed by the holder's key (stormd join and renewal). */
export function makeCsr(keys: KeyPair, commonName: string): string {
  const csr = pki.createCertificationRequest() as ReturnType<typeof pki.createCertificationRequest> & { certificationRequestInfo: forge.asn1.Asn1; signatureOid: string; siginfo: { algorithmOid: string } };
  csr.publicKey = pki.publicKeyFromPem(keys.publicKeyPem);
  csr.setSubject([{ name: 'commonName', value: commonName }]);
  csr.signatureOid = csr.siginfo.algorithmOid = pki.oids.sha256WithRSAEncryption!;
  csr.certificationRequestInfo = (pki as unknown as { getCertificationRequestInfo(c: object): forge.asn1.Asn1 }).getCertificationRequestInfo(csr);
  csr.signature = signDer(csr.certificationRequestInfo, keys.privateKeyPem);
  return pki.certificationRequestToPem(csr);
}

