// The directory's LDAP server against the real OpenLDAP clients (ldapsearch,
// ldapwhoami, ldapmodify), with TLS from a throwaway CA, plus hostile input
// over raw sockets.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../lib/exec.ts';
import { Directory } from '../../manager/directory/directory.ts';
import { DirectoryStore } from '../../manager/directory/store.ts';
import { BerReader, integer, octets, tlv } from '../../manager/netsvc/ldap/ber.ts';
import { parseFilter, writeFilter } from '../../manager/netsvc/ldap/filter.ts';
import { OP, RC, bindRequest, readResponse, searchRequest, splitMessages, message } from '../../manager/netsvc/ldap/protocol.ts';
import { LdapService } from '../../manager/netsvc/ldap/service.ts';
import { Store } from '../../manager/store/store.ts';
import { throwawayCa, type TestTls } from '../helpers/throwaway-ca.ts';

const BASE = 'dc=test,dc=storm';
const ALICE = `uid=alice,ou=people,${BASE}`;
const ADMIN = `cn=admin,${BASE}`;
const ADMIN_PW = 'admin-secret-pw';

let dir: string;
let store: Store;
let directory: Directory;
let ldap: LdapService;
let port: number;
let ldapsPort: number;
let tls: TestTls;
let otherCa: TestTls;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'storm-ldap-'));
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'ca'));
  mkdirSync(join(dir, 'other'));
  tls = throwawayCa(join(dir, 'ca'));
  otherCa = throwawayCa(join(dir, 'other'), 'some-other-ca');
  store = await Store.open(join(dir, 'db'));
  const ds = await DirectoryStore.open(store, BASE);
  const { hashPassword } = await import('../../manager/directory/password.ts');
  await ds.setAdminHash(await hashPassword(ADMIN_PW));
  directory = new Directory({ store: ds });
  await directory.addUser({ name: 'alice', password: 'alice-password', cn: 'Alice Liddell', mail: 'alice@test.storm' });
  await directory.addUser({ name: 'bob', password: 'bob-password' });
  await directory.addUser({ name: 'carol', password: 'carol-password' });
  await directory.setLocked('carol', true);
  await directory.addGroup({ name: 'admins', members: ['alice'] });
  await directory.addHost({ fqdn: 'web1.test.storm', instance: 'web1', addresses: ['10.77.0.5'] });
  ldap = new LdapService({ tree: ds.tree, baseDn: BASE, authenticate: (n, p) => ds.authenticate(n, p), modify: (_w, ndn, ch) => directory.ldapModify(ndn, ch), passwordModify: (_w, ndn, pw) => directory.ldapSetPassword(ndn, pw), listen: { host: '127.0.0.1', port: 0 }, ldapsListen: { host: '127.0.0.1', port: 0 }, tls: { key: tls.key, cert: tls.cert, ca: tls.ca } });
  await ldap.start();
  port = ldap.port!;
  ldapsPort = ldap.ldapsPort!;
});

