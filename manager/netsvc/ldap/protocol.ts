/**
 * LDAPv3 message shapes (RFC 4511): operation tags, result codes, OIDs, and
 * the encoders both the server and our load generator use.
 */
import { BerError, BerReader, TAG, boolean, enumerated, integer, octets, sequence, tlv } from './ber.ts';

export const OP = {
  BIND_REQ: 0x60,
  BIND_RES: 0x61,
  UNBIND: 0x42,
  SEARCH_REQ: 0x63,
  SEARCH_ENTRY: 0x64,
  SEARCH_DONE: 0x65,
  MODIFY_REQ: 0x66,
  MODIFY_RES: 0x67,
  ADD_REQ: 0x68,
  ADD_RES: 0x69,
  DEL_REQ: 0x4a,
  DEL_RES: 0x6b,
  MODDN_REQ: 0x6c,
  MODDN_RES: 0x6d,
  COMPARE_REQ: 0x6e,
  COMPARE_RES: 0x6f,
  ABANDON: 0x50,
  EXT_REQ: 0x77,
  EXT_RES: 0x78,
} as const;

/** The response tag for each request tag that has one. */
export const RESPONSE_OF: Record<number, number> = {
  [OP.BIND_REQ]: OP.BIND_RES,
  [OP.SEARCH_REQ]: OP.SEARCH_DONE,
  [OP.MODIFY_REQ]: OP.MODIFY_RES,
  [OP.ADD_REQ]: OP.ADD_RES,
  [OP.DEL_REQ]: OP.DEL_RES,
  [OP.MODDN_REQ]: OP.MODDN_RES,
  [OP.COMPARE_REQ]: OP.COMPARE_RES,
  [OP.EXT_REQ]: OP.EXT_RES,
};

export const RC = {
  success: 0,
  operationsError: 1,
  protocolError: 2,
  sizeLimitExceeded: 4,
  compareFalse: 5,
  compareTrue: 6,
  authMethodNotSupported: 7,
  unavailableCriticalExtension: 12,
  noSuchAttribute: 16,
  constraintViolation: 19,
  attributeOrValueExists: 20,
  noSuchObject: 32,
  invalidDNSyntax: 34,
  inappropriateAuthentication: 48,
  invalidCredentials: 49,
  insufficientAccessRights: 50,
  busy: 51,
  unavailable: 52,
  unwillingToPerform: 53,
  other: 80,
} as const;

export const OID = {
  whoAmI: '1.3.6.1.4.1.4203.1.11.3',
  passwordModify: '1.3.6.1.4.1.4203.1.11.1',
  startTls: '1.3.6.1.4.1.1466.20037',
  noticeOfDisconnection: '1.3.6.1.4.1.1466.20036',
  pagedResults: '1.2.840.113556.1.4.319',
} as const;

export interface Control {
  type: string;
  critical: boolean;
  value?: Buffer;
}

/** Decode `[0] Controls` content. */
export function readControls(r: BerReader): Control[] {
  const out: Control[] = [];
  while (!r.done) {
    if (out.length >= 32) throw new BerError('too many controls');
    const c = r.sub(TAG.SEQUENCE);
    const type = c.string();
    let critical = false;
    let value: Buffer | undefined;
    if (!c.done && c.peekTag() === TAG.BOOLEAN) critical = c.bool();
    if (!c.done) value = c.raw(TAG.OCTET_STRING);
    out.push({ type, critical, ...(value ? { value } : {}) });
  }
  return out;
}

export function ldapResult(code: number, matchedDn = '', message = ''): Buffer[] {
  return [enumerated(code), octets(matchedDn), octets(message)];
}

/** One LDAPMessage from its id, protocol op element and optional controls. */
export function message(id: number, op: Buffer, controls?: Buffer[]): Buffer {
  return controls && controls.length ? sequence(integer(id), op, tlv(0xa0, ...controls)) : sequence(integer(id), op);
}

export function control(type: string, value?: Buffer, critical = false): Buffer {
  return sequence(octets(type), ...(critical ? [boolean(true)] : []), ...(value ? [octets(value)] : []));
}

// ---- client-side encoders (tests and the load generator) ----

export function bindRequest(id: number, dn: string, password: string): Buffer {
  return message(id, tlv(OP.BIND_REQ, integer(3), octets(dn), octets(password, 0x80)));
}

export function searchRequest(id: number, base: string, scope: 0 | 1 | 2, filter: Buffer, attrs: string[] = [], sizeLimit = 0, controls?: Buffer[]): Buffer {
  return message(
    id,
    tlv(OP.SEARCH_REQ, octets(base), enumerated(scope), enumerated(0), integer(sizeLimit), integer(0), boolean(false), filter, sequence(...attrs.map((a) => octets(a)))),
    controls,
  );
}

export function extendedRequest(id: number, oid: string, value?: Buffer): Buffer {
  return message(id, tlv(OP.EXT_REQ, octets(oid, 0x80), ...(value ? [octets(value, 0x81)] : [])));
}

/** Split complete LDAPMessages off the front of a buffer; returns them and the rest. */
export function splitMessages(buf: Buffer): { frames: Buffer[]; rest: Buffer } {
  const frames: Buffer[] = [];
  let p = 0;
  while (p + 2 <= buf.length) {
    let len = buf[p + 1]!;
    let hdr = 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (p + 2 + n > buf.length) break;
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + buf[p + 2 + i]!;
      hdr = 2 + n;
    }
    if (p + hdr + len > buf.length) break;
    frames.push(buf.subarray(p, p + hdr + len));
    p += hdr + len;
  }
  return { frames, rest: buf.subarray(p) };
}

/** Decode a response message enough for tests: id, op tag, result code (if any), the reader over the op. */
export function readResponse(frame: Buffer): { id: number; tag: number; code?: number; op: BerReader; controls: Control[] } {
  const m = new BerReader(frame).sub(TAG.SEQUENCE);
  const id = m.int();
  const h = m.header();
  const op = new BerReader(frame, h.start, h.end);
  let code: number | undefined;
  if (h.tag !== OP.SEARCH_ENTRY && h.tag !== 0x73) {
    code = new BerReader(frame, h.start, h.end).enumerated();
  }
  const controls = !m.done && m.peekTag() === 0xa0 ? readControls(m.sub(0xa0)) : [];
  return { id, tag: h.tag, ...(code !== undefined ? { code } : {}), op, controls };
}
