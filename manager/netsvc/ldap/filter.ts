/**
 * LDAP search filters (RFC 4511 §4.5.1): decoding from BER with bounds,
 * the RFC 4515 string form (for tests, logs and the benchmark), matching
 * against pre-normalised entries, and the value normalisation both share.
 */
import { BerError, BerReader, TAG, octets, tlv } from './ber.ts';
import { foldValue, normalizeDn, DnError } from './dn.ts';

export type Filter =
  | { type: 'and'; filters: Filter[] }
  | { type: 'or'; filters: Filter[] }
  | { type: 'not'; filter: Filter }
  | { type: 'eq' | 'ge' | 'le' | 'approx'; attr: string; value: string }
  | { type: 'present'; attr: string }
  | { type: 'sub'; attr: string; initial?: string; any: string[]; final?: string }
  /** extensibleMatch: decoded so a request parses, evaluated as false (we implement no matching rules). */
  | { type: 'ext'; attr?: string; rule?: string; value: string; dnAttributes: boolean };

/** How values of an attribute compare. */
export type Syntax = 'ci' | 'int' | 'dn' | 'octets';

const SYNTAX: Record<string, Syntax> = {
  uidnumber: 'int',
  gidnumber: 'int',
  member: 'dn',
  uniquemember: 'dn',
  userpassword: 'octets',
};
export const syntaxOf = (attr: string): Syntax => SYNTAX[attr] ?? 'ci';

/** The comparable form of a value: what the index keys and equality compare. */
export function normValue(attr: string, v: string): string {
  switch (syntaxOf(attr)) {
    case 'int': {
      const t = v.trim();
      return /^-?\d{1,15}$/.test(t) ? String(Number(t)) : '\u0000' + t;
    }
    case 'dn':
      try {
        return normalizeDn(v);
      } catch (e) {
        if (e instanceof DnError) return '\u0000' + v;
        throw e;
      }
    case 'octets':
      return v;
    default:
      return foldValue(v);
  }
}

const MAX_DEPTH = 32;
const MAX_NODES = 512;
const ATTR_RE = /^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)*)(?:;[A-Za-z0-9-]+)*$/;

function attrName(s: string): string {
  if (!ATTR_RE.test(s) || s.length > 128) throw new BerError(`bad attribute description "${s.slice(0, 40)}"`);
  // Options like ;binary are accepted and ignored.
  return s.split(';')[0]!.toLowerCase();
}

/** Decode a Filter element from BER; bounded depth and size. */
export function readFilter(r: BerReader): Filter {
  const budget = { nodes: 0 };
  return read(r, 0, budget);
}

function read(r: BerReader, depth: number, budget: { nodes: number }): Filter {
  if (depth > MAX_DEPTH) throw new BerError('filter nested too deeply');
  if (++budget.nodes > MAX_NODES) throw new BerError('filter too large');
  const h = r.header();
  const c = new BerReader(r.buf, h.start, h.end);
  switch (h.tag) {
    case 0xa0:
    case 0xa1: {
      const filters: Filter[] = [];
      while (!c.done) filters.push(read(c, depth + 1, budget));
      return { type: h.tag === 0xa0 ? 'and' : 'or', filters };
    }
    case 0xa2: {
      const f = read(c, depth + 1, budget);
      if (!c.done) throw new BerError('trailing data in not');
      return { type: 'not', filter: f };
    }
    case 0xa3:
    case 0xa5:
    case 0xa6:
    case 0xa8: {
      const attr = attrName(c.string());
      const value = c.string();
      const type = h.tag === 0xa3 ? 'eq' : h.tag === 0xa5 ? 'ge' : h.tag === 0xa6 ? 'le' : 'approx';
      return { type, attr, value };
    }
    case 0x87:
      return { type: 'present', attr: attrName(r.buf.toString('utf8', h.start, h.end)) };
    case 0xa4: {
      const attr = attrName(c.string());
      const s = c.sub(TAG.SEQUENCE);
      const f: Filter & { type: 'sub' } = { type: 'sub', attr, any: [] };
      let n = 0;
      while (!s.done) {
        const t = s.peekTag();
        const v = s.string(t);
        if (++n > 64) throw new BerError('too many substrings');
        if (t === 0x80) {
          if (n !== 1) throw new BerError('initial substring must come first');
          f.initial = v;
        } else if (t === 0x81) {
          if (f.final !== undefined) throw new BerError('any after final');
          f.any.push(v);
        } else if (t === 0x82) {
          if (f.final !== undefined) throw new BerError('two finals');
          f.final = v;
        } else throw new BerError('bad substring choice');
      }
      if (n === 0) throw new BerError('empty substring filter');
      return f;
    }
    case 0xa9: {
      const f: Filter & { type: 'ext' } = { type: 'ext', value: '', dnAttributes: false };
      while (!c.done) {
        const t = c.peekTag();
        if (t === 0x81) f.rule = c.string(t);
        else if (t === 0x82) f.attr = attrName(c.string(t));
        else if (t === 0x83) f.value = c.string(t);
        else if (t === 0x84) f.dnAttributes = c.bool(t);
        else throw new BerError('bad extensible match');
      }
      return f;
    }
    default:
      throw new BerError(`unknown filter choice 0x${h.tag.toString(16)}`);
  }
}

