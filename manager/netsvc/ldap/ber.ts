/**
 * A minimal, bounded BER codec for LDAP (RFC 4511 §5.1: definite lengths
 * only). The reader never trusts a length: every read is checked against the
 * enclosing element's end, and any violation is a BerError the server turns
 * into protocolError. The writer builds TLVs from Buffers.
 */
export class BerError extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = 'BerError';
  }
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  ENUMERATED: 0x0a,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** A view over buf[start, end) that reads one element after another. */
export class BerReader {
  readonly buf: Buffer;
  pos: number;
  readonly end: number;
  constructor(buf: Buffer, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  peekTag(): number {
    if (this.pos >= this.end) throw new BerError('unexpected end of element');
    return this.buf[this.pos]!;
  }

  /** Read tag and length; returns the tag and leaves pos at the content, which ends at the returned end. */
  header(): { tag: number; start: number; end: number } {
    const tag = this.peekTag();
    if ((tag & 0x1f) === 0x1f) throw new BerError('multi-byte tags are not used by LDAP');
    let p = this.pos + 1;
    if (p >= this.end) throw new BerError('truncated length');
    let len = this.buf[p++]!;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0) throw new BerError('indefinite length is not allowed');
      if (n > 4) throw new BerError('length too large');
      if (p + n > this.end) throw new BerError('truncated length');
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + this.buf[p++]!;
    }
    if (p + len > this.end) throw new BerError('element overruns its container');
    this.pos = p + len;
    return { tag, start: p, end: p + len };
  }

  /** Read an element with an expected tag; returns a reader over its content. */
  sub(expected: number): BerReader {
    const h = this.header();
    if (h.tag !== expected) throw new BerError(`expected tag 0x${expected.toString(16)}, got 0x${h.tag.toString(16)}`);
    return new BerReader(this.buf, h.start, h.end);
  }

  /** Read an element with an expected tag; returns its raw content. */
  raw(expected: number): Buffer {
    const h = this.header();
    if (h.tag !== expected) throw new BerError(`expected tag 0x${expected.toString(16)}, got 0x${h.tag.toString(16)}`);
    return this.buf.subarray(h.start, h.end);
  }

  int(tag: number = TAG.INTEGER): number {
    const c = this.raw(tag);
    if (c.length === 0 || c.length > 4) throw new BerError('integer out of range');
    return c[0]! & 0x80 ? decodeNegative(c) : decodePositive(c);
  }

  enumerated(): number {
    return this.int(TAG.ENUMERATED);
  }

  bool(tag: number = TAG.BOOLEAN): boolean {
    const c = this.raw(tag);
    if (c.length !== 1) throw new BerError('bad boolean');
    return c[0] !== 0;
  }

  string(tag: number = TAG.OCTET_STRING): string {
    return this.raw(tag).toString('utf8');
  }

  skip(): void {
    this.header();
  }
}

function decodePositive(c: Buffer): number {
  let v = 0;
  for (const b of c) v = v * 256 + b;
  return v;
}
function decodeNegative(c: Buffer): number {
  let v = 0;
  for (const b of c) v = v * 256 + (b ^ 0xff);
  return -(v + 1);
}

/** Encode a length in definite form. */
export function lengthBytes(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  if (n < 0x100) return Buffer.from([0x81, n]);
  if (n < 0x10000) return Buffer.from([0x82, n >> 8, n & 0xff]);
  if (n < 0x1000000) return Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.from([0x84, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
}

/** A TLV from a tag and content parts. */
export function tlv(tag: number, ...parts: Buffer[]): Buffer {
  let len = 0;
  for (const p of parts) len += p.length;
  const lb = lengthBytes(len);
  const out = Buffer.allocUnsafe(1 + lb.length + len);
  out[0] = tag;
  lb.copy(out, 1);
  let o = 1 + lb.length;
  for (const p of parts) {
    p.copy(out, o);
    o += p.length;
  }
  return out;
}

export function octets(s: string | Buffer, tag: number = TAG.OCTET_STRING): Buffer {
  return tlv(tag, typeof s === 'string' ? Buffer.from(s, 'utf8') : s);
}

export function integer(n: number, tag: number = TAG.INTEGER): Buffer {
  if (!Number.isSafeInteger(n)) throw new BerError('integer not representable');
  const bytes: number[] = [];
  let v = n;
  if (v >= 0) {
    do {
      bytes.unshift(v & 0xff);
      v = Math.floor(v / 256);
    } while (v > 0);
    if (bytes[0]! & 0x80) bytes.unshift(0);
  } else {
    do {
      bytes.unshift(v & 0xff);
      v = Math.floor(v / 256);
    } while (v < -1);
    if (!(bytes[0]! & 0x80)) bytes.unshift(0xff);
  }
  return tlv(tag, Buffer.from(bytes));
}

export const enumerated = (n: number) => integer(n, TAG.ENUMERATED);
export const boolean = (b: boolean, tag: number = TAG.BOOLEAN) => tlv(tag, Buffer.from([b ? 0xff : 0]));
export const sequence = (...parts: Buffer[]) => tlv(TAG.SEQUENCE, ...parts);
export const set = (...parts: Buffer[]) => tlv(TAG.SET, ...parts);
