// storm user|group|principal against a real manager process, checked with
// the real clients: ldapwhoami/ldapsearch on its LDAP port, kinit on its KDC.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../lib/exec.ts';
import { freePort, freeTcpUdpPort } from '../helpers/ports.ts';
import { storm, startManagerProcess } from '../helpers/storm.ts';
import { tempDir } from '../helpers/tmp.ts';

test('storm user/group/principal drive LDAP and Kerberos together', async (t) => {
  const state = tempDir(t);
  const ldapPort = await freePort();
  const ldapsPort = await freePort();
  const env = {
    ...process.env,
    STORM_STATE: state,
    STORM_SSH_LISTEN: `127.0.0.1:${await freePort()}`,
    STORM_DNS_DOMAIN: 'cli.storm',
    STORM_LDAP_LISTEN: `127.0.0.1:${ldapPort}`,
    STORM_LDAPS_LISTEN: `127.0.0.1:${ldapsPort}`,
    STORM_ENROLL_LISTEN: `127.0.0.1:${await freePort()}`,
    STORM_KDC_LISTEN: `127.0.0.1:${await freeTcpUdpPort()}`,
    STORM_KADMIND_LISTEN: `127.0.0.1:${await freePort()}`,
    STORM_KPASSWD_LISTEN: `127.0.0.1:${await freeTcpUdpPort()}`,
  };
  await startManagerProcess(t, state, [], env);
  const base = 'dc=cli,dc=storm';
  const aliceDn = `uid=alice,ou=people,${base}`;
  const clientEnv = { PATH: process.env.PATH, HOME: state, KRB5_CONFIG: join(state, 'krb5', 'krb5.conf') };
  let n = 0;
  const kinit = (who: string, pw: string) => run('kinit', [who], { env: { ...clientEnv, KRB5CCNAME: `FILE:${join(state, `cc${++n}`)}` }, input: pw + '\n' });
  const whoami = (dn: string, pw: string) => run('ldapwhoami', ['-x', '-H', `ldap://127.0.0.1:${ldapPort}`, '-D', dn, '-w', pw], { env: clientEnv });

  // add, with the password on stdin.
  const add = storm(['user', 'add', 'alice', '--password-stdin', '--cn', 'Alice Liddell', '--mail', 'alice@cli.storm', '-o', 'json'], { env, input: 'wonderland-1\n' });
  assert.equal(add.code, 0, add.stderr);
  const alice = JSON.parse(add.stdout);
  assert.equal(alice.name, 'alice');
  assert.equal(alice.uidNumber, 10000);
  assert.equal(alice.principal, 'alice@CLI.STORM');
  assert.equal(alice.dn, aliceDn);
  assert.equal(alice.passwordHash, undefined, 'the hash never leaves the manager');
  assert.equal(alice.hasPassword, true);

  assert.equal((await kinit('alice', 'wonderland-1')).code, 0, 'kinit with the right password');
  assert.notEqual((await kinit('alice', 'looking-glass')).code, 0, 'kinit with a wrong one fails');
  const w = await whoami(aliceDn, 'wonderland-1');
  assert.equal(w.stdout.trim(), `dn:${aliceDn}`, w.stderr);

  // StartTLS and LDAPS present the manager's certificate, which verifies against the manager's CA.
  const tlsEnv = { ...clientEnv, LDAPTLS_CACERT: join(state, 'pki', 'ca.pem') };
  const zz = await run('ldapwhoami', ['-x', '-ZZ', '-H', `ldap://127.0.0.1:${ldapPort}`, '-D', aliceDn, '-w', 'wonderland-1'], { env: tlsEnv });
  assert.equal(zz.stdout.trim(), `dn:${aliceDn}`, zz.stderr);
  const ldaps = await run('ldapwhoami', ['-x', '-H', `ldaps://127.0.0.1:${ldapsPort}`, '-D', aliceDn, '-w', 'wonderland-1'], { env: tlsEnv });
  assert.equal(ldaps.stdout.trim(), `dn:${aliceDn}`, ldaps.stderr);
  const noCa = await run('ldapwhoami', ['-x', '-ZZ', '-H', `ldap://127.0.0.1:${ldapPort}`, '-D', aliceDn, '-w', 'wonderland-1'], { env: { ...clientEnv, LDAPTLS_CACERT: '/dev/null' } });
  assert.notEqual(noCa.code, 0, 'without the CA the certificate does not verify');

  // list / show in every format.
  const list = JSON.parse(storm(['user', 'list', '-o', 'json'], { env }).stdout);
  assert.deepEqual(list.map((u: { name: string }) => u.name), ['alice']);
  assert.match(storm(['user', 'list'], { env }).stdout, /^NAME\s+UID\s+GID\s+FULL NAME\s+STATE\s+GROUPS\nalice\s+10000\s+10000\s+Alice Liddell\s+active/m);
  assert.equal(storm(['user', 'show', 'alice', '-o', 'name'], { env }).stdout, 'alice\n');
  assert.match(storm(['user', 'show', 'alice', '-o', 'yaml'], { env }).stdout, /principal: "?alice@CLI\.STORM"?$/m);
  const shown = storm(['user', 'show', 'alice'], { env }).stdout;
  assert.match(shown, /^state: +active$/m);
  assert.match(shown, /^principal: +alice@CLI\.STORM$/m);
  assert.match(shown, new RegExp(`^dn: +${aliceDn}$`, 'm'));

  // set: descriptive fields, visible over LDAP at once.
  const set = JSON.parse(storm(['user', 'set', 'alice', '--shell', '/bin/zsh', '--mail', '', '-o', 'json'], { env }).stdout);
  assert.equal(set.shell, '/bin/zsh');
  assert.equal(set.mail, undefined);
  assert.equal(storm(['user', 'set', 'alice'], { env }).code, 2);
  assert.equal(storm(['user', 'set', 'alice', '--shell', 'zsh'], { env }).code, 2);

  // groups and membership.
  assert.equal(storm(['group', 'add', 'ops', '--description', 'operators', '-o', 'json'], { env }).code, 0);
  const joined = JSON.parse(storm(['group', 'member', 'add', 'ops', 'alice', '-o', 'json'], { env }).stdout);
  assert.deepEqual(joined.members, ['alice']);
  const s = await run('ldapsearch', ['-x', '-LLL', '-H', `ldap://127.0.0.1:${ldapPort}`, '-D', aliceDn, '-w', 'wonderland-1', '-b', base, '(memberUid=alice)', 'cn'], { env: clientEnv });
  assert.match(s.stdout, /^cn: ops$/m);
  assert.deepEqual(JSON.parse(storm(['group', 'show', 'ops', '-o', 'json'], { env }).stdout).members, ['alice']);
  assert.match(storm(['group', 'show', 'ops'], { env }).stdout, /^members: +alice\ndescription: +operators$/m);
  assert.deepEqual(JSON.parse(storm(['group', 'member', 'remove', 'ops', 'alice', '-o', 'json'], { env }).stdout).members, []);
  assert.equal(storm(['group', 'member', 'frob', 'ops', 'alice'], { env }).code, 2);
  assert.deepEqual(JSON.parse(storm(['group', 'list', '-o', 'json'], { env }).stdout).map((g: { name: string }) => g.name), ['ops', 'users']);

  // passwd: stdin only, both sides change.
  const noStdin = storm(['user', 'passwd', 'alice'], { env });
  assert.equal(noStdin.code, 2);
  assert.match(noStdin.stderr, /--password-stdin/);
  assert.equal(storm(['user', 'passwd', 'alice', '--password-stdin'], { env, input: 'rabbit-hole-2\n' }).code, 0);
  assert.equal((await kinit('alice', 'rabbit-hole-2')).code, 0);
  assert.equal((await whoami(aliceDn, 'rabbit-hole-2')).code, 0);
  assert.notEqual((await whoami(aliceDn, 'wonderland-1')).code, 0);

  // A password changed over LDAP (ldappasswd) reaches Kerberos too.
  const lp = await run('ldappasswd', ['-x', '-H', `ldap://127.0.0.1:${ldapPort}`, '-D', aliceDn, '-w', 'rabbit-hole-2', '-s', 'tea-party-3'], { env: clientEnv });
  assert.equal(lp.code, 0, lp.stderr);
  assert.equal((await kinit('alice', 'tea-party-3')).code, 0);
  assert.notEqual((await kinit('alice', 'rabbit-hole-2')).code, 0);
  assert.equal(storm(['user', 'passwd', 'alice', '--password-stdin'], { env, input: 'rabbit-hole-2\n' }).code, 0);

  // lock / unlock.
  assert.equal(JSON.parse(storm(['user', 'lock', 'alice', '-o', 'json'], { env }).stdout).locked, true);
  assert.equal((await whoami(aliceDn, 'rabbit-hole-2')).code, 49);
  assert.notEqual((await kinit('alice', 'rabbit-hole-2')).code, 0);
  assert.equal(storm(['user', 'unlock', 'alice'], { env }).code, 0);
  assert.equal((await whoami(aliceDn, 'rabbit-hole-2')).code, 0);

  // principals.
  const pr = JSON.parse(storm(['principal', 'list', '-o', 'json'], { env }).stdout) as { name: string; kind: string }[];
  assert.ok(pr.some((p) => p.name === 'alice@CLI.STORM' && p.kind === 'user'));
  assert.ok(pr.some((p) => p.name === 'krbtgt/CLI.STORM@CLI.STORM' && p.kind === 'system'));
  assert.deepEqual(JSON.parse(storm(['principal', 'list', '--kind', 'user', '-o', 'json'], { env }).stdout).map((p: { name: string }) => p.name), ['alice@CLI.STORM']);

  // Bad input: clear errors with exit codes, in JSON when asked.
  const bad = storm(['user', 'add', "bob'; drop", '-o', 'json'], { env });
  assert.equal(bad.code, 2);
  assert.equal(JSON.parse(bad.stderr).error.code, 'invalid');
  assert.equal(storm(['user', 'add', 'alice'], { env }).code, 4, 'conflict');
  assert.equal(storm(['user', 'show', 'zed'], { env }).code, 3, 'not found');
  const short = storm(['user', 'add', 'bob', '--password-stdin'], { env, input: 'short\n' });
  assert.equal(short.code, 2);
  assert.match(short.stderr, /too short/);

  // remove: destructive, needs --yes without a terminal.
  assert.equal(storm(['user', 'remove', 'alice'], { env }).code, 8);
  assert.equal(storm(['user', 'remove', 'alice', '--yes'], { env }).code, 0);
  assert.notEqual((await kinit('alice', 'rabbit-hole-2')).code, 0);
  assert.equal((await whoami(aliceDn, 'rabbit-hole-2')).code, 49);
  assert.equal(storm(['group', 'remove', 'ops', '--yes'], { env }).code, 0);

  // The admin identity's password is kept owner-only; doctor knows the LDAP port; health as data.
  assert.equal(statSync(join(state, 'directory', 'admin.password')).mode & 0o777, 0o600);
  const adminPw = readFileSync(join(state, 'directory', 'admin.password'), 'utf8').trim();
  assert.equal((await whoami(`cn=admin,${base}`, adminPw)).stdout.trim(), `dn:cn=admin,${base}`);
  const ds = JSON.parse(storm(['directory', 'status', '-o', 'json'], { env }).stdout) as { component: string; status: string; reason: string }[];
  assert.deepEqual(ds.map((h) => [h.component, h.status]), [['ldap', 'healthy'], ['kerberos', 'healthy'], ['directory-sync', 'healthy']], JSON.stringify(ds));
  assert.doesNotMatch(ds[1]!.reason, /kadmind down/);
  assert.deepEqual(JSON.parse(storm(['directory', 'hosts', '-o', 'json'], { env }).stdout), []);
  const doc = JSON.parse(storm(['doctor', '-o', 'json'], { env }).stdout) as { component: string; status: string }[];
  assert.equal(doc.find((h) => h.component === 'ldap-port')?.status, 'healthy');
});
