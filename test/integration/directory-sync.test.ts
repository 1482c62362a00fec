// A manager started on a store of 200 instances without directory entries
// (an upgrade, a restored store): it answers `storm instance list` at once,
// and the background sync ends with every LDAP host entry (seen through the
// real ldapsearch), host/ principal (the real MIT realm) and keytab present.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../lib/exec.ts';
import { startManagerProcess, stormJson } from '../helpers/storm.ts';
import { tempDir } from '../helpers/tmp.ts';
import { DOMAIN, syncManagerEnv, seedInstances, timedCli, waitSynced } from '../helpers/directory-sync.ts';

const COUNT = 200;

test('start on 200 instances without directory entries: list answers at once, the sync enrols every host for real', async (t) => {
  const dir = tempDir(t, 'storm-dirsync-');
  const state = join(dir, 'manager');
  const names = await seedInstances(join(state, 'db'), COUNT, 4);
  const env = await syncManagerEnv(state);
  await startManagerProcess(t, state, [], env);
  // The control socket is up before (or whatever the timing, independently of) the directory sync.
  const list = await timedCli(['instance', 'list', '-o', 'json'], env);
  assert.equal((JSON.parse(list.stdout) as unknown[]).length, COUNT);
  t.diagnostic(`instance list answered with the sync at ${list.syncState}`);
  const s = await waitSynced(env, 600_000);
  assert.equal(s.sync.state, 'done', s.reason);
  assert.equal(s.sync.total, COUNT);
  t.diagnostic(`sync of ${COUNT} took ${s.sync.seconds} s`);

  const hosts = await stormJson<{ fqdn: string; instance?: string }[]>(['directory', 'hosts'], env);
  assert.deepEqual(hosts.map((h) => h.instance).sort(), [...names].sort());
  const principals = await stormJson<{ short: string; kind: string }[]>(['principal', 'list'], env);
  const hostPrincipals = new Set(principals.filter((p) => p.kind === 'host').map((p) => p.short));
  for (const n of names) {
    assert.ok(hostPrincipals.has(`host/${n}.${DOMAIN}`), `principal host/${n}.${DOMAIN}`);
    const kt = join(state, 'krb5', 'keytabs', `${n}.${DOMAIN}.keytab`);
    assert.ok(existsSync(kt) && statSync(kt).size > 0, kt);
    assert.equal(statSync(kt).mode & 0o777, 0o600, kt);
  }
  // The real LDAP client sees every host entry.
  const base = 'dc=storm,dc=internal';
  const pw = readFileSync(join(state, 'directory', 'admin.password'), 'utf8').trim();
  const r = await run('ldapsearch', ['-x', '-LLL', '-H', `ldap://${env.STORM_LDAP_LISTEN}`, '-D', `cn=admin,${base}`, '-w', pw, '-b', `ou=hosts,${base}`, '-z', '0', '(objectClass=device)', 'cn'], { env: { PATH: process.env.PATH ?? '' }, timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  const cns = new Set([...r.stdout.matchAll(/^cn: (.+)$/gm)].map((m) => m[1]));
  for (const n of names) assert.ok(cns.has(`${n}.${DOMAIN}`), `LDAP entry ${n}.${DOMAIN}`);
  // The keytab works: the KDC issues a service ticket for one of the host principals.
  const realm = DOMAIN.toUpperCase();
  const krb5Conf = join(state, 'krb5', 'krb5.conf');
  if (existsSync(krb5Conf)) {
    const k = await run('kinit', ['-k', '-t', join(state, 'krb5', 'keytabs', `${names[7]}.${DOMAIN}.keytab`), `host/${names[7]}.${DOMAIN}@${realm}`], { env: { PATH: process.env.PATH ?? '', KRB5_CONFIG: krb5Conf, KRB5CCNAME: `FILE:${join(dir, 'cc')}` }, timeoutMs: 20_000 });
    assert.equal(k.code, 0, k.stderr);
  }
});
