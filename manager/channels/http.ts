/**
 * The manager's HTTP client for channels and images: http(s) only, bounded
 * redirects with loop detection, timeouts, and bounded bodies for documents.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { invalid, notFound, StormError, unavailable, unreachable } from '../../lib/errors.ts';

const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 16 });
const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 16 });

export const MAX_REDIRECTS = 5;

/** Parse a URL we are about to fetch; anything but http(s) is refused. */
export function httpUrl(s: string, where: string): URL {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw invalid(`${where}: "${s.slice(0, 200)}" is not a URL`, { hint: 'give an absolute http:// or https:// URL, e.g. https://channels.example.org/corp/feed.xml' });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw invalid(`${where}: "${s.slice(0, 200)}" uses the ${u.protocol.replace(/:$/, '')} scheme; only http and https are allowed`);
  if (u.username || u.password) throw invalid(`${where}: "${u.host}${u.pathname}" carries credentials in the URL; they are not allowed`);
  return u;
}

/**
 * Resolve an href from a channel document against the channel's base (the
 * feed's folder). The result must stay inside the channel: same origin, path
 * under the base. Mirrors are checked with `httpUrl` instead.
 */
export function channelHref(href: string, base: string, where: string): string {
  if (/^[a-z][a-z0-9+.-]*:/i.test(href) && !/^https?:/i.test(href)) throw invalid(`${where}: href "${href.slice(0, 200)}" uses a non-HTTP scheme; only http and https are allowed`);
  let u: URL;
  try {
    u = new URL(href, base);
  } catch {
    throw invalid(`${where}: href "${href.slice(0, 200)}" is not a valid URL reference`);
  }
  const b = new URL(base);
  if (u.origin !== b.origin || !u.pathname.startsWith(b.pathname) || /%2f|%5c/i.test(u.pathname.slice(b.pathname.length))) {
    throw invalid(`${where}: href "${href.slice(0, 200)}" escapes the channel (resolves to ${u.href.slice(0, 200)}, outside ${b.href})`, { hint: 'hrefs must be relative paths inside the channel folder; put other servers in <mirror>' });
  }
  u.hash = '';
  return u.href;
}

/** The folder a feed URL lives in: what its relative hrefs resolve against. */
export function channelBase(feedUrl: string): string {
  const u = new URL(feedUrl);
  u.search = '';
  u.hash = '';
  u.pathname = u.pathname.replace(/[^/]*$/, '');
  return u.href;
}

export interface OpenOptions {
  headers?: Record<string, string>;
  method?: 'GET' | 'HEAD';
  /** No byte for this long: give up (idle timeout, not total time). */
  idleMs?: number;
  signal?: AbortSignal;
}

/** Open a URL, following redirects (at most MAX_REDIRECTS, never in a loop, never off http(s)). */
export async function open(url: string, opts: OpenOptions = {}): Promise<{ res: IncomingMessage; url: string }> {
  const seen = new Set<string>();
  let cur = httpUrl(url, 'request');
  for (let hop = 0; ; hop++) {
    seen.add(cur.href);
    const res = await once(cur, opts);
    const loc = res.headers.location;
    if ([301, 302, 303, 307, 308].includes(res.statusCode ?? 0) && loc) {
      res.resume();
      cur = redirectTarget(url, cur, loc, seen, hop);
      continue;
    }
    return { res, url: cur.href };
  }
}

/** Where a redirect from `cur` leads, refusing bad locations, other schemes, loops and more than MAX_REDIRECTS hops. */
export function redirectTarget(url: string, cur: URL, loc: string, seen: Set<string>, hop: number): URL {
  let next: URL;
  try {
    next = new URL(loc, cur);
  } catch {
    throw invalid(`${cur.href}: redirect to an invalid location "${loc.slice(0, 200)}"`);
  }
  if (next.protocol !== 'http:' && next.protocol !== 'https:') throw invalid(`${cur.href}: redirect to the ${next.protocol.replace(/:$/, '')} scheme refused; only http and https are allowed`);
  if (seen.has(next.href)) throw unavailable(`${url}: redirect loop (${cur.href} → ${next.href})`, { hint: 'the server is misconfigured; tell its operator' });
  if (hop + 1 > MAX_REDIRECTS) throw unavailable(`${url}: more than ${MAX_REDIRECTS} redirects`, { hint: 'the server is misconfigured; tell its operator' });
  return next;
}

