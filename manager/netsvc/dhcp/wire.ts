/**
 * DHCPv4 wire format (RFC 2131 message, RFC 2132 options): a bounded parser
 * for requests and an encoder for replies. Anything that is not a well-formed
 * Ethernet BOOTREQUEST with a message type parses to undefined (dropped).
 */

export const MAGIC = 0x63825363;
export const MSG = { DISCOVER: 1, OFFER: 2, REQUEST: 3, DECLINE: 4, ACK: 5, NAK: 6, RELEASE: 7, INFORM: 8 } as const;
export const MSG_NAME: Record<number, string> = Object.fromEntries(Object.entries(MSG).map(([k, v]) => [v, k]));
export const OPT = {
  PAD: 0, SUBNET_MASK: 1, ROUTER: 3, DNS: 6, HOSTNAME: 12, DOMAIN: 15, BROADCAST: 28, REQUESTED_IP: 50, LEASE_TIME: 51,
  OVERLOAD: 52, MSG_TYPE: 53, SERVER_ID: 54, PARAMS: 55, MESSAGE: 56, MAX_SIZE: 57, T1: 58, T2: 59, CLIENT_ID: 61, END: 255,
} as const;

/** Fixed BOOTP header (236) + magic cookie (4). */
export const HEADER = 240;
/** Replies are padded to the BOOTP minimum; some clients drop shorter ones. */
const MIN_REPLY = 300;

export interface DhcpRequest {
  type: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  giaddr: string;
  /** Client hardware address, aa:bb:cc:dd:ee:ff lower-case. */
  mac: string;
  /** The raw 16-byte chaddr field, echoed in replies. */
  chaddr: Buffer;
  requestedIp?: string;
  serverId?: string;
  hostname?: string;
  options: Map<number, Buffer>;
}

