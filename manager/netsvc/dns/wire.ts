/**
 * A minimal DNS wire parser and encoder (RFC 1035, EDNS RFC 6891): just what an
 * authoritative server needs. Every read is bounds-checked; hostile input
 * yields a typed result (answer with an rcode, or drop), never an exception.
 */

export const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, OPT: 41, ANY: 255 } as const;
export const TYPE_NAME: Record<number, string> = Object.fromEntries(Object.entries(TYPE).map(([k, v]) => [v, k]));
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const;
export const CLASS_IN = 1;

/** Our advertised EDNS UDP payload size (the DNS flag day 2020 value). */
export const EDNS_UDP_SIZE = 1232;
export const MAX_NAME = 255;
/** More records than this in one query's sections is hostile, not a query. */
const MAX_RRS = 32;

export interface Edns {
  udpSize: number;
  version: number;
  dnssecOk: boolean;
}

export interface Query {
  id: number;
  /** Recursion desired (echoed in the answer). */
  rd: boolean;
  /** Lower-cased, no trailing dot, '' for the root. */
  qname: string;
  qtype: number;
  qclass: number;
  /** Offset just past the question: bytes [12, qEnd) are the question as sent. */
  qEnd: number;
  edns: Edns | undefined;
}

export type ParseResult =
  | { kind: 'query'; q: Query }
  /** Answerable with an error rcode; `qEnd` set when the question itself is sound. */
  | { kind: 'error'; id: number; rd: boolean; rcode: number; qEnd: number; opcode: number }
  | { kind: 'drop' };

/** Read a name at `off` (pointers allowed when `pointers`); returns the name and the offset after it, or undefined. */
export function readName(buf: Buffer, off: number, pointers: boolean): { name: string; end: number } | undefined {
  const labels: string[] = [];
  let total = 0;
  let end = -1;
  let hops = 0;
  for (;;) {
    if (off >= buf.length) return undefined;
    const len = buf[off]!;
    if (len === 0) {
      if (end < 0) end = off + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (!pointers || off + 1 >= buf.length || ++hops > 16) return undefined;
      const target = ((len & 0x3f) << 8) | buf[off + 1]!;
      if (end < 0) end = off + 2;
      if (target >= off) return undefined; // only backwards: no loops
      off = target;
      continue;
    }
    if (len & 0xc0) return undefined; // 0x40/0x80: reserved label types
    if (off + 1 + len > buf.length) return undefined;
    total += len + 1;
    if (total > MAX_NAME) return undefined;
    // A '.' inside a label becomes NUL so that splitting on '.' still yields the wire's labels.
    labels.push(buf.toString('latin1', off + 1, off + 1 + len).replace(/[A-Z.]/g, (c) => (c === '.' ? '\x00' : c.toLowerCase())));
    off += 1 + len;
  }
  return { name: labels.join('.'), end };
}

/** Parse a query. Responses, runts and garbage headers are dropped; malformed questions get FORMERR. */
export function parseQuery(buf: Buffer): ParseResult {
  if (buf.length < 12) return { kind: 'drop' };
  const id = buf.readUInt16BE(0);
  const b2 = buf[2]!;
  if (b2 & 0x80) return { kind: 'drop' }; // a response: never answer it (no loops)
  const rd = (b2 & 1) === 1;
  const opcode = (b2 >> 3) & 0xf;
  if (opcode !== 0) return { kind: 'error', id, rd, rcode: RCODE.NOTIMP, qEnd: 0, opcode };
  const qd = buf.readUInt16BE(4);
  const an = buf.readUInt16BE(6);
  const ns = buf.readUInt16BE(8);
  const ar = buf.readUInt16BE(10);
  if (qd !== 1) return { kind: 'error', id, rd, rcode: RCODE.FORMERR, qEnd: 0, opcode };
  const n = readName(buf, 12, false);
  if (!n || n.end + 4 > buf.length) return { kind: 'error', id, rd, rcode: RCODE.FORMERR, qEnd: 0, opcode };
  const qtype = buf.readUInt16BE(n.end);
  const qclass = buf.readUInt16BE(n.end + 2);
  const qEnd = n.end + 4;
  if (an + ns + ar > MAX_RRS) return { kind: 'error', id, rd, rcode: RCODE.FORMERR, qEnd, opcode };
  let off = qEnd;
  let edns: Edns | undefined;
  for (let i = 0; i < an + ns + ar; i++) {
    const rn = readName(buf, off, true);
    if (!rn || rn.end + 10 > buf.length) return { kind: 'error', id, rd, rcode: RCODE.FORMERR, qEnd, opcode };
    const type = buf.readUInt16BE(rn.end);
    const rdlen = buf.readUInt16BE(rn.end + 8);
    if (rn.end + 10 + rdlen > buf.length) return { kind: 'error', id, rd, rcode: RCODE.FORMERR, qEnd, opcode };
    if (type === TYPE.OPT) {
      // One OPT, owned by the root, in the additional section (RFC 6891 §6.1.1).
      if (edns || rn.name !== '' || i < an + ns) return { kind: 'error', id, rd, rcode: RCODE.FORMERR, qEnd, opcode };
      edns = { udpSize: buf.readUInt16BE(rn.end + 2), version: buf[rn.end + 5]!, dnssecOk: (buf[rn.end + 6]! & 0x80) !== 0 };
    }
    off = rn.end + 10 + rdlen;
  }
  return { kind: 'query', q: { id, rd, qname: n.name, qtype, qclass, qEnd, edns } };
}

