/**
 * The appliances' XML-RPC API end to end with the client instances use
 * (Python's xmlrpc.client over mutual TLS): an instance reads its own
 * configuration with the certificate provisioning put in its instance layer,
 * registers MX records that dig then sees, asks for instances only with a
 * grant; every other certificate (none, stormd, manager, foreign, revoked,
 * destroyed instance) is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { certFacts } from '../../lib/tls/x509.ts';
import { join } from 'node:path';
import { run as exec } from '../../lib/exec.ts';
import { run } from '../../lib/exec.ts';
import { PACKAGE_ROOT } from '../../lib/paths.ts';
import { mintCertificate, newKeyPair, newSerial } from '../../manager/pki/forge-util.ts';
import type { InstanceRecord } from '../../manager/instances/model.ts';
import type { StormEvent } from '../../manager/events.ts';
import { tempDir } from '../helpers/tmp.ts';
import { freePort, freeTcpUdpPort } from '../helpers/ports.ts';
import { startManagerProcess, storm } from '../helpers/storm.ts';
import { pemFiles, pyCall, startApiLab, stormAsync, type PyResult } from '../helpers/appliance-api.ts';

const EXAMPLE = join(PACKAGE_ROOT, 'docs', 'examples', 'storm-api-client.py');

const ok = (r: PyResult): any => {
  assert.ok('ok' in r, `expected a result, got ${JSON.stringify(r)}`);
  return r.ok;
};
const fault = (r: PyResult, code: string, re?: RegExp) => {
  assert.ok('fault' in r, `expected a ${code} fault, got ${JSON.stringify(r)}`);
  assert.equal(r.error.code, code, JSON.stringify(r));
  if (re) assert.match(`${r.error.message} ${r.error.hint ?? ''}`, re);
};
const refused = (r: PyResult) => assert.ok('refused' in r, `expected the connection refused, got ${JSON.stringify(r)}`);

test('an instance reads its own configuration and registers MX with the certificate from its instance layer', async (t) => {
  const lab = await startApiLab(t);
  const web1 = await lab.create('web1', { site: 'Intranet' });
  const web2 = await lab.create('web2', { site: 'Other' });
  const etc = lab.etc(web1);
  const url = readFileSync(join(etc, 'manager'), 'utf8').trim();
  assert.equal(url, `https://127.0.0.1:${lab.m.applianceApi.port}/RPC2`);
  const me = { url, ca: join(etc, 'tls', 'ca.crt'), cert: join(etc, 'tls', 'instance.crt'), key: join(etc, 'tls', 'instance.key') };

  // The documented example (docs/xmlrpc-api.md carries this very file) runs as is: config, status, MX.
  assert.ok(readFileSync(join(PACKAGE_ROOT, 'docs', 'xmlrpc-api.md'), 'utf8').includes(readFileSync(EXAMPLE, 'utf8').trim()), 'docs/xmlrpc-api.md must show docs/examples/storm-api-client.py verbatim');
  const ex = await exec('python3', [EXAMPLE, etc], { timeoutMs: 60_000 });
  assert.equal(ex.code, 0, ex.stderr);
  const out = JSON.parse(ex.stdout);
  assert.equal(out.config.id, web1.id);
  assert.equal(out.config.name, 'web1');
  assert.equal(out.config.fqdn, 'web1.storm.internal');
  assert.deepEqual(out.config.parameters, { site: 'Intranet' });
  assert.equal(out.config.appliance, 'wiki');
  assert.equal(out.config.manager.address, '127.0.0.1');
  assert.equal(out.config.manager.api, url);
  assert.deepEqual(out.config.services.dns, { server: '127.0.0.1', port: lab.dnsPort, domain: 'storm.internal' });
  assert.equal(out.mx.name, 'web1.storm.internal');

  // dig against the manager's DNS sees the MX the instance registered.
  const dig = async (...a: string[]) => (await run('dig', ['@127.0.0.1', '-p', String(lab.dnsPort), '+time=2', '+tries=1', '+short', ...a])).stdout.trim();
  assert.equal(await dig('web1.storm.internal', 'MX'), '10 web1.storm.internal.');

  // No argument names another instance: a forged one is refused, not used.
  fault(await pyCall({ ...me, method: 'config.get', params: [{ name: 'web2' }] }), 'invalid', /unexpected parameter "name"/);
  fault(await pyCall({ ...me, method: 'config.get', params: [{ id: web2.id }] }), 'invalid', /unexpected parameter "id"/);
  assert.equal(ok(await pyCall({ ...me, method: 'config.get' })).name, 'web1');
  // MX only for its own name; the domain only with the @mx grant; the exchanger is itself.
  fault(await pyCall({ ...me, method: 'mx.register', params: [{ name: 'web2.storm.internal' }] }), 'unauthorized', /only for web1\.storm\.internal/);
  fault(await pyCall({ ...me, method: 'mx.register', params: [{ name: 'storm.internal' }] }), 'unauthorized', /storm grant add web1 @mx/);
  fault(await pyCall({ ...me, method: 'mx.register', params: [{ exchange: 'evil.example.com' }] }), 'unauthorized', /must be this instance/);
  fault(await pyCall({ ...me, method: 'mx.register', params: [{ priority: 70000 }] }), 'invalid');
  // Registering the same record again (every boot does) is no change; another priority is a conflict.
  assert.equal(ok(await pyCall({ ...me, method: 'mx.register' })).name, 'web1.storm.internal');
  fault(await pyCall({ ...me, method: 'mx.register', params: [{ priority: 20 }] }), 'conflict', /already exists/);
  assert.equal((await stormAsync(['grant', 'add', 'web1', '@mx'], lab.env)).code, 0);
  assert.equal(ok(await pyCall({ ...me, method: 'mx.register', params: [{ name: '@', priority: 5 }] })).name, 'storm.internal');
  assert.equal(await dig('storm.internal', 'MX'), '5 web1.storm.internal.');
  const mine = ok(await pyCall({ ...me, method: 'mx.list' })) as { name: string }[];
  assert.deepEqual(mine.map((r) => r.name).sort(), ['storm.internal', 'web1.storm.internal']);

  // web2 sees none of web1's records and cannot remove them.
  const etc2 = lab.etc(web2);
  const other = { url, ca: join(etc2, 'tls', 'ca.crt'), cert: join(etc2, 'tls', 'instance.crt'), key: join(etc2, 'tls', 'instance.key') };
  assert.equal(ok(await pyCall({ ...other, method: 'config.get' })).name, 'web2');
  assert.deepEqual(ok(await pyCall({ ...other, method: 'mx.list' })), []);
  fault(await pyCall({ ...other, method: 'mx.remove', params: [{ name: 'web1.storm.internal' }] }), 'unauthorized');
  fault(await pyCall({ ...other, method: 'mx.remove' }), 'not_found');
  assert.equal(await dig('web1.storm.internal', 'MX'), '10 web1.storm.internal.');

  // status.report is stored and shown as an event; keytab is unavailable until Kerberos is wired.
  const events: StormEvent[] = [];
  const unsub = lab.m.bus.subscribe((e) => events.push(e));
  t.after(unsub);
  ok(await pyCall({ ...other, method: 'status.report', params: [{ status: 'degraded', message: 'disk 91% full' }] }));
  const reports = await lab.m.api({ actor: 'test', readOnly: false }).call<{ instance: string; status: string; message: string }[]>('api.reports');
  assert.deepEqual(reports.map((r) => [r.instance, r.status, r.message]), [['web1', 'ready', 'services started'], ['web2', 'degraded', 'disk 91% full']]);
  assert.ok(events.some((e) => e.kind === 'instance.report' && e.object === 'instance/web2' && e.level === 'warn'));
  // keytab.get: the instance's own host keytab from the manager's Kerberos (enrolled when the instance was created).
  let got = await pyCall({ ...me, method: 'keytab.get' });
  // The directory enrols the instance on the same event that issued its certificate: wait for it if it is behind.
  for (let i = 0; i < 100 && 'fault' in got && got.error.code === 'not_found'; i++) {
    await new Promise((r) => setTimeout(r, 50));
    got = await pyCall({ ...me, method: 'keytab.get' });
  }
  const kt = ok(got) as { principal: string; keytab: string };
  assert.equal(kt.principal, 'host/web1.storm.internal@STORM.INTERNAL');
  const ktFile = join(lab.dir, 'web1.keytab');
  writeFileSync(ktFile, Buffer.from(kt.keytab, 'base64'));
  const kl = await exec('klist', ['-k', ktFile]);
  assert.equal(kl.code, 0, kl.stderr);
  assert.match(kl.stdout, /host\/web1\.storm\.internal@STORM\.INTERNAL/);
  assert.doesNotMatch(kl.stdout, /web2/);
  // The keytab fetched over the API lets kinit -k succeed against the manager's own KDC.
  const ki = await exec('kinit', ['-k', '-t', ktFile, 'host/web1.storm.internal@STORM.INTERNAL'], {
    env: { PATH: process.env.PATH, KRB5_CONFIG: join(lab.state, 'krb5', 'krb5.conf'), KRB5CCNAME: `FILE:${join(lab.dir, 'cc-web1')}` },
    timeoutMs: 20_000,
  });
  assert.equal(ki.code, 0, ki.stderr);
  assert.equal((ok(await pyCall({ ...other, method: 'keytab.get' })) as { principal: string }).principal, 'host/web2.storm.internal@STORM.INTERNAL');
  const svcs = ok(await pyCall({ ...me, method: 'config.get' })).services;
  assert.equal(svcs.kerberos.realm, 'STORM.INTERNAL');
  assert.match(svcs.kerberos.kdc, /^127\.0\.0\.1:\d+$/);
  assert.deepEqual(Object.keys(svcs.ldap).sort(), ['baseDn', 'uri']);
  assert.equal(svcs.ldap.baseDn, 'dc=storm,dc=internal');
  // Without a Kerberos provider the method says so.
  lab.m.applianceApi.setDirectory({});
  fault(await pyCall({ ...me, method: 'keytab.get' }), 'unavailable', /no Kerberos/);
  assert.deepEqual(Object.keys(ok(await pyCall({ ...me, method: 'config.get' })).services), ['dns']);

  // Every call is an event: who, what, when.
  const calls = events.filter((e) => e.kind === 'api.call');
  assert.ok(calls.some((e) => e.object === 'instance/web2' && e.data?.method === 'status.report' && e.data?.ok === true && typeof e.t === 'string'));
  assert.ok(calls.some((e) => e.object === 'instance/web1' && e.data?.method === 'keytab.get' && e.data?.code === 'unavailable'));
});

test('instance.create: refused without a grant, accepted with one; the new instance is marked createdBy', async (t) => {
  const lab = await startApiLab(t, { 'api-create-limit': '2' });
  const web1 = await lab.create('web1');
  const etc = lab.etc(web1);
  const me = { url: readFileSync(join(etc, 'manager'), 'utf8').trim(), ca: join(etc, 'tls', 'ca.crt'), cert: join(etc, 'tls', 'instance.crt'), key: join(etc, 'tls', 'instance.key') };
  const ask = (params: Record<string, unknown>) => pyCall({ ...me, method: 'instance.create', params: [params] });

  fault(await ask({ name: 'child1', appliance: 'mail' }), 'unauthorized', /may not create instances of "mail"/);
  assert.equal((await stormAsync(['grant', 'add', 'web1', 'mail'], lab.env)).code, 0);
  const list = await stormAsync(['grant', 'list', '-o', 'json'], lab.env);
  assert.deepEqual(JSON.parse(list.stdout).map((g: { instance: string; appliance: string }) => [g.instance, g.appliance]), [['web1', 'mail']]);
  fault(await ask({ name: 'child1', appliance: 'wiki' }), 'unauthorized'); // the grant is per appliance
  fault(await ask({ name: 'child1', appliance: 'mail', parameters: ['x'] }), 'invalid');
  fault(await ask({ name: 'Bad Name', appliance: 'mail' }), 'invalid');
  const c = ok(await ask({ name: 'child1', appliance: 'mail', parameters: { role: 'relay' } }));
  assert.equal(c.createdBy, 'instance:web1');
  const child = await lab.running('child1');
  assert.equal(child.createdBy, 'instance:web1');
  assert.equal(child.appliance, 'mail');
  assert.deepEqual(child.params, { role: 'relay' });
  // It appears like any other instance, and gets its own certificate.
  const shown = await stormAsync(['instance', 'list', '-o', 'json'], lab.env);
  assert.ok((JSON.parse(shown.stdout) as InstanceRecord[]).some((i) => i.name === 'child1' && i.createdBy === 'instance:web1'), shown.stdout);
  const cetc = lab.etc(child);
  const cc = { ...me, cert: join(cetc, 'tls', 'instance.crt'), key: join(cetc, 'tls', 'instance.key') };
  assert.equal(ok(await pyCall({ ...cc, method: 'config.get' })).createdBy, 'instance:web1');
  // The child has no grant of its own.
  fault(await pyCall({ ...cc, method: 'instance.create', params: [{ name: 'child2', appliance: 'mail' }] }), 'unauthorized');
  // At most apiCreateLimit live instances per asking instance.
  ok(await ask({ name: 'child2', appliance: 'mail' }));
  fault(await ask({ name: 'child9', appliance: 'mail' }), 'conflict', /limit is 2/);
  // Withdrawn: refused again.
  assert.equal((await stormAsync(['grant', 'remove', 'web1', 'mail', '--yes'], lab.env)).code, 0);
  fault(await ask({ name: 'child3', appliance: 'mail' }), 'unauthorized');
  assert.equal((await stormAsync(['grant', 'add', 'nosuch', 'mail'], lab.env)).code, 3);
});

test('no, foreign, stormd, manager, revoked and destroyed-instance certificates are refused', async (t) => {
  const lab = await startApiLab(t);
  const [web1, web2] = [await lab.create('web1'), await lab.create('web2')];
  const etc1 = lab.etc(web1);
  const etc2 = lab.etc(web2);
  const url = readFileSync(join(etc1, 'manager'), 'utf8').trim();
  const ca = join(etc1, 'tls', 'ca.crt');
  const as = (etc: string) => ({ url, ca, cert: join(etc, 'tls', 'instance.crt'), key: join(etc, 'tls', 'instance.key') });
  ok(await pyCall({ ...as(etc1), method: 'config.get' }));
  const events: StormEvent[] = [];
  t.after(lab.m.bus.subscribe((e) => events.push(e)));

  refused(await pyCall({ url, ca, method: 'config.get' }));
  const pki = lab.m.pki;
  const stormdCert = await pki.issueWithKey({ role: 'stormd', commonName: 'web1' });
  refused(await pyCall({ url, ca, ...pemFiles(lab.dir, 'stormd', stormdCert), method: 'config.get' }));
  refused(await pyCall({ url, ca, ...pemFiles(lab.dir, 'manager', pki.managerTls()), method: 'config.get' }));
  // A certificate saying role instance, CN web1, but from another CA.
  const k = newKeyPair();
  const otherCa = mintCertificate({ serial: newSerial(), role: 'ca', commonName: 'STORM CA', publicKeyPem: k.publicKeyPem, notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000), selfKeyPem: k.privateKeyPem });
  const fk = newKeyPair();
  const forged = mintCertificate({ serial: newSerial(), role: 'instance', commonName: 'web1', publicKeyPem: fk.publicKeyPem, notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000), issuer: { certPem: otherCa, keyPem: k.privateKeyPem } });
  refused(await pyCall({ url, ca, ...pemFiles(lab.dir, 'forged', { key: fk.privateKeyPem, cert: forged }), method: 'config.get' }));
  // An instance certificate of ours that no instance holds is refused by the API itself.
  const stray = await pki.issueInstance('web1');
  fault(await pyCall({ url, ca, ...pemFiles(lab.dir, 'stray', stray), method: 'config.get' }), 'unauthorized');

  // storm pki revoke: refused from the next connection on.
  const serial1 = (await lab.m.applianceApi.creds.list()).find((c) => c.name === 'web1')!.serial;
  const rv = await stormAsync(['pki', 'revoke', serial1, '--yes'], lab.env);
  assert.equal(rv.code, 0, rv.stderr);
  refused(await pyCall({ ...as(etc1), method: 'config.get' }));

  // instance destroy revokes the destroyed instance's certificate.
  ok(await pyCall({ ...as(etc2), method: 'mx.register' }));
  assert.equal((await stormAsync(['grant', 'add', 'web2', 'mail'], lab.env)).code, 0);
  const serial2 = (await lab.m.applianceApi.creds.list()).find((c) => c.name === 'web2')!.serial;
  // One the CA issued for web2 that nothing recorded (a manager killed between the CA's issue and the API's record).
  const unrecorded = await pki.issueInstance('web2');
  const d = await stormAsync(['instance', 'destroy', 'web2', '--yes'], lab.env);
  assert.equal(d.code, 0, d.stderr);
  await lab.m.applianceApi.idle();
  assert.ok(pki.isRevoked(serial2));
  assert.ok(pki.isRevoked(unrecorded.serial), 'what the CA issued under its name since it was created goes with it');
  assert.ok(!pki.isRevoked((await pki.list()).find((c) => c.commonName === 'web1' && c.serial !== serial1 && c.role === 'instance')!.serial), "another instance's certificates stay");
  // Its MX records and grants went with it.
  assert.deepEqual((await lab.m.dns.listRecords()).filter((r) => r.owner === 'instance:web2'), []);
  assert.equal((await stormAsync(['grant', 'list', '-o', 'json'], lab.env)).stdout.trim(), '[]');
  refused(await pyCall({ ...as(etc2), method: 'config.get' }));
  // A new instance with the old name gets a new certificate; the old one stays refused.
  const again = await lab.create('web2');
  const etc3 = lab.etc(again);
  assert.equal(ok(await pyCall({ ...as(etc3), method: 'config.get' })).id, again.id);
  refused(await pyCall({ ...as(etc2), method: 'config.get' }));
  // Refused connections are events too (who could not get in, and why).
  assert.ok(events.some((e) => e.kind === 'api.refused' && /role stormd/.test(e.message)), JSON.stringify(events.filter((e) => e.kind === 'api.refused').map((e) => e.message)));
  assert.ok(events.some((e) => e.kind === 'api.call' && e.data?.code === 'unauthorized'));
});

test('the API port taken is reported, not fatal; apiListen empty turns it off', async (t) => {
  const first = await startApiLab(t);
  const port = first.m.applianceApi.port!;
  const second = await startApiLab(t, { 'api-listen': `127.0.0.1:${port}` });
  const h = await second.m.api({ actor: 'test', readOnly: false }).call<{ status: string; reason: string }>('api.status');
  assert.equal(h.status, 'unhealthy');
  assert.match(h.reason, /EADDRINUSE/);
  // Instances still get certificates (and the rest of the manager works).
  const w = await second.create('web1');
  assert.ok(second.agent.instanceLayers.get(w.id)?.tls?.cert.includes('BEGIN CERTIFICATE'));
  const off = await startApiLab(t, { 'api-listen': '' });
  assert.equal((await off.m.api({ actor: 'test', readOnly: false }).call<{ status: string }>('api.status')).status, 'undetected');
});

test('certificate.renew: a new certificate for the instance’s own key; the old one is retired when the new one is first used', async (t) => {
  const lab = await startApiLab(t);
  const web1 = await lab.create('web1');
  const etc = lab.etc(web1);
  const url = readFileSync(join(etc, 'manager'), 'utf8').trim();
  const old = { url, ca: join(etc, 'tls', 'ca.crt'), cert: join(etc, 'tls', 'instance.crt'), key: join(etc, 'tls', 'instance.key') };
  const cfg = ok(await pyCall({ ...old, method: 'config.get' }));
  assert.ok(Date.parse(cfg.certificate.renewAfter) < Date.parse(cfg.certificate.notAfter));

  // The instance makes a new key and CSR itself (openssl here); the subject it asks for is ignored.
  const newKey = join(lab.dir, 'new.key');
  assert.equal((await exec('openssl', ['genrsa', '-out', newKey, '2048'])).code, 0);
  const csr = await exec('openssl', ['req', '-new', '-key', newKey, '-subj', '/O=STORM/OU=manager/CN=web2']);
  assert.equal(csr.code, 0, csr.stderr);
  fault(await pyCall({ ...old, method: 'certificate.renew', params: [{ csr: 'not a csr' }] }), 'invalid');
  const r = ok(await pyCall({ ...old, method: 'certificate.renew', params: [{ csr: csr.stdout }] }));
  const certPath = join(lab.dir, 'new.crt');
  writeFileSync(certPath, r.cert);
  const f = certFacts(r.cert);
  assert.deepEqual([f.role, f.commonName], ['instance', 'web1']);

  // Until the new one is used, the old one still works (a lost response does not lock the instance out).
  assert.equal(ok(await pyCall({ ...old, method: 'config.get' })).name, 'web1');
  const fresh = { ...old, cert: certPath, key: newKey };
  assert.equal(ok(await pyCall({ ...fresh, method: 'config.get' })).certificate.serial, r.serial);
  refused(await pyCall({ ...old, method: 'config.get' }));
  assert.equal(ok(await pyCall({ ...fresh, method: 'config.get' })).name, 'web1');
  // Destroying the instance revokes the renewed certificate too.
  assert.equal((await stormAsync(['instance', 'destroy', 'web1', '--yes'], lab.env)).code, 0);
  await lab.m.applianceApi.idle();
  refused(await pyCall({ ...fresh, method: 'config.get' }));
});

test('a manager process serves the API on --api-listen and manages grants from the CLI', async (t) => {
  const state = tempDir(t);
  const port = await freePort();
  const env = {
    ...process.env, STORM_STATE: state, STORM_SSH_LISTEN: `127.0.0.1:${await freePort()}`, STORM_ENROLL_LISTEN: '127.0.0.1:0',
    STORM_LDAP_LISTEN: '', STORM_LDAPS_LISTEN: '', STORM_KDC_LISTEN: `127.0.0.1:${await freeTcpUdpPort()}`, STORM_KADMIND_LISTEN: `127.0.0.1:${await freePort()}`, STORM_KPASSWD_LISTEN: `127.0.0.1:${await freeTcpUdpPort()}`,
  };
  await startManagerProcess(t, state, ['--api-listen', `127.0.0.1:${port}`], env);
  const st = storm(['api', 'status', '-o', 'json'], { env });
  assert.equal(st.code, 0, st.stderr);
  const h = JSON.parse(st.stdout);
  assert.equal(h.status, 'healthy', st.stdout);
  assert.equal(h.facts.url, `https://127.0.0.1:${port}/RPC2`);
  // Nobody without an instance certificate gets in.
  const r = await pyCall({ url: h.facts.url, ca: join(state, 'pki', 'ca.pem'), method: 'config.get' });
  refused(r);
  const bad = storm(['grant', 'add', 'nosuch', 'mail'], { env });
  assert.equal(bad.code, 3, bad.stderr);
  assert.match(bad.stderr, /nosuch/);
  assert.equal(storm(['grant', 'list', '-o', 'json'], { env }).stdout.trim(), '[]');
  assert.match(storm(['api', 'reports'], { env }).stdout, /^INSTANCE\s+STATUS/);
});

test('the API follows the CA: a re-keyed manager certificate is served at once, instances keep working', async (t) => {
  const lab = await startApiLab(t);
  const web1 = await lab.create('web1');
  const etc = lab.etc(web1);
  const me = { url: readFileSync(join(etc, 'manager'), 'utf8').trim(), ca: join(etc, 'tls', 'ca.crt'), cert: join(etc, 'tls', 'instance.crt'), key: join(etc, 'tls', 'instance.key') };
  const served = async () => {
    const out = await exec('openssl', ['s_client', '-connect', `127.0.0.1:${lab.m.applianceApi.port}`, '-CAfile', me.ca, '-cert', me.cert, '-key', me.key], { input: '', timeoutMs: 30_000 });
    const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(out.stdout)?.[0];
    assert.ok(pem, out.stdout + out.stderr);
    return certFacts(pem).serial;
  };
  const before = await served();
  assert.equal(before, certFacts(lab.m.pki.managerTls().cert).serial);
  // Revoking the manager's own certificate makes the CA issue a new one (and a new CRL).
  await lab.m.pki.revoke(before, 'test');
  const after = await served();
  assert.notEqual(after, before);
  assert.equal(after, certFacts(lab.m.pki.managerTls().cert).serial);
  assert.equal(ok(await pyCall({ ...me, method: 'config.get' })).name, 'web1');
});
