/**
 * The enrolment endpoint: HTTPS with the manager's certificate (and the CA in
 * the chain, so a joining stormd can match the token's pin), server-auth only.
 * POST /v1/join {token, csr} → {name, cert, ca, crl}; small bounded JSON;
 * errors as {error: {code, message, hint}} with an HTTP status.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { invalid, toStormError, type ErrorCode } from '../../lib/errors.ts';
import { readBody } from '../../lib/http-body.ts';
import type { Logger } from '../../lib/logger.ts';
import { JOIN_PATH, MAX_JOIN_BODY, type JoinResponse } from '../../stormd/api/join.ts';
import type { TlsMaterial } from '../pki/pki.ts';

const STATUS: Partial<Record<ErrorCode, number>> = { invalid: 400, unauthorized: 403, not_found: 404, conflict: 409, busy: 429, unavailable: 503 };

export interface EnrollServerOptions {
  host: string;
  port: number;
  tls: () => TlsMaterial;
  log: Logger;
  enroll: (token: string, csr: string) => Promise<JoinResponse>;
}

const contextOf = (t: TlsMaterial) => ({ key: t.key, cert: t.cert + t.ca, minVersion: 'TLSv1.2' as const });

export class EnrollServer {
  readonly #server: Server;
  readonly #o: EnrollServerOptions;

  private constructor(o: EnrollServerOptions, server: Server) {
    this.#o = o;
    this.#server = server;
  }

  static async start(o: EnrollServerOptions): Promise<EnrollServer> {
    const server = createServer(contextOf(o.tls()));
    const es = new EnrollServer(o, server);
    server.on('request', (req, res) => void es.#handle(req, res));
    server.on('tlsClientError', (e) => o.log.debug('enrolment TLS error', { error: e.message }));
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    server.maxConnections = 64;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port, o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (e) => o.log.error('enrolment server error', { error: e.message }));
    return es;
  }

  /** The manager's certificate was renewed. */
  reload(): void {
    this.#server.setSecureContext(contextOf(this.#o.tls()));
  }

  get port(): number {
    const a = this.#server.address();
    return a && typeof a === 'object' ? a.port : this.#o.port;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const send = (status: number, data: unknown) => {
      const body = JSON.stringify(data);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' }).end(body);
    };
    try {
      if (req.method !== 'POST' || (req.url ?? '') !== JOIN_PATH) return send(404, { error: { code: 'not_found', message: `only POST ${JOIN_PATH} is served here` } });
      const body = await readBody(req, MAX_JOIN_BODY);
      let msg: unknown;
      try {
        msg = JSON.parse(body.toString('utf8'));
      } catch {
        throw invalid('enrolment request is not JSON');
      }
      const m = msg as { token?: unknown; csr?: unknown };
      if (!m || typeof m !== 'object' || typeof m.token !== 'string' || typeof m.csr !== 'string') throw invalid('enrolment request needs string fields "token" and "csr"');
      const out = await this.#o.enroll(m.token, m.csr);
      this.#o.log.info('enrolled a hypervisor', { name: out.name, remote: req.socket.remoteAddress });
      send(200, out);
    } catch (e) {
      const err = toStormError(e);
      if (err.details?.status === 413) return send(413, { error: { code: 'invalid', message: err.message } });
      this.#o.log.warn('enrolment refused', { code: err.code, error: err.message, remote: req.socket.remoteAddress });
      send(STATUS[err.code] ?? 500, { error: err.toJSON() });
    }
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