/** Record data by type; names are written compressed where RFC 3597 allows it. */
export type RData =
  | { type: 'A'; address: string }
  | { type: 'AAAA'; address: string }
  | { type: 'NS' | 'PTR' | 'CNAME'; target: string }
  | { type: 'MX'; preference: number; exchange: string }
  | { type: 'TXT'; strings: string[] }
  | { type: 'SOA'; mname: string; rname: string; serial: number; refresh: number; retry: number; expire: number; minimum: number };

export interface RR {
  name: string;
  ttl: number;
  data: RData;
}

/** A growable writer with name compression (suffix → offset, lower-cased). */
class Writer {
  buf = Buffer.alloc(1024);
  len = 0;
  readonly names = new Map<string, number>();

  ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const b = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(b, 0, 0, this.len);
    this.buf = b;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf[this.len++] = v & 0xff;
  }
  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16BE(v & 0xffff, this.len);
    this.len += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.len);
    this.len += 4;
  }
  bytes(b: Buffer): void {
    this.ensure(b.length);
    b.copy(this.buf, this.len);
    this.len += b.length;
  }
  /** Record the suffixes of a name already written at `off` (e.g. the question). */
  remember(name: string, off: number): void {
    if (name === '') return;
    const labels = name.split('.');
    for (let i = 0; i < labels.length; i++) {
      const suffix = labels.slice(i).join('.');
      if (!this.names.has(suffix) && off < 0x3fff) this.names.set(suffix, off);
      off += 1 + Buffer.byteLength(labels[i]!, 'latin1');
    }
  }
  name(name: string, compress = true): void {
    const lower = name.toLowerCase();
    const labels = lower === '' ? [] : lower.split('.');
    for (let i = 0; i < labels.length; i++) {
      const suffix = labels.slice(i).join('.');
      const at = compress ? this.names.get(suffix) : undefined;
      if (at !== undefined) {
        this.u16(0xc000 | at);
        return;
      }
      if (this.len < 0x3fff && compress) this.names.set(suffix, this.len);
      const l = Buffer.from(labels[i]!, 'latin1');
      this.u8(l.length);
      this.bytes(l);
    }
    this.u8(0);
  }
  result(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.len));
  }
}

const TYPE_OF: Record<RData['type'], number> = { A: TYPE.A, AAAA: TYPE.AAAA, NS: TYPE.NS, PTR: TYPE.PTR, CNAME: TYPE.CNAME, MX: TYPE.MX, TXT: TYPE.TXT, SOA: TYPE.SOA };

function writeRR(w: Writer, rr: RR): void {
  w.name(rr.name);
  w.u16(TYPE_OF[rr.data.type]);
  w.u16(CLASS_IN);
  w.u32(rr.ttl);
  const lenAt = w.len;
  w.u16(0);
  const d = rr.data;
  switch (d.type) {
    case 'A':
      for (const p of d.address.split('.')) w.u8(Number(p));
      break;
    case 'AAAA':
      w.bytes(ipv6Bytes(d.address));
      break;
    case 'NS':
    case 'PTR':
    case 'CNAME':
      w.name(d.target);
      break;
    case 'MX':
      w.u16(d.preference);
      w.name(d.exchange);
      break;
    case 'TXT':
      for (const s of d.strings) {
        const b = Buffer.from(s, 'utf8').subarray(0, 255);
        w.u8(b.length);
        w.bytes(b);
      }
      break;
    case 'SOA':
      w.name(d.mname);
      w.name(d.rname);
      for (const v of [d.serial, d.refresh, d.retry, d.expire, d.minimum]) w.u32(v);
      break;
  }
  w.buf.writeUInt16BE(w.len - lenAt - 2, lenAt);
}

