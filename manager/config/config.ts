import { join } from 'node:path';
import { loadConfig, parseHostPort, type Schema } from '../../lib/config.ts';
import type { EnvSnapshot } from '../../lib/env.ts';
import { defaultStateDir } from '../../lib/paths.ts';
import { normalizeDn } from '../netsvc/ldap/dn.ts';

/** The manager's configuration, frozen after validation and passed to constructors. */
export interface ManagerConfig {
  state: string;
  logLevel: string;
  libvirtUri: string;
  /** Admin SSH server (the console's door). */
  sshListen: string;
  /** Guest kernel image; empty means the newest installed cloud kernel. */
  kernel: string;
  /** The cloud's DNS domain; the LDAP base DN and the Kerberos realm derive from it. */
  domain: string;
  /** LDAP (with StartTLS) HOST:PORT; empty turns LDAP off. */
  ldapListen: string;
  /** LDAPS HOST:PORT (served once the manager has a certificate); empty turns it off. */
  ldapsListen: string;
  /** LDAP base DN; empty means derived from the domain (storm.local → dc=storm,dc=local). */
  ldapBaseDn: string;
  /** Kerberos realm; empty means the upper-cased domain. */
  krbRealm: string;
  /** krb5kdc HOST:PORT (UDP and TCP). */
  kdcListen: string;
  /** kadmind HOST:PORT. */
  kadmindListen: string;
  /** kpasswd HOST:PORT (served by kadmind). */
  kpasswdListen: string;
}

const hostPort = (v: string) => (parseHostPort(v) ? undefined : `expected HOST:PORT, got "${v}"`);
const optHostPort = (v: string) => (v === '' ? undefined : hostPort(v));
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const DOMAIN_RE = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);

export const managerSchema: Schema<ManagerConfig> = {
  state: { type: 'string', default: defaultStateDir(), env: 'STORM_STATE', flag: 'state', doc: 'state directory (database, CA, control socket)' },
  logLevel: {
    type: 'string', default: 'info', env: 'STORM_LOG_LEVEL', flag: 'log-level', doc: 'debug | info | warn | error',
    validate: (v) => (['debug', 'info', 'warn', 'error'].includes(v) ? undefined : `expected debug|info|warn|error, got "${v}"`),
  },
  libvirtUri: { type: 'string', default: 'qemu:///system', env: 'STORM_LIBVIRT_URI', flag: 'libvirt-uri', doc: 'libvirt connection URI the local stormd uses' },
  sshListen: { type: 'string', default: '127.0.0.1:2222', env: 'STORM_SSH_LISTEN', flag: 'ssh-listen', doc: 'admin SSH server HOST:PORT', validate: hostPort },
  kernel: { type: 'string', default: '', env: 'STORM_KERNEL', flag: 'kernel', doc: 'guest kernel image (default: newest /boot/vmlinuz-*-cloud-amd64)' },
  domain: {
    type: 'string', default: 'storm.local', env: 'STORM_DOMAIN', flag: 'domain', doc: 'the cloud\'s DNS domain (LDAP base DN and Kerberos realm derive from it)',
    validate: (v) => (DOMAIN_RE.test(v) && v.length <= 253 ? undefined : `expected a lower-case DNS domain like storm.local, got "${v}"`),
  },
  ldapListen: { type: 'string', default: '127.0.0.1:1389', env: 'STORM_LDAP_LISTEN', flag: 'ldap-listen', doc: 'LDAP server HOST:PORT (StartTLS once the manager has a certificate); empty = off', validate: optHostPort },
  ldapsListen: { type: 'string', default: '127.0.0.1:1636', env: 'STORM_LDAPS_LISTEN', flag: 'ldaps-listen', doc: 'LDAPS server HOST:PORT (needs the manager certificate); empty = off', validate: optHostPort },
  ldapBaseDn: { type: 'string', default: '', env: 'STORM_LDAP_BASE_DN', flag: 'ldap-base-dn', doc: 'LDAP base DN (default: from the domain, dc=storm,dc=local)',
    validate: (v) => {
      if (v === '') return undefined;
      try {
        return normalizeDn(v) === '' ? 'expected a DN like dc=storm,dc=local' : undefined;
      } catch (e) {
        return `expected a DN like dc=storm,dc=local: ${(e as Error).message}`;
      }
    },
  },
  krbRealm: {
    type: 'string', default: '', env: 'STORM_KRB_REALM', flag: 'krb-realm', doc: 'Kerberos realm (default: the upper-cased domain)',
    validate: (v) => (v === '' || /^[A-Z0-9](?:[A-Z0-9.-]{0,253}[A-Z0-9])?$/.test(v) ? undefined : `expected an upper-case realm like STORM.LOCAL, got "${v}"`),
  },
  kdcListen: { type: 'string', default: '127.0.0.1:1088', env: 'STORM_KDC_LISTEN', flag: 'kdc-listen', doc: 'Kerberos KDC HOST:PORT (UDP+TCP)', validate: hostPort },
  kadmindListen: { type: 'string', default: '127.0.0.1:1749', env: 'STORM_KADMIND_LISTEN', flag: 'kadmind-listen', doc: 'kadmind HOST:PORT', validate: hostPort },
  kpasswdListen: { type: 'string', default: '127.0.0.1:1464', env: 'STORM_KPASSWD_LISTEN', flag: 'kpasswd-listen', doc: 'kpasswd HOST:PORT', validate: hostPort },
};

/** The LDAP base DN in effect (configured, or derived from the domain). */
export function ldapBaseDn(c: Pick<ManagerConfig, 'ldapBaseDn' | 'domain'>): string {
  return c.ldapBaseDn || c.domain.split('.').map((l) => `dc=${l}`).join(',');
}

/** The Kerberos realm in effect (configured, or the upper-cased domain). */
export function krbRealm(c: Pick<ManagerConfig, 'krbRealm' | 'domain'>): string {
  return c.krbRealm || c.domain.toUpperCase();
}

/** Build the manager config: defaults → <state>/config.json → env → flags. */
export function managerConfig(env: EnvSnapshot, flags: Record<string, unknown>): Readonly<ManagerConfig> {
  const pre = loadConfig(managerSchema, { env, flags });
  return loadConfig(managerSchema, { file: join(pre.state, 'config.json'), env, flags });
}
