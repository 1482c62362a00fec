/**
 * The manager's stormd client: XML-RPC over mutual TLS with the manager's
 * client certificate. The peer must chain to our CA, not be revoked (CRL in
 * the context), carry role stormd and the host's name as CN. Faults come back
 * as StormErrors with their codes; transport failures are unreachable/timeout,
 * trust failures unauthorized (`details.trust = true`).
 */
import { Agent, request } from 'node:https';
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { StormError, unauthorized, unreachable } from '../../lib/errors.ts';
import { decodeResponse, encodeCall } from '../../lib/xmlrpc/codec.ts';
import { certFacts } from '../../lib/tls/x509.ts';
import { fromFault } from '../../stormd/api/faults.ts';
import { CRL_NUMBER_HEADER, MAX_RESPONSE_BYTES, RPC_PATH } from '../../stormd/api/methods.ts';
import type { TlsMaterial } from '../pki/pki.ts';

export interface StormdClientOptions {
  name: string;
  host: string;
  port: number;
  tls: () => TlsMaterial;
  crlNumber: () => number;
  /** Told when stormd reports an older CRL than ours. */
  onCrlNumber?: (n: number) => void;
}

const TRUST_CODES = /^(ERR_SSL|ERR_TLS|CERT_|UNABLE_TO|DEPTH_ZERO|SELF_SIGNED|ERR_STORM_PEER)/;

export class StormdClient {
  readonly #o: StormdClientOptions;
  #agent: Agent | undefined;

  constructor(o: StormdClientOptions) {
    this.#o = o;
  }

  /**
   * Drop pooled connections (after our certificate or the CRL changed): new
   * calls connect afresh; calls in flight finish on theirs (a destroy that
   * revokes a certificate must not cut the other hosts' calls), which then close.
   */
  reset(): void {
    const old = this.#agent;
    this.#agent = undefined;
    if (!old) return;
    for (const list of Object.values(old.freeSockets)) for (const s of list ?? []) s.destroy();
    old.on('free', (s: { destroy(): void }) => s.destroy());
  }

  #agentNow(): Agent {
    if (this.#agent) return this.#agent;
    const t = this.#o.tls();
    const name = this.#o.name;
    this.#agent = new Agent({
      keepAlive: true, maxSockets: 8, key: t.key, cert: t.cert, ca: t.ca, crl: t.crl, minVersion: 'TLSv1.2',
      // Identity is the role and the host's name in our CA's certificate, whatever address we dialled.
      checkServerIdentity: (_host: string, cert: PeerCertificate) => {
        const f = certFacts(new X509Certificate(cert.raw));
        if (f.role !== 'stormd') return Object.assign(new Error(`peer certificate has role ${f.role ?? 'none'}, expected stormd`), { code: 'ERR_STORM_PEER' });
        if (f.commonName !== name) return Object.assign(new Error(`peer certificate is for ${f.commonName}, expected ${name}`), { code: 'ERR_STORM_PEER' });
        return undefined;
      },
    } as never);
    return this.#agent;
  }

  async call<R = unknown>(method: string, params: Record<string, unknown> = {}, opts: { timeoutMs?: number } = {}): Promise<R> {
    try {
      return await this.#call<R>(method, params, opts);
    } catch (e) {
      // A kept-alive socket the server had already closed: the request never arrived, so send it again on a new one.
      if (e instanceof StormError && e.details?.staleSocket) return this.#call<R>(method, params, opts);
      throw e;
    }
  }

  async #call<R>(method: string, params: Record<string, unknown>, opts: { timeoutMs?: number }): Promise<R> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const body = encodeCall(method, [params]);
    const where = `stormd ${this.#o.name} at ${this.#o.host}:${this.#o.port}`;
    const res = await new Promise<{ status: number; body: Buffer; crl: number | undefined }>((resolve, reject) => {
      const req = request(
        {
          host: this.#o.host, port: this.#o.port, path: RPC_PATH, method: 'POST', agent: this.#agentNow(), timeout: timeoutMs,
          headers: { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(body), [CRL_NUMBER_HEADER]: String(this.#o.crlNumber()) },
        },
        (r) => {
          const chunks: Buffer[] = [];
          let n = 0;
          r.on('data', (c: Buffer) => {
            n += c.length;
            if (n > MAX_RESPONSE_BYTES) r.destroy(new StormError('invalid', `${where}: response larger than ${MAX_RESPONSE_BYTES} bytes`));
            else chunks.push(c);
          });
          r.on('end', () => {
            const h = Number(r.headers[CRL_NUMBER_HEADER]);
            resolve({ status: r.statusCode ?? 0, body: Buffer.concat(chunks), crl: Number.isFinite(h) ? h : undefined });
          });
          r.on('error', (e) => reject(e));
        },
      );
      req.on('timeout', () => req.destroy(new StormError('timeout', `${where} did not answer ${method} within ${timeoutMs} ms`)));
      req.on('error', (e) => reject(classify(e, where, req.reusedSocket)));
      req.end(body);
    });
    if (res.crl !== undefined) this.#o.onCrlNumber?.(res.crl);
    if (res.status !== 200) throw new StormError(res.status === 403 ? 'unauthorized' : 'internal', `${where} answered HTTP ${res.status} to ${method}`, res.status === 403 ? { details: { trust: true } } : {});
    const decoded = await decodeResponse(res.body);
    if (!decoded.ok) throw fromFault(decoded.fault);
    return decoded.value as R;
  }
}

function classify(e: Error, where: string, reused: boolean): StormError {
  if (e instanceof StormError) return e;
  const code = String((e as NodeJS.ErrnoException).code ?? '');
  if (reused && (code === 'ECONNRESET' || /socket hang up/.test(e.message))) return unreachable(`${where} closed a kept-alive connection`, { details: { staleSocket: true } });
  if (TRUST_CODES.test(code) || /certificate|alert|handshake/i.test(e.message)) {
    return unauthorized(`${where} is not trusted, or does not trust us: ${e.message}`, {
      hint: 'check the host was enrolled with this manager (storm host show NAME) and its certificate is not revoked',
      details: { trust: true, tlsCode: code },
    });
  }
  if (code === 'ECONNRESET' || /socket hang up/.test(e.message)) {
    // On a fresh connection: stormd completed the handshake and hung up, i.e. it refuses our certificate.
    return unreachable(`${where} closed the connection: ${e.message}`, { hint: 'stormd refuses callers whose certificate it does not accept (revoked? another CA?); see its log', details: { trust: true } });
  }
  return unreachable(`${where} is unreachable: ${e.message}`, { hint: 'is stormd running there (stormd start), and the address right?' });
}