/** 16 bytes of an IPv6 address (accepts '::' shorthand). */
export function ipv6Bytes(s: string): Buffer {
  const out = Buffer.alloc(16);
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':').filter(Boolean) : [];
  const t = tail ? tail.split(':').filter(Boolean) : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  groups.slice(0, 8).forEach((g, i) => out.writeUInt16BE(parseInt(g, 16) & 0xffff, i * 2));
  return out;
}

export interface ResponseSpec {
  /** The question bytes as received (offset 12 to qEnd), echoed verbatim (keeps the client's 0x20 case). */
  question: Buffer | undefined;
  /** The question name, lower-cased, so owner names can point at it. */
  qname: string;
  id: number;
  rd: boolean;
  aa: boolean;
  ra: boolean;
  rcode: number;
  answers?: RR[];
  authority?: RR[];
  additional?: RR[];
  /** Present when the query had EDNS: we answer with our own OPT. */
  edns?: boolean;
  opcode?: number;
}

/** Encode a response; `limit` set (UDP): when it does not fit, a TC answer with the question only. */
export function encodeResponse(s: ResponseSpec, limit?: number): { full: Buffer; truncated: Buffer } {
  let full = encode(s, false);
  // More than a DNS message can hold even over TCP: send the truncated form everywhere.
  if (full.length > 65535) full = encode(s, true);
  const truncated = limit !== undefined && full.length > limit ? encode(s, true) : full;
  return { full, truncated };
}

function encode(s: ResponseSpec, tc: boolean): Buffer {
  const w = new Writer();
  const answers = tc ? [] : (s.answers ?? []);
  const authority = tc ? [] : (s.authority ?? []);
  const additional = tc ? [] : (s.additional ?? []);
  w.u16(s.id);
  w.u8(0x80 | ((s.opcode ?? 0) << 3) | (s.aa ? 4 : 0) | (tc ? 2 : 0) | (s.rd ? 1 : 0));
  w.u8((s.ra ? 0x80 : 0) | (s.rcode & 0xf));
  w.u16(s.question ? 1 : 0);
  w.u16(answers.length);
  w.u16(authority.length);
  w.u16(additional.length + (s.edns ? 1 : 0));
  if (s.question) {
    w.remember(s.qname, 12);
    w.bytes(s.question);
  }
  for (const rr of answers) writeRR(w, rr);
  for (const rr of authority) writeRR(w, rr);
  for (const rr of additional) writeRR(w, rr);
  if (s.edns) {
    w.u8(0); // root
    w.u16(TYPE.OPT);
    w.u16(EDNS_UDP_SIZE);
    w.u8(s.rcode >> 4); // extended rcode (BADVERS)
    w.u8(0); // version 0
    w.u16(0); // flags: no DO (we do not sign)
    w.u16(0); // no options
  }
  return w.result();
}

/** The UDP payload a client accepts: 512 without EDNS, its advertised size (capped) with it. */
export function udpLimit(edns: Edns | undefined): number {
  if (!edns) return 512;
  return Math.max(512, Math.min(edns.udpSize, 4096));
}

/** A plain query, for clients (forwarder, tests). */
export function encodeQuery(id: number, name: string, qtype: number, opts: { rd?: boolean; edns?: number } = {}): Buffer {
  const w = new Writer();
  w.u16(id);
  w.u8(opts.rd === false ? 0 : 1);
  w.u8(0);
  w.u16(1);
  w.u16(0);
  w.u16(0);
  w.u16(opts.edns ? 1 : 0);
  w.name(name, false);
  w.u16(qtype);
  w.u16(CLASS_IN);
  if (opts.edns) {
    w.u8(0);
    w.u16(TYPE.OPT);
    w.u16(opts.edns);
    w.u32(0);
    w.u16(0);
  }
  return w.result();
}

/** Header fields of a response (tests, forwarder). */
export function responseHeader(buf: Buffer): { id: number; rcode: number; aa: boolean; tc: boolean; an: number; ns: number; ar: number } | undefined {
  if (buf.length < 12) return undefined;
  return { id: buf.readUInt16BE(0), rcode: buf[3]! & 0xf, aa: (buf[2]! & 4) !== 0, tc: (buf[2]! & 2) !== 0, an: buf.readUInt16BE(6), ns: buf.readUInt16BE(8), ar: buf.readUInt16BE(10) };
}