/**
 * One request; a kept-alive socket the server closed just as we reused it is retried once, on a
 * connection of its own (the pool may hold more sockets the server has closed).
 */
async function once(u: URL, opts: OpenOptions): Promise<IncomingMessage> {
  try {
    return await attempt(u, opts, true);
  } catch (e) {
    if (!(e instanceof StaleSocket)) throw e;
    return attempt(u, opts, false);
  }
}

/** The server closed an idle kept-alive socket as we sent on it: nothing was answered, and GET/HEAD are safe to ask again. */
class StaleSocket extends Error {}

function attempt(u: URL, opts: OpenOptions, pooled: boolean): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, {
      method: opts.method ?? 'GET',
      headers: { 'User-Agent': 'storm-manager', ...(opts.headers ?? {}) },
      agent: pooled ? (u.protocol === 'https:' ? httpsAgent : httpAgent) : false,
      signal: opts.signal,
    });
    req.setTimeout(opts.idleMs ?? 30_000, () => req.destroy(new StormError('timeout', `${u.href}: no answer for ${Math.round((opts.idleMs ?? 30_000) / 1000)} s`)));
    req.on('response', (res) => {
      res.setTimeout?.(opts.idleMs ?? 30_000, () => res.destroy(new StormError('timeout', `${u.href}: the transfer stalled for ${Math.round((opts.idleMs ?? 30_000) / 1000)} s`)));
      resolve(res);
    });
    req.on('error', (e: NodeJS.ErrnoException) => reject(req.reusedSocket && e.code === 'ECONNRESET' ? new StaleSocket() : netError(u.href, e)));
    req.end();
  });
}

/** A network failure as a typed error naming the URL. */
export function netError(url: string, e: unknown): StormError {
  if (e instanceof StormError) return e;
  const err = e as NodeJS.ErrnoException;
  const what = (err.code && NET_ERRORS[err.code]) ?? err.code;
  // Node's message usually names the code already ("connect ECONNREFUSED 127.0.0.1:1"): say it once.
  const detail = what && !err.message.includes(what) ? `${what} (${err.message})` : err.message;
  return unreachable(`${url}: ${detail}`.trim(), { hint: 'is the channel server up and reachable from the manager?' });
}

/** The network errors an admin meets, in words. */
const NET_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'no such host',
  EAI_AGAIN: 'the name could not be resolved now',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  ECONNRESET: 'connection reset by the server',
};

/** GET a small document, refusing bodies over `maxBytes` and truncated bodies. */
export async function fetchSmall(url: string, maxBytes: number, opts: OpenOptions = {}): Promise<{ body: Buffer; url: string; etag?: string }> {
  const { res, url: final } = await open(url, opts);
  const status = res.statusCode ?? 0;
  if (status !== 200) {
    res.resume();
    if (status === 404 || status === 410) throw notFound(`${final}: HTTP ${status}`, { hint: 'is the channel URL right?' });
    throw unavailable(`${final}: HTTP ${status}`);
  }
  const declared = res.headers['content-length'] === undefined ? undefined : Number(res.headers['content-length']);
  if (declared !== undefined && declared > maxBytes) {
    res.destroy();
    throw invalid(`${final}: document is ${declared} bytes, more than the limit of ${maxBytes}`);
  }
  const chunks: Buffer[] = [];
  let n = 0;
  await new Promise<void>((resolve, reject) => {
    res.on('data', (c: Buffer) => {
      n += c.length;
      if (n > maxBytes) {
        res.destroy();
        reject(invalid(`${final}: document is more than the limit of ${maxBytes} bytes`));
        return;
      }
      chunks.push(c);
    });
    res.on('end', () => resolve());
    res.on('aborted', () => reject(unavailable(`${final}: the connection closed after ${n} bytes${declared !== undefined ? ` of ${declared}` : ''} (truncated)`)));
    res.on('error', (e) => reject(e instanceof StormError ? e : unavailable(`${final}: the connection closed after ${n} bytes${declared !== undefined ? ` of ${declared}` : ''} (truncated): ${e.message}`)));
  });
  if (declared !== undefined && n !== declared) throw unavailable(`${final}: got ${n} bytes but the server announced ${declared} (truncated)`);
  const etag = res.headers.etag;
  return { body: Buffer.concat(chunks), url: final, ...(etag ? { etag } : {}) };
}
