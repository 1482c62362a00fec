import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BerError, BerReader } from './ber.ts';
import { escapeFilterValue, matches, parseFilter, readFilter, writeFilter, type Filter } from './filter.ts';
import { Tree } from './tree.ts';
import { normalizeDn } from './dn.ts';

const roundTrip = (f: Filter) => readFilter(new BerReader(writeFilter(f)));

function tree(n = 50): Tree {
  const t = new Tree();
  t.put('dc=storm,dc=local', { objectClass: ['top', 'dcObject'], dc: ['storm'] });
  t.put('ou=people,dc=storm,dc=local', { objectClass: ['organizationalUnit'], ou: ['people'] });
  t.put('ou=groups,dc=storm,dc=local', { objectClass: ['organizationalUnit'], ou: ['groups'] });
  for (let i = 0; i < n; i++) {
    t.put(`uid=user${i},ou=people,dc=storm,dc=local`, {
      objectClass: ['top', 'inetOrgPerson', 'posixAccount'],
      uid: [`user${i}`],
      cn: [`User Number ${i}`],
      sn: ['Number'],
      uidNumber: [String(10000 + i)],
      gidNumber: ['10000'],
      homeDirectory: [`/home/user${i}`],
      mail: [`user${i}@storm.local`],
    });
  }
  t.put('cn=admins,ou=groups,dc=storm,dc=local', { objectClass: ['posixGroup', 'groupOfNames'], cn: ['admins'], gidNumber: ['20000'], memberUid: ['user1', 'user2'], member: ['uid=user1,ou=people,dc=storm,dc=local', 'UID=User2, OU=People,DC=storm,DC=local'] });
  return t;
}

const uids = (t: Tree, base: string, scope: 'base' | 'one' | 'sub', f: string) =>
  t
    .search(normalizeDn(base), scope, parseFilter(f))
    .map((e) => e.get('uid')?.[0] ?? e.get('cn')?.[0] ?? e.dn)
    .sort();

test('the string form parses every filter type and survives a BER round trip', () => {
  const cases = [
    '(uid=alice)',
    '(&(objectClass=posixAccount)(uid=al*))',
    '(|(uid=a)(uid=b)(!(uid=c)))',
    '(uidNumber>=10000)',
    '(uidNumber<=10005)',
    '(cn~=jon smith)',
    '(mail=*)',
    '(cn=*a*b*c)',
    '(cn:caseExactMatch:=Alice)',
    '(uid=a\\2ab)',
  ];
  for (const c of cases) {
    const f = parseFilter(c);
    assert.deepEqual(roundTrip(f), f, c);
  }
  assert.deepEqual(parseFilter('(uid=a\\2ab)'), { type: 'eq', attr: 'uid', value: 'a*b' });
  assert.deepEqual(parseFilter('uid=x'), { type: 'eq', attr: 'uid', value: 'x' });
});

test('attribute names are case-insensitive (uidNumber vs uidnumber)', () => {
  const t = tree(10);
  assert.deepEqual(uids(t, 'dc=storm,dc=local', 'sub', '(UIDNUMBER=10003)'), ['user3']);
  assert.deepEqual(uids(t, 'dc=storm,dc=local', 'sub', '(uidnumber=10003)'), ['user3']);
  assert.deepEqual(uids(t, 'dc=storm,dc=local', 'sub', '(ObjectClass=POSIXACCOUNT)').length, 10);
  const e = t.get('uid=user3,ou=people,dc=storm,dc=local')!;
  assert.equal(e.attrs.get('uidnumber')!.name, 'uidNumber', 'the shown name keeps its case');
});

test('matching: equality, substring, ordering, presence, approx, boolean operators', () => {
  const t = tree(20);
  const b = 'dc=storm,dc=local';
  assert.deepEqual(uids(t, b, 'sub', '(uid=USER7)'), ['user7'], 'uid compares case-insensitively');
  assert.deepEqual(uids(t, b, 'sub', '(cn=user number 1*)'), ['user1', 'user10', 'user11', 'user12', 'user13', 'user14', 'user15', 'user16', 'user17', 'user18', 'user19']);
  assert.deepEqual(uids(t, b, 'sub', '(mail=*9@storm*)'), ['user19', 'user9']);
  assert.deepEqual(uids(t, b, 'sub', '(cn=*ber 5)'), ['user5']);
  assert.deepEqual(uids(t, b, 'sub', '(&(uidNumber>=10017)(objectClass=posixAccount))'), ['user17', 'user18', 'user19']);
  assert.deepEqual(uids(t, b, 'sub', '(&(uidNumber<=10001)(uid=*))'), ['user0', 'user1']);
  // Integer ordering, not string ordering: 9 < 10.
  assert.deepEqual(uids(t, b, 'sub', '(&(uidNumber>=9)(uidNumber<=10002)(uid=*))'), ['user0', 'user1', 'user2']);
  assert.deepEqual(uids(t, b, 'sub', '(|(uid=user3)(uid=user4)(uid=nobody))'), ['user3', 'user4']);
  assert.deepEqual(uids(t, b, 'sub', '(&(uid=*)(!(uidNumber>=10002)))'), ['user0', 'user1']);
  assert.deepEqual(uids(t, b, 'sub', '(cn~=usernumber4)'), ['user4']);
  assert.deepEqual(uids(t, b, 'sub', '(ou=*)'), ['ou=groups,dc=storm,dc=local', 'ou=people,dc=storm,dc=local']);
  assert.deepEqual(uids(t, b, 'sub', '(cn:caseExactMatch:=admins)'), [], 'extensible match is decoded and never matches');
  // member is DN-valued: any spelling of the DN matches.
  assert.deepEqual(uids(t, b, 'sub', '(member=uid=USER2,ou=people,dc=storm,dc=local)'), ['admins']);
  assert.deepEqual(uids(t, b, 'sub', '(memberUid=user1)'), ['admins']);
});