after(async () => {
  await ldap?.stop();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

const env = (extra: Record<string, string> = {}) => ({ PATH: process.env.PATH, HOME: dir, LDAPTLS_CACERT: tls.caFile, ...extra });
const ldapsearch = (args: string[], e?: Record<string, string>) => run('ldapsearch', ['-x', '-LLL', '-H', `ldap://127.0.0.1:${port}`, ...args], { env: env(e), timeoutMs: 20_000 });
const asAlice = ['-D', ALICE, '-w', 'alice-password'];

test('a user bind sees users and groups, never a password hash', async () => {
  const r = await ldapsearch([...asAlice, '-b', BASE]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^dn: uid=alice,ou=people,dc=test,dc=storm$/m);
  assert.match(r.stdout, /^dn: uid=bob,ou=people,dc=test,dc=storm$/m);
  assert.match(r.stdout, /^dn: cn=admins,ou=groups,dc=test,dc=storm$/m);
  assert.match(r.stdout, /^memberUid: alice$/m);
  assert.match(r.stdout, /^member: uid=alice,ou=people,dc=test,dc=storm$/m);
  assert.match(r.stdout, /^objectClass: posixAccount$/m);
  assert.match(r.stdout, /^objectClass: inetOrgPerson$/m);
  assert.match(r.stdout, /^dn: cn=web1.test.storm,ou=hosts,dc=test,dc=storm$/m);
  assert.doesNotMatch(r.stdout, /userPassword/i);
  // Asking for it by name (any case) does not help.
  const asked = await ldapsearch([...asAlice, '-b', BASE, '(uid=alice)', 'USERPASSWORD', 'uid']);
  assert.equal(asked.code, 0, asked.stderr);
  assert.match(asked.stdout, /^uid: alice$/m);
  assert.doesNotMatch(asked.stdout, /userPassword/i);
  // The admin identity does read it, and it is a salted hash, never the password.
  const adm = await ldapsearch(['-D', ADMIN, '-w', ADMIN_PW, '-b', BASE, '(uid=alice)', 'userPassword']);
  assert.equal(adm.code, 0, adm.stderr);
  const b64 = /^userPassword:: (.+(?:\n .+)*)$/m.exec(adm.stdout)?.[1]?.replace(/\n /g, '');
  assert.ok(b64, adm.stdout);
  const hash = Buffer.from(b64, 'base64').toString();
  assert.match(hash, /^\{PBKDF2-SHA256\}\d+\$/);
  assert.doesNotMatch(hash, /alice-password/);
});

test('attribute names, filters and scopes as PAM/NSS clients use them', async () => {
  const r = await ldapsearch([...asAlice, '-b', `ou=people,${BASE}`, '-s', 'one', '(&(objectClass=posixAccount)(uidnumber=10000))', 'uidNumber', 'HOMEDIRECTORY']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^dn: uid=alice,/m);
  assert.match(r.stdout, /^uidNumber: 10000$/m);
  assert.match(r.stdout, /^homeDirectory: \/home\/alice$/m);
  const groups = await ldapsearch([...asAlice, '-b', BASE, '(&(objectClass=posixGroup)(memberUid=alice))', 'cn']);
  assert.match(groups.stdout, /^cn: admins$/m);
  const sub = await ldapsearch([...asAlice, '-b', BASE, '(|(cn=ali*)(uid=bo*))', '1.1']);
  assert.deepEqual(sub.stdout.match(/^dn: .*$/gm)?.sort(), [`dn: ${ALICE}`, `dn: uid=bob,ou=people,${BASE}`]);
  const base = await ldapsearch([...asAlice, '-b', ALICE, '-s', 'base', '(objectClass=*)', 'cn']);
  assert.match(base.stdout, /^cn: Alice Liddell$/m);
  const missing = await ldapsearch([...asAlice, '-b', `uid=nobody,ou=people,${BASE}`]);
  assert.equal(missing.code, RC.noSuchObject);
  assert.match(missing.stdout + missing.stderr, /Matched DN: ou=people,dc=test,dc=storm/);
});

test('size limits and paged results', async () => {
  const limited = await ldapsearch([...asAlice, '-b', BASE, '-z', '1', '(objectClass=posixAccount)', 'uid']);
  assert.equal(limited.code, RC.sizeLimitExceeded);
  assert.equal(limited.stdout.match(/^dn:/gm)?.length, 1);
  const paged = await ldapsearch([...asAlice, '-b', BASE, '-E', 'pr=1/noprompt', '(objectClass=posixAccount)', 'uid']);
  const pages = await run('ldapsearch', ['-x', '-H', `ldap://127.0.0.1:${port}`, ...asAlice, '-b', BASE, '-E', 'pr=1/noprompt', '(objectClass=posixAccount)', 'uid'], { env: env() });
  assert.equal(pages.stdout.match(/pagedresults: cookie=/g)?.length, 3, 'one page per entry');
  assert.equal(paged.code, 0, paged.stderr);
  assert.equal(paged.stdout.match(/^dn:/gm)?.length, 3);
});

test('anonymous clients see the root DSE and nothing else', async () => {
  const dse = await ldapsearch(['-b', '', '-s', 'base', '(objectClass=*)']);
  assert.equal(dse.code, 0, dse.stderr);
  assert.match(dse.stdout, /^namingContexts: dc=test,dc=storm$/m);
  assert.match(dse.stdout, /^supportedExtension: 1\.3\.6\.1\.4\.1\.1466\.20037$/m);
  assert.match(dse.stdout, /^supportedControl: 1\.2\.840\.113556\.1\.4\.319$/m);
  const r = await ldapsearch(['-b', BASE, '(uid=alice)']);
  assert.equal(r.code, RC.insufficientAccessRights, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout, /alice/);
});

test('ldapwhoami; wrong passwords, locked users and malformed bind DNs are refused', async () => {
  const w = await run('ldapwhoami', ['-x', '-H', `ldap://127.0.0.1:${port}`, ...asAlice], { env: env() });
  assert.equal(w.code, 0, w.stderr);
  assert.equal(w.stdout.trim(), `dn:${ALICE}`);
  const anon = await run('ldapwhoami', ['-x', '-H', `ldap://127.0.0.1:${port}`], { env: env() });
  assert.equal(anon.stdout.trim(), 'anonymous');
  const wrong = await run('ldapwhoami', ['-x', '-H', `ldap://127.0.0.1:${port}`, '-D', ALICE, '-w', 'nope-nope'], { env: env() });
  assert.equal(wrong.code, RC.invalidCredentials);
  const locked = await run('ldapwhoami', ['-x', '-H', `ldap://127.0.0.1:${port}`, '-D', `uid=carol,ou=people,${BASE}`, '-w', 'carol-password'], { env: env() });
  assert.equal(locked.code, RC.invalidCredentials);
  const nouser = await run('ldapwhoami', ['-x', '-H', `ldap://127.0.0.1:${port}`, '-D', `uid=mallory,ou=people,${BASE}`, '-w', 'whatever1'], { env: env() });
  assert.equal(nouser.code, RC.invalidCredentials);
  for (const dn of ['uid=alice,,dc=x', 'uid=alice\\', 'uid=a"b,dc=x', '=alice']) {
    const bad = await run('ldapwhoami', ['-x', '-H', `ldap://127.0.0.1:${port}`, '-D', dn, '-w', 'x'], { env: env() });
    assert.equal(bad.code, RC.invalidDNSyntax, `${dn}: ${bad.stderr}`);
  }
  const unauth = await run('ldapwhoami', ['-x', '-H', `ldap://127.0.0.1:${port}`, '-D', ALICE, '-w', ''], { env: env() });
  assert.equal(unauth.code, RC.unwillingToPerform, 'a DN without a password is not a silent anonymous bind');
});

test('StartTLS (-ZZ) verifies the server against the CA; LDAPS too; a foreign CA fails', async () => {
  const ok = await ldapsearch(['-ZZ', ...asAlice, '-b', BASE, '(uid=alice)', 'uid']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^uid: alice$/m);
  const who = await run('ldapwhoami', ['-x', '-ZZ', '-H', `ldap://127.0.0.1:${port}`, ...asAlice], { env: env() });
  assert.equal(who.stdout.trim(), `dn:${ALICE}`, who.stderr);
  const foreign = await ldapsearch(['-ZZ', ...asAlice, '-b', BASE, '(uid=alice)'], { LDAPTLS_CACERT: otherCa.caFile });
  assert.notEqual(foreign.code, 0);
  assert.match(foreign.stderr, /TLS|certificate|connect/i);
  const ldaps = await run('ldapsearch', ['-x', '-LLL', '-H', `ldaps://127.0.0.1:${ldapsPort}`, ...asAlice, '-b', BASE, '(uid=bob)', 'uid'], { env: env() });
  assert.equal(ldaps.code, 0, ldaps.stderr);
  assert.match(ldaps.stdout, /^uid: bob$/m);
});

test('only the admin identity may write; its modifies go through the directory', async () => {
  const modify = (ldif: string, who: string[]) => run('ldapmodify', ['-x', '-H', `ldap://127.0.0.1:${port}`, ...who], { env: env(), input: ldif });
  const asAdmin = ['-D', ADMIN, '-w', ADMIN_PW];
  const bobDn = `uid=bob,ou=people,${BASE}`;
  const shell = `dn: ${bobDn}\nchangetype: modify\nreplace: loginShell\nloginShell: /bin/zsh\n`;
  assert.equal((await modify(shell, asAlice)).code, RC.insufficientAccessRights);
  assert.equal((await modify(shell, [])).code, RC.insufficientAccessRights);
  const ok = await modify(shell, asAdmin);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(directory.showUser('bob').shell, '/bin/zsh');
  assert.match((await ldapsearch([...asAlice, '-b', bobDn, '-s', 'base', '(objectClass=*)', 'loginShell'])).stdout, /^loginShell: \/bin\/zsh$/m);
  // A password set over LDAP is hashed by the manager (and would reach Kerberos too).
  const pw = await modify(`dn: ${bobDn}\nchangetype: modify\nreplace: userPassword\nuserPassword: bob-new-password\n`, asAdmin);
  assert.equal(pw.code, 0, pw.stderr);
  assert.equal((await run('ldapwhoami', ['-x', '-H', `ldap://127.0.0.1:${port}`, '-D', bobDn, '-w', 'bob-new-password'], { env: env() })).code, 0);
  const prehashed = await modify(`dn: ${bobDn}\nchangetype: modify\nreplace: userPassword\nuserPassword: {SSHA}abcd\n`, asAdmin);
  assert.equal(prehashed.code, RC.unwillingToPerform);
  // Group membership by memberUid; member follows.
  const join = await modify(`dn: cn=admins,ou=groups,${BASE}\nchangetype: modify\nadd: memberUid\nmemberUid: bob\n`, asAdmin);
  assert.equal(join.code, 0, join.stderr);
  assert.deepEqual(directory.showGroup('admins').members, ['alice', 'bob']);
  assert.equal((await modify(`dn: cn=admins,ou=groups,${BASE}\nchangetype: modify\nadd: memberUid\nmemberUid: nosuchuser\n`, asAdmin)).code, RC.constraintViolation);
  // What would split LDAP from Kerberos or break the schema is refused with a reason.
  const uidn = await modify(`dn: ${bobDn}\nchangetype: modify\nreplace: uidNumber\nuidNumber: 0\n`, asAdmin);
  assert.equal(uidn.code, RC.unwillingToPerform);
  assert.match(uidn.stderr, /uidnumber of a user cannot be changed/i);
  const badShell = await modify(`dn: ${bobDn}\nchangetype: modify\nreplace: loginShell\nloginShell: ../../bin/sh\n`, asAdmin);
  assert.equal(badShell.code, RC.constraintViolation);
  const add = await modify(`dn: uid=mallory,ou=people,${BASE}\nchangetype: add\nobjectClass: posixAccount\nuid: mallory\n`, asAdmin);
  assert.equal(add.code, RC.unwillingToPerform, add.stderr);
  const del = await modify(`dn: ${bobDn}\nchangetype: delete\n`, asAdmin);
  assert.equal(del.code, RC.unwillingToPerform, del.stderr);
  assert.equal((await modify(`dn: uid=ghost,ou=people,${BASE}\nchangetype: modify\nreplace: cn\ncn: x\n`, asAdmin)).code, RC.noSuchObject);
});

test('filter injection and unknown critical controls', async () => {
  // A value that would close the filter and open another is only a literal (escaped by the client).
  const inj = await ldapsearch([...asAlice, '-b', BASE, '(uid=alice\\29\\28uid=\\2a)', 'uid']);
  assert.equal(inj.code, 0, inj.stderr);
  assert.equal(inj.stdout.trim(), '');
  // Names that could inject are refused before they reach the directory.
  await assert.rejects(directory.addUser({ name: 'x)(uid=*', password: 'password-1' }), { code: 'invalid' });
  await assert.rejects(directory.addUser({ name: 'a,ou=x', password: 'password-1' }), { code: 'invalid' });
  await assert.rejects(directory.addUser({ name: 'eve', cn: 'Eve\nadmin', password: 'password-1' }), { code: 'invalid' });
  const crit = await ldapsearch([...asAlice, '-b', BASE, '-e', '!1.2.3.4.5', '(uid=alice)']);
  assert.equal(crit.code, RC.unavailableCriticalExtension, crit.stderr);
  const noncrit = await ldapsearch([...asAlice, '-b', BASE, '-e', '1.2.3.4.5', '(uid=alice)', 'uid']);
  assert.equal(noncrit.code, 0, 'an unknown non-critical control is ignored');
});

/** A raw LDAP connection: send bytes, read whole messages. */
function raw(): Promise<{ sock: Socket; send: (b: Buffer) => void; next: (n?: number) => Promise<Buffer[]>; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let buf: Buffer = Buffer.alloc(0);
    const frames: Buffer[] = [];
    let wake: (() => void) | undefined;
    const closed = new Promise<void>((r) => sock.once('close', () => (r(), wake?.())));
    sock.on('data', (d) => {
      const s = splitMessages(Buffer.concat([buf, d]));
      buf = s.rest;
      frames.push(...s.frames);
      wake?.();
    });
    sock.on('error', () => {});
    const next = async (n = 1) => {
      while (frames.length < n && !sock.destroyed) await new Promise<void>((r) => (wake = r));
      return frames.splice(0, n);
    };
    sock.once('connect', () => resolve({ sock, send: (b) => sock.write(b), next, closed }));
    sock.once('error', reject);
  });
}

