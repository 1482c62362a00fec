/**
 * The in-memory LDAP tree: entries pre-parsed once (normalised DN, ancestors,
 * lower-cased attribute names, normalised values) and equality indexes on the
 * attributes PAM/NSS clients filter on, so an equality search touches only
 * the entries that match. The directory store feeds it; the server reads it.
 */
import { parseDn, normalizeRdns, DnError } from './dn.ts';
import { matches, normValue, type Filter } from './filter.ts';

/** Attribute values keyed by attribute name as it should be shown (case kept). */
export type Attrs = Record<string, string[]>;

export class Entry {
  readonly dn: string;
  readonly ndn: string;
  readonly parent: string;
  /** Normalised DNs of this entry and every ancestor. */
  readonly ancestors: ReadonlySet<string>;
  /** lower-cased name → shown name and raw values. */
  readonly attrs: ReadonlyMap<string, { name: string; values: readonly string[] }>;
  /** lower-cased name → normalised values (what filters compare). */
  readonly norm: Map<string, string[]>;
  /** Encoded SearchResultEntry bodies by attribute-selection key. */
  readonly encoded = new Map<string, Buffer>();

  constructor(dn: string, attrs: Attrs) {
    const rdns = parseDn(dn);
    if (rdns.length === 0) throw new DnError('an entry needs a non-empty DN');
    this.dn = dn;
    this.ndn = normalizeRdns(rdns);
    this.parent = normalizeRdns(rdns.slice(1));
    const anc = new Set<string>();
    for (let i = 0; i < rdns.length; i++) anc.add(normalizeRdns(rdns.slice(i)));
    this.ancestors = anc;
    const a = new Map<string, { name: string; values: string[] }>();
    const norm = new Map<string, string[]>();
    for (const [name, values] of Object.entries(attrs)) {
      if (values.length === 0) continue;
      const low = name.toLowerCase();
      const prev = a.get(low);
      if (prev) prev.values.push(...values);
      else a.set(low, { name, values: [...values] });
    }
    // The RDN's values are attributes of the entry too (RFC 4512 §2.3).
    for (const ava of rdns[0]!) {
      const cur = a.get(ava.type);
      if (!cur) a.set(ava.type, { name: ava.type, values: [ava.value] });
      else if (!cur.values.some((v) => normValue(ava.type, v) === normValue(ava.type, ava.value))) cur.values.push(ava.value);
    }
    for (const [low, { values }] of a) norm.set(low, values.map((v) => normValue(low, v)));
    this.attrs = a;
    this.norm = norm;
  }

  get(attr: string): readonly string[] | undefined {
    return this.attrs.get(attr.toLowerCase())?.values;
  }
}

export type Scope = 'base' | 'one' | 'sub';

/** Attributes with equality indexes (lower-case). */
export const INDEXED = ['uid', 'cn', 'objectclass', 'memberuid', 'uidnumber', 'gidnumber', 'mail', 'member'] as const;

const EMPTY: ReadonlySet<Entry> = new Set();

export class Tree {
  readonly #entries = new Map<string, Entry>();
  readonly #children = new Map<string, Set<Entry>>();
  readonly #index = new Map<string, Map<string, Set<Entry>>>();
  /** Bumped on every change; paged-search cookies and caches can compare it. */
  generation = 0;

  constructor(indexed: readonly string[] = INDEXED) {
    for (const a of indexed) this.#index.set(a, new Map());
  }

  get size(): number {
    return this.#entries.size;
  }

  get(ndn: string): Entry | undefined {
    return this.#entries.get(ndn);
  }

  /** Add or replace the entry at `dn`. */
  put(dn: string, attrs: Attrs): Entry {
    const e = new Entry(dn, attrs);
    const old = this.#entries.get(e.ndn);
    if (old) this.#unlink(old);
    this.#entries.set(e.ndn, e);
    let kids = this.#children.get(e.parent);
    if (!kids) this.#children.set(e.parent, (kids = new Set()));
    kids.add(e);
    for (const [attr, idx] of this.#index) {
      for (const v of e.norm.get(attr) ?? []) {
        let s = idx.get(v);
        if (!s) idx.set(v, (s = new Set()));
        s.add(e);
      }
    }
    this.generation++;
    return e;
  }

  /** Remove the entry at a normalised DN; returns whether it existed. */
  remove(ndn: string): boolean {
    const e = this.#entries.get(ndn);
    if (!e) return false;
    this.#unlink(e);
    this.#entries.delete(ndn);
    this.generation++;
    return true;
  }

  #unlink(e: Entry): void {
    const kids = this.#children.get(e.parent);
    kids?.delete(e);
    if (kids && kids.size === 0) this.#children.delete(e.parent);
    for (const [attr, idx] of this.#index) {
      for (const v of e.norm.get(attr) ?? []) {
        const s = idx.get(v);
        s?.delete(e);
        if (s && s.size === 0) idx.delete(v);
      }
    }
  }

  /**
   * The entries an index can narrow a filter to, or undefined when the
   * filter needs a scan. A superset: the caller still evaluates the filter.
   */
  candidates(f: Filter): ReadonlySet<Entry> | undefined {
    switch (f.type) {
      case 'eq': {
        const idx = this.#index.get(f.attr);
        if (!idx) return undefined;
        return idx.get(normValue(f.attr, f.value)) ?? EMPTY;
      }
      case 'and': {
        let best: ReadonlySet<Entry> | undefined;
        for (const x of f.filters) {
          const c = this.candidates(x);
          if (c && (!best || c.size < best.size)) best = c;
          if (best && best.size === 0) break;
        }
        return best;
      }
      case 'or': {
        const out = new Set<Entry>();
        for (const x of f.filters) {
          const c = this.candidates(x);
          if (!c) return undefined;
          for (const e of c) out.add(e);
        }
        return out;
      }
      default:
        return undefined;
    }
  }

  /** Matching entries in scope, in tree order; stops after `limit` + 1 (so callers can tell "more"). */
  search(baseNdn: string, scope: Scope, filter: Filter, limit = Infinity): Entry[] {
    const out: Entry[] = [];
    const cap = limit === Infinity ? Infinity : limit + 1;
    if (scope === 'base') {
      const e = this.#entries.get(baseNdn);
      if (e && matches(filter, e)) out.push(e);
      return out;
    }
    const cand = this.candidates(filter);
    const inScope = scope === 'one' ? (e: Entry) => e.parent === baseNdn : (e: Entry) => baseNdn === '' || e.ancestors.has(baseNdn);
    let pool: Iterable<Entry>;
    if (cand) pool = cand;
    else if (scope === 'one') pool = this.#children.get(baseNdn) ?? EMPTY;
    else pool = this.#entries.values();
    for (const e of pool) {
      if (!inScope(e) || !matches(filter, e)) continue;
      out.push(e);
      if (out.length >= cap) break;
    }
    return out;
  }

  /** Every entry (for dumps and tests). */
  all(): IterableIterator<Entry> {
    return this.#entries.values();
  }
}
