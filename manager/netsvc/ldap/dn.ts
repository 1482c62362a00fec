/**
 * Distinguished names (RFC 4514): strict parsing and one normal form, so the
 * server compares DNs as strings. The normal form lower-cases attribute types
 * and values (our schema's naming attributes are all case-insensitive),
 * collapses insignificant spaces and re-escapes specials.
 */
export class DnError extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = 'DnError';
  }
}

export interface Ava {
  /** Attribute type, lower-cased. */
  type: string;
  /** Unescaped value as written (case kept). */
  value: string;
}

/** One RDN is one or more AVAs joined by '+'. */
export type Rdn = Ava[];

const MAX_DN = 4096;
const TYPE_RE = /^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)*)$/;

/** Parse a DN string into RDNs (first = leftmost). The empty DN is []. */
export function parseDn(s: string): Rdn[] {
  if (s.length > MAX_DN) throw new DnError('DN too long');
  if (s.trim() === '') return [];
  const rdns: Rdn[] = [];
  let rdn: Ava[] = [];
  let i = 0;
  const n = s.length;
  while (i <= n) {
    // attribute type
    while (i < n && s[i] === ' ') i++;
    const eq = s.indexOf('=', i);
    if (eq < 0) throw new DnError(`missing "=" in "${s}"`);
    const type = s.slice(i, eq).trim();
    if (!TYPE_RE.test(type)) throw new DnError(`bad attribute type "${type}"`);
    i = eq + 1;
    while (i < n && s[i] === ' ') i++;
    let value = '';
    if (s[i] === '#') {
      const m = /^#[0-9A-Fa-f]*/.exec(s.slice(i))![0];
      if (m.length < 3 || m.length % 2 === 0) throw new DnError('bad hex value');
      value = m;
      i += m.length;
    } else {
      const bytes: number[] = [];
      // Trailing unescaped spaces are not part of the value: remember where the last significant byte ended.
      let sigLen = 0;
      while (i < n) {
        const c = s[i]!;
        if (c === ',' || c === '+') break;
        if (c === '\\') {
          const a = s[i + 1];
          if (a === undefined) throw new DnError('dangling escape');
          if (/[0-9A-Fa-f]/.test(a) && /[0-9A-Fa-f]/.test(s[i + 2] ?? '')) {
            bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
            i += 3;
          } else if (' "#+,;<=>\\'.includes(a)) {
            bytes.push(a.charCodeAt(0));
            i += 2;
          } else throw new DnError(`bad escape "\\${a}"`);
          sigLen = bytes.length;
          continue;
        }
        if (c === '"' || c === ';' || c === '<' || c === '>' || c === '=' || c === '\0') throw new DnError(`unescaped "${c}" in value`);
        for (const b of Buffer.from(c, 'utf8')) bytes.push(b);
        if (c !== ' ') sigLen = bytes.length;
        i++;
      }
      const buf = Buffer.from(bytes.slice(0, sigLen));
      value = buf.toString('utf8');
      if (Buffer.compare(Buffer.from(value, 'utf8'), buf) !== 0) throw new DnError('value is not valid UTF-8');
    }
    rdn.push({ type: type.toLowerCase(), value });
    if (i >= n) {
      rdns.push(rdn);
      break;
    }
    if (s[i] === '+') {
      i++;
      continue;
    }
    // ','
    rdns.push(rdn);
    rdn = [];
    i++;
    if (i >= n) throw new DnError('trailing ","');
  }
  return rdns;
}

/** Escape a value for use in a DN string (RFC 4514 §2.4). */
export function escapeDnValue(v: string): string {
  let out = '';
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!;
    if (',+"\\<>;='.includes(c) || (i === 0 && (c === '#' || c === ' ')) || (i === v.length - 1 && c === ' ')) out += '\\' + c;
    else if (c === '\0') out += '\\00';
    else out += c;
  }
  return out;
}

/** Normalise one value for case-insensitive comparison: trim, collapse spaces, lower-case. */
export function foldValue(v: string): string {
  return v.trim().replace(/\s+/g, ' ').toLowerCase();
}

const rdnNorm = (r: Rdn) =>
  r
    .map((a) => `${a.type}=${escapeDnValue(foldValue(a.value))}`)
    .sort()
    .join('+');

/** The normal form of parsed RDNs. */
export function normalizeRdns(rdns: Rdn[]): string {
  return rdns.map(rdnNorm).join(',');
}

/** Parse and normalise; throws DnError when malformed. */
export function normalizeDn(s: string): string {
  return normalizeRdns(parseDn(s));
}

/** The normalised parent of a normalised DN ('' for a one-RDN DN). Normal forms escape ',' so a plain split works. */
export function parentNdn(ndn: string): string {
  let i = 0;
  while (i < ndn.length) {
    const c = ndn[i];
    if (c === '\\') {
      i += 2;
      continue;
    }
    if (c === ',') return ndn.slice(i + 1);
    i++;
  }
  return '';
}

/** True when `ndn` is `base` or below it (both normalised). */
export function isUnder(ndn: string, base: string): boolean {
  if (base === '') return true;
  if (ndn === base) return true;
  return ndn.length > base.length && ndn.endsWith(base) && ndn[ndn.length - base.length - 1] === ',' && ndn[ndn.length - base.length - 2] !== '\\';
}