/** Encode a filter to BER (the benchmark's and tests' clients use this). */
export function writeFilter(f: Filter): Buffer {
  switch (f.type) {
    case 'and':
      return tlv(0xa0, ...f.filters.map(writeFilter));
    case 'or':
      return tlv(0xa1, ...f.filters.map(writeFilter));
    case 'not':
      return tlv(0xa2, writeFilter(f.filter));
    case 'eq':
    case 'ge':
    case 'le':
    case 'approx':
      return tlv({ eq: 0xa3, ge: 0xa5, le: 0xa6, approx: 0xa8 }[f.type], octets(f.attr), octets(f.value));
    case 'present':
      return octets(f.attr, 0x87);
    case 'sub':
      return tlv(0xa4, octets(f.attr), tlv(TAG.SEQUENCE, ...(f.initial !== undefined ? [octets(f.initial, 0x80)] : []), ...f.any.map((a) => octets(a, 0x81)), ...(f.final !== undefined ? [octets(f.final, 0x82)] : [])));
    case 'ext':
      return tlv(0xa9, ...(f.rule ? [octets(f.rule, 0x81)] : []), ...(f.attr ? [octets(f.attr, 0x82)] : []), octets(f.value, 0x83), ...(f.dnAttributes ? [tlv(0x84, Buffer.from([0xff]))] : []));
  }
}

/** Parse the RFC 4515 string form, e.g. `(&(objectClass=posixAccount)(uid=al*))`. */
export function parseFilter(s: string): Filter {
  if (s.length > 16384) throw new BerError('filter too long');
  const text = s.trim().startsWith('(') ? s.trim() : `(${s.trim()})`;
  let i = 0;
  const node = (depth: number): Filter => {
    if (depth > MAX_DEPTH) throw new BerError('filter nested too deeply');
    if (text[i] !== '(') throw new BerError(`expected "(" at ${i}`);
    i++;
    let f: Filter;
    const c = text[i];
    if (c === '&' || c === '|') {
      i++;
      const filters: Filter[] = [];
      while (text[i] === '(') filters.push(node(depth + 1));
      f = { type: c === '&' ? 'and' : 'or', filters };
    } else if (c === '!') {
      i++;
      f = { type: 'not', filter: node(depth + 1) };
    } else {
      const close = findClose(text, i);
      f = item(text.slice(i, close));
      i = close;
    }
    if (text[i] !== ')') throw new BerError(`expected ")" at ${i}`);
    i++;
    return f;
  };
  const f = node(0);
  if (i !== text.length) throw new BerError('trailing characters after filter');
  return f;
}

function findClose(s: string, i: number): number {
  for (let j = i; j < s.length; j++) {
    if (s[j] === '(') throw new BerError('unescaped "(" in filter value');
    if (s[j] === ')') return j;
  }
  throw new BerError('unbalanced filter');
}

function unescape(v: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < v.length; i++) {
    if (v[i] === '\\') {
      const h = v.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(h)) throw new BerError('bad escape in filter value');
      bytes.push(parseInt(h, 16));
      i += 2;
    } else for (const b of Buffer.from(v[i]!, 'utf8')) bytes.push(b);
  }
  return Buffer.from(bytes).toString('utf8');
}

