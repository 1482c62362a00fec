import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GroupView, UserView } from '../../manager/directory/model.ts';
import { groupDetail, userDetail } from './directory.ts';

const now = Date.parse('2026-11-26T12:10:00.000Z');

test('user show: one fact per line, the state saying what to do, absent facts named', () => {
  const u: UserView = {
    name: 'bob', cn: 'Bob Dobbs', sn: 'Dobbs', uidNumber: 10001, gidNumber: 10000, home: '/home/bob', shell: '/bin/sh', locked: true, hasPassword: true,
    groups: [], dn: 'uid=bob,ou=people,dc=x', createdAt: '2026-11-26T12:00:00.000Z', passwordChangedAt: '2026-11-26T12:05:00.000Z',
  };
  assert.equal(userDetail(u, now), [
    'name:         bob',
    'full name:    Bob Dobbs (surname Dobbs)',
    'state:        locked (no LDAP bind, no Kerberos tickets; storm user unlock lets it in)',
    'uid:          10001, gid 10000',
    'groups:       (none)',
    'mail:         (none)',
    'home:         /home/bob',
    'shell:        /bin/sh',
    'principal:    (none: no Kerberos realm)',
    'dn:           uid=bob,ou=people,dc=x',
    'created:      2026-11-26 12:00:00 (10m ago)',
    'password set: 2026-11-26 12:05:00 (5m ago)',
    '',
  ].join('\n'));
  assert.match(userDetail({ ...u, locked: false, hasPassword: false }, now), /^state: +no password \(storm user passwd sets one\)$/m);
});

test('group show: one fact per line', () => {
  const g: GroupView = { name: 'ops', gidNumber: 10002, members: ['alice', 'bob'], description: 'operators', dn: 'cn=ops,ou=groups,dc=x', createdAt: '2026-11-26T12:00:00.000Z' };
  assert.equal(groupDetail(g, now), 'name:        ops\ngid:         10002\nmembers:     alice, bob\ndescription: operators\ndn:          cn=ops,ou=groups,dc=x\ncreated:     2026-11-26 12:00:00 (10m ago)\n');
});
