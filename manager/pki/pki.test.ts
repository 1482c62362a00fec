import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';
import { silentLogger } from '../../lib/logger.ts';
import { readCrl } from '../../lib/tls/crl.ts';
import { makeCsr, newKeyPair } from '../../lib/tls/keys.ts';
import { certFacts } from '../../lib/tls/x509.ts';
import { Store } from '../store/store.ts';
import { tempDir } from '../../test/helpers/tmp.ts';
import { testPki } from '../../test/helpers/pki.ts';
import { needsRenewal, Pki } from './pki.ts';

const DAY = 86_400_000;
const openssl = (...args: string[]) => {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return r.stdout + r.stderr;
};

test('first start creates the CA and the manager certificate; keys are 0600; a restart keeps them', async (t) => {
  const dir = tempDir(t);
  const store = await Store.open(join(dir, 'db'));
  t.after(() => store.close());
  const open = () => Pki.open({ dir: join(dir, 'pki'), store, log: silentLogger, managerNames: ['localhost', '127.0.0.1', 'mgr.example'] });
  const a = await open();
  for (const k of ['ca.key', 'manager.key']) assert.equal(statSync(join(dir, 'pki', k)).mode & 0o777, 0o600, k);
  const ca = new X509Certificate(a.caCertPem);
  assert.equal(ca.ca, true);
  const tls = a.managerTls();
  const m = new X509Certificate(tls.cert);
  assert.ok(m.checkIssued(ca) && m.verify(ca.publicKey));
  assert.equal(certFacts(m).role, 'manager');
  assert.match(m.subjectAltName ?? '', /DNS:mgr\.example/);
  assert.match(m.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
  assert.match(openssl('verify', '-CAfile', join(dir, 'pki', 'ca.pem'), join(dir, 'pki', 'manager.pem')), /OK/);
  const b = await open();
  assert.equal(b.caCertPem, a.caCertPem, 'the CA survives a restart');
  assert.equal(b.managerTls().cert, tls.cert, 'a valid manager certificate is kept');
  assert.equal(b.crlNumber, a.crlNumber, 'an intact CRL is kept');
});

test('a half-present CA is an error, never silently replaced', async (t) => {
  const { dir } = await testPki(t);
  writeFileSync(join(dir, 'pki', 'ca.pem'), '');
  const { rmSync } = await import('node:fs');
  rmSync(join(dir, 'pki', 'ca.key'));
  const store2dir = tempDir(t);
  const store = await Store.open(join(store2dir, 'db'));
  t.after(() => store.close());
  await assert.rejects(Pki.open({ dir: join(dir, 'pki'), store, log: silentLogger, managerNames: ['localhost'] }), /half present/);
});

test('a CSR contributes only its key: subject, role and names are the CA\'s', async (t) => {
  const { pki } = await testPki(t);
  const keys = newKeyPair();
  // The requester asks to be the manager; it gets what the CA decides.
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.publicKeyFromPem(keys.publicKeyPem);
  csr.setSubject([{ name: 'organizationName', value: 'STORM' }, { name: 'organizationalUnitName', value: 'manager' }, { name: 'commonName', value: 'storm-manager' }]);
  csr.sign(forge.pki.privateKeyFromPem(keys.privateKeyPem), forge.md.sha256.create());
  const issued = await pki.issueFromCsr(forge.pki.certificationRequestToPem(csr), { role: 'stormd', commonName: 'hv1', san: { dns: ['hv1'], ip: ['192.0.2.7'] } });
  const f = certFacts(issued.certPem);
  assert.equal(f.role, 'stormd');
  assert.equal(f.commonName, 'hv1');
  assert.equal(f.serial, issued.serial);
  assert.match(new X509Certificate(issued.certPem).subjectAltName ?? '', /IP Address:192\.0\.2\.7/);
  assert.deepEqual(pki.check(issued.certPem, 'stormd'), { ok: true });
  assert.deepEqual(pki.check(issued.certPem, 'manager'), { ok: false, why: 'role is stormd, expected manager' });
});

test('bad CSRs are refused: tampered signature, small keys, garbage', async (t) => {
  const { pki } = await testPki(t);
  const opts = { role: 'stormd' as const, commonName: 'x', san: {} };
  await assert.rejects(pki.issueFromCsr('not a csr', opts), (e: { code: string }) => e.code === 'invalid');
  const small = generateKeyPairSync('rsa', { modulusLength: 1024, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
  await assert.rejects(pki.issueFromCsr(makeCsr({ privateKeyPem: small.privateKey, publicKeyPem: small.publicKey }, 'x'), opts), /1024 bits/);
  // A giant public exponent would make verification a CPU sink: refused before any arithmetic.
  const kp = newKeyPair();
  const giant = forge.pki.createCertificationRequest();
  const n = (forge.pki.publicKeyFromPem(kp.publicKeyPem) as forge.pki.rsa.PublicKey).n;
  giant.publicKey = forge.pki.setRsaPublicKey(n, new forge.jsbn.BigInteger('1' + '0'.repeat(600), 10).add(forge.jsbn.BigInteger.ONE));
  giant.setSubject([{ name: 'commonName', value: 'x' }]);
  giant.sign(forge.pki.privateKeyFromPem(kp.privateKeyPem), forge.md.sha256.create());
  await assert.rejects(pki.issueFromCsr(forge.pki.certificationRequestToPem(giant), opts), /32-bit exponent/);
  const good = makeCsr(newKeyPair(), 'x');
  // Flip one bit of the signature: the self-signature no longer verifies.
  const der = Buffer.from(good.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  der[der.length - 1] = der[der.length - 1]! ^ 0x01;
  const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
  await assert.rejects(pki.issueFromCsr(tampered, opts), /does not verify/);
});

test('revocation: the CRL lists the serial, its number grows, openssl refuses the certificate', async (t) => {
  const { pki, dir } = await testPki(t);
  const inst = await pki.issueInstance('web-1');
  assert.equal(certFacts(inst.cert).role, 'instance');
  assert.match(new X509Certificate(inst.cert).toLegacyObject().ext_key_usage?.join(',') ?? '', /1\.3\.6\.1\.5\.5\.7\.3\.2/);
  assert.doesNotMatch(new X509Certificate(inst.cert).toLegacyObject().ext_key_usage?.join(',') ?? '', /1\.3\.6\.1\.5\.5\.7\.3\.1/, 'instances are clients only');
  const certFile = join(dir, 'inst.pem');
  writeFileSync(certFile, inst.cert);
  const crlFile = join(dir, 'pki', 'crl.pem');
  assert.match(openssl('verify', '-crl_check', '-CAfile', join(dir, 'pki', 'ca.pem'), '-CRLfile', crlFile, certFile), /OK/);
  const before = pki.crlNumber;
  const rec = await pki.revoke(inst.serial, 'keyCompromise');
  assert.ok(rec.revokedAt);
  assert.equal(pki.crlNumber, before + 1);
  assert.ok(pki.isRevoked(inst.serial));
  assert.equal((await pki.revoke(inst.serial)).revokedAt, rec.revokedAt, 'revoking twice changes nothing');
  assert.equal(pki.crlNumber, before + 1);
  const facts = readCrl(readFileSync(crlFile, 'utf8'), pki.caCertPem);
  assert.ok(facts.serials.has(inst.serial));
  assert.equal(facts.number, pki.crlNumber);
  assert.match(openssl('verify', '-crl_check', '-CAfile', join(dir, 'pki', 'ca.pem'), '-CRLfile', crlFile, certFile), /certificate revoked/);
  assert.deepEqual(pki.check(inst.cert), { ok: false, why: 'revoked' });
  await assert.rejects(pki.revoke('abcdef'), (e: { code: string }) => e.code === 'not_found');
});

test('revoking the manager\'s own certificate re-keys it and tells listeners', async (t) => {
  const { pki } = await testPki(t);
  let changes = 0;
  pki.onChange(() => changes++);
  const old = pki.managerTls();
  await pki.revoke(certFacts(old.cert).serial, 'keyCompromise');
  const now = pki.managerTls();
  assert.notEqual(now.cert, old.cert);
  assert.notEqual(now.key, old.key);
  assert.deepEqual(pki.check(now.cert, 'manager'), { ok: true });
  assert.ok(changes >= 1);
  assert.equal(now.crl, pki.crlPem);
});

test('renewal before expiry: a third of the lifetime left triggers a new manager certificate', async (t) => {
  assert.equal(needsRenewal(new Date(0), new Date(300 * DAY), new Date(100 * DAY)), false);
  assert.equal(needsRenewal(new Date(0), new Date(300 * DAY), new Date(201 * DAY)), true);
  const dir = tempDir(t);
  let clock = Date.now();
  const { pki } = await testPki(t, { dir, now: () => new Date(clock) });
  const first = pki.managerTls().cert;
  assert.deepEqual(await pki.maintain(), { managerRenewed: false, crlRenewed: false });
  clock += 250 * DAY; // manager certificates live 365 days, the CRL 365
  const r = await pki.maintain();
  assert.equal(r.managerRenewed, true);
  assert.equal(r.crlRenewed, true);
  assert.notEqual(pki.managerTls().cert, first);
  assert.ok(new Date(new X509Certificate(pki.managerTls().cert).validTo).getTime() > clock + 300 * DAY);
  // An expired certificate is refused by check().
  const shortLived = await pki.issueInstance('tmp', 1);
  clock += 2 * DAY;
  assert.match((pki.check(shortLived.cert) as { why: string }).why, /expired/);
});

test('changing the manager names re-issues its certificate', async (t) => {
  const dir = tempDir(t);
  const store = await Store.open(join(dir, 'db'));
  t.after(() => store.close());
  const a = await Pki.open({ dir: join(dir, 'pki'), store, log: silentLogger, managerNames: ['localhost'] });
  const b = await Pki.open({ dir: join(dir, 'pki'), store, log: silentLogger, managerNames: ['localhost', 'mgr.example'] });
  assert.notEqual(a.managerTls().cert, b.managerTls().cert);
  assert.match(new X509Certificate(b.managerTls().cert).subjectAltName ?? '', /mgr\.example/);
});