function item(s: string): Filter {
  const m = /^([^=<>~:]+)(=|>=|<=|~=)(.*)$/s.exec(s);
  if (!m) {
    const ext = /^([^:=]*)(:dn)?(?::([^:=]+))?:=(.*)$/s.exec(s);
    if (!ext) throw new BerError(`bad filter item "${s}"`);
    return { type: 'ext', ...(ext[1] ? { attr: attrName(ext[1]) } : {}), ...(ext[3] ? { rule: ext[3] } : {}), value: unescape(ext[4]!), dnAttributes: !!ext[2] };
  }
  const attr = attrName(m[1]!.trim());
  const op = m[2]!;
  const raw = m[3]!;
  if (op === '=') {
    if (raw === '*') return { type: 'present', attr };
    if (raw.includes('*')) {
      const parts = raw.split('*');
      const f: Filter & { type: 'sub' } = { type: 'sub', attr, any: parts.slice(1, -1).filter((p) => p !== '').map(unescape) };
      if (parts[0] !== '') f.initial = unescape(parts[0]!);
      if (parts.at(-1) !== '') f.final = unescape(parts.at(-1)!);
      return f;
    }
    return { type: 'eq', attr, value: unescape(raw) };
  }
  return { type: op === '>=' ? 'ge' : op === '<=' ? 'le' : 'approx', attr, value: unescape(raw) };
}

/** Escape a value for the string form (RFC 4515 §3): what callers use to avoid filter injection. */
export function escapeFilterValue(v: string): string {
  return v.replace(/[\\*()\0]/g, (c) => '\\' + c.charCodeAt(0).toString(16).padStart(2, '0'));
}

/** What matching needs from an entry: normalised values by lower-cased attribute name. */
export interface Matchable {
  norm: Map<string, string[]>;
}

/** Evaluate a filter against an entry (two-valued: Undefined counts as false). */
export function matches(f: Filter, e: Matchable): boolean {
  switch (f.type) {
    case 'and':
      for (const x of f.filters) if (!matches(x, e)) return false;
      return true;
    case 'or':
      for (const x of f.filters) if (matches(x, e)) return true;
      return false;
    case 'not':
      return !matches(f.filter, e);
    case 'present':
      return e.norm.has(f.attr);
    case 'eq': {
      const vs = e.norm.get(f.attr);
      if (!vs) return false;
      const want = normValue(f.attr, f.value);
      for (const v of vs) if (v === want) return true;
      return false;
    }
    case 'approx': {
      // Approximate match: equality after dropping everything but letters and digits.
      const vs = e.norm.get(f.attr);
      if (!vs) return false;
      const strip = (x: string) => x.toLowerCase().replace(/[^\p{L}\p{N}]/gu, '');
      const want = strip(f.value);
      return vs.some((v) => strip(v) === want);
    }
    case 'ge':
    case 'le': {
      const vs = e.norm.get(f.attr);
      if (!vs) return false;
      const syn = syntaxOf(f.attr);
      const want = normValue(f.attr, f.value);
      for (const v of vs) {
        const c = syn === 'int' ? compareInt(v, want) : v < want ? -1 : v > want ? 1 : 0;
        if (c === undefined) continue;
        if (f.type === 'ge' ? c >= 0 : c <= 0) return true;
      }
      return false;
    }
    case 'sub': {
      const vs = e.norm.get(f.attr);
      if (!vs) return false;
      const fold = syntaxOf(f.attr) === 'octets' ? (x: string) => x : foldValue;
      const ini = f.initial !== undefined ? fold(f.initial) : undefined;
      const fin = f.final !== undefined ? fold(f.final) : undefined;
      const any = f.any.map(fold);
      for (const raw of vs) {
        const v = syntaxOf(f.attr) === 'dn' || syntaxOf(f.attr) === 'int' ? raw.toLowerCase() : raw;
        let pos = 0;
        let end = v.length;
        if (ini !== undefined) {
          if (!v.startsWith(ini)) continue;
          pos = ini.length;
        }
        if (fin !== undefined) {
          if (!v.endsWith(fin) || v.length - fin.length < pos) continue;
          end = v.length - fin.length;
        }
        let ok = true;
        for (const a of any) {
          const at = v.indexOf(a, pos);
          if (at < 0 || at + a.length > end) {
            ok = false;
            break;
          }
          pos = at + a.length;
        }
        if (ok) return true;
      }
      return false;
    }
    case 'ext':
      return false;
  }
}

function compareInt(a: string, b: string): number | undefined {
  if (a.startsWith('\u0000') || b.startsWith('\u0000')) return undefined;
  return Math.sign(Number(a) - Number(b));
}
