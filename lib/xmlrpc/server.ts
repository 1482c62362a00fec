/**
 * Our XML-RPC server over mutual TLS (stormd's; later the appliances' API). Built on `xmlrpc.createSecureServer`
 * (requestCert + rejectUnauthorized, the CA and CRL in the secure context so
 * OpenSSL refuses unknown, expired and revoked peers in the handshake), with
 * its request handler replaced: xmlrpc handlers cannot see the TLS peer and
 * read bodies without a limit. Each connection is then checked for the role
 * (stormd: only `manager` may command) and against our revocation set.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import xmlrpc from 'xmlrpc';
import { StormError, toStormError } from '../errors.ts';
import { readBody } from '../http-body.ts';
import type { Logger } from '../logger.ts';
import { readCrl, type CrlFacts } from '../tls/crl.ts';
import { certFacts, type Role } from '../tls/x509.ts';
import { decodeCall, encodeFault, encodeResponse } from './codec.ts';
import { toFault } from './faults.ts';
import type { MethodTable, Peer } from './methods.ts';

/** HTTP path of our XML-RPC endpoints. */
export const RPC_PATH = '/RPC2';
/** Default largest request body a server reads. */
export const MAX_REQUEST_BYTES = 1024 * 1024;
/** Response header with the server's CRL number, so a caller can tell its list is stale. */
export const CRL_NUMBER_HEADER = 'x-storm-crl-number';

export interface TlsFiles {
  key: string;
  cert: string;
  ca: string;
  crl: string;
}

export interface RpcServerOptions {
  host: string;
  port: number;
  tls: TlsFiles;
  methods: MethodTable;
  log: Logger;
  /** Roles allowed to call (stormd: manager only). */
  allow: readonly Role[];
  maxBodyBytes?: number;
  path?: string;
  /** How long an idle kept-alive connection stays open (default 5 s). */
  keepAliveMs?: number;
  /** Told about every request from an admitted peer (audit): the method when it decoded, and the outcome. */
  onCall?: (e: { peer: Peer; method?: string; error?: StormError }) => void;
  /** Told about every refused connection (audit): why, from where. */
  onRefuse?: (e: { why: string; remote: string | undefined }) => void;
  /**
   * Plain GET/HEAD requests under `prefix` (stormd's instance-layer export),
   * admitted for their own roles. A peer admitted only for these gets 403 on the RPC path.
   */
  files?: FileRoute;
}

/** A GET/HEAD route beside the RPC path; the handler answers the request itself. */
export interface FileRoute {
  /** Path prefix, e.g. `/export/`. */
  prefix: string;
  allow: readonly Role[];
  handler: (req: IncomingMessage, res: ServerResponse, peer: Peer) => Promise<void>;
}

const peerKey = Symbol('storm.peer');
type Guarded = TLSSocket & { [peerKey]?: Peer };

export class RpcServer {
  readonly #o: RpcServerOptions;
  readonly #http: HttpsServer;
  #tls: TlsFiles;
  #crl: CrlFacts;
  readonly #sockets = new Set<Guarded>();

  private constructor(o: RpcServerOptions, http: HttpsServer) {
    this.#o = o;
    this.#http = http;
    this.#tls = o.tls;
    this.#crl = readCrl(o.tls.crl, o.tls.ca);
  }

