/**
 * One LDAP client connection: framing, a serial request queue, the bound
 * identity, paged-search cookies, StartTLS, and every operation's handling
 * (ACLs included: see server.ts). The hot path for searches lives here.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { BerError, BerReader, TAG, integer, octets, sequence, set, tlv } from './ber.ts';
import { DnError, normalizeDn, parentNdn } from './dn.ts';
import { matches, readFilter, type Filter } from './filter.ts';
import { OID, OP, RC, RESPONSE_OF, control, ldapResult, message, readControls, type Control } from './protocol.ts';
import type { Identity, LdapServer, Modification } from './server.ts';
import type { Entry, Scope } from './tree.ts';

interface PagedState {
  entries: Entry[];
  pos: number;
  key: string;
}

const ROLE_ANON = 'anon';
const MAX_PENDING_BYTES = 4 * 1024 * 1024;
const MAX_COOKIES = 8;

/** One client connection: framing, a serial request queue, its identity and paged-search cookies. */
export class Connection {
  readonly #srv: LdapServer;
  #sock: Socket;
  #tls: boolean;
  #buf: Buffer = Buffer.alloc(0);
  #queue: Buffer[] = [];
  #queued = 0;
  #busy = false;
  #out: Buffer[] = [];
  #closed = false;
  #id: Identity | undefined;
  readonly #paged = new Map<string, PagedState>();

  constructor(srv: LdapServer, sock: Socket, tls: boolean) {
    this.#srv = srv;
    this.#sock = sock;
    this.#tls = tls;
    this.#wire(sock);
  }

  #wire(sock: Socket): void {
    sock.on('data', (d: Buffer) => this.#onData(d));
    sock.on('error', () => this.destroy());
    sock.on('close', () => {
      this.#closed = true;
    });
    sock.setTimeout(this.#srv.opts.idleTimeoutMs, () => this.destroy());
    sock.on('drain', () => sock.resume());
  }

  destroy(): void {
    this.#closed = true;
    this.#sock.destroy();
  }

  #onData(d: Buffer): void {
    if (this.#closed) return;
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, d]) : d;
    const max = this.#srv.opts.maxMessageBytes;
    let p = 0;
    const b = this.#buf;
    while (p + 2 <= b.length) {
      if (b[p] !== TAG.SEQUENCE) return this.#disconnect(RC.protocolError, 'not an LDAPMessage');
      let len = b[p + 1]!;
      let hdr = 2;
      if (len & 0x80) {
        const n = len & 0x7f;
        if (n === 0 || n > 4) return this.#disconnect(RC.protocolError, 'bad message length');
        if (p + 2 + n > b.length) break;
        len = 0;
        for (let i = 0; i < n; i++) len = len * 256 + b[p + 2 + i]!;
        hdr = 2 + n;
      }
      if (hdr + len > max) return this.#disconnect(RC.protocolError, `request larger than ${max} bytes`);
      if (p + hdr + len > b.length) break;
      const frame = b.subarray(p, p + hdr + len);
      p += hdr + len;
      this.#queue.push(frame);
      this.#queued += frame.length;
    }
    this.#buf = p === b.length ? Buffer.alloc(0) : b.subarray(p);
    if (this.#queued > MAX_PENDING_BYTES) return this.#disconnect(RC.busy, 'too many requests queued');
    this.#pump();
  }