test('scopes: base, one level, subtree; base DNs are compared in normal form', () => {
  const t = tree(5);
  assert.deepEqual(uids(t, 'UID=user1, OU=People, DC=Storm, DC=Local', 'base', '(objectClass=*)'), ['user1']);
  assert.equal(t.search('dc=storm,dc=local', 'one', parseFilter('(objectClass=*)')).length, 2);
  assert.equal(t.search('ou=people,dc=storm,dc=local', 'one', parseFilter('(objectClass=*)')).length, 5);
  assert.equal(t.search('ou=people,dc=storm,dc=local', 'sub', parseFilter('(objectClass=*)')).length, 6);
  assert.equal(t.search('ou=groups,dc=storm,dc=local', 'sub', parseFilter('(uid=user1)')).length, 0, 'index hits outside the scope are dropped');
  assert.equal(t.search('dc=storm,dc=local', 'sub', parseFilter('(uid=*)'), 2).length, 3, 'stops at limit + 1');
});

test('equality on indexed attributes uses the index, not a scan', () => {
  const t = tree(1000);
  assert.equal(t.candidates(parseFilter('(uid=user500)'))!.size, 1);
  assert.equal(t.candidates(parseFilter('(uidNumber=10500)'))!.size, 1);
  assert.equal(t.candidates(parseFilter('(&(objectClass=posixAccount)(uid=user500))'))!.size, 1, 'and: the smallest child set');
  assert.equal(t.candidates(parseFilter('(|(uid=user1)(uid=user2))'))!.size, 2);
  assert.equal(t.candidates(parseFilter('(uid=nobody)'))!.size, 0);
  assert.equal(t.candidates(parseFilter('(cn=User*)')), undefined, 'a substring needs a scan');
  assert.equal(t.candidates(parseFilter('(|(uid=a)(cn=b*))')), undefined);
  // The index follows replacements and removals.
  t.put('uid=user500,ou=people,dc=storm,dc=local', { objectClass: ['posixAccount'], uid: ['user500'], uidNumber: ['99999'] });
  assert.equal(t.candidates(parseFilter('(uidNumber=10500)'))!.size, 0);
  assert.equal(t.candidates(parseFilter('(uidNumber=99999)'))!.size, 1);
  assert.equal(t.remove(normalizeDn('uid=USER500,ou=people,dc=storm,dc=local')), true);
  assert.equal(t.candidates(parseFilter('(uid=user500)'))!.size, 0);
});

test('filter injection: escaped values are literals, not filter syntax', () => {
  const t = tree(5);
  const hostile = 'user1)(uid=*';
  const f = parseFilter(`(uid=${escapeFilterValue(hostile)})`);
  assert.deepEqual(f, { type: 'eq', attr: 'uid', value: hostile });
  assert.equal(t.search('dc=storm,dc=local', 'sub', f).length, 0);
  assert.deepEqual(parseFilter(`(cn=${escapeFilterValue('*')})`), { type: 'eq', attr: 'cn', value: '*' });
  assert.equal(escapeFilterValue('a\\b(c)*\0'), 'a\\5cb\\28c\\29\\2a\\00');
});

test('malformed and hostile filters are errors, not crashes', () => {
  for (const bad of ['(uid=a', '((uid=a))', '(uid=a)(uid=b)', '(&(uid=a)', '(=x)', '(uid=a\\zz)', '(ui d=a)', '(uid=a(b)']) {
    assert.throws(() => parseFilter(bad), BerError, bad);
  }
  // Deep nesting is refused (a stack-overflow attempt).
  let deep = '(uid=a)';
  for (let i = 0; i < 100; i++) deep = `(!${deep})`;
  assert.throws(() => parseFilter(deep), /nested too deeply/);
  // BER: the same bound when the nesting arrives on the wire.
  let ber: Buffer = writeFilter({ type: 'present', attr: 'uid' });
  for (let i = 0; i < 100; i++) ber = Buffer.concat([Buffer.from([0xa2, ber.length < 128 ? ber.length : 0]), ber]);
  assert.throws(() => readFilter(new BerReader(ber)), BerError);
  // Unknown choice, truncated element, lying length.
  assert.throws(() => readFilter(new BerReader(Buffer.from([0xbf, 0x00]))), BerError);
  assert.throws(() => readFilter(new BerReader(Buffer.from([0xa3, 0x05, 0x04, 0x01]))), BerError);
  assert.throws(() => readFilter(new BerReader(Buffer.from([0xa3, 0x84, 0xff, 0xff, 0xff, 0xff]))), BerError);
  assert.throws(() => readFilter(new BerReader(Buffer.from([0x87, 0x03, 0x61, 0x20, 0x62]))), BerError, 'bad attribute description');
  // Many nodes (wide, not deep) are bounded too.
  const wide = `(|${'(uid=a)'.repeat(600)})`;
  assert.throws(() => readFilter(new BerReader(writeFilter(parseFilter(wide)))), /too large/);
});

test('matches() on a hand-built entry: a missing attribute never matches', () => {
  const e = { norm: new Map([['uid', ['alice']]]) };
  assert.equal(matches(parseFilter('(cn=*)'), e), false);
  assert.equal(matches(parseFilter('(!(cn=x))'), e), true);
  assert.equal(matches(parseFilter('(uidNumber>=1)'), e), false);
});
