import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BerError, BerReader, integer, octets, sequence } from './ber.ts';
import { DnError, escapeDnValue, isUnder, normalizeDn, parentNdn, parseDn } from './dn.ts';

test('DNs normalise: case, spaces, escapes, multi-valued RDNs', () => {
  assert.equal(normalizeDn('UID=Alice, OU=People,DC=Storm ,DC=local'), 'uid=alice,ou=people,dc=storm,dc=local');
  assert.equal(normalizeDn('cn=Smith\\, John,dc=x'), 'cn=smith\\, john,dc=x');
  assert.equal(normalizeDn('cn=a\\2cb,dc=x'), 'cn=a\\,b,dc=x');
  assert.equal(normalizeDn('cn=b+uid=a,dc=x'), normalizeDn('uid=a+cn=b,dc=x'));
  assert.equal(normalizeDn(''), '');
  assert.deepEqual(parseDn('cn=a\\+b,dc=x')[0], [{ type: 'cn', value: 'a+b' }]);
  assert.equal(parentNdn('cn=a\\,b,dc=x,dc=y'), 'dc=x,dc=y');
  assert.equal(isUnder('uid=a,ou=people,dc=x', 'dc=x'), true);
  assert.equal(isUnder('uid=a,ou=people,dc=xx', 'dc=x'), false);
  assert.equal(escapeDnValue(' a,b+c '), '\\ a\\,b\\+c\\ ');
});

test('malformed DNs are DnErrors (binds answer invalidDNSyntax)', () => {
  for (const bad of ['uid', 'uid=a,', 'uid=a,,dc=x', '=a', 'u id=a', 'uid=a"b', 'uid=a\\', 'uid=a\\q', 'uid=a;dc=x', 'uid=a<b', 'uid=a\0', 'x'.repeat(5000) + '=a', '1uid=a']) {
    assert.throws(() => normalizeDn(bad), DnError, JSON.stringify(bad.slice(0, 30)));
  }
});

test('BER reader: bounded lengths, no indefinite form, integers in range', () => {
  const ok = sequence(integer(5), octets('hi'), integer(-2), integer(300));
  const r = new BerReader(ok).sub(0x30);
  assert.equal(r.int(), 5);
  assert.equal(r.string(), 'hi');
  assert.equal(r.int(), -2);
  assert.equal(r.int(), 300);
  assert.equal(r.done, true);
  for (const bad of [
    [0x30, 0x80, 0x00, 0x00], // indefinite
    [0x30, 0x85, 1, 1, 1, 1, 1], // 5-byte length
    [0x30, 0x05, 0x02, 0x01], // overruns
    [0x02, 0x00], // empty integer
    [0x02, 0x05, 1, 2, 3, 4, 5], // too wide
    [0x1f, 0x01, 0x00], // multi-byte tag
  ]) {
    assert.throws(() => {
      const rr = new BerReader(Buffer.from(bad));
      rr.peekTag() === 0x30 ? rr.sub(0x30).int() : rr.int();
    }, BerError);
  }
});

test('random DN strings: DnError or a normal form that is its own normal form', () => {
  let x = 12345;
  const r = () => ((x = (x * 1103515245 + 12345) & 0x7fffffff), x / 0x80000000);
  const alphabet = ['a', 'B', '1', '=', ',', '+', '\\', ' ', '"', '#', ';', '<', '>', '2c', 'uid', 'dc', 'é', '\0', 'ff'];
  let accepted = 0;
  for (let i = 0; i < 5000; i++) {
    let s = '';
    for (let j = 0, n = Math.floor(r() * 16); j < n; j++) s += alphabet[Math.floor(r() * alphabet.length)];
    let n1: string;
    try {
      n1 = normalizeDn(s);
    } catch (e) {
      assert.ok(e instanceof DnError, `${JSON.stringify(s)}: ${(e as Error).stack}`);
      continue;
    }
    accepted++;
    assert.equal(normalizeDn(n1), n1, `normal form of ${JSON.stringify(s)} is stable`);
  }
  assert.ok(accepted > 50);
});
