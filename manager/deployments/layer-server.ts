/**
 * The manager's layer server: the layers it builds (deployment versions)
 * from its image store, `GET /<sha256>`, over HTTPS with mutual TLS. Only a
 * hypervisor's certificate (role stormd, issued by our CA, not revoked) gets
 * a byte: a deployment layer holds the site's configuration. stormd verifies
 * the digest while streaming, as for any layer.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../../lib/logger.ts';
import type { TlsMaterial } from '../pki/pki.ts';

export interface LayerServerOptions {
  host: string;
  port: number;
  /** The manager's TLS material (re-read on reload: renewal, new CRL). */
  tls: () => TlsMaterial;
  /** Is this peer certificate (PEM) an unrevoked stormd certificate of our CA? */
  check: (certPem: string) => { ok: true } | { ok: false; why: string };
  /** Where a digest's file lives (the image store). */
  path: (sha256: string) => string;
  log: Logger;
}

const contextOf = (t: TlsMaterial) => ({ key: t.key, cert: t.cert, ca: t.ca, crl: t.crl, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' as const });

export class LayerServer {
  readonly #server: Server;
  readonly #o: LayerServerOptions;
  /** Bytes of layer bodies sent (for tests and logs). */
  bytesServed = 0;

  private constructor(o: LayerServerOptions, server: Server) {
    this.#o = o;
    this.#server = server;
  }

  static async start(o: LayerServerOptions): Promise<{ server: LayerServer; port: number }> {
    const server = createServer(contextOf(o.tls()));
    const ls = new LayerServer(o, server);
    server.on('request', (req, res) => void ls.#handle(req, res));
    server.on('tlsClientError', (e) => o.log.debug('layer server TLS error', { error: e.message }));
    server.headersTimeout = 10_000;
    server.requestTimeout = 0; // large layers take their time; stormd's idle timeout guards a stalled body
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port, o.host, () => (server.off('error', reject), resolve()));
    });
    return { server: ls, port: (server.address() as { port: number }).port };
  }

  /** New certificate or CRL: new connections use them. */
  reload(): void {
    this.#server.setSecureContext(contextOf(this.#o.tls()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const done = (status: number, body: string) => {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    try {
      const peer = (req.socket as TLSSocket).getPeerX509Certificate();
      const ok = peer ? this.#o.check(peer.toString()) : { ok: false as const, why: 'no certificate' };
      if (!ok.ok) {
        this.#o.log.warn('layer server refused a peer', { why: ok.why });
        return done(403, `forbidden: ${ok.why}\n`);
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') return done(405, 'method not allowed\n');
      const m = /^\/([0-9a-f]{64})$/.exec(req.url ?? '');
      if (!m) return done(404, 'not found\n');
      const file = this.#o.path(m[1]!);
      const st = await stat(file).catch(() => undefined);
      if (!st?.isFile()) return done(404, 'not found\n');
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': st.size });
      if (req.method === 'HEAD') return void res.end();
      const s = createReadStream(file, { highWaterMark: 1 << 20 });
      s.on('data', (c) => (this.bytesServed += (c as Buffer).length));
      s.on('error', () => res.destroy());
      res.on('close', () => s.destroy());
      s.pipe(res);
    } catch (e) {
      this.#o.log.error('layer server failed', { error: (e as Error).message });
      if (!res.headersSent) done(500, 'internal error\n');
      else res.destroy();
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
}