export const ipStr = (b: Buffer, off: number) => `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;

export function ipNum(s: string): number {
  const p = s.split('.');
  return ((Number(p[0]) << 24) | (Number(p[1]) << 16) | (Number(p[2]) << 8) | Number(p[3])) >>> 0;
}
export const numIp = (n: number) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;

/** Parse a request; undefined means drop (not a request we can answer). */
export function parseRequest(buf: Buffer): DhcpRequest | undefined {
  if (buf.length < HEADER + 1 || buf.length > 65535) return undefined;
  if (buf[0] !== 1 || buf[1] !== 1 || buf[2] !== 6) return undefined; // BOOTREQUEST, Ethernet, 6-byte MAC
  if (buf.readUInt32BE(236) !== MAGIC) return undefined;
  const options = new Map<number, Buffer>();
  let off = HEADER;
  let ended = false;
  while (off < buf.length) {
    const code = buf[off]!;
    if (code === OPT.PAD) {
      off++;
      continue;
    }
    if (code === OPT.END) {
      ended = true;
      break;
    }
    if (off + 1 >= buf.length) return undefined;
    const len = buf[off + 1]!;
    if (off + 2 + len > buf.length) return undefined;
    const val = buf.subarray(off + 2, off + 2 + len);
    const prev = options.get(code);
    // RFC 3396: a repeated option is concatenated.
    options.set(code, prev ? Buffer.concat([prev, val]) : Buffer.from(val));
    off += 2 + len;
  }
  if (!ended) return undefined;
  const t = options.get(OPT.MSG_TYPE);
  if (!t || t.length !== 1 || t[0]! < 1 || t[0]! > 8) return undefined;
  const chaddr = Buffer.from(buf.subarray(28, 44));
  const mac = [...chaddr.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
  const req: DhcpRequest = {
    type: t[0]!,
    xid: buf.readUInt32BE(4),
    secs: buf.readUInt16BE(8),
    flags: buf.readUInt16BE(10),
    ciaddr: ipStr(buf, 12),
    giaddr: ipStr(buf, 24),
    mac,
    chaddr,
    options,
  };
  const rip = options.get(OPT.REQUESTED_IP);
  if (rip) {
    if (rip.length !== 4) return undefined;
    req.requestedIp = ipStr(rip, 0);
  }
  const sid = options.get(OPT.SERVER_ID);
  if (sid) {
    if (sid.length !== 4) return undefined;
    req.serverId = ipStr(sid, 0);
  }
  const hn = options.get(OPT.HOSTNAME);
  if (hn && hn.length > 0) {
    const s = hn.toString('latin1').replace(/\0+$/, '');
    if (/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/.test(s)) req.hostname = s.toLowerCase();
  }
  return req;
}

export interface ReplySpec {
  type: number;
  req: DhcpRequest;
  yiaddr: string;
  serverId: string;
  /** Echo the client's ciaddr (ACK to a renewal or INFORM). */
  ciaddr?: string;
  leaseTime?: number;
  subnetMask?: string;
  router?: string;
  dns?: string[];
  domain?: string;
  hostname?: string;
  broadcast?: string;
  message?: string;
}

/** Encode a BOOTREPLY. */
export function encodeReply(s: ReplySpec): Buffer {
  const opts: Buffer[] = [];
  const opt = (code: number, val: Buffer) => {
    for (let i = 0; i < val.length || i === 0; i += 255) {
      const part = val.subarray(i, i + 255);
      opts.push(Buffer.from([code, part.length]), part);
    }
  };
  const ip = (s: string) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(ipNum(s));
    return b;
  };
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n >>> 0);
    return b;
  };
  opt(OPT.MSG_TYPE, Buffer.from([s.type]));
  opt(OPT.SERVER_ID, ip(s.serverId));
  if (s.leaseTime !== undefined) {
    opt(OPT.LEASE_TIME, u32(s.leaseTime));
    opt(OPT.T1, u32(Math.floor(s.leaseTime / 2)));
    opt(OPT.T2, u32(Math.floor((s.leaseTime * 7) / 8)));
  }
  if (s.subnetMask) opt(OPT.SUBNET_MASK, ip(s.subnetMask));
  if (s.router) opt(OPT.ROUTER, ip(s.router));
  if (s.dns?.length) opt(OPT.DNS, Buffer.concat(s.dns.map(ip)));
  if (s.domain) opt(OPT.DOMAIN, Buffer.from(s.domain, 'latin1'));
  if (s.hostname) opt(OPT.HOSTNAME, Buffer.from(s.hostname, 'latin1'));
  if (s.broadcast) opt(OPT.BROADCAST, ip(s.broadcast));
  if (s.message) opt(OPT.MESSAGE, Buffer.from(s.message, 'latin1'));
  opts.push(Buffer.from([OPT.END]));
  const body = Buffer.concat(opts);
  const out = Buffer.alloc(Math.max(MIN_REPLY, HEADER + body.length));
  out[0] = 2; // BOOTREPLY
  out[1] = 1;
  out[2] = 6;
  out[3] = 0;
  out.writeUInt32BE(s.req.xid, 4);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(s.req.flags & 0x8000, 10);
  out.writeUInt32BE(s.ciaddr ? ipNum(s.ciaddr) : 0, 12);
  out.writeUInt32BE(ipNum(s.yiaddr), 16);
  out.writeUInt32BE(0, 20);
  out.writeUInt32BE(ipNum(s.req.giaddr), 24);
  s.req.chaddr.copy(out, 28);
  out.writeUInt32BE(MAGIC, 236);
  body.copy(out, HEADER);
  return out;
}

/** Build a request (tests and fuzzers). */
export function encodeRequest(r: { type: number; xid: number; mac: string; ciaddr?: string; giaddr?: string; flags?: number; options?: [number, Buffer][] }): Buffer {
  const out = Buffer.alloc(HEADER);
  out[0] = 1;
  out[1] = 1;
  out[2] = 6;
  out.writeUInt32BE(r.xid, 4);
  out.writeUInt16BE(r.flags ?? 0, 10);
  out.writeUInt32BE(ipNum(r.ciaddr ?? '0.0.0.0'), 12);
  out.writeUInt32BE(ipNum(r.giaddr ?? '0.0.0.0'), 24);
  Buffer.from(r.mac.split(':').map((h) => parseInt(h, 16))).copy(out, 28);
  out.writeUInt32BE(MAGIC, 236);
  const opts: Buffer[] = [Buffer.from([OPT.MSG_TYPE, 1, r.type])];
  for (const [c, v] of r.options ?? []) opts.push(Buffer.from([c, v.length]), v);
  opts.push(Buffer.from([OPT.END]));
  return Buffer.concat([out, ...opts]);
}

/** Parse a reply's essentials (tests). */
export function parseReply(buf: Buffer): { type: number; xid: number; yiaddr: string; ciaddr: string; options: Map<number, Buffer> } | undefined {
  if (buf.length < HEADER + 1 || buf[0] !== 2 || buf.readUInt32BE(236) !== MAGIC) return undefined;
  const fake = Buffer.from(buf);
  fake[0] = 1;
  const p = parseRequest(fake);
  if (!p) return undefined;
  return { type: p.type, xid: p.xid, yiaddr: ipStr(buf, 16), ciaddr: ipStr(buf, 12), options: p.options };
}
