import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { createServer, type Server, type Socket as TcpSocket } from 'node:net';
import { randomInt } from 'node:crypto';
import type { Logger } from '../../../lib/logger.ts';
import { unavailable } from '../../../lib/errors.ts';
import type { Authority } from './zone.ts';
import { encodeResponse, parseQuery, RCODE, udpLimit, type Query } from './wire.ts';

export interface DnsServerOptions {
  host: string;
  port: number;
  /** Forward names outside our zones here; none means REFUSED. */
  upstream?: { host: string; port: number } | undefined;
  log: Logger;
  /** Answers cached before the cache is reset (bounds memory under random-name floods). */
  cacheMax?: number;
  /** Concurrent TCP connections; more are closed at once. */
  tcpMax?: number;
  tcpIdleMs?: number;
  forwardTimeoutMs?: number;
}

/** A precomputed response: `full` for TCP and roomy UDP, `tc` when it does not fit the client's UDP size. */
interface Entry {
  full: Buffer;
  tc: Buffer;
}

export interface DnsStats {
  queries: number;
  cacheHits: number;
  forwarded: number;
  dropped: number;
  tcpConnections: number;
}

const MAX_PENDING = 4096;

/**
 * The DNS server: UDP and TCP on one address. The hot path (DESIGN.md §6) never
 * decodes a plain query: it lower-cases the question's bytes into a key, finds
 * the precomputed response, copies it and patches the ID, RD bit and the
 * question's original case. Misses take the slow path (full parse, authority
 * lookup, encode) and fill the cache; any record change replaces the whole
 * Authority and empties the cache.
 */
export class DnsServer {
  readonly #o: DnsServerOptions;
  #authority: Authority;
  readonly #cache = new Map<string, Entry>();
  readonly #scratch = Buffer.alloc(512);
  #udp: Socket | undefined;
  #tcp: Server | undefined;
  #fwd: Socket | undefined;
  readonly #pending = new Map<number, { resolve: (b: Buffer | undefined) => void; timer: NodeJS.Timeout }>();
  readonly #conns = new Set<TcpSocket>();
  readonly stats: DnsStats = { queries: 0, cacheHits: 0, forwarded: 0, dropped: 0, tcpConnections: 0 };

  constructor(authority: Authority, opts: DnsServerOptions) {
    this.#authority = authority;
    this.#o = opts;
  }

  get address(): string {
    return `${this.#o.host}:${this.#o.port}`;
  }

  /** Swap in new data (a record changed): cached answers are dropped with the old data. */
  setAuthority(a: Authority): void {
    this.#authority = a;
    this.#cache.clear();
  }

