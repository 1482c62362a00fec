/**
 * Open an HTTP(S) GET as a stream: http/https only, bounded redirects, an
 * idle timeout, TLS options for mutual TLS to the manager's layer cache.
 * Status and transport failures become StormErrors with codes.
 */
import http from 'node:http';
import https from 'node:https';
import { StormError, invalid, notFound, unreachable } from '../../lib/errors.ts';

export interface FetchOptions {
  maxRedirects?: number;
  /** Socket idle timeout. */
  idleTimeoutMs?: number;
  /** For https: CA, client certificate and key (PEM); a function is asked on every request (the certificate may be renewed). */
  tls?: TlsCreds | (() => TlsCreds);
}

export interface TlsCreds {
  ca?: string;
  cert?: string;
  key?: string;
}

export interface Opened {
  res: http.IncomingMessage;
  /** The URL that answered (after redirects). */
  url: string;
  /** Content-Length when the server sent one. */
  length: number | undefined;
  abort: () => void;
  /** Set when the idle timeout fired (mid-body it shows up as an abort). */
  timedOut: () => boolean;
}

export function parseLayerUrl(raw: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw invalid(`layer URL ${JSON.stringify(raw)} is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw invalid(`layer URL ${raw} must be http or https, not ${u.protocol.replace(':', '')}`);
  if (u.username || u.password) throw invalid('layer URLs must not carry credentials; use TLS client certificates');
  return u;
}

export async function openGet(raw: string, opts: FetchOptions = {}): Promise<Opened> {
  const max = opts.maxRedirects ?? 5;
  let url = parseLayerUrl(raw);
  for (let hop = 0; ; hop++) {
    const r = await request(url, opts);
    const status = r.res.statusCode ?? 0;
    if (status >= 300 && status < 400 && r.res.headers.location) {
      r.abort();
      if (hop >= max) throw invalid(`too many redirects (more than ${max}) fetching ${raw}`, { details: { url: raw } });
      url = parseLayerUrl(new URL(r.res.headers.location, url).href);
      continue;
    }
    if (status !== 200) {
      r.abort();
      const msg = `GET ${url.href} answered HTTP ${status}`;
      if (status === 404 || status === 410) throw notFound(msg, { details: { url: url.href, status } });
      throw unreachable(msg, { details: { url: url.href, status } });
    }
    const cl = r.res.headers['content-length'];
    const length = cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined;
    return { res: r.res, url: url.href, length, abort: r.abort, timedOut: r.timedOut };
  }
}

function request(url: URL, opts: FetchOptions): Promise<{ res: http.IncomingMessage; abort: () => void; timedOut: () => boolean }> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http;
    const tls = typeof opts.tls === 'function' ? opts.tls() : opts.tls;
    const req = mod.get(url, {
      headers: { 'user-agent': 'stormd', 'accept-encoding': 'identity' },
      ...(url.protocol === 'https:' && tls ? { ca: tls.ca, cert: tls.cert, key: tls.key, agent: false } : {}),
    });
    const idle = opts.idleTimeoutMs ?? 30_000;
    let timedOut = false;
    req.setTimeout(idle, () => {
      timedOut = true;
      req.destroy(new StormError('timeout', `no data from ${url.href} for ${idle} ms`, { details: { url: url.href } }));
    });
    req.on('error', (e) => reject(e instanceof StormError ? e : unreachable(`GET ${url.href} failed: ${e.message}`, { details: { url: url.href }, cause: e })));
    req.on('response', (res) => resolve({ res, abort: () => req.destroy(), timedOut: () => timedOut }));
  });
}
