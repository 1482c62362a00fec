/**
 * stormd's export route: `GET|HEAD <prefix><instanceId>/<sha256>` streams an
 * exported instance layer to another stormd (or the manager) pulling it for a
 * migration. The TLS server has already admitted the peer (a stormd or
 * manager certificate from the cloud CA, not revoked); this answers the
 * request: 404 unless the layer still has that digest, Content-Length, and
 * one byte range when asked (`Range: bytes=a-b`, 206/416).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { StormError } from '../../lib/errors.ts';
import type { FileRoute } from '../server/server.ts';

/** Where stormd serves exported instance layers, under its RPC listen address. */
export const EXPORT_PREFIX = '/export/';

const PATH_RE = /^([a-z0-9][a-z0-9-]{0,62})\/([0-9a-f]{64})$/;

/** A single satisfiable range of a `size`-byte file, `undefined` for the whole file, `null` when unsatisfiable. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined | null {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d{0,15})-(\d{0,15})$/.exec(header.trim());
  // Multiple or malformed ranges: serving the whole file is always allowed (RFC 9110 §14.2).
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return null;
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return null;
  return { start, end };
}

/** The route for RpcServer's `files` option; `resolve` maps id + digest to the file (throws not_found otherwise). */
export function exportRoute(resolve: (id: string, sha256: string) => Promise<string>, allow: FileRoute['allow'] = ['stormd', 'manager']): FileRoute {
  return {
    prefix: EXPORT_PREFIX,
    allow,
    handler: async (req: IncomingMessage, res: ServerResponse) => {
      const rel = (req.url ?? '').split('?')[0]!.slice(EXPORT_PREFIX.length);
      const m = PATH_RE.exec(rel);
      if (!m) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('no such export: expected /export/<instance-id>/<sha256>\n');
      let path: string;
      try {
        path = await resolve(m[1]!, m[2]!);
      } catch (e) {
        const nf = e instanceof StormError && (e.code === 'not_found' || e.code === 'invalid');
        return void res.writeHead(nf ? 404 : 500, { 'content-type': 'text/plain' }).end(nf ? `${e.message}\n` : 'export failed\n');
      }
      const size = (await stat(path)).size;
      const range = parseRange(req.headers.range, size);
      const head = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes', etag: `"${m[2]}"` };
      if (range === null) return void res.writeHead(416, { ...head, 'content-range': `bytes */${size}` }).end();
      const { start, end } = range ?? { start: 0, end: size - 1 };
      const length = size === 0 ? 0 : end - start + 1;
      res.writeHead(range ? 206 : 200, { ...head, 'content-length': String(length), ...(range ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}) });
      if (req.method === 'HEAD' || length === 0) return void res.end();
      // A broken stream ends the response short: the puller's length and digest checks refuse it.
      await pipeline(createReadStream(path, { start, end }), res).catch(() => res.destroy());
    },
  };
}

/**
 * The export base URL for a server listening on `host:port`: the same
 * address over HTTPS. A wildcard listen address names no host, so the
 * machine's hostname stands in (peers check it against stormd's certificate,
 * which names the host's STORM name and the address it was added with).
 */
export function exportBaseUrl(host: string, port: number, hostname: string): string {
  const h = host === '0.0.0.0' || host === '::' || host === '' ? hostname : host;
  return `https://${h.includes(':') ? `[${h}]` : h}:${port}${EXPORT_PREFIX.replace(/\/$/, '')}`;
}