test('hostile input over raw sockets: proper result codes, the server keeps serving', async () => {
  // Malformed search (bad filter choice) → protocolError, connection still usable.
  {
    const c = await raw();
    c.send(bindRequest(1, ALICE, 'alice-password'));
    assert.equal(readResponse((await c.next())[0]!).code, RC.success);
    c.send(searchRequest(2, BASE, 2, Buffer.from([0xbf, 0x00])));
    const [bad] = await c.next();
    assert.deepEqual([readResponse(bad!).tag, readResponse(bad!).code], [OP.SEARCH_DONE, RC.protocolError]);
    // A filter nested 200 deep.
    let f = writeFilter(parseFilter('(uid=a)'));
    for (let i = 0; i < 200; i++) f = tlv(0xa2, f);
    c.send(searchRequest(3, BASE, 2, f));
    assert.equal(readResponse((await c.next())[0]!).code, RC.protocolError);
    // Bad scope, negative size limit.
    c.send(message(4, tlv(OP.SEARCH_REQ, octets(BASE), tlv(0x0a, Buffer.from([9])), tlv(0x0a, Buffer.from([0])), integer(-1), integer(0), tlv(0x01, Buffer.from([0])), writeFilter(parseFilter('(uid=*)')), tlv(0x30))));
    assert.equal(readResponse((await c.next())[0]!).code, RC.protocolError);
    // Unknown extended operation.
    c.send(message(5, tlv(OP.EXT_REQ, octets('1.2.3.999', 0x80))));
    assert.equal(readResponse((await c.next())[0]!).code, RC.protocolError);
    // SASL bind.
    c.send(message(6, tlv(OP.BIND_REQ, integer(3), octets(''), tlv(0xa3, octets('GSSAPI')))));
    assert.equal(readResponse((await c.next())[0]!).code, RC.authMethodNotSupported);
    // Still serving on the same connection after all that (rebind, then search).
    c.send(bindRequest(7, ALICE, 'alice-password'));
    assert.equal(readResponse((await c.next())[0]!).code, RC.success);
    c.send(searchRequest(8, BASE, 2, writeFilter(parseFilter('(uid=bob)')), ['uid']));
    const got = await c.next(2);
    assert.equal(readResponse(got[0]!).tag, OP.SEARCH_ENTRY);
    assert.equal(readResponse(got[1]!).code, RC.success);
    c.sock.destroy();
  }
  // An oversized request: Notice of Disconnection, then the server closes.
  {
    const c = await raw();
    const big = Buffer.alloc(1024 * 1024, 0x41);
    c.send(Buffer.concat([Buffer.from([0x30, 0x84]), Buffer.from([0, 0x10, 0, 0x10]), big.subarray(0, 100)]));
    const [notice] = await c.next();
    const n = readResponse(notice!);
    assert.equal(n.id, 0);
    assert.equal(n.tag, OP.EXT_RES);
    assert.equal(n.code, RC.protocolError);
    await c.closed;
  }
  // Garbage that is not an LDAPMessage; and a truncated, lying length.
  for (const junk of [Buffer.from('GET / HTTP/1.1\r\n\r\n'), Buffer.from([0x30, 0x03, 0x02, 0x05, 0x01]), Buffer.from([0x30, 0x80, 0, 0])]) {
    const c = await raw();
    c.send(junk);
    const [notice] = await c.next();
    assert.equal(readResponse(notice!).code, RC.protocolError, junk.toString('hex'));
    await c.closed;
  }
  // A bind with a truncated body → protocolError in a BindResponse.
  {
    const c = await raw();
    c.send(message(1, tlv(OP.BIND_REQ, integer(3))));
    const [r] = await c.next();
    assert.deepEqual([readResponse(r!).tag, readResponse(r!).code], [OP.BIND_RES, RC.protocolError]);
    c.sock.destroy();
  }
  const still = await ldapsearch([...asAlice, '-b', BASE, '(uid=alice)', 'uid']);
  assert.equal(still.code, 0, still.stderr);
  assert.ok(new BerReader(Buffer.alloc(0)).done);
});

