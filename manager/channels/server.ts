/**
 * The channel and image server: static files over HTTP with HEAD, single
 * byte ranges (206/416), ETag/If-None-Match/If-Range and content types. Any
 * web server can serve the same folder; this one is the embedded default's.
 */
import { open, realpath, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, resolve, sep } from 'node:path';

const TYPES: Record<string, string> = {
  '.xml': 'application/xml; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.sig': 'text/plain; charset=utf-8',
  '.pub': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.qcow2': 'application/x-qemu-disk',
};

/** The content type for a served file (feeds are RSS, disks and layers are octets). */
export function contentType(path: string): string {
  if (path.endsWith('/feed.xml') || path === 'feed.xml' || path.endsWith('.rss')) return 'application/rss+xml; charset=utf-8';
  return TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream';
}

/** Parse a Range header against a size: one range, `'unsatisfiable'`, or undefined to send it all. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const m = /^bytes=\s*(\d*)\s*-\s*(\d*)\s*$/.exec(header.trim());
  // Multiple ranges and other units are ignored (RFC 9110 allows sending the whole file).
  if (!m) return undefined;
  const [, a, b] = m;
  if (a === '' && b === '') return undefined;
  let start: number;
  let end: number;
  if (a === '') {
    const n = Number(b);
    if (n === 0) return 'unsatisfiable';
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
    if (b !== '' && Number(b) < start) return undefined;
  }
  if (start >= size || !Number.isSafeInteger(start)) return 'unsatisfiable';
  return { start, end };
}

export interface ChannelServerOptions {
  root: string;
  /** Called per response with the body bytes sent (for logs and tests). */
  onServed?: (path: string, status: number, bytes: number) => void;
}

export class ChannelServer {
  readonly #root: string;
  readonly #server: Server;
  readonly #onServed: ChannelServerOptions['onServed'];
  #realRoot: string | undefined;
  /** Body bytes sent since start. */
  bytesServed = 0;

  constructor(opts: ChannelServerOptions) {
    this.#root = resolve(opts.root);
    this.#onServed = opts.onServed;
    this.#server = createServer((req, res) => void this.#handle(req, res));
    this.#server.keepAliveTimeout = 5000;
  }

  async listen(host: string, port: number): Promise<{ host: string; port: number; url: string }> {
    this.#realRoot = await realpath(this.#root);
    await new Promise<void>((ok, fail) => {
      this.#server.once('error', fail);
      this.#server.listen(port, host, () => (this.#server.off('error', fail), ok()));
    });
    const a = this.#server.address() as AddressInfo;
    const h = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return { host: a.address, port: a.port, url: `http://${h}:${a.port}/` };
  }

  close(): Promise<void> {
    return new Promise((ok) => {
      this.#server.close(() => ok());
      this.#server.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const done = (status: number, body = '', headers: Record<string, string | number> = {}) => {
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
      this.#onServed?.(req.url ?? '', status, 0);
    };
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') return done(405, 'method not allowed\n', { Allow: 'GET, HEAD' });
      const file = await this.#resolve(req.url ?? '/');
      if (!file) return done(404, 'not found\n');
      const st = await stat(file).catch(() => undefined);
      if (!st || !st.isFile()) return done(404, 'not found\n');
      const etag = `"${st.ino.toString(16)}-${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
      const base: Record<string, string | number> = {
        'Content-Type': contentType(file),
        ETag: etag,
        'Last-Modified': st.mtime.toUTCString(),
        'Accept-Ranges': 'bytes',
        'Cache-Control': 'no-cache',
      };
      const inm = req.headers['if-none-match'];
      if (inm && (inm === '*' || inm.split(',').map((s) => s.trim().replace(/^W\//, '')).includes(etag))) {
        res.writeHead(304, { ETag: etag, 'Last-Modified': base['Last-Modified'] as string });
        res.end();
        return;
      }
      const ifRange = req.headers['if-range'];
      const range = ifRange && ifRange !== etag ? undefined : parseRange(req.headers.range, st.size);
      if (range === 'unsatisfiable') return done(416, 'range not satisfiable\n', { 'Content-Range': `bytes */${st.size}` });
      const start = range?.start ?? 0;
      const end = range?.end ?? st.size - 1;
      const length = st.size === 0 ? 0 : end - start + 1;
      const headers = { ...base, 'Content-Length': length };
      if (range) res.writeHead(206, { ...headers, 'Content-Range': `bytes ${start}-${end}/${st.size}` });
      else res.writeHead(200, headers);
      if (req.method === 'HEAD' || length === 0) {
        res.end();
        return;
      }
      const path = req.url ?? '';
      let sent = 0;
      res.on('close', () => this.#onServed?.(path, range ? 206 : 200, sent));
      await sendFile(file, start, end, res, (n) => {
        sent += n;
        this.bytesServed += n;
      });
    } catch {
      if (!res.headersSent) done(500, 'internal error\n');
      else res.destroy();
    }
  }

  /** Map a URL path to a file under the root, or undefined when it would leave it. */
  async #resolve(url: string): Promise<string | undefined> {
    let path: string;
    try {
      path = decodeURIComponent(new URL(url, 'http://x').pathname);
    } catch {
      return undefined;
    }
    if (path.includes('\0') || path.split('/').some((s) => s === '..' || s.startsWith('.'))) return undefined;
    const abs = join(this.#root, path);
    if (abs !== this.#root && !abs.startsWith(this.#root + sep)) return undefined;
    // Symlinks must not lead out of the channel folder either.
    const real = await realpath(abs).catch(() => undefined);
    const root = this.#realRoot ?? this.#root;
    if (!real || (real !== root && !real.startsWith(root + sep))) return undefined;
    return real;
  }
}

const SEND_BUFFERS = 4;
const SEND_BUFFER = 1 << 20;

/**
 * Send bytes [start, end] of `file` to `res` through a few reused buffers,
 * reading the next while the last is written. A read stream allocates a
 * fresh Buffer per chunk, and measured here collecting them took ~40 % of
 * the server's CPU while it sent a 1 GiB layer: 1.2–1.8 s of CPU per GiB
 * with a read stream, 0.45–0.65 s this way (1 MiB buffers; 256 KiB and
 * 64 KiB ones cost more). Resolves when the body is sent or the client went
 * away; a read error destroys the response.
 */
async function sendFile(file: string, start: number, end: number, res: ServerResponse, onSent: (n: number) => void): Promise<void> {
  const fh = await open(file, 'r');
  const free = Array.from({ length: SEND_BUFFERS }, () => Buffer.allocUnsafeSlow(SEND_BUFFER));
  let wake: (() => void) | undefined;
  const signal = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const gone = () => res.destroyed || res.writableEnded;
  res.on('close', signal);
  res.on('drain', signal);
  try {
    for (let pos = start; pos <= end && !gone(); ) {
      // A buffer comes back when its write reached the socket; wait for one, and for the socket to drain.
      while ((!free.length || res.writableNeedDrain) && !gone()) await new Promise<void>((r) => (wake = r));
      if (gone()) break;
      const buf = free.pop()!;
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, end - pos + 1), pos);
      if (bytesRead === 0) throw new Error(`${file} is shorter than it was (${pos} of ${end + 1} bytes)`);
      pos += bytesRead;
      if (gone()) break;
      res.write(buf.subarray(0, bytesRead), (err) => {
        if (!err) onSent(bytesRead);
        free.push(buf);
        signal();
      });
    }
    if (!gone()) res.end();
  } catch {
    res.destroy();
  } finally {
    res.off('close', signal);
    res.off('drain', signal);
    await fh.close().catch(() => {});
  }
}