  /** Handle queued frames in order; an async op (bind) holds the queue until it is done. */
  #pump(): void {
    while (!this.#busy && !this.#closed && this.#queue.length) {
      const frame = this.#queue.shift()!;
      this.#queued -= frame.length;
      let pending: Promise<void> | undefined;
      try {
        pending = this.#handle(frame);
      } catch (e) {
        this.#srv.stats.errors++;
        this.#srv.opts.log?.warn('ldap request failed', { error: (e as Error).message });
        this.#disconnect(RC.other, 'internal error');
        return;
      }
      if (pending) {
        this.#busy = true;
        pending
          .catch((e) => {
            this.#srv.opts.log?.warn('ldap request failed', { error: (e as Error).message });
            this.#disconnect(RC.other, 'internal error');
          })
          .finally(() => {
            this.#busy = false;
            this.#flush();
            this.#pump();
          });
        break;
      }
    }
    this.#flush();
  }

  #flush(): void {
    if (!this.#out.length || this.#closed) {
      this.#out.length = 0;
      return;
    }
    const data = this.#out.length === 1 ? this.#out[0]! : Buffer.concat(this.#out);
    this.#out.length = 0;
    if (!this.#sock.write(data)) this.#sock.pause();
  }

  #send(id: number, op: Buffer, controls?: Buffer[]): void {
    this.#out.push(message(id, op, controls));
  }

  #result(id: number, tag: number, code: number, diag = '', matched = ''): void {
    this.#send(id, tlv(tag, ...ldapResult(code, matched, diag)));
  }

  /** Notice of Disconnection (RFC 4511 §4.4.1), then close. */
  #disconnect(code: number, why: string): void {
    if (this.#closed) return;
    this.#out.push(message(0, tlv(OP.EXT_RES, ...ldapResult(code, '', why), octets(OID.noticeOfDisconnection, 0x8a))));
    this.#flush();
    this.#closed = true;
    this.#sock.end();
    setTimeout(() => this.#sock.destroy(), 1000).unref();
  }

  #handle(frame: Buffer): Promise<void> | undefined {
    let id: number;
    let opTag: number;
    let op: BerReader;
    let controls: Control[] = [];
    try {
      const m = new BerReader(frame).sub(TAG.SEQUENCE);
      id = m.int();
      if (id < 0) throw new BerError('negative message id');
      const h = m.header();
      opTag = h.tag;
      op = new BerReader(frame, h.start, h.end);
      if (!m.done) {
        if (m.peekTag() !== 0xa0) throw new BerError('unexpected element after the operation');
        controls = readControls(m.sub(0xa0));
      }
    } catch (e) {
      if (!(e instanceof BerError)) throw e;
      this.#disconnect(RC.protocolError, `malformed message: ${e.message}`);
      return undefined;
    }
    const resTag = RESPONSE_OF[opTag];
    // Unknown critical controls fail the operation (RFC 4511 §4.1.11); paged results only on search.
    for (const c of controls) {
      const known = c.type === OID.pagedResults && opTag === OP.SEARCH_REQ;
      if (c.critical && !known) {
        if (resTag !== undefined) this.#result(id, resTag, RC.unavailableCriticalExtension, `critical control ${c.type.slice(0, 64)} is not supported`);
        return undefined;
      }
    }
    // Async operations decode inside their promise: a decoding error there is the client's, not ours.
    const guard = (p: Promise<void> | undefined): Promise<void> | undefined =>
      p?.catch((e) => {
        if (!(e instanceof BerError)) throw e;
        if (resTag !== undefined) this.#result(id, resTag, RC.protocolError, `malformed request: ${e.message}`);
        else this.#disconnect(RC.protocolError, `malformed request: ${e.message}`);
      });
    try {
      switch (opTag) {
        case OP.BIND_REQ:
          return guard(this.#bind(id, op));
        case OP.UNBIND:
          this.#closed = true;
          this.#sock.end();
          return undefined;
        case OP.SEARCH_REQ:
          this.#search(id, op, controls);
          return undefined;
        case OP.EXT_REQ:
          return guard(this.#extended(id, op));
        case OP.COMPARE_REQ:
          this.#compare(id, op);
          return undefined;
        case OP.ABANDON:
          return undefined;
        case OP.MODIFY_REQ:
        case OP.ADD_REQ:
        case OP.DEL_REQ:
        case OP.MODDN_REQ:
          if (opTag === OP.MODIFY_REQ && this.#id?.role === 'admin' && this.#srv.opts.modify) return guard(this.#modify(id, op, this.#id));
          if (!this.#id) this.#result(id, resTag!, RC.insufficientAccessRights, 'anonymous clients may not write');
          else if (this.#id.role !== 'admin') this.#result(id, resTag!, RC.insufficientAccessRights, 'only the manager admin writes the directory');
          else this.#result(id, resTag!, RC.unwillingToPerform, 'entries are added, deleted and renamed through the manager: use storm user|group');
          return undefined;
        default:
          this.#disconnect(RC.protocolError, `unknown operation 0x${opTag.toString(16)}`);
          return undefined;
      }
    } catch (e) {
      if (e instanceof BerError) {
        if (resTag !== undefined) this.#result(id, resTag, RC.protocolError, `malformed request: ${e.message}`);
        else this.#disconnect(RC.protocolError, `malformed request: ${e.message}`);
        return undefined;
      }
      throw e;
    }
  }

  async #bind(id: number, op: BerReader): Promise<void> {
    this.#srv.stats.binds++;
    let version: number, name: string, authTag: number, password: string;
    try {
      version = op.int();
      name = op.string();
      authTag = op.peekTag();
      password = authTag === 0x80 ? op.string(0x80) : '';
    } catch (e) {
      if (!(e instanceof BerError)) throw e;
      this.#id = undefined;
      return this.#result(id, OP.BIND_RES, RC.protocolError, `malformed bind: ${e.message}`);
    }
    // A bind, even a failed one, drops the previous identity (RFC 4511 §4.2.1).
    this.#id = undefined;
    if (version !== 3) return this.#result(id, OP.BIND_RES, RC.protocolError, 'only LDAPv3 is supported');
    if (authTag !== 0x80) return this.#result(id, OP.BIND_RES, RC.authMethodNotSupported, 'only simple binds are supported');
    let ndn: string;
    try {
      ndn = normalizeDn(name);
    } catch (e) {
      if (!(e instanceof DnError)) throw e;
      return this.#result(id, OP.BIND_RES, RC.invalidDNSyntax, `invalid DN: ${e.message}`);
    }
    if (ndn === '') {
      if (password !== '') return this.#result(id, OP.BIND_RES, RC.unwillingToPerform, 'a password needs a DN');
      return this.#result(id, OP.BIND_RES, RC.success); // anonymous
    }
    if (password === '') return this.#result(id, OP.BIND_RES, RC.unwillingToPerform, 'unauthenticated bind (DN without password) is not allowed');
    if (password.length > 1024) return this.#result(id, OP.BIND_RES, RC.invalidCredentials);
    const who = await this.#srv.opts.authenticate(ndn, password);
    if (this.#closed) return;
    if (!who) return this.#result(id, OP.BIND_RES, RC.invalidCredentials);
    this.#id = who;
    this.#result(id, OP.BIND_RES, RC.success);
  }

  async #modify(id: number, op: BerReader, who: Identity): Promise<void> {
    const dn = op.string();
    const changesR = op.sub(TAG.SEQUENCE);
    const changes: Modification[] = [];
    while (!changesR.done) {
      if (changes.length >= 64) throw new BerError('too many changes');
      const c = changesR.sub(TAG.SEQUENCE);
      const n = c.enumerated();
      if (n < 0 || n > 2) return this.#result(id, OP.MODIFY_RES, RC.unwillingToPerform, 'only add, delete and replace are supported');
      const pa = c.sub(TAG.SEQUENCE);
      const attr = pa.string().toLowerCase();
      const valsR = pa.sub(TAG.SET);
      const values: string[] = [];
      while (!valsR.done) {
        if (values.length >= 256) throw new BerError('too many values');
        values.push(valsR.string());
      }
      changes.push({ op: n === 0 ? 'add' : n === 1 ? 'delete' : 'replace', attr, values });
    }
    let ndn: string;
    try {
      ndn = this.#srv.ndn(dn);
    } catch (e) {
      if (!(e instanceof DnError)) throw e;
      return this.#result(id, OP.MODIFY_RES, RC.invalidDNSyntax, `invalid DN: ${e.message}`);
    }
    if (!this.#srv.tree.get(ndn)) return this.#result(id, OP.MODIFY_RES, RC.noSuchObject, '', this.#matched(ndn));
    const r = await this.#srv.opts.modify!(who, ndn, changes);
    if (this.#closed) return;
    this.#result(id, OP.MODIFY_RES, r.code, r.message ?? '');
  }

  #role(): 'admin' | 'user' | typeof ROLE_ANON {
    return this.#id?.role ?? ROLE_ANON;
  }

  #search(id: number, op: BerReader, controls: Control[]): void {
    this.#srv.stats.searches++;
    const base = op.string();
    const scopeN = op.enumerated();
    op.enumerated(); // derefAliases: we have no aliases
    const sizeLimit = op.int();
    op.int(); // timeLimit: everything is in memory
    const typesOnly = op.bool();
    const filter: Filter = readFilter(op);
    const attrsR = op.sub(TAG.SEQUENCE);
    const attrs: string[] = [];
    while (!attrsR.done) {
      if (attrs.length >= 64) throw new BerError('too many attributes requested');
      attrs.push(attrsR.string().toLowerCase());
    }
    if (scopeN < 0 || scopeN > 3) throw new BerError('bad scope');
    const scope: Scope = scopeN === 0 ? 'base' : scopeN === 1 ? 'one' : 'sub';
    if (sizeLimit < 0) throw new BerError('negative size limit');

    let baseNdn: string;
    try {
      baseNdn = this.#srv.ndn(base);
    } catch (e) {
      if (!(e instanceof DnError)) throw e;
      return this.#result(id, OP.SEARCH_DONE, RC.invalidDNSyntax, `invalid base DN: ${e.message}`);
    }
    const role = this.#role();

    // The root DSE: anyone may read it.
    if (baseNdn === '' && scope === 'base') {
      const dse = { dn: '', attrs: this.#srv.rootDse() };
      this.#send(id, this.#encodeDse(dse.attrs, attrs, typesOnly));
      return this.#result(id, OP.SEARCH_DONE, RC.success);
    }
    if (role === ROLE_ANON) return this.#result(id, OP.SEARCH_DONE, RC.insufficientAccessRights, 'bind first: anonymous clients may read only the root DSE');

    const tree = this.#srv.tree;
    if (baseNdn !== '' && !tree.get(baseNdn)) {
      return this.#result(id, OP.SEARCH_DONE, RC.noSuchObject, '', this.#matched(baseNdn));
    }

    const paged = controls.find((c) => c.type === OID.pagedResults);
    const key = `${role}|${typesOnly ? 1 : 0}|${attrs.join(',')}`;
    if (paged) return this.#pagedSearch(id, paged, baseNdn, scope, filter, sizeLimit, key, attrs, typesOnly);

    const serverLimit = role === 'admin' ? Infinity : this.#srv.opts.sizeLimit;
    const limit = Math.min(sizeLimit > 0 ? sizeLimit : Infinity, serverLimit);
    const found = tree.search(baseNdn, scope, filter, limit);
    const n = Math.min(found.length, limit);
    for (let i = 0; i < n; i++) this.#sendEntry(id, found[i]!, key, attrs, typesOnly);
    if (found.length > limit) return this.#result(id, OP.SEARCH_DONE, RC.sizeLimitExceeded);
    this.#result(id, OP.SEARCH_DONE, RC.success);
  }

  #pagedSearch(id: number, ctl: Control, baseNdn: string, scope: Scope, filter: Filter, sizeLimit: number, key: string, attrs: string[], typesOnly: boolean): void {
    if (!ctl.value) throw new BerError('paged results control without a value');
    const v = new BerReader(ctl.value).sub(TAG.SEQUENCE);
    const size = v.int();
    const cookie = v.raw(TAG.OCTET_STRING).toString('hex');
    if (size < 0) throw new BerError('negative page size');
    let st: PagedState | undefined;
    if (cookie) {
      st = this.#paged.get(cookie);
      this.#paged.delete(cookie);
      if (!st || st.key !== key) return this.#result(id, OP.SEARCH_DONE, RC.protocolError, 'paged results cookie is not valid (expired, or the search changed)');
      if (size === 0) return this.#sendPagedDone(id, RC.success, '');
    } else {
      const limit = sizeLimit > 0 ? sizeLimit : Infinity;
      const found = this.#srv.tree.search(baseNdn, scope, filter, limit);
      if (found.length > limit) found.length = limit + 1;
      st = { entries: found, pos: 0, key };
    }
    const pageSize = size === 0 ? st.entries.length : size;
    const end = Math.min(st.entries.length, st.pos + pageSize);
    const limit = sizeLimit > 0 ? sizeLimit : Infinity;
    const stop = Math.min(end, limit);
    for (let i = st.pos; i < stop; i++) this.#sendEntry(id, st.entries[i]!, key, attrs, typesOnly);
    if (stop >= limit && st.entries.length > limit) return this.#sendPagedDone(id, RC.sizeLimitExceeded, '');
    st.pos = end;
    if (st.pos >= st.entries.length) return this.#sendPagedDone(id, RC.success, '');
    const next = randomBytes(8).toString('hex');
    if (this.#paged.size >= MAX_COOKIES) this.#paged.delete(this.#paged.keys().next().value!);
    this.#paged.set(next, st);
    this.#sendPagedDone(id, RC.success, next);
  }

  #sendPagedDone(id: number, code: number, cookieHex: string): void {
    const value = sequence(integer(0), octets(Buffer.from(cookieHex, 'hex')));
    this.#send(id, tlv(OP.SEARCH_DONE, ...ldapResult(code)), [control(OID.pagedResults, value)]);
  }

  /** The deepest existing ancestor of a missing DN (RFC 4511 matchedDN). */
  #matched(ndn: string): string {
    for (let cur = parentNdn(ndn); cur !== ''; cur = parentNdn(cur)) if (this.#srv.tree.get(cur)) return this.#srv.tree.get(cur)!.dn;
    return '';
  }

  #sendEntry(id: number, e: Entry, key: string, attrs: string[], typesOnly: boolean): void {
    let body = e.encoded.get(key);
    if (!body) {
      body = encodeEntry(e.dn, [...e.attrs.entries()].map(([low, a]) => [low, a.name, a.values] as const), attrs, typesOnly, this.#role() === 'admin');
      if (e.encoded.size >= 16) e.encoded.clear();
      e.encoded.set(key, body);
    }
    this.#send(id, body);
  }

  #encodeDse(dse: Record<string, string[]>, attrs: string[], typesOnly: boolean): Buffer {
    // Root DSE attributes are operational: shown for "+", for no selection, or when named.
    const list = Object.entries(dse).map(([name, values]) => [name.toLowerCase(), name, values] as const);
    const sel = attrs.length === 0 || attrs.includes('*') ? [] : attrs;
    return encodeEntry('', list, sel.includes('+') ? [] : sel, typesOnly, false);
  }

  #extended(id: number, op: BerReader): Promise<void> | undefined {
    const oid = op.string(0x80);
    const value = op.done ? undefined : op.raw(0x81);
    if (oid === OID.passwordModify) return this.#passwordModify(id, value);
    if (oid === OID.whoAmI) {
      const who = this.#id ? `dn:${this.#id.dn}` : '';
      this.#send(id, tlv(OP.EXT_RES, ...ldapResult(RC.success), octets(who, 0x8b)));
      return undefined;
    }
    if (oid === OID.startTls) {
      this.#startTls(id);
      return undefined;
    }
    this.#send(id, tlv(OP.EXT_RES, ...ldapResult(RC.protocolError, '', `unsupported extended operation ${oid.slice(0, 64)}`)));
    return undefined;
  }

  /** RFC 3062: a user sets its own password (the bind proved the old one), the admin anyone's. */
  async #passwordModify(id: number, value: Buffer | undefined): Promise<void> {
    const reply = (code: number, msg = '') => this.#send(id, tlv(OP.EXT_RES, ...ldapResult(code, '', msg)));
    let target: string | undefined;
    let oldPw: string | undefined;
    let newPw: string | undefined;
    try {
      if (value) {
        const r = new BerReader(value).sub(TAG.SEQUENCE);
        while (!r.done) {
          const t = r.peekTag();
          const v = r.string(t);
          if (t === 0x80) target = v;
          else if (t === 0x81) oldPw = v;
          else if (t === 0x82) newPw = v;
          else throw new BerError('bad password modify request');
        }
      }
    } catch (e) {
      if (!(e instanceof BerError)) throw e;
      return reply(RC.protocolError, `malformed request: ${e.message}`);
    }
    const who = this.#id;
    const handler = this.#srv.opts.passwordModify;
    if (!who) return reply(RC.insufficientAccessRights, 'bind first');
    if (!handler) return reply(RC.unwillingToPerform, 'passwords are changed through the manager');
    if (newPw === undefined || newPw === '') return reply(RC.unwillingToPerform, 'give the new password (generated passwords are not offered)');
    let ndn = who.ndn;
    if (target !== undefined) {
      try {
        ndn = this.#srv.ndn(target);
      } catch (e) {
        if (!(e instanceof DnError)) throw e;
        return reply(RC.invalidDNSyntax, `invalid DN: ${e.message}`);
      }
    }
    if (ndn !== who.ndn && who.role !== 'admin') return reply(RC.insufficientAccessRights, 'only the admin changes other users\' passwords');
    if (oldPw !== undefined && ndn === who.ndn && !(await this.#srv.opts.authenticate(ndn, oldPw))) return reply(RC.invalidCredentials, 'the old password is wrong');
    const r = await handler(who, ndn, newPw);
    if (!this.#closed) reply(r.code, r.message ?? '');
  }

  #startTls(id: number): void {
    const ctx = this.#srv.secureContext;
    const fail = (code: number, why: string) => this.#send(id, tlv(OP.EXT_RES, ...ldapResult(code, '', why), octets(OID.startTls, 0x8a)));
    if (!ctx) return fail(RC.unavailable, 'this server has no TLS certificate');
    if (this.#tls) return fail(RC.operationsError, 'TLS is already in place');
    if (this.#queue.length || this.#buf.length) return fail(RC.operationsError, 'requests are outstanding');
    this.#send(id, tlv(OP.EXT_RES, ...ldapResult(RC.success), octets(OID.startTls, 0x8a)));
    this.#flush();
    const raw = this.#sock;
    raw.removeAllListeners('data');
    raw.removeAllListeners('drain');
    raw.setTimeout(0);
    const secure = new TLSSocket(raw, { isServer: true, secureContext: ctx });
    secure.on('error', () => this.destroy());
    this.#sock = secure;
    this.#tls = true;
    this.#wire(secure);
  }

  #compare(id: number, op: BerReader): void {
    const dn = op.string();
    const ava = op.sub(TAG.SEQUENCE);
    const attr = ava.string().toLowerCase();
    const value = ava.string();
    const role = this.#role();
    if (role === ROLE_ANON) return this.#result(id, OP.COMPARE_RES, RC.insufficientAccessRights, 'bind first');
    if (attr === 'userpassword' && role !== 'admin') return this.#result(id, OP.COMPARE_RES, RC.insufficientAccessRights, 'userPassword is not readable');
    let ndn: string;
    try {
      ndn = this.#srv.ndn(dn);
    } catch (e) {
      if (!(e instanceof DnError)) throw e;
      return this.#result(id, OP.COMPARE_RES, RC.invalidDNSyntax, `invalid DN: ${e.message}`);
    }
    const e = this.#srv.tree.get(ndn);
    if (!e) return this.#result(id, OP.COMPARE_RES, RC.noSuchObject, '', this.#matched(ndn));
    if (!e.norm.has(attr)) return this.#result(id, OP.COMPARE_RES, RC.noSuchAttribute);
    const hit = matchesEq(e, attr, value);
    this.#result(id, OP.COMPARE_RES, hit ? RC.compareTrue : RC.compareFalse);
  }
}

const matchesEq = (e: Entry, attr: string, value: string) => matches({ type: 'eq', attr, value }, e);

/**
 * Encode a SearchResultEntry op: the selected attributes (case-insensitive
 * names; "*" or none = all user attributes; "1.1" = none), never
 * userPassword unless `secrets`.
 */
export function encodeEntry(dn: string, attrs: readonly (readonly [string, string, readonly string[]])[], selection: string[], typesOnly: boolean, secrets: boolean): Buffer {
  const all = selection.length === 0 || selection.includes('*');
  const none = !all && selection.length > 0 && selection.every((a) => a === '1.1' || a === '+');
  const want = new Set(selection);
  const parts: Buffer[] = [];
  if (!none) {
    for (const [low, name, values] of attrs) {
      if (low === 'userpassword' && !secrets) continue;
      if (!all && !want.has(low)) continue;
      parts.push(sequence(octets(name), set(...(typesOnly ? [] : values.map((v) => octets(v))))));
    }
  }
  return tlv(OP.SEARCH_ENTRY, octets(dn), sequence(...parts));
}
