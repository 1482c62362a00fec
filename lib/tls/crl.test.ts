import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mintCertificate, mintCrl, newKeyPair, newSerial } from '../../manager/pki/forge-util.ts';
import { readCrl } from './crl.ts';
import { normSerial } from './x509.ts';

const DAY = 86_400_000;
const ca = () => {
  const k = newKeyPair();
  const cert = mintCertificate({ serial: newSerial(), role: 'ca', commonName: 'STORM CA', publicKeyPem: k.publicKeyPem, notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY), selfKeyPem: k.privateKeyPem });
  return { cert, key: k.privateKeyPem };
};

test('a CRL from our CA reads back: number, dates, serials', () => {
  const c = ca();
  const serials = [newSerial(), newSerial()];
  const pem = mintCrl({ caCertPem: c.cert, caKeyPem: c.key, number: 42, thisUpdate: new Date(), nextUpdate: new Date(Date.now() + DAY), revoked: serials.map((s) => ({ serial: s, at: new Date() })) });
  const f = readCrl(pem, c.cert);
  assert.equal(f.number, 42);
  assert.deepEqual([...f.serials].sort(), serials.map(normSerial).sort());
  assert.ok(f.nextUpdate && f.nextUpdate > f.thisUpdate);
  const empty = readCrl(mintCrl({ caCertPem: c.cert, caKeyPem: c.key, number: 1, thisUpdate: new Date(), nextUpdate: new Date(Date.now() + DAY), revoked: [] }), c.cert);
  assert.equal(empty.serials.size, 0);
});

test('a CRL signed by another CA, tampered, or garbage is refused with invalid', () => {
  const c = ca();
  const other = ca();
  const pem = mintCrl({ caCertPem: other.cert, caKeyPem: other.key, number: 1, thisUpdate: new Date(), nextUpdate: new Date(Date.now() + DAY), revoked: [] });
  assert.throws(() => readCrl(pem, c.cert), /does not verify/);
  const good = mintCrl({ caCertPem: c.cert, caKeyPem: c.key, number: 7, thisUpdate: new Date(), nextUpdate: new Date(Date.now() + DAY), revoked: [{ serial: newSerial(), at: new Date() }] });
  const der = Buffer.from(good.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  for (const i of [20, 60, der.length - 300]) {
    const bad = Buffer.from(der);
    bad[i] = bad[i]! ^ 0x01;
    const p = `-----BEGIN X509 CRL-----\n${bad.toString('base64')}\n-----END X509 CRL-----\n`;
    assert.throws(() => readCrl(p, c.cert), (e: { code: string }) => e.code === 'invalid', `flip at ${i}`);
  }
  for (const junk of ['', 'hello', '-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----', '-----BEGIN X509 CRL-----\n' + Buffer.alloc(5000, 0x30).toString('base64') + '\n-----END X509 CRL-----', 'x'.repeat(5 * 1024 * 1024)]) {
    assert.throws(() => readCrl(junk, c.cert), (e: { code: string }) => e.code === 'invalid');
  }
});
