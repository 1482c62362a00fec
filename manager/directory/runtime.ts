/**
 * The directory inside the manager: the store's users/groups/hosts,
 * the LDAP server over them, the Kerberos realm, and the LDAP admin identity
 * (its password generated on first start into STATE/directory/admin.password,
 * mode 0600). Nothing here stops the manager from starting: a missing
 * package or a taken port is reported as health.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseHostPort } from '../../lib/config.ts';
import type { Logger } from '../../lib/logger.ts';
import { krbRealm, ldapBaseDn, type ManagerConfig } from '../config/config.ts';
import type { EventBus } from '../events.ts';
import { KerberosService } from '../netsvc/kerberos/service.ts';
import { LdapService } from '../netsvc/ldap/service.ts';
import type { TlsMaterial } from '../netsvc/ldap/server.ts';
import type { Store } from '../store/store.ts';
import { Directory } from './directory.ts';
import type { NetService } from '../netsvc/service.ts';
import { hashPassword, randomPassword, verifyPassword } from './password.ts';
import { DirectoryStore } from './store.ts';

export interface DirectoryRuntime {
  directory: Directory;
  ldap: LdapService;
  kerberos: KerberosService;
  /** LDAP and Kerberos, for the manager to start and stop with its other network services. */
  services: NetService[];
  /** Where the LDAP admin password is kept (bind DN: cn=admin,<base>). */
  adminPasswordFile: string;
}

export interface DirectoryRuntimeDeps {
  config: Readonly<ManagerConfig>;
  store: Store;
  bus?: EventBus;
  log?: Logger;
  path: string;
  /** The manager's certificate for StartTLS and LDAPS; without it LDAP is plain only. */
  tls?: TlsMaterial;
}

/** Build the directory and its two services (not started: the manager starts its NetServices). */
export async function createDirectory(d: DirectoryRuntimeDeps): Promise<DirectoryRuntime> {
  const { config } = d;
  const baseDn = ldapBaseDn(config);
  const dstore = await DirectoryStore.open(d.store, baseDn);

  // The admin identity: a random password on first start, kept owner-only beside the state.
  const dirState = join(config.state, 'directory');
  mkdirSync(dirState, { recursive: true, mode: 0o700 });
  const adminPasswordFile = join(dirState, 'admin.password');
  let adminPw: string;
  if (existsSync(adminPasswordFile)) adminPw = readFileSync(adminPasswordFile, 'utf8').trim();
  else {
    adminPw = randomPassword();
    writeFileSync(adminPasswordFile, adminPw + '\n', { mode: 0o600 });
  }
  const cur = dstore.adminHash;
  if (!cur || !(await verifyPassword(adminPw, cur))) await dstore.setAdminHash(await hashPassword(adminPw));

  const log = d.log?.child({ svc: 'directory' });
  const hp = (s: string) => (s ? parseHostPort(s) : undefined);
  const kdc = parseHostPort(config.kdcListen)!;
  const kerberos = new KerberosService({
    dir: join(config.state, 'krb5'),
    realm: krbRealm(config),
    domain: config.dnsDomain,
    kdc,
    kadmind: parseHostPort(config.kadmindListen)!,
    kpasswd: parseHostPort(config.kpasswdListen)!,
    path: d.path,
    ...(log ? { log } : {}),
  });
  // The LDAP admin's modify goes through the Directory (created below, after Kerberos starts).
  let directory: Directory | undefined;
  const ldap = new LdapService({
    tree: dstore.tree,
    baseDn,
    authenticate: (ndn, pw) => dstore.authenticate(ndn, pw),
    modify: async (_who, ndn, changes) => (directory ? directory.ldapModify(ndn, changes) : { code: 51, message: 'starting up' }),
    passwordModify: async (_who, ndn, pw) => (directory ? directory.ldapSetPassword(ndn, pw) : { code: 51, message: 'starting up' }),
    ...(hp(config.ldapListen) ? { listen: hp(config.ldapListen)! } : {}),
    ...(hp(config.ldapsListen) ? { ldapsListen: hp(config.ldapsListen)! } : {}),
    ...(d.tls ? { tls: d.tls } : {}),
    ...(log ? { log } : {}),
  });
  directory = new Directory({ store: dstore, kerberos, ...(d.bus ? { bus: d.bus } : {}), ...(log ? { log } : {}) });
  return {
    directory,
    ldap,
    kerberos,
    services: [ldap, kerberos],
    adminPasswordFile,
  };
}