test('ldapjs clients interoperate: bind, paged search, WhoAmI-free compare', async () => {
  const ldapjs = (await import('ldapjs')).default;
  const client = ldapjs.createClient({ url: `ldap://127.0.0.1:${port}` });
  client.on('error', () => {});
  try {
    await new Promise<void>((resolve, reject) => client.bind(ALICE, 'alice-password', (e) => (e ? reject(e) : resolve())));
    const names = await new Promise<string[]>((resolve, reject) => {
      client.search(BASE, { scope: 'sub', filter: '(objectClass=posixAccount)', attributes: ['uid'], paged: { pageSize: 1 } }, (err, res) => {
        if (err) return reject(err);
        const out: string[] = [];
        res.on('searchEntry', (e) => out.push(String(e.pojo.attributes.find((a) => a.type === 'uid')?.values[0])));
        res.on('error', reject);
        res.on('end', () => resolve(out.sort()));
      });
    });
    assert.deepEqual(names, ['alice', 'bob', 'carol']);
    const same = await new Promise<boolean>((resolve, reject) => client.compare(ALICE, 'mail', 'ALICE@test.storm', (e, m) => (e ? reject(e) : resolve(m === true))));
    assert.equal(same, true);
  } finally {
    client.destroy();
  }
});

test('TLS material that arrives later (or is renewed) turns on StartTLS and LDAPS', async () => {
  const ds = await DirectoryStore.open(store, BASE);
  const late = new LdapService({ tree: ds.tree, baseDn: BASE, authenticate: (n, p) => ds.authenticate(n, p), listen: { host: '127.0.0.1', port: 0 }, ldapsListen: { host: '127.0.0.1', port: 0 } });
  await late.start();
  try {
    assert.equal(late.ldapsPort, undefined);
    const before = await run('ldapwhoami', ['-x', '-ZZ', '-H', `ldap://127.0.0.1:${late.port}`, ...asAlice], { env: env() });
    assert.notEqual(before.code, 0, 'no certificate yet: StartTLS is refused');
    await late.setTls({ key: tls.key, cert: tls.cert, ca: tls.ca });
    const after = await run('ldapwhoami', ['-x', '-ZZ', '-H', `ldap://127.0.0.1:${late.port}`, ...asAlice], { env: env() });
    assert.equal(after.stdout.trim(), `dn:${ALICE}`, after.stderr);
    const ldaps = await run('ldapwhoami', ['-x', '-H', `ldaps://127.0.0.1:${late.ldapsPort}`, ...asAlice], { env: env() });
    assert.equal(ldaps.stdout.trim(), `dn:${ALICE}`, ldaps.stderr);
    assert.equal((await late.status()).status, 'healthy');
  } finally {
    await late.stop();
  }
});