  async listen(): Promise<void> {
    // Replies go to rinfo.address, always an IP literal: skip dns.lookup's per-send nextTick (~15% q/s).
    const udp = createSocket({ type: 'udp4', reuseAddr: false, lookup: (address, _opts, cb) => cb(null, address, 4) });
    udp.on('message', (msg, rinfo) => this.#onUdp(msg, rinfo));
    udp.on('error', (e) => this.#o.log.warn('dns udp error', { error: e.message }));
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(this.#o.port, this.#o.host, () => (udp.off('error', reject), resolve()));
    }).catch((e: NodeJS.ErrnoException) => {
      udp.close();
      throw unavailable(`DNS cannot listen on udp ${this.address}: ${e.code ?? e.message}`, { hint: 'pick a free port with dnsListen (or stop what holds it)', cause: e });
    });
    const tcp = createServer((s) => this.#onTcp(s));
    tcp.on('error', (e) => this.#o.log.warn('dns tcp error', { error: e.message }));
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(this.#o.port, this.#o.host, () => (tcp.off('error', reject), resolve()));
    }).catch((e: NodeJS.ErrnoException) => {
      udp.close();
      throw unavailable(`DNS cannot listen on tcp ${this.address}: ${e.code ?? e.message}`, { hint: 'pick a free port with dnsListen', cause: e });
    });
    this.#udp = udp;
    this.#tcp = tcp;
    if (this.#o.upstream) {
      const fwd = createSocket('udp4');
      fwd.on('message', (msg, rinfo) => this.#onUpstream(msg, rinfo));
      fwd.on('error', (e) => this.#o.log.warn('dns forwarder error', { error: e.message }));
      await new Promise<void>((resolve) => fwd.bind(0, () => resolve()));
      this.#fwd = fwd;
    }
  }

  async close(): Promise<void> {
    for (const p of this.#pending.values()) (clearTimeout(p.timer), p.resolve(undefined));
    this.#pending.clear();
    for (const c of this.#conns) c.destroy();
    const closes: Promise<void>[] = [];
    if (this.#udp) closes.push(new Promise((r) => this.#udp!.close(() => r())));
    if (this.#fwd) closes.push(new Promise((r) => this.#fwd!.close(() => r())));
    if (this.#tcp) closes.push(new Promise((r) => this.#tcp!.close(() => r())));
    this.#udp = this.#tcp = this.#fwd = undefined;
    await Promise.all(closes);
  }

  #onUdp(msg: Buffer, rinfo: RemoteInfo): void {
    this.stats.queries++;
    try {
      const fast = this.#fast(msg, true);
      if (fast) return this.#udp?.send(fast, rinfo.port, rinfo.address);
      const out = this.respond(msg, 'udp');
      if (out instanceof Promise) out.then((b) => b && this.#udp?.send(b, rinfo.port, rinfo.address), () => undefined);
      else if (out) this.#udp?.send(out, rinfo.port, rinfo.address);
      else this.stats.dropped++;
    } catch (e) {
      // A bug must cost one answer, never the server.
      this.stats.dropped++;
      this.#o.log.error('dns query failed', { error: (e as Error).message });
    }
  }

  /**
   * The hot path: a standard query, one question, nothing but an optional OPT
   * (version 0) after it, whose answer is cached. Returns undefined to fall back.
   */
  #fast(msg: Buffer, udp: boolean): Buffer | undefined {
    const len = msg.length;
    if (len < 17 || (msg[2]! & 0xf8) !== 0 || msg[4] !== 0 || msg[5] !== 1 || msg[6] !== 0 || msg[7] !== 0 || msg[8] !== 0 || msg[9] !== 0 || msg[10] !== 0 || msg[11]! > 1) return undefined;
    const scratch = this.#scratch;
    let off = 12;
    let k = 0;
    for (;;) {
      if (off >= len) return undefined;
      const l = msg[off]!;
      if (l === 0) break;
      if (l > 63 || off + 1 + l > len || k + 1 + l > 255) return undefined;
      scratch[k++] = l;
      for (let i = off + 1; i <= off + l; i++) {
        const c = msg[i]!;
        scratch[k++] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
      }
      off += 1 + l;
    }
    const qEnd = off + 5;
    if (qEnd > len) return undefined;
    scratch[k++] = 0;
    for (let i = off + 1; i < qEnd; i++) scratch[k++] = msg[i]!;
    let limit = 512;
    if (msg[11] === 1) {
      // OPT: root name, type 41, class = UDP size, TTL = ext-rcode|version|flags, rdlen.
      if (qEnd + 11 > len || msg[qEnd] !== 0 || msg[qEnd + 1] !== 0 || msg[qEnd + 2] !== 41 || msg[qEnd + 6] !== 0) return undefined;
      if (qEnd + 11 + msg.readUInt16BE(qEnd + 9) !== len) return undefined;
      limit = Math.max(512, Math.min(msg.readUInt16BE(qEnd + 3), 4096));
      scratch[k++] = 1;
    } else if (qEnd !== len) return undefined;
    const e = this.#cache.get(scratch.toString('latin1', 0, k));
    if (!e) return undefined;
    this.stats.cacheHits++;
    const src = udp && e.full.length > limit ? e.tc : e.full;
    const out = Buffer.allocUnsafe(src.length);
    src.copy(out);
    out[0] = msg[0]!;
    out[1] = msg[1]!;
    out[2] = (out[2]! & 0xfe) | (msg[2]! & 1);
    msg.copy(out, 12, 12, qEnd); // the question as asked (0x20 case randomisation survives)
    return out;
  }

  /**
   * The slow path for one message: parse, answer (authoritative, forwarded or
   * refused), fill the cache. Undefined means drop. Public for fuzz tests.
   */
  respond(msg: Buffer, transport: 'udp' | 'tcp'): Buffer | undefined | Promise<Buffer | undefined> {
    const p = parseQuery(msg);
    if (p.kind === 'drop') return undefined;
    const ra = this.#fwd !== undefined;
    if (p.kind === 'error') {
      const question = p.qEnd ? msg.subarray(12, p.qEnd) : undefined;
      return encodeResponse({ question, qname: '', id: p.id, rd: p.rd, aa: false, ra, rcode: p.rcode, opcode: p.opcode }).full;
    }
    const q = p.q;
    const question = msg.subarray(12, q.qEnd);
    const qnameLower = q.qname;
    if (q.edns && q.edns.version !== 0) {
      return encodeResponse({ question, qname: qnameLower, id: q.id, rd: q.rd, aa: false, ra, rcode: RCODE.BADVERS, edns: true }).full;
    }
    const a = this.#authority.answer(q.qname, q.qtype, q.qclass);
    if (!a && this.#fwd && this.#o.upstream) return this.#forward(msg, q);
    const spec = a
      ? { question, qname: qnameLower, id: q.id, rd: q.rd, aa: a.aa, ra, rcode: a.rcode, answers: a.answers, authority: a.authority, additional: a.additional, edns: q.edns !== undefined }
      : { question, qname: qnameLower, id: q.id, rd: q.rd, aa: false, ra, rcode: RCODE.REFUSED, edns: q.edns !== undefined };
    // The TC variant is built for the smallest limit (512); bigger EDNS limits use `full` when it fits.
    const { full, truncated } = encodeResponse(spec, 512);
    const entry: Entry = { full, tc: truncated };
    this.#store(msg, q, entry);
    if (transport === 'tcp') return full;
    const limit = udpLimit(q.edns);
    return full.length <= limit ? full : truncated;
  }

  #store(msg: Buffer, q: Query, e: Entry): void {
    if (this.#cache.size >= (this.#o.cacheMax ?? 50_000)) this.#cache.clear();
    const key = Buffer.from(msg.subarray(12, q.qEnd));
    // Lower-case the name only (length bytes are ≤ 63, never A..Z); QTYPE/QCLASS stay as sent.
    for (let i = 0; i < key.length - 4; i++) if (key[i]! >= 0x41 && key[i]! <= 0x5a) key[i]! |= 0x20;
    this.#cache.set(key.toString('latin1') + (q.edns ? '\x01' : ''), e);
  }

  #forward(msg: Buffer, q: Query): Promise<Buffer | undefined> {
    if (this.#pending.size >= MAX_PENDING) return Promise.resolve(this.#servfail(msg, q));
    let id = randomInt(0, 65536);
    for (let i = 0; this.#pending.has(id) && i < 16; i++) id = randomInt(0, 65536);
    if (this.#pending.has(id)) return Promise.resolve(this.#servfail(msg, q));
    this.stats.forwarded++;
    const out = Buffer.from(msg);
    out.writeUInt16BE(id, 0);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        resolve(this.#servfail(msg, q));
      }, this.#o.forwardTimeoutMs ?? 3000);
      this.#pending.set(id, {
        timer,
        resolve: (b) => {
          if (!b) return resolve(undefined);
          const r = Buffer.from(b);
          r.writeUInt16BE(q.id, 0);
          resolve(r);
        },
      });
      this.#fwd!.send(out, this.#o.upstream!.port, this.#o.upstream!.host);
    });
  }

  #onUpstream(msg: Buffer, rinfo: RemoteInfo): void {
    const up = this.#o.upstream;
    if (msg.length < 12 || !up || rinfo.port !== up.port || !(msg[2]! & 0x80)) return;
    const p = this.#pending.get(msg.readUInt16BE(0));
    if (!p) return;
    this.#pending.delete(msg.readUInt16BE(0));
    clearTimeout(p.timer);
    p.resolve(msg);
  }

  #servfail(msg: Buffer, q: Query): Buffer {
    return encodeResponse({ question: msg.subarray(12, q.qEnd), qname: q.qname, id: q.id, rd: q.rd, aa: false, ra: true, rcode: RCODE.SERVFAIL, edns: q.edns !== undefined }).full;
  }

  /** TCP: 2-byte length framing (RFC 1035 §4.2.2, RFC 7766), pipelined, answered in order, bounded. */
  #onTcp(s: TcpSocket): void {
    if (this.#conns.size >= (this.#o.tcpMax ?? 128)) return void s.destroy();
    this.#conns.add(s);
    this.stats.tcpConnections++;
    s.setNoDelay(true);
    s.setTimeout(this.#o.tcpIdleMs ?? 10_000, () => s.destroy());
    let buf: Buffer = Buffer.alloc(0);
    let chain: Promise<void> = Promise.resolve();
    s.on('data', (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      while (buf.length >= 2) {
        const n = buf.readUInt16BE(0);
        if (buf.length < 2 + n) break;
        const msg = Buffer.from(buf.subarray(2, 2 + n));
        buf = buf.subarray(2 + n);
        this.stats.queries++;
        chain = chain.then(async () => {
          let out: Buffer | undefined;
          try {
            out = this.#fast(msg, false) ?? (await this.respond(msg, 'tcp'));
          } catch (e) {
            this.#o.log.error('dns query failed', { error: (e as Error).message });
          }
          if (!out || out.length > 65535) return void s.destroy(); // garbage on a stream: the framing cannot be trusted
          if (s.destroyed) return;
          const len = Buffer.alloc(2);
          len.writeUInt16BE(out.length);
          s.write(Buffer.concat([len, out]));
        });
      }
      // A frame is at most 65535 bytes: anything buffered beyond that is not DNS.
      if (buf.length > 2 + 65535) s.destroy();
    });
    s.on('error', () => undefined);
    s.on('close', () => this.#conns.delete(s));
  }
}
