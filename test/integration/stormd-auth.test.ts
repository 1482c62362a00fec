/**
 * Trust end to end with real processes: a manager makes a join token, stormd
 * enrols with it and serves mutual-TLS XML-RPC; then every wrong peer is
 * refused (openssl s_client and Node's TLS client) and the manager's works.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { mintCertificate, newKeyPair, newSerial } from '../../manager/pki/forge-util.ts';
import { freePort } from '../helpers/ports.ts';
import { startProcess } from '../helpers/child.ts';
import { storm, startManagerProcess, STORMD_BIN } from '../helpers/storm.ts';
import { tempDir } from '../helpers/tmp.ts';
import { rpcPost, sClient } from '../helpers/tls.ts';

const DAY = 86_400_000;

function stormd(args: string[], env: NodeJS.ProcessEnv) {
  const r = spawnSync(process.execPath, [STORMD_BIN, ...args], { env, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

test('stormd enrols with a one-time token and obeys only the manager', async (t) => {
  const dir = tempDir(t, 'storm-auth-');
  const state = join(dir, 'manager');
  const dstate = join(dir, 'stormd');
  const port = await freePort();
  const env = { ...process.env, STORM_STATE: state, STORM_SSH_LISTEN: `127.0.0.1:${await freePort()}`, STORM_ENROLL_LISTEN: '127.0.0.1:0', STORM_HOST_POLL_SECONDS: '1' };
  await startManagerProcess(t, state, [], env);

  // The CA exists after the first start; private keys are owner-only.
  for (const k of ['ca.key', 'manager.key']) assert.equal(statSync(join(state, 'pki', k)).mode & 0o777, 0o600, k);
  const doc = JSON.parse(storm(['doctor', '-o', 'json'], { env }).stdout) as { component: string; status: string; reason: string }[];
  assert.match(doc.find((h) => h.component === 'ca')?.reason ?? '', /valid until/);

  const add = storm(['host', 'add', 'hv1', `127.0.0.1:${port}`, '-o', 'json'], { env });
  assert.equal(add.code, 0, add.stderr);
  const { token, joinUrl, expiresAt } = JSON.parse(add.stdout) as { token: string; joinUrl: string; expiresAt: string };
  assert.match(token, /^stj1\./);
  assert.ok(new Date(expiresAt) > new Date());
  assert.match(storm(['host', 'list'], { env }).stdout, /hv1\s+127\.0\.0\.1:\d+\s+pending/);

  const joined = stormd(['join', '--manager', joinUrl, '--token', token, '--state', dstate], env);
  assert.equal(joined.code, 0, joined.stderr);
  assert.match(joined.stdout, /joined as hv1/);
  assert.equal(statSync(join(dstate, 'pki', 'key.pem')).mode & 0o777, 0o600);

  // A reused token is refused, clearly, and nothing is written.
  const again = stormd(['join', '--manager', joinUrl, '--token', token, '--state', join(dir, 'other')], env);
  assert.equal(again.code, 6, again.stderr);
  assert.match(again.stderr, /join token already used/);
  assert.doesNotMatch(again.stderr, /\n\s+at /);

  // An expired token is refused.
  const add2 = JSON.parse(storm(['host', 'add', 'hv2', '127.0.0.1:1', '--ttl', '1', '-o', 'json'], { env }).stdout) as { token: string };
  await sleep(1500);
  const late = stormd(['join', '--manager', joinUrl, '--token', add2.token, '--state', join(dir, 'late')], env);
  assert.equal(late.code, 6, late.stderr);
  assert.match(late.stderr, /join token expired/);

  // A token whose pin is not this manager's CA never reaches the manager with its secret.
  const wrongPin = add2.token.replace(/\.[^.]+$/, '.' + 'A'.repeat(43));
  const pinned = stormd(['join', '--manager', joinUrl, '--token', wrongPin, '--state', join(dir, 'pin')], env);
  assert.equal(pinned.code, 6, pinned.stderr);
  assert.match(pinned.stderr, /does not present the CA this token pins/);

  const d = await startProcess(t, process.execPath, [STORMD_BIN, 'start', '--state', dstate, '--listen', `127.0.0.1:${port}`, '--libvirt-uri', 'test:///default'], { ready: /^stormd ready: /, env });
  assert.match(d.output(), /stormd ready: hv1 listening on 127\.0\.0\.1:\d+/);

  const show = storm(['host', 'show', 'hv1', '-o', 'json'], { env });
  assert.equal(show.code, 0, show.stderr);
  const host = JSON.parse(show.stdout);
  assert.equal(host.state, 'online', show.stdout);
  assert.equal(host.info.name, 'hv1');
  assert.ok(host.info.cpus >= 1);
  assert.ok(['kvm', 'tcg'].includes(host.info.accel));
  assert.equal(host.info.libvirtVersion !== undefined, true);
  assert.ok(host.info.health.some((h: { component: string; status: string }) => h.component === 'libvirtd' && h.status === 'healthy'));
  // For people: one fact per line, libvirt and its health among them.
  const text = storm(['host', 'show', 'hv1'], { env });
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^state: +online$/m);
  assert.match(text.stdout, /^libvirt: +\S+ at test:\/\/\/default, (KVM|TCG)/m);
  assert.match(text.stdout, /^instances: +0$/m);
  assert.match(text.stdout, new RegExp(`^certificate: +${host.certSerial}, valid until `, 'm'));
  assert.match(text.stdout, /^health: +healthy +libvirtd: /m);

  // Materials for the matrix.
  const pki = join(state, 'pki');
  const caFile = join(pki, 'ca.pem');
  const ca = readFileSync(caFile, 'utf8');
  const caKey = readFileSync(join(pki, 'ca.key'), 'utf8');
  const files = (name: string, key: string, cert: string) => {
    writeFileSync(join(dir, `${name}.key`), key, { mode: 0o600 });
    writeFileSync(join(dir, `${name}.pem`), cert);
    return { key: join(dir, `${name}.key`), cert: join(dir, `${name}.pem`), ca: caFile, keyPem: key, certPem: cert };
  };
  const mint = (name: string, role: 'manager' | 'stormd' | 'instance', issuer: { certPem: string; keyPem: string }, from: number, to: number) => {
    const k = newKeyPair();
    const now = Date.now();
    return files(name, k.privateKeyPem, mintCertificate({ serial: newSerial(), role, commonName: name, publicKeyPem: k.publicKeyPem, notBefore: new Date(now + from), notAfter: new Date(now + to), issuer }));
  };
  const manager = files('manager', readFileSync(join(pki, 'manager.key'), 'utf8'), readFileSync(join(pki, 'manager.pem'), 'utf8'));
  const foreignCa = newKeyPair();
  const foreignCaPem = mintCertificate({ serial: newSerial(), role: 'ca', commonName: 'STORM CA', publicKeyPem: foreignCa.publicKeyPem, notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY), selfKeyPem: foreignCa.privateKeyPem });
  const foreign = mint('foreign', 'manager', { certPem: foreignCaPem, keyPem: foreignCa.privateKeyPem }, -DAY, DAY);
  const expired = mint('expired', 'manager', { certPem: ca, keyPem: caKey }, -2 * DAY, -DAY);
  const instance = mint('instance', 'instance', { certPem: ca, keyPem: caKey }, -DAY, DAY);
  const posing = files('posing', readFileSync(join(dstate, 'pki', 'key.pem'), 'utf8'), readFileSync(join(dstate, 'pki', 'cert.pem'), 'utf8'));

  const works = (out: string) => /HTTP\/1\.1 200/.test(out) && /<methodResponse>/.test(out) && /hv1/.test(out);
  // Positive control first: the same probe with the manager's certificate gets an answer.
  assert.ok(works(sClient(port, manager)), 'the manager certificate is served');
  const ok = await rpcPost(port, { key: manager.keyPem, cert: manager.certPem, ca });
  assert.ok('status' in ok && ok.status === 200 && /<methodResponse>/.test(ok.body) && !/faultCode/.test(ok.body), JSON.stringify(ok));

  // Each refusal must be for the right reason: stormd logs why it closed the connection.
  const refused: [string, { cert?: string; key?: string; ca: string; keyPem?: string; certPem?: string }, RegExp][] = [
    ['no certificate', { ca: caFile }, /refused a peer.*(did not return a certificate|certificate required|NO_CERTIFICATE)/i],
    ['a certificate from another CA', foreign, /refused a peer.*(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER|unable to (verify|get))/],
    ['an expired certificate', expired, /refused a peer.*CERT_HAS_EXPIRED/],
    ['an instance certificate', instance, /refused a peer.*has role instance; only manager may call/],
  ];
  for (const [what, c, why] of refused) {
    const out = sClient(port, c);
    assert.ok(!works(out) && !/HTTP\/1\.1/.test(out), `openssl s_client with ${what} must be refused; got:\n${out}`);
    const r = await rpcPost(port, { ca, ...(c.keyPem ? { key: c.keyPem, cert: c.certPem } : {}) });
    assert.ok('error' in r, `Node client with ${what} must be refused; got ${JSON.stringify(r)}`);
    await d.waitFor(why, 10_000);
  }
  // A stormd certificate connects (peers pull exported instance layers) but may not command: 403.
  const out = sClient(port, posing);
  assert.ok(!works(out) && /HTTP\/1\.1 403/.test(out), `a stormd certificate posing as the manager must get 403; got:\n${out}`);
  const r = await rpcPost(port, { ca, key: posing.keyPem, cert: posing.certPem });
  assert.ok('status' in r && r.status === 403, JSON.stringify(r));
  await d.waitFor(/refused a peer.*certificate hv1 has role stormd; only manager may call/, 10_000);

  // Revocation: revoke the manager's own certificate (key compromise). The manager re-keys, pushes
  // the new CRL to stormd with its new certificate, and the old one is refused from then on.
  const serial = (JSON.parse(storm(['pki', 'list', '-o', 'json'], { env }).stdout) as { serial: string; role: string; revokedAt?: string }[]).find((c) => c.role === 'manager' && !c.revokedAt)!.serial;
  const rv = storm(['pki', 'revoke', serial, '--yes', '-o', 'json'], { env });
  assert.equal(rv.code, 0, rv.stderr);
  const crlNumber = Number(/CRL Number: *\n\s*(\d+)/.exec(spawnSync('openssl', ['crl', '-in', join(pki, 'crl.pem'), '-noout', '-text'], { encoding: 'utf8' }).stdout)?.[1]);
  for (let i = 0; i < 100; i++) {
    const h = JSON.parse(storm(['host', 'show', 'hv1', '-o', 'json'], { env }).stdout);
    if (h.state === 'online' && h.info.crlNumber >= crlNumber) break;
    await sleep(200);
  }
  const after = JSON.parse(storm(['host', 'show', 'hv1', '-o', 'json'], { env }).stdout);
  assert.equal(after.state, 'online', 'the manager still commands stormd with its new certificate');
  assert.ok(after.info.crlNumber >= crlNumber, `stormd has CRL ${after.info.crlNumber}, want ${crlNumber}`);
  const revokedOut = sClient(port, manager);
  assert.ok(!works(revokedOut) && !/HTTP\/1\.1/.test(revokedOut), `a revoked certificate must be refused; got:\n${revokedOut}`);
  assert.ok('error' in (await rpcPost(port, { key: manager.keyPem, cert: manager.certPem, ca })), 'Node client with the revoked certificate is refused');
  await d.waitFor(/refused a peer.*CERT_REVOKED/, 10_000);
  const fresh = files('fresh', readFileSync(join(pki, 'manager.key'), 'utf8'), readFileSync(join(pki, 'manager.pem'), 'utf8'));
  assert.notEqual(fresh.certPem, manager.certPem);
  assert.ok(works(sClient(port, fresh)), 'the re-keyed manager certificate works');

  // Removing the host revokes its certificate.
  const hostSerial = after.certSerial as string;
  const rm = storm(['host', 'remove', 'hv1', '--yes'], { env });
  assert.equal(rm.code, 0, rm.stderr);
  const certs = JSON.parse(storm(['pki', 'list', '-o', 'json'], { env }).stdout) as { serial: string; revokedAt?: string }[];
  assert.ok(certs.find((c) => c.serial === hostSerial)?.revokedAt, 'host certificate revoked');
  const verify = spawnSync('openssl', ['verify', '-crl_check', '-CAfile', caFile, '-CRLfile', join(pki, 'crl.pem'), posing.cert], { encoding: 'utf8' });
  assert.match(verify.stdout + verify.stderr, /certificate revoked/);
});