test('ldappasswd: users change their own password, the admin anyone\'s', async () => {
  const pw = (args: string[]) => run('ldappasswd', ['-x', '-H', `ldap://127.0.0.1:${port}`, ...args], { env: env() });
  const self = await pw([...asAlice, '-s', 'alice-password-2']);
  assert.equal(self.code, 0, self.stderr);
  assert.equal((await run('ldapwhoami', ['-x', '-H', `ldap://127.0.0.1:${port}`, '-D', ALICE, '-w', 'alice-password-2'], { env: env() })).code, 0);
  assert.equal((await run('ldapwhoami', ['-x', '-H', `ldap://127.0.0.1:${port}`, ...asAlice], { env: env() })).code, RC.invalidCredentials);
  // With -a the old password is checked.
  // (ldappasswd exits 1 on any refusal; the result is in its message.)
  const refused = async (args: string[], re: RegExp) => {
    const r = await pw(args);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, re);
  };
  await refused(['-D', ALICE, '-w', 'alice-password-2', '-a', 'wrong-old-pw', '-s', 'x-password-3'], /Invalid credentials \(49\)/);
  // Not someone else's; too short is a constraint violation; anonymous is refused.
  await refused(['-D', ALICE, '-w', 'alice-password-2', '-s', 'bobs-new-password', `uid=bob,ou=people,${BASE}`], /Insufficient access \(50\)/);
  await refused(['-D', ALICE, '-w', 'alice-password-2', '-s', 'short'], /Constraint violation \(19\)/);
  await refused(['-s', 'anon-password'], /Insufficient access \(50\)/);
  // The admin sets it back.
  const adm = await pw(['-D', ADMIN, '-w', ADMIN_PW, '-s', 'alice-password', ALICE]);
  assert.equal(adm.code, 0, adm.stderr);
  assert.equal((await run('ldapwhoami', ['-x', '-H', `ldap://127.0.0.1:${port}`, ...asAlice], { env: env() })).code, 0);
});
