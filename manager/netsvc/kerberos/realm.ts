/**
 * The realm's files under STATE/krb5/: its own krb5.conf (also the client
 * configuration: point KRB5_CONFIG at it) and kdc.conf, the database, the
 * stash and the random master password (0600). /etc/krb5.conf is never read
 * or written: every child gets KRB5_CONFIG and KRB5_KDC_PROFILE.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { internal, invalid } from '../../../lib/errors.ts';
import { run } from '../../../lib/exec.ts';
import { randomBytes } from 'node:crypto';

export interface HostPort {
  host: string;
  port: number;
}

export interface RealmConfig {
  /** STATE/krb5 */
  dir: string;
  /** Upper-case realm, e.g. STORM.LOCAL. */
  realm: string;
  /** DNS domain the realm maps (for [domain_realm]). */
  domain: string;
  kdc: HostPort;
  kadmind: HostPort;
  kpasswd: HostPort;
}

export interface RealmPaths {
  dir: string;
  krb5Conf: string;
  kdcConf: string;
  database: string;
  stash: string;
  acl: string;
  masterPassword: string;
  keytabs: string;
  kdcLog: string;
  kadmindLog: string;
}

const REALM_RE = /^[A-Z0-9](?:[A-Z0-9.-]{0,253}[A-Z0-9])?$/;

export function checkRealm(realm: string): string {
  if (!REALM_RE.test(realm) || realm.includes('..')) throw invalid(`realm "${realm}" is not allowed`, { hint: 'upper-case letters, digits, "." and "-", e.g. STORM.LOCAL' });
  return realm;
}

export function realmPaths(dir: string): RealmPaths {
  return {
    dir,
    krb5Conf: join(dir, 'krb5.conf'),
    kdcConf: join(dir, 'kdc.conf'),
    database: join(dir, 'principal'),
    stash: join(dir, 'stash'),
    acl: join(dir, 'kadm5.acl'),
    masterPassword: join(dir, 'master.password'),
    keytabs: join(dir, 'keytabs'),
    kdcLog: join(dir, 'kdc.log'),
    kadmindLog: join(dir, 'kadmind.log'),
  };
}

const hp = (a: HostPort) => (a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`);

/** Profile values are written verbatim: refuse what would break the profile syntax. */
function profileSafe(what: string, v: string): string {
  if (/[\n\r{}="]/.test(v)) throw invalid(`${what} ${JSON.stringify(v)} cannot be written to a Kerberos profile`);
  return v;
}

export function krb5ConfText(c: RealmConfig): string {
  const domain = profileSafe('domain', c.domain.toLowerCase());
  return `# Written by the STORM manager; rewritten on every start.
[libdefaults]
 default_realm = ${c.realm}
 dns_lookup_kdc = false
 dns_lookup_realm = false
 rdns = false
 udp_preference_limit = 1

[realms]
 ${c.realm} = {
  kdc = ${hp(c.kdc)}
  admin_server = ${hp(c.kadmind)}
  kpasswd_server = ${hp(c.kpasswd)}
 }

[domain_realm]
 .${domain} = ${c.realm}
 ${domain} = ${c.realm}
`;
}

export function kdcConfText(c: RealmConfig, p: RealmPaths): string {
  for (const [k, v] of Object.entries(p)) profileSafe(k, v);
  return `# Written by the STORM manager; rewritten on every start.
[kdcdefaults]
 kdc_listen = ${hp(c.kdc)}
 kdc_tcp_listen = ${hp(c.kdc)}

[realms]
 ${c.realm} = {
  database_name = ${p.database}
  acl_file = ${p.acl}
  key_stash_file = ${p.stash}
  kadmind_listen = ${hp(c.kadmind)}
  kpasswd_listen = ${hp(c.kpasswd)}
  max_life = 10h 0m 0s
  max_renewable_life = 7d 0h 0m 0s
  supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
 }

[logging]
 kdc = FILE:${p.kdcLog}
 admin_server = FILE:${p.kadmindLog}
`;
}

function writeAtomic(path: string, text: string, mode: number): void {
  writeFileSync(path + '.tmp', text, { mode });
  renameSync(path + '.tmp', path);
}

/** The environment every Kerberos child runs with. */
export function realmEnv(p: RealmPaths, path: string): NodeJS.ProcessEnv {
  return { PATH: path, KRB5_CONFIG: p.krb5Conf, KRB5_KDC_PROFILE: p.kdcConf, LANG: 'C' };
}

/**
 * Write the profiles, and on first start create the database with a random
 * master password (kept 0600 beside it). Returns whether the realm was created now.
 */
export async function ensureRealm(c: RealmConfig, kdb5Util: string, path: string): Promise<boolean> {
  checkRealm(c.realm);
  const p = realmPaths(c.dir);
  mkdirSync(c.dir, { recursive: true, mode: 0o700 });
  mkdirSync(p.keytabs, { recursive: true, mode: 0o700 });
  writeAtomic(p.krb5Conf, krb5ConfText(c), 0o644);
  writeAtomic(p.kdcConf, kdcConfText(c, p), 0o600);
  if (!existsSync(p.acl)) writeAtomic(p.acl, '# kadmind ACL: empty; the manager administers with kadmin.local\n', 0o600);
  if (existsSync(p.database) && existsSync(p.stash)) return false;
  let master: string;
  if (existsSync(p.masterPassword)) master = readFileSync(p.masterPassword, 'utf8').trim();
  else {
    master = randomBytes(24).toString('base64url');
    writeAtomic(p.masterPassword, master + '\n', 0o600);
  }
  const r = await run(kdb5Util, ['-r', c.realm, 'create', '-s'], { env: realmEnv(p, path), input: `${master}\n${master}\n`, timeoutMs: 60_000 });
  if (r.code !== 0 || !existsSync(p.stash)) {
    throw internal(`cannot create Kerberos realm ${c.realm}: ${(r.stderr || r.stdout).trim().split('\n').at(-1) ?? 'kdb5_util failed'}`, { hint: `remove ${c.dir} to start over, then restart the manager` });
  }
  return true;
}
