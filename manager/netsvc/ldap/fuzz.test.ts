// Mutated LDAP messages (bit flips, truncations, splices of valid requests)
// against a live server: every one gets an answer or a clean close, and the
// server still serves afterwards. Deterministic (seeded), bounded in count.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { parseFilter, writeFilter, readFilter } from './filter.ts';
import { BerError, BerReader, octets, tlv, integer } from './ber.ts';
import { OP, bindRequest, extendedRequest, message, readResponse, searchRequest, splitMessages, control } from './protocol.ts';
import { LdapServer } from './server.ts';
import { Tree } from './tree.ts';

const BASE = 'dc=fuzz,dc=storm';

function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x / 0x80000000;
  };
}

function seeds(): Buffer[] {
  const f = (s: string) => writeFilter(parseFilter(s));
  return [
    bindRequest(1, `uid=u1,ou=people,${BASE}`, 'pw'),
    searchRequest(2, BASE, 2, f('(&(objectClass=posixAccount)(|(uid=u*)(cn=*x*y)(uidNumber>=3))(!(mail=*)))'), ['uid', 'cn']),
    searchRequest(3, BASE, 1, f('(cn~=abc)'), [], 5, [control('1.2.840.113556.1.4.319', Buffer.concat([Buffer.from([0x30, 0x05]), integer(2), octets('')]), true)]),
    extendedRequest(4, '1.3.6.1.4.1.4203.1.11.3'),
    extendedRequest(5, '1.3.6.1.4.1.4203.1.11.1', Buffer.from([0x30, 0x04, 0x82, 0x02, 0x61, 0x62])),
    message(6, tlv(OP.COMPARE_REQ, octets(`uid=u1,ou=people,${BASE}`), tlv(0x30, octets('cn'), octets('x')))),
    message(7, tlv(OP.MODIFY_REQ, octets(`uid=u1,ou=people,${BASE}`), tlv(0x30, tlv(0x30, tlv(0x0a, Buffer.from([2])), tlv(0x30, octets('cn'), tlv(0x31, octets('y'))))))),
  ];
}

function mutate(b: Buffer, r: () => number, pool: Buffer[]): Buffer {
  const out = Buffer.from(b);
  switch (Math.floor(r() * 5)) {
    case 0: // flip bits
      for (let i = 0, n = 1 + Math.floor(r() * 4); i < n; i++) out[Math.floor(r() * out.length)]! ^= 1 << Math.floor(r() * 8);
      return out;
    case 1: // overwrite a byte with a boundary value
      out[Math.floor(r() * out.length)] = [0x00, 0x7f, 0x80, 0x81, 0x84, 0xff][Math.floor(r() * 6)]!;
      return out;
    case 2: // truncate, keep the outer length (a lie)
      return out.subarray(0, Math.max(2, Math.floor(r() * out.length)));
    case 3: {
      // splice the tail of another request in
      const o = pool[Math.floor(r() * pool.length)]!;
      const at = Math.floor(r() * out.length);
      return Buffer.concat([out.subarray(0, at), o.subarray(Math.floor(r() * o.length))]);
    }
    default: // fix the outer length after an inner change
      for (let i = 0, n = 1 + Math.floor(r() * 3); i < n; i++) out[2 + Math.floor(r() * (out.length - 2))] = Math.floor(r() * 256);
      return out;
  }
}

