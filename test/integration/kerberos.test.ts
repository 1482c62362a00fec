// The manager's MIT realm, for real: kdb5_util creates it, krb5kdc serves it,
// kadmin.local drives it; kinit/kvno are the clients.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../lib/exec.ts';
import { Directory } from '../../manager/directory/directory.ts';
import { DirectoryStore } from '../../manager/directory/store.ts';
import { checkPrincipal } from '../../manager/netsvc/kerberos/kadmin.ts';
import { KerberosService } from '../../manager/netsvc/kerberos/service.ts';
import { Store } from '../../manager/store/store.ts';
import { EventBus } from '../../manager/events.ts';
import { DirectorySync } from '../../manager/directory/sync.ts';
import { freePort, freeTcpUdpPort } from '../helpers/ports.ts';

const REALM = 'KRBTEST.STORM';
let dir: string;
let store: Store;
let krb: KerberosService;
let directory: Directory;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'storm-krb-'));
  store = await Store.open(join(dir, 'db'));
  const ds = await DirectoryStore.open(store, 'dc=krbtest,dc=storm');
  krb = new KerberosService({
    dir: join(dir, 'krb5'),
    realm: REALM,
    domain: 'krbtest.storm',
    kdc: { host: '127.0.0.1', port: await freeTcpUdpPort() },
    kadmind: { host: '127.0.0.1', port: await freePort() },
    kpasswd: { host: '127.0.0.1', port: await freeTcpUdpPort() },
    path: process.env.PATH ?? '',
    restartDelayMs: 100,
  });
  await krb.start();
  directory = new Directory({ store: ds, kerberos: krb });
});

