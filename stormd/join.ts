/**
 * `stormd join`: enrol with a manager using a one-time token. The token pins
 * the CA (SHA-256 of its certificate), so before sending anything secret we
 * fetch the manager's chain, find the pinned CA in it, and then talk to the
 * manager trusting that CA only, requiring a certificate with role manager.
 * The key is made here and never leaves this machine; only its CSR travels.
 */
import { request } from 'node:https';
import { connect, type PeerCertificate, type TLSSocket } from 'node:tls';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { StormError, invalid, unauthorized, unreachable, fromErrorData } from '../lib/errors.ts';
import { readCrl } from '../lib/tls/crl.ts';
import { makeCsr, newKeyPairAsync } from '../lib/tls/keys.ts';
import { certFacts, pinOf } from '../lib/tls/x509.ts';
import { JOIN_PATH, parseToken, type JoinResponse } from './api/join.ts';
import { isEnrolled, saveEnrolment } from './state.ts';

const MAX_RESPONSE = 256 * 1024;

function parseManagerUrl(s: string): URL {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw invalid(`--manager "${s}" is not a URL`, { hint: 'use the URL printed by `storm host add`, e.g. https://manager:7721' });
  }
  if (u.protocol !== 'https:') throw invalid(`--manager must be an https:// URL, got ${u.protocol}`);
  return u;
}

/** Fetch the manager's certificate chain and return the CA certificate matching the pin. */
async function pinnedCa(u: URL, pin: string, timeoutMs: number): Promise<string> {
  const chain = await new Promise<PeerCertificate[]>((resolve, reject) => {
    const s: TLSSocket = connect({ host: u.hostname, port: Number(u.port || 443), servername: /^[\d.:]+$/.test(u.hostname) ? undefined : u.hostname, rejectUnauthorized: false }, () => {
      const out: PeerCertificate[] = [];
      let c = s.getPeerCertificate(true) as PeerCertificate & { issuerCertificate?: PeerCertificate };
      const seen = new Set<string>();
      while (c && c.raw && !seen.has(c.fingerprint256)) {
        seen.add(c.fingerprint256);
        out.push(c);
        c = c.issuerCertificate as typeof c;
      }
      s.end();
      resolve(out);
    });
    s.setTimeout(timeoutMs, () => s.destroy(new StormError('timeout', `no TLS answer from ${u.host} within ${timeoutMs} ms`)));
    s.once('error', (e) => reject(e instanceof StormError ? e : unreachable(`cannot reach the manager at ${u.host}: ${e.message}`)));
  });
  for (const c of chain) {
    const pem = new X509Certificate(c.raw).toString();
    if (pinOf(pem) === pin) return pem;
  }
  throw unauthorized(`the server at ${u.host} does not present the CA this token pins`, { hint: 'check --manager points at the manager that printed the token (a man in the middle would look like this too)' });
}

export interface JoinOptions {
  manager: string;
  token: string;
  state: string;
  timeoutMs?: number;
}

export async function join(o: JoinOptions): Promise<{ name: string; serial: string; notAfter: string }> {
  const token = parseToken(o.token);
  const u = parseManagerUrl(o.manager);
  if (isEnrolled(o.state)) throw new StormError('conflict', `stormd in ${o.state} is already enrolled`, { hint: 'use another --state, or remove DIR/pki and DIR/stormd.json to enrol again' });
  const timeoutMs = o.timeoutMs ?? 30_000;
  const ca = await pinnedCa(u, token.pin, timeoutMs);
  const keys = await newKeyPairAsync();
  const body = JSON.stringify({ token: o.token.trim(), csr: makeCsr(keys, 'stormd') });
  const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request(
      {
        host: u.hostname, port: Number(u.port || 443), path: JOIN_PATH, method: 'POST', ca, timeout: timeoutMs,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        // The pin authenticates the CA; the certificate must be the manager's (role), whatever name we dialled.
        checkServerIdentity: (_host, cert) => {
          const f = certFacts(new X509Certificate(cert.raw));
          return f.role === 'manager' ? undefined : unauthorized(`the server's certificate has role ${f.role ?? 'none'}, not manager`);
        },
      },
      (r) => {
        const chunks: Buffer[] = [];
        let n = 0;
        r.on('data', (c: Buffer) => {
          n += c.length;
          if (n > MAX_RESPONSE) r.destroy(invalid('enrolment answer too large'));
          else chunks.push(c);
        });
        r.on('end', () => resolve({ status: r.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        r.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new StormError('timeout', `the manager did not answer within ${timeoutMs} ms`)));
    req.on('error', (e) => reject(e instanceof StormError ? e : unreachable(`enrolment request to ${u.host} failed: ${e.message}`)));
    req.end(body);
  });
  let data: unknown;
  try {
    data = JSON.parse(res.text);
  } catch {
    throw new StormError('internal', `the manager answered HTTP ${res.status} with something that is not JSON`);
  }
  if (res.status !== 200) throw fromErrorData((data as { error?: unknown }).error);
  const j = data as JoinResponse;
  if (typeof j.cert !== 'string' || typeof j.ca !== 'string' || typeof j.crl !== 'string' || typeof j.name !== 'string') throw new StormError('internal', 'enrolment answer is missing fields');
  if (pinOf(j.ca) !== token.pin) throw unauthorized('the manager returned a CA that does not match the token pin');
  const x = new X509Certificate(j.cert);
  const caX = new X509Certificate(j.ca);
  if (!x.checkIssued(caX) || !x.verify(caX.publicKey)) throw unauthorized('the returned certificate is not issued by the pinned CA');
  if (!x.checkPrivateKey(createPrivateKey(keys.privateKeyPem))) throw unauthorized('the returned certificate is not for our key');
  const f = certFacts(x);
  if (f.role !== 'stormd') throw unauthorized(`the returned certificate has role ${f.role ?? 'none'}, not stormd`);
  readCrl(j.crl, j.ca);
  saveEnrolment(o.state, { name: j.name, manager: u.origin, joinedAt: new Date().toISOString() }, { key: keys.privateKeyPem, cert: j.cert, ca: j.ca, crl: j.crl });
  return { name: j.name, serial: f.serial, notAfter: f.notAfter.toISOString() };
}
