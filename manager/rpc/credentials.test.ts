import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { silentLogger } from '../../lib/logger.ts';
import { certFacts } from '../../lib/tls/x509.ts';
import { testPki } from '../../test/helpers/pki.ts';
import { Credentials } from './credentials.ts';
import { DOMAIN_MX, Grants } from './grants.ts';

test('credentials: issued once per instance (concurrent asks share one), found by serial, revoked and forgotten', async (t) => {
  const { pki, store } = await testPki(t);
  const c = await Credentials.open(store, pki, silentLogger);
  const [a, b] = await Promise.all([c.ensure({ id: 'i1', name: 'web1' }), c.ensure({ id: 'i1', name: 'web1' })]);
  assert.equal(a.serial, b.serial);
  assert.equal((await c.ensure({ id: 'i1', name: 'web1' })).serial, a.serial);
  const f = certFacts(a.cert);
  assert.equal(f.role, 'instance');
  assert.equal(f.commonName, 'web1');
  assert.ok(new X509Certificate(a.cert).checkPrivateKey(await import('node:crypto').then((m) => m.createPrivateKey(a.key))));
  assert.deepEqual(await c.forInstance('i1'), { key: a.key, cert: a.cert, ca: pki.caCertPem });
  assert.equal(c.bySerial(a.serial)?.id, 'i1');

  // Revoked behind its back (storm pki revoke): no longer found; the next ensure issues a new one.
  await pki.revoke(a.serial);
  assert.equal(c.bySerial(a.serial), undefined);
  const n = await c.ensure({ id: 'i1', name: 'web1' });
  assert.notEqual(n.serial, a.serial);

  // Persisted: a reopened Credentials still knows the serial.
  const again = await Credentials.open(store, pki, silentLogger);
  assert.equal(again.bySerial(n.serial)?.name, 'web1');

  await again.revoke('i1');
  assert.ok(pki.isRevoked(n.serial));
  assert.equal(again.bySerial(n.serial), undefined);
  assert.equal(again.nameOf(n.serial), 'web1');
  await assert.rejects(again.forInstance('i1'), (e: { code: string }) => e.code === 'not_found');
  assert.equal(await again.revoke('i1'), undefined);
});

test('grants: per instance and appliance, validated, removed with the instance', async (t) => {
  const { store } = await testPki(t);
  const g = new Grants(store);
  await g.add('web1', 'mail', 'admin');
  await g.add('web1', DOMAIN_MX, 'admin');
  await g.add('web10', 'mail', 'admin');
  assert.equal((await g.add('web1', 'mail', 'other')).by, 'admin'); // idempotent
  assert.ok(await g.has('web1', 'mail'));
  assert.ok(!(await g.has('web1', 'wiki')));
  assert.deepEqual((await g.list('web1')).map((x) => x.appliance), ['@mx', 'mail']);
  for (const bad of ['', 'Mail!', 'wiki@1.0', '../x', '@other', 'a'.repeat(65)]) await assert.rejects(g.add('web1', bad, 'admin'), (e: { code: string }) => e.code === 'invalid', bad);
  await assert.rejects(g.remove('web1', 'wiki'), (e: { code: string }) => e.code === 'not_found');
  assert.equal(await g.removeInstance('web1'), 2);
  assert.deepEqual((await g.list()).map((x) => `${x.instance}/${x.appliance}`), ['web10/mail']);
});