after(async () => {
  await krb?.stop();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

const cleanups: (() => void)[] = [];
const t_after = (fn: () => void) => cleanups.push(fn);
after(() => cleanups.forEach((f) => f()));

let cc = 0;
/** A client run with the realm's own krb5.conf and a private credentials cache. */
const client = (cmd: string, args: string[], input?: string) =>
  run(cmd, args, { env: { PATH: process.env.PATH, KRB5_CONFIG: krb.paths.krb5Conf, KRB5CCNAME: `FILE:${join(dir, `cc${++cc}`)}` }, ...(input !== undefined ? { input } : {}), timeoutMs: 20_000 });
const kinit = (principal: string, password: string) => client('kinit', [principal], password + '\n');

test('the realm is created under its own directory with a 0600 master password', async () => {
  const st = await krb.status();
  assert.equal(st.status, 'healthy', JSON.stringify(st));
  assert.doesNotMatch(st.reason, /kadmind down/);
  assert.equal(typeof st.facts?.kadmindPid, 'number');
  for (const f of ['krb5.conf', 'kdc.conf', 'principal', 'stash', 'master.password']) assert.ok(existsSync(join(dir, 'krb5', f)), f);
  assert.equal(statSync(join(dir, 'krb5', 'master.password')).mode & 0o777, 0o600);
  assert.match(readFileSync(krb.paths.krb5Conf, 'utf8'), new RegExp(`default_realm = ${REALM}`));
});

test('kinit as a directory user: the right password works, a wrong one fails; passwd and lock follow', async () => {
  await directory.addUser({ name: 'alice', password: 'first-password' });
  const ok = await kinit('alice', 'first-password');
  assert.equal(ok.code, 0, ok.stderr);
  const wrong = await kinit('alice', 'not-the-password');
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /Password incorrect|Preauthentication failed/);
  // A password change reaches LDAP and Kerberos together.
  await directory.setPassword('alice', 'second-password');
  assert.equal((await kinit('alice', 'second-password')).code, 0);
  assert.notEqual((await kinit('alice', 'first-password')).code, 0);
  assert.ok(await directory.store.authenticate(directory.store.tree.get('uid=alice,ou=people,dc=krbtest,dc=storm')!.ndn, 'second-password'));
  // Locked: no tickets; unlocked: tickets again.
  await directory.setLocked('alice', true);
  const locked = await kinit('alice', 'second-password');
  assert.notEqual(locked.code, 0);
  assert.match(locked.stderr, /revoked|disabled|locked/i);
  await directory.setLocked('alice', false);
  assert.equal((await kinit('alice', 'second-password')).code, 0);
  // Listed, then gone with the user.
  assert.ok((await directory.principals()).some((p) => p.name === `alice@${REALM}` && p.kind === 'user'));
  await directory.removeUser('alice');
  assert.ok(!(await directory.principals()).some((p) => p.short === 'alice'));
});

test('a host principal per instance: kvno works, the kept keytab lets kinit -k succeed, removal deletes both', async () => {
  await directory.addUser({ name: 'bob', password: 'bob-password' });
  const h = await directory.addHost({ fqdn: 'web1.krbtest.storm', instance: 'web1' });
  assert.equal(h.principal, `host/web1.krbtest.storm@${REALM}`);
  const keytab = directory.keytabPath('web1.krbtest.storm');
  assert.equal(statSync(keytab).mode & 0o777, 0o600);
  assert.ok(directory.keytab('web1.krbtest.storm').length > 0);
  // Only the instance the host was enrolled for may fetch it.
  assert.deepEqual(directory.keytabFor({ instance: 'web1' }, 'web1.krbtest.storm'), readFileSync(keytab));
  assert.throws(() => directory.keytabFor({ instance: 'web2' }, 'web1.krbtest.storm'), { code: 'unauthorized' });

  // kvno: bob gets a service ticket for the host.
  const ccache = `FILE:${join(dir, 'bob-cc')}`;
  const kenv = { PATH: process.env.PATH, KRB5_CONFIG: krb.paths.krb5Conf, KRB5CCNAME: ccache };
  assert.equal((await run('kinit', ['bob'], { env: kenv, input: 'bob-password\n' })).code, 0);
  const kvno = await run('kvno', ['host/web1.krbtest.storm'], { env: kenv });
  assert.equal(kvno.code, 0, kvno.stderr);
  assert.match(kvno.stdout, /host\/web1\.krbtest\.storm@KRBTEST\.STORM: kvno = \d+/);

  const k = await client('kinit', ['-k', '-t', keytab, 'host/web1.krbtest.storm']);
  assert.equal(k.code, 0, k.stderr);
  // The keytab is for that host only.
  const other = await client('kinit', ['-k', '-t', keytab, 'host/web2.krbtest.storm']);
  assert.notEqual(other.code, 0);

  await directory.removeHost('web1.krbtest.storm');
  assert.equal(existsSync(keytab), false);
  assert.ok(!(await directory.principals()).some((p) => p.short === 'host/web1.krbtest.storm'));
  assert.throws(() => directory.keytab('web1.krbtest.storm'), { code: 'not_found' });
  // A fresh credentials cache (the old one still holds the service ticket).
  const fresh = { ...kenv, KRB5CCNAME: `FILE:${join(dir, 'bob-cc2')}` };
  assert.equal((await run('kinit', ['bob'], { env: fresh, input: 'bob-password\n' })).code, 0);
  assert.notEqual((await run('kvno', ['host/web1.krbtest.storm'], { env: fresh })).code, 0);
});

test('instances are enrolled and dropped as they come and go (bus events)', async () => {
  const bus = new EventBus();
  // Instances already enrolled by earlier tests are listed, so the start-up sync keeps them.
  const f = new DirectorySync({ bus, directory, domain: 'krbtest.storm', instances: { list: async () => directory.listHosts().flatMap((h) => (h.instance ? [{ name: h.instance }] : [])) } });
  await f.start();
  await f.idle();
  try {
    bus.emit({ kind: 'instance.created', object: 'instance/Web3', message: 'created' });
    await f.idle();
    const h = directory.listHosts().find((x) => x.fqdn === 'web3.krbtest.storm');
    assert.equal(h?.instance, 'web3');
    assert.equal(h?.principal, `host/web3.krbtest.storm@${REALM}`);
    const keytab = directory.keytabFor({ instance: 'web3' }, 'web3.krbtest.storm');
    // The address arrives later; the keys stay (the instance may have fetched its keytab already).
    bus.emit({ kind: 'instance.network', object: 'instance/web3', message: 'net', data: { ip: '10.77.0.9' } });
    await f.idle();
    assert.deepEqual(directory.listHosts().find((x) => x.fqdn === 'web3.krbtest.storm')?.addresses, ['10.77.0.9']);
    assert.deepEqual(directory.keytab('web3.krbtest.storm'), keytab);
    assert.equal((await client('kinit', ['-k', '-t', directory.keytabPath('web3.krbtest.storm'), 'host/web3.krbtest.storm'])).code, 0);
    // A name that cannot be a host name is an event, not an exception.
    bus.emit({ kind: 'instance.created', object: 'instance/bad_name', message: 'created' });
    await f.idle();
    assert.ok(bus.recent().some((e) => e.kind === 'instance.directory.failed' && e.object === 'instance/bad_name'));
    bus.emit({ kind: 'instance.destroyed', object: 'instance/web3', message: 'destroyed' });
    await f.idle();
    assert.equal(directory.listHosts().some((x) => x.fqdn === 'web3.krbtest.storm'), false);
    assert.ok(!(await directory.principals()).some((p) => p.short === 'host/web3.krbtest.storm'));
  } finally {
    await f.stop();
  }
});

test('reconcile: instances that exist get host entries, hosts of vanished instances go', async () => {
  await directory.addHost({ fqdn: 'gone.krbtest.storm', instance: 'gone' });
  await directory.addHost({ fqdn: 'manual.krbtest.storm' });
  const sync = async () => {
    const d = new DirectorySync({ bus: new EventBus(), directory, instances: { list: async () => [{ name: 'Kept' }] }, domain: 'krbtest.storm' });
    await d.start();
    await d.idle();
    await d.stop();
    return d.progress;
  };
  const first = await sync();
  assert.equal(first.state, 'done');
  const fqdns = directory.listHosts().map((h) => h.fqdn);
  assert.ok(fqdns.includes('kept.krbtest.storm'));
  assert.ok(fqdns.includes('manual.krbtest.storm'), 'hosts without an instance are left alone');
  assert.ok(!fqdns.includes('gone.krbtest.storm'));
  const keys = directory.keytab('kept.krbtest.storm');
  assert.equal((await sync()).state, 'done');
  assert.deepEqual(directory.keytab('kept.krbtest.storm'), keys, 'a second sync keeps the keys');
  await directory.removeHost('kept.krbtest.storm');
  await directory.removeHost('manual.krbtest.storm');
});

test('bulk enrol and drop (the start-up sync): one kadmin.local run per phase, checked; keys kept unless missing; a bad name fails alone', async () => {
  const fq = (n: string) => `${n}.krbtest.storm`;
  await directory.addHost({ fqdn: fq('old1'), instance: 'old1' });
  const keptKeys = directory.keytab(fq('old1'));
  await directory.addHost({ fqdn: fq('old2'), instance: 'old2' });
  rmSync(directory.keytabPath(fq('old2')));
  const fresh = Array.from({ length: 30 }, (_, i) => `bulk${i}`);
  const r = await directory.addHosts([...fresh, 'old1', 'old2'].map((n) => ({ fqdn: fq(n), instance: n })).concat([{ fqdn: 'evil.krbtest.storm\naddprinc evil', instance: 'evil' }]));
  assert.deepEqual(r.failed.map((f) => f.fqdn), ['evil.krbtest.storm\naddprinc evil']);
  assert.equal(r.added.length, 32);
  const principals = new Set((await directory.principals()).map((p) => p.short));
  assert.ok(!principals.has('evil'), 'nothing of the bad line reached kadmin');
  for (const n of [...fresh, 'old1', 'old2']) {
    assert.ok(principals.has(`host/${fq(n)}`), n);
    assert.equal(statSync(directory.keytabPath(fq(n))).mode & 0o777, 0o600, n);
    assert.equal(directory.listHosts().find((h) => h.fqdn === fq(n))?.instance, n);
  }
  assert.deepEqual(directory.keytab(fq('old1')), keptKeys, 'an enrolled host keeps its keys');
  for (const n of ['bulk7', 'old2']) assert.equal((await client('kinit', ['-k', '-t', directory.keytabPath(fq(n)), `host/${fq(n)}`])).code, 0, n);

  const d = await directory.removeHosts([...fresh, 'old1', 'old2'].map(fq));
  assert.deepEqual(d.failed, []);
  const after = new Set((await directory.principals()).map((p) => p.short));
  for (const n of [...fresh, 'old1', 'old2']) {
    assert.ok(!after.has(`host/${fq(n)}`), n);
    assert.equal(existsSync(directory.keytabPath(fq(n))), false, n);
    assert.equal(directory.store.host(fq(n)), undefined, n);
  }
});

test('names that would break a kadmin command line never reach it', async () => {
  const before = (await directory.principals()).length;
  for (const bad of ['a b', "a'b", 'a"b', 'a\nb', 'a;b', '-randkey', 'a\\b', '$(x)', 'A', '']) {
    await assert.rejects(directory.addUser({ name: bad, password: 'password-1' }), { code: 'invalid' }, JSON.stringify(bad));
  }
  for (const bad of ['web 1.x.storm', 'web1', "w'1.x.storm", 'web1.x.storm\naddprinc evil', '-q.x.storm']) {
    await assert.rejects(directory.addHost({ fqdn: bad }), { code: 'invalid' }, JSON.stringify(bad));
  }
  for (const bad of ['a b', 'x"y', 'x\ny', 'x y/z', '/x', 'a/b/c']) assert.throws(() => checkPrincipal(bad), { code: 'invalid' });
  await assert.rejects(directory.addUser({ name: 'dave', password: 'pass\nword-1' }), { code: 'invalid' });
  assert.equal((await directory.principals()).length, before);
});

test('the supervisor restarts a KDC that dies, and health says so meanwhile', async () => {
  const pid = krb.kdcPid!;
  assert.ok(pid);
  process.kill(pid, 'SIGKILL');
  // Until it is back, the status is data, not an exception.
  const during = await krb.status();
  assert.ok(['unhealthy', 'healthy'].includes(during.status));
  let back = false;
  for (let i = 0; i < 100 && !back; i++) {
    await new Promise((r) => setTimeout(r, 100));
    back = krb.kdcPid !== undefined && krb.kdcPid !== pid && (await krb.status()).status === 'healthy';
  }
  assert.ok(back, JSON.stringify(await krb.status()));
  assert.ok(((await krb.status()).facts?.kdcRestarts as number) >= 1);
  await directory.addUser({ name: 'erin', password: 'erin-password' });
  assert.equal((await kinit('erin', 'erin-password')).code, 0);
});

test('daemons left by a manager that was killed outright are stopped on the next start', { timeout: 60_000 }, async () => {
  const sdir = join(dir, 'stale');
  const opts = {
    dir: sdir,
    realm: 'STALE.STORM',
    domain: 'stale.storm',
    kdc: { host: '127.0.0.1', port: await freeTcpUdpPort() },
    kadmind: { host: '127.0.0.1', port: await freePort() },
    kpasswd: { host: '127.0.0.1', port: await freeTcpUdpPort() },
    path: process.env.PATH ?? '',
  };
  const first = new KerberosService(opts);
  await first.start();
  await first.stop();
  // What a SIGKILLed manager leaves: a KDC of this realm, still running, with its pid file.
  const { spawn } = await import('node:child_process');
  const { realmEnv } = await import('../../manager/netsvc/kerberos/realm.ts');
  const orphan = spawn('krb5kdc', ['-n', '-r', 'STALE.STORM', '-P', join(sdir, 'krb5kdc.pid')], { env: realmEnv(first.paths, process.env.PATH ?? ''), stdio: 'ignore' });
  t_after(() => orphan.kill('SIGKILL'));
  const pidFile = join(sdir, 'krb5kdc.pid');
  for (let i = 0; i < 200 && !(existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() === String(orphan.pid)); i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(readFileSync(pidFile, 'utf8').trim(), String(orphan.pid), 'the orphan wrote its pid file');
  // Bounded: a KDC that is not stopped fails the test instead of hanging it.
  const gone = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the stale KDC was not stopped')), 15_000);
    orphan.once('exit', () => (clearTimeout(timer), resolve()));
  });
  const second = new KerberosService(opts);
  try {
    await second.start();
    await gone;
    assert.ok(await second.waitReady(10_000));
    assert.equal((await second.status()).status, 'healthy');
  } finally {
    await second.stop();
  }
});

