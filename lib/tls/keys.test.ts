import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { test } from 'node:test';
import { KeyPool, makeCsr, newKeyPairAsync, type KeyPair } from './keys.ts';

test('newKeyPairAsync: an RSA 2048 pair whose halves match, made off the event loop', async () => {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const k = await newKeyPairAsync();
  clearInterval(timer);
  const priv = createPrivateKey(k.privateKeyPem);
  assert.equal(priv.asymmetricKeyDetails?.modulusLength, 2048);
  assert.match(k.privateKeyPem, /^-----BEGIN RSA PRIVATE KEY-----/);
  assert.equal(createPublicKey(priv).export({ type: 'spki', format: 'pem' }), k.publicKeyPem);
  assert.ok(ticks > 0, 'timers ran while the key was made');
});

test('KeyPool: filled after first use up to its size, one at a time; each key handed out once; a failed background key is not fatal', async () => {
  let n = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let fail = false;
  const make = async (): Promise<KeyPair> => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise((r) => setTimeout(r, 5));
    inFlight--;
    if (fail) throw new Error('no entropy today');
    const i = ++n;
    return { privateKeyPem: `k${i}`, publicKeyPem: `p${i}` };
  };
  const pool = new KeyPool({ size: 2, delayMs: 10, make });
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(n, 0, 'nothing made before first use');
  const first = await pool.take();
  await new Promise((r) => setTimeout(r, 50));
  const seen = new Set([first.privateKeyPem]);
  for (let i = 0; i < 4; i++) seen.add((await pool.take()).privateKeyPem);
  assert.equal(seen.size, 5, 'no key handed out twice');
  assert.ok(maxInFlight <= 2, 'the background makes one key at a time (plus a direct one)');
  fail = true;
  await new Promise((r) => setTimeout(r, 50));
  fail = false;
  assert.ok((await pool.take()).privateKeyPem.startsWith('k'));
});

test('makeCsr: a CSR that OpenSSL and forge (the CA) both verify, naming the subject and key given', async () => {
  const { spawnSync } = await import('node:child_process');
  const { default: forge } = await import('node-forge');
  const parse = (p: string) => forge.pki.certificationRequestFromPem(p);
  // forge throws on some bad signatures where it returns false on others.
  const verifies = (p: string) => {
    try {
      return parse(p).verify();
    } catch {
      return false;
    }
  };
  const k = await newKeyPairAsync();
  const pem = makeCsr(k, 'stormd');
  const r = spawnSync('openssl', ['req', '-verify', '-noout', '-subject'], { input: pem, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout + r.stderr, /verify OK|Certificate request self-signature verify OK/);
  assert.match(r.stdout, /CN\s*=\s*stormd/);
  assert.ok(verifies(pem), 'forge (what the CA reads it with) verifies it');
  assert.equal(createPublicKey(forge.pki.publicKeyToPem(parse(pem).publicKey as Parameters<typeof forge.pki.publicKeyToPem>[0])).export({ type: 'spki', format: 'pem' }), k.publicKeyPem);
  // Signed by another key than the one it names: neither verifies it.
  const other = await newKeyPairAsync();
  const forged = makeCsr({ privateKeyPem: other.privateKeyPem, publicKeyPem: k.publicKeyPem }, 'x');
  assert.equal(verifies(forged), false);
  const bad = spawnSync('openssl', ['req', '-verify', '-noout'], { input: forged, encoding: 'utf8' });
  assert.doesNotMatch(bad.stdout + bad.stderr, /verify OK/); // OpenSSL 3 may still exit 0 here
  assert.match(bad.stdout + bad.stderr, /verify fail/);
});