test('mutated requests never crash the server; it keeps answering', async (t) => {
  const tree = new Tree();
  tree.put(BASE, { objectClass: ['dcObject'], dc: ['fuzz'] });
  tree.put(`ou=people,${BASE}`, { objectClass: ['organizationalUnit'], ou: ['people'] });
  for (let i = 0; i < 20; i++) tree.put(`uid=u${i},ou=people,${BASE}`, { objectClass: ['posixAccount', 'inetOrgPerson'], uid: [`u${i}`], cn: [`User ${i}`], uidNumber: [String(i)] });
  // Anything but a decoding error reaching the server's catch-all is a bug: collect them.
  const internal: string[] = [];
  const log = { debug() {}, info() {}, warn: (m: string, f?: Record<string, unknown>) => void internal.push(`${m} ${JSON.stringify(f)}`), error: (m: string) => void internal.push(m), child: () => log };
  const server = new LdapServer({
    log,
    tree,
    baseDn: BASE,
    authenticate: async (ndn, pw) => (pw === 'pw' ? { dn: ndn, ndn, role: 'admin' } : undefined),
    modify: async () => ({ code: 53 }),
    passwordModify: async () => ({ code: 53 }),
  });
  const port = await server.listen(0);
  t.after(() => server.close());
  const r = rng(42);
  const pool = seeds();
  const ROUNDS = 400;
  const PER_CONN = 3;
  let answered = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const frames: Buffer[] = [bindRequest(1, `uid=u1,ou=people,${BASE}`, 'pw')];
    for (let i = 0; i < PER_CONN; i++) {
      const seed = pool[Math.floor(r() * pool.length)]!;
      // Mostly: mutate the inside and re-wrap it, so framing holds and the decoders are what is tested.
      if (r() < 0.85) {
        const h = new BerReader(seed).header();
        frames.push(tlv(0x30, mutate(seed.subarray(h.start, h.end), r, pool)));
      } else frames.push(mutate(seed, r, pool));
    }
    answered += await new Promise<number>((resolve) => {
      const s = connect(port, '127.0.0.1');
      let got = 0;
      let buf: Buffer = Buffer.alloc(0);
      s.on('data', (d) => {
        const sp = splitMessages(Buffer.concat([buf, d]));
        buf = sp.rest;
        got += sp.frames.length;
      });
      s.on('error', () => {});
      s.on('close', () => resolve(got));
      s.on('connect', () => {
        // Unbind last: the server closes at once unless a lying length swallowed it.
        s.write(Buffer.concat([...frames, message(99, Buffer.from([OP.UNBIND, 0x00]))]));
        // A truncated last frame leaves the server waiting: close our side after a moment.
        setTimeout(() => s.end(), 150);
      });
    });
  }
  assert.deepEqual(internal, [], 'no request fell through to the internal-error path');
  // Every bind is answered, and many mutated requests get a result code rather than a disconnect.
  assert.ok(answered > ROUNDS * 2, `only ${answered} answers`);
  // Still serving, correctly.
  const ok = await new Promise<number[]>((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let buf: Buffer = Buffer.alloc(0);
    const tags: number[] = [];
    s.on('data', (d) => {
      const sp = splitMessages(Buffer.concat([buf, d]));
      buf = sp.rest;
      for (const f of sp.frames) tags.push(readResponse(f).tag);
      if (tags.includes(OP.SEARCH_DONE)) (s.destroy(), resolve(tags));
    });
    s.on('error', reject);
    s.on('connect', () => s.write(Buffer.concat([bindRequest(1, `uid=u1,ou=people,${BASE}`, 'pw'), searchRequest(2, BASE, 2, writeFilter(parseFilter('(uid=u7)')), ['uid'])])));
  });
  assert.deepEqual(ok, [OP.BIND_RES, OP.SEARCH_ENTRY, OP.SEARCH_DONE]);
});

test('the filter decoder rejects or accepts mutated filters, never throws anything but BerError', () => {
  const r = rng(7);
  const base = [writeFilter(parseFilter('(&(a=b)(|(c=*d*e)(f>=1))(!(g=*)))')), writeFilter(parseFilter('(x:dn:1.2.3:=y)'))];
  for (let i = 0; i < 5000; i++) {
    const m = mutate(base[i % 2]!, r, base);
    try {
      readFilter(new BerReader(m));
    } catch (e) {
      assert.ok(e instanceof BerError, `${m.toString('hex')}: ${(e as Error).stack}`);
    }
  }
});