test('the daemons die with a manager killed outright (parent-death signal)', { timeout: 60_000 }, async () => {
  const { writeFileSync } = await import('node:fs');
  const { spawn } = await import('node:child_process');
  const script = join(dir, 'owner.mts');
  const svc = new URL('../../manager/netsvc/kerberos/service.ts', import.meta.url).pathname;
  const ports = [await freeTcpUdpPort(), await freePort(), await freeTcpUdpPort()];
  writeFileSync(
    script,
    `import { KerberosService } from ${JSON.stringify(svc)};
const k = new KerberosService({ dir: ${JSON.stringify(join(dir, 'owner'))}, realm: 'OWNER.STORM', domain: 'owner.storm',
  kdc: { host: '127.0.0.1', port: ${ports[0]} }, kadmind: { host: '127.0.0.1', port: ${ports[1]} }, kpasswd: { host: '127.0.0.1', port: ${ports[2]} }, path: process.env.PATH ?? '' });
await k.start();
await k.waitReady(10000);
process.stdout.write('ready ' + k.kdcPid + '\\n');
setInterval(() => {}, 1000);
`,
  );
  const owner = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'pipe'], cwd: new URL('../..', import.meta.url).pathname });
  t_after(() => owner.kill('SIGKILL'));
  const kdcPid = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`owner did not get ready: ${out}`)), 30_000);
    const on = (d: Buffer) => {
      out += d.toString();
      const m = /ready (\d+)/.exec(out);
      if (m) (clearTimeout(timer), resolve(Number(m[1])));
    };
    owner.stdout!.on('data', on);
    owner.stderr!.on('data', on);
  });
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  assert.ok(alive(kdcPid));
  owner.kill('SIGKILL');
  let dead = false;
  for (let i = 0; i < 100 && !dead; i++) {
    await new Promise((r) => setTimeout(r, 50));
    dead = !alive(kdcPid);
  }
  if (!dead) process.kill(kdcPid, 'SIGKILL');
  assert.ok(dead, 'krb5kdc outlived its manager');
});

test('without the Kerberos packages the service is undetected and the directory still works', async () => {
  const none = new KerberosService({ dir: join(dir, 'none'), realm: REALM, domain: 'x.storm', kdc: { host: '127.0.0.1', port: 1 }, kadmind: { host: '127.0.0.1', port: 1 }, kpasswd: { host: '127.0.0.1', port: 1 }, path: '', find: async () => undefined });
  await none.start();
  const h = await none.status();
  assert.equal(h.status, 'undetected');
  assert.match(h.fix ?? '', /apt-get install krb5-kdc/);
  const s2 = await Store.open(join(dir, 'db2'));
  try {
    const d = new Directory({ store: await DirectoryStore.open(s2, 'dc=x,dc=storm'), kerberos: none });
    const u = await d.addUser({ name: 'frank', password: 'frank-password' });
    assert.equal(u.principal, undefined);
    assert.equal((await d.addHost({ fqdn: 'h1.x.storm' })).principal, undefined);
    await assert.rejects(d.principals(), { code: 'unavailable' });
  } finally {
    await s2.close();
  }
  await none.stop();
});