  static async start(o: RpcServerOptions): Promise<RpcServer> {
    readCrl(o.tls.crl, o.tls.ca); // refuse to start on a CRL the CA did not sign
    const rpc = await new Promise<xmlrpc.Server>((resolve, reject) => {
      const s = xmlrpc.createSecureServer({ ...secureOptions(o.tls), host: o.host, port: o.port } as never, () => resolve(s));
      s.httpServer.once('error', (e: NodeJS.ErrnoException) =>
        reject(
          e.code === 'EADDRINUSE' || e.code === 'EADDRNOTAVAIL' || e.code === 'EACCES'
            ? new StormError(e.code === 'EADDRINUSE' ? 'conflict' : 'invalid', `cannot listen on ${o.host}:${o.port}: ${e.code}`, { hint: e.code === 'EADDRINUSE' ? 'another process holds the port: stop it or pick another --listen' : 'pick an address this machine has (--listen HOST:PORT)' })
            : e,
        ),
      );
    });
    const http = rpc.httpServer as HttpsServer;
    const server = new RpcServer(o, http);
    http.removeAllListeners('request');
    http.removeAllListeners('error');
    http.on('error', (e) => o.log.error('rpc server error', { error: e.message }));
    http.on('request', (req, res) => void server.#handle(req, res));
    http.prependListener('secureConnection', (s: TLSSocket) => server.#admit(s as Guarded));
    // Node verifies the chain after the handshake and closes without an alert: say why in our log.
    http.on('tlsClientError', (e: NodeJS.ErrnoException, s: TLSSocket) => {
      const why = s.authorizationError ? `certificate not accepted: ${String(s.authorizationError)}` : `${e.code ?? 'TLS'}: ${e.message.split('\n')[0]}`;
      o.log.warn('refused a peer', { why, remote: s.remoteAddress });
      server.#refused(why, s.remoteAddress);
    });
    // Slow or idle peers cannot hold sockets forever.
    http.headersTimeout = 10_000;
    http.requestTimeout = 60_000;
    http.keepAliveTimeout = o.keepAliveMs ?? 5_000;
    return server;
  }

  address(): { host: string; port: number } {
    const a = this.#http.address();
    if (!a || typeof a === 'string') return { host: this.#o.host, port: this.#o.port };
    return { host: a.address, port: a.port };
  }

  get crlNumber(): number {
    return this.#crl.number;
  }

  /** Install a newer CRL (signed by our CA); close live connections of peers it revokes. */
  updateCrl(pem: string): { number: number; closed: number } {
    const facts = readCrl(pem, this.#tls.ca);
    if (facts.number < this.#crl.number) throw new StormError('conflict', `CRL number ${facts.number} is older than the installed ${this.#crl.number}`);
    this.#crl = facts;
    this.#tls = { ...this.#tls, crl: pem };
    this.#http.setSecureContext(secureOptions(this.#tls));
    let closed = 0;
    for (const s of this.#sockets) {
      if (s[peerKey] && facts.serials.has(s[peerKey].serial)) {
        s.destroy();
        closed++;
      }
    }
    this.#o.log.info('installed CRL', { number: facts.number, revoked: facts.serials.size, closed });
    return { number: facts.number, closed };
  }

  /** Serve new connections with a renewed key and certificate. */
  updateCert(key: string, cert: string): void {
    this.#tls = { ...this.#tls, key, cert };
    this.#http.setSecureContext(secureOptions(this.#tls));
  }

  /** Check a new connection: a certificate with an allowed role that we do not know as revoked. */
  #admit(s: Guarded): void {
    const refuse = (why: string) => {
      this.#o.log.warn('refused a peer', { why, remote: s.remoteAddress });
      this.#refused(why, s.remoteAddress);
      s.destroy();
    };
    try {
      const x = s.getPeerX509Certificate();
      if (!x || !s.authorized) return refuse(`no trusted certificate (${String(s.authorizationError ?? 'none presented')})`);
      const f = certFacts(x);
      const allow = [...this.#o.allow, ...(this.#o.files?.allow ?? [])];
      const files = this.#o.files ? ` (${this.#o.files.allow.join(', ')} may fetch ${this.#o.files.prefix})` : '';
      if (!f.role || !allow.includes(f.role)) return refuse(`certificate ${f.commonName} has role ${f.role ?? 'none'}; only ${this.#o.allow.join(', ')} may call${files}`);
      if (this.#crl.serials.has(f.serial)) return refuse(`certificate ${f.serial} is revoked`);
      s[peerKey] = { serial: f.serial, role: f.role, commonName: f.commonName };
      this.#sockets.add(s);
      s.once('close', () => this.#sockets.delete(s));
    } catch (e) {
      refuse(`certificate unreadable: ${(e as Error).message}`);
    }
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const socket = req.socket as Guarded;
    const peer = socket[peerKey];
    // The CRL number is read when answering, so a tls.crl.update answer already carries the new one.
    const send = (xml: string) => res.writeHead(200, { 'content-type': 'text/xml', [CRL_NUMBER_HEADER]: String(this.#crl.number) }).end(xml);
    const fault = (e: StormError) => {
      const f = toFault(e);
      send(encodeFault(f.faultCode, f.faultString));
    };
    let method: string | undefined;
    try {
      // The handshake checks ran when the connection opened; a CRL installed since then still counts.
      if (!peer || this.#crl.serials.has(peer.serial)) {
        res.writeHead(403, { connection: 'close' }).end();
        socket.destroy();
        return;
      }
      const files = this.#o.files;
      if (files && (req.method === 'GET' || req.method === 'HEAD') && (req.url ?? '').startsWith(files.prefix)) {
        if (!files.allow.includes(peer.role)) {
          res.writeHead(403, { connection: 'close' }).end();
          return;
        }
        const what = `${req.method} ${(req.url ?? '').split('?')[0]}`;
        try {
          await files.handler(req, res, peer);
          this.#audit(peer, what);
        } catch (e) {
          // The handler answers its own errors; this is a bug or a broken stream.
          if (!res.headersSent) res.writeHead(500, { connection: 'close' }).end();
          else res.destroy();
          this.#audit(peer, what, toStormError(e));
        }
        return;
      }
      if (!this.#o.allow.includes(peer.role)) {
        // Admitted for the file route only (a stormd pulling a layer): it may not command.
        const why = `certificate ${peer.commonName} has role ${peer.role}; only ${this.#o.allow.join(', ')} may call`;
        this.#o.log.warn('refused a peer', { why, remote: socket.remoteAddress });
        this.#refused(why, socket.remoteAddress);
        res.writeHead(403, { connection: 'close' }).end();
        res.once('finish', () => socket.destroy());
        return;
      }
      if (req.method !== 'POST' || (req.url ?? '').split('?')[0] !== (this.#o.path ?? RPC_PATH)) {
        res.writeHead(req.method === 'POST' ? 404 : 405, { connection: 'close', allow: 'POST' }).end();
        return;
      }
      let body: Buffer;
      try {
        body = await readBody(req, this.#o.maxBodyBytes ?? MAX_REQUEST_BYTES);
      } catch (e) {
        const err = toStormError(e);
        if (err.details?.status === 413) {
          res.writeHead(413, { connection: 'close' }).end();
          res.once('finish', () => socket.destroy());
        } else socket.destroy();
        this.#audit(peer, undefined, err);
        return;
      }
      const call = await decodeCall(body);
      method = call.method;
      const value = await this.#o.methods.call(call.method, call.params, { peer });
      let xml: string;
      try {
        xml = encodeResponse(value);
      } catch (e) {
        throw new StormError('internal', `${call.method}: result cannot be encoded: ${(e as Error).message}`);
      }
      send(xml);
      this.#audit(peer, method);
    } catch (e) {
      const err = toStormError(e);
      if (err.code === 'internal') this.#o.log.error('method failed', { error: err.message });
      if (!res.headersSent) fault(err);
      if (peer) this.#audit(peer, method, err);
    }
  }

  #refused(why: string, remote: string | undefined): void {
    try {
      this.#o.onRefuse?.({ why, remote });
    } catch (e) {
      this.#o.log.error('audit hook failed', { error: (e as Error).message });
    }
  }

  #audit(peer: Peer, method: string | undefined, error?: StormError): void {
    try {
      this.#o.onCall?.({ peer, ...(method !== undefined ? { method } : {}), ...(error ? { error } : {}) });
    } catch (e) {
      this.#o.log.error('audit hook failed', { error: (e as Error).message });
    }
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    const closed = new Promise<void>((resolve) => this.#http.close(() => resolve()));
    this.#http.closeAllConnections();
    await closed;
  }
}

function secureOptions(t: TlsFiles) {
  return { key: t.key, cert: t.cert, ca: t.ca, crl: t.crl, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' as const };
}

