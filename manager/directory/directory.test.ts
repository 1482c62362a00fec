import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../store/store.ts';
import { normalizeDn } from '../netsvc/ldap/dn.ts';
import { parseFilter } from '../netsvc/ldap/filter.ts';
import { EventBus } from '../events.ts';
import { Directory } from './directory.ts';
import { baseDnFor, checkFqdn, checkName, checkPassword, checkPath, checkText } from './model.ts';
import { hashPassword, verifyPassword } from './password.ts';
import { DirectoryStore } from './store.ts';

test('password hashes are salted PBKDF2, verified in constant time; {SSHA} verifies too', async () => {
  const a = await hashPassword('correct horse', 1000);
  const b = await hashPassword('correct horse', 1000);
  assert.match(a, /^\{PBKDF2-SHA256\}1000\$[A-Za-z0-9./]+\$[A-Za-z0-9./]+$/);
  assert.notEqual(a, b, 'a fresh salt each time');
  assert.equal(await verifyPassword('correct horse', a), true);
  assert.equal(await verifyPassword('correct horsE', a), false);
  const salt = Buffer.from('saltsalt');
  const ssha = '{SSHA}' + Buffer.concat([createHash('sha1').update('pw').update(salt).digest(), salt]).toString('base64');
  assert.equal(await verifyPassword('pw', ssha), true);
  assert.equal(await verifyPassword('px', ssha), false);
  for (const junk of ['pw', '{CLEARTEXT}pw', '{PBKDF2-SHA256}x$y$z', '{PBKDF2-SHA256}99999999999$a$b', '{SSHA}']) assert.equal(await verifyPassword('pw', junk), false, junk);
});

test('validation refuses what could change the meaning of a DN, a filter or a kadmin line', () => {
  for (const ok of ['alice', '_svc', 'a-b_c9']) assert.equal(checkName('user', ok), ok);
  for (const bad of ['Alice', '9lives', 'a b', 'a,b', 'a=b', 'a*', 'a)', "a'", 'a"', 'a\n', '', 'x'.repeat(33), 'root', 'admin']) {
    assert.throws(() => checkName('user', bad), { code: 'invalid' }, JSON.stringify(bad));
  }
  assert.equal(checkName('group', 'admin'), 'admin', 'reserved names are for users only');
  assert.equal(checkFqdn('web1.storm.local'), 'web1.storm.local');
  for (const bad of ['web1', 'Web1.storm.local', '-a.storm', 'a..b', 'a b.c', 'a.b\n', `${'a'.repeat(64)}.b`]) assert.throws(() => checkFqdn(bad), { code: 'invalid' }, bad);
  for (const bad of ['a\u0000b', 'a\nb', 'a"b', 'a\\b', ' lead', 'trail ', '', 'x'.repeat(129), 'a\u200eb']) assert.throws(() => checkText('cn', bad), { code: 'invalid' }, JSON.stringify(bad));
  assert.equal(checkText('cn', 'Jean-Luc Picard, Capt.'), 'Jean-Luc Picard, Capt.');
  for (const bad of ['bin/sh', '/bin/../sh', '/bin//sh', '/bin/sh ', '/bin/$x']) assert.throws(() => checkPath('shell', bad), { code: 'invalid' }, bad);
  for (const bad of ['short', 'line\nbreak1', 'nul\u0000nul1', 'x'.repeat(257)]) assert.throws(() => checkPassword(bad), { code: 'invalid' });
  assert.equal(baseDnFor('storm.local'), 'dc=storm,dc=local');
});

test('the store persists users, groups and hosts; the tree is rebuilt on open', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'storm-dirstore-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  let store = await Store.open(dir);
  let d = new Directory({ store: await DirectoryStore.open(store, 'dc=t,dc=storm') });
  await d.addUser({ name: 'alice', password: 'alice-password', mail: 'a@t.storm' });
  await d.addUser({ name: 'bob' });
  await d.addGroup({ name: 'ops', members: ['alice', 'bob'] });
  await d.addHost({ fqdn: 'h1.t.storm', instance: 'i-1', addresses: ['10.0.0.1'] });
  await assert.rejects(d.addUser({ name: 'alice' }), { code: 'conflict' });
  await assert.rejects(d.addUser({ name: 'carol', group: 'nosuch' }), { code: 'not_found' });
  await assert.rejects(d.addUser({ name: 'carol', uidNumber: 10000 }), { code: 'conflict' }, 'uidNumber taken');
  await assert.rejects(d.removeGroup('users'), { code: 'invalid' });
  assert.equal(d.showUser('bob').hasPassword, false);
  assert.equal(d.showUser('bob').uidNumber, 10001);
  assert.equal('passwordHash' in d.showUser('alice'), false, 'views never carry the hash');
  await store.close();

  store = await Store.open(dir);
  t.after(() => store.close());
  const ds = await DirectoryStore.open(store, 'dc=t,dc=storm');
  d = new Directory({ store: ds });
  assert.deepEqual(d.listUsers().map((u) => u.name), ['alice', 'bob']);
  assert.deepEqual(d.showUser('alice').groups, ['ops']);
  assert.ok(await ds.authenticate(normalizeDn('uid=alice,ou=people,dc=t,dc=storm'), 'alice-password'));
  assert.equal(await ds.authenticate(normalizeDn('uid=bob,ou=people,dc=t,dc=storm'), ''), undefined);
  assert.equal(ds.tree.search(normalizeDn('dc=t,dc=storm'), 'sub', parseFilter('(ipHostNumber=10.0.0.1)')).length, 1);
  // The next uid continues after a restart.
  assert.equal((await d.addUser({ name: 'carol' })).uidNumber, 10002);
  // Removing a user drops its memberships in the same batch.
  await d.removeUser('bob');
  assert.deepEqual(d.showGroup('ops').members, ['alice']);
  assert.deepEqual(ds.tree.get(normalizeDn('cn=ops,ou=groups,dc=t,dc=storm'))!.get('memberUid'), ['alice']);
  await d.setMember('ops', 'alice', false);
  assert.deepEqual(ds.tree.get(normalizeDn('cn=ops,ou=groups,dc=t,dc=storm'))!.get('objectClass'), ['top', 'posixGroup'], 'no groupOfNames without members');
  await d.removeHost('h1.t.storm');
  assert.equal(d.listHosts().length, 0);
});

test('enrolling a host again is an update: one "added" event, then "updated" only when something changed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'storm-dirhost-'));
  const store = await Store.open(dir);
  t.after(async () => (await store.close(), rmSync(dir, { recursive: true, force: true })));
  const bus = new EventBus();
  const kinds: string[] = [];
  bus.subscribe((e) => kinds.push(`${e.kind} ${e.message}`));
  const d = new Directory({ store: await DirectoryStore.open(store, 'dc=t,dc=storm'), bus });
  await d.addHost({ fqdn: 'web1.t.storm', instance: 'web1' });
  await d.addHost({ fqdn: 'web1.t.storm', instance: 'web1', addresses: ['10.0.0.2'] });
  await d.addHost({ fqdn: 'web1.t.storm', instance: 'web1', addresses: ['10.0.0.2'] });
  assert.deepEqual(kinds, ['directory.host.added host web1.t.storm enrolled', 'directory.host.updated host web1.t.storm updated: at 10.0.0.2']);
});
