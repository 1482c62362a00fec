import { join } from 'node:path';
import { hostname } from 'node:os';
import { loadConfig, parseHostPort, type Schema } from '../../lib/config.ts';
import type { EnvSnapshot } from '../../lib/env.ts';
import { defaultStateDir } from '../../lib/paths.ts';
import { crashPointNames } from '../instances/crash-points.ts';
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
  /** The manager's address as guests see it (storm.local); '' = the DHCP interface's address, else 127.0.0.1. */
  managerAddress: string;
  /** DNS server HOST:PORT (UDP and TCP); '' = off. */
  dnsListen: string;
  /** The cloud's domain: instances are NAME.<domain>. */
  dnsDomain: string;
  /** Where names outside our zones go (HOST:PORT); '' = REFUSED. */
  dnsUpstream: string;
  dnsTtl: number;
  /** The interface DHCP serves (the manager must run in the namespace that holds it); '' = off. */
  dhcpInterface: string;
  /** DHCP server socket (bound on all addresses of the namespace). */
  dhcpListen: string;
  /** The guest network (CIDR): DHCP's subnet, and the reverse DNS zone. */
  dhcpSubnet: string;
  /** Initial dynamic pool FIRST-LAST (then `storm dhcp pool set`). */
  dhcpPool: string;
  /** Initial router option; '' = the DHCP interface's address. */
  dhcpRouter: string;
  /** Initial lease time in seconds. */
  dhcpLeaseTime: number;
  /** Enrolment endpoint (HTTPS, manager certificate) where `stormd join` sends its CSR; port 0 picks one. */
  enrollListen: string;
  /** The appliances' XML-RPC configuration API (mutual TLS, instance certificates) HOST:PORT; port 0 picks one; '' = off. */
  apiListen: string;
  /** How many live instances one instance may have asked for over the API (instance.create). */
  apiCreateLimit: number;
  /** The API URL written into instance layers (/etc/storm/manager); '' = https://<managerAddress>:<api port>/RPC2. */
  apiUrl: string;
  /** DNS names and IPs the manager's certificate covers (the first is used in join URLs when listening on all addresses). */
  managerNames: string[];
  /** Lifetime of a join token, seconds. */
  joinTokenTtl: number;
  /** Seconds between health polls of an online hypervisor (failures back off up to 60 s). */
  hostPollSeconds: number;
  /** Seconds between reconciliation passes (one also runs at start); 0: only at start. */
  reconcileSeconds: number;
  /** Tests only: SIGKILL the manager at this provisioning or destroy step (OP:POINT, see docs/instances.md); '' = never. */
  testCrashAt: string;
  /** LDAP (with StartTLS) HOST:PORT; empty turns LDAP off. */
  ldapListen: string;
  /** LDAPS HOST:PORT (served once the manager has a certificate); empty turns it off. */
  ldapsListen: string;
  /** LDAP base DN; empty means derived from dnsDomain (storm.internal → dc=storm,dc=internal). */
  ldapBaseDn: string;
  /** Kerberos realm; empty means the upper-cased dnsDomain. */
  krbRealm: string;
  /** krb5kdc HOST:PORT (UDP and TCP). */
  kdcListen: string;
  /** kadmind HOST:PORT. */
  kadmindListen: string;
  /** kpasswd HOST:PORT (served by kadmind). */
  kpasswdListen: string;
  /** Seconds between background channel refreshes (0: only on demand). */
  channelRefreshSeconds: number;
  /** Layer downloads running at once. */
  imageParallel: number;
  /** Free disk (MiB) that must remain after a layer download. */
  imageReserveMiB: number;
  /** HTTPS (mutual TLS) server for the layers the manager builds (deployment layers), fetched by digest by stormd; port 0 picks one; '' = off. */
  layerListen: string;
  /** Base URL hypervisors fetch those layers from ('' = https://<layerListen host, or managerAddress when it listens on all>:<port>/). */
  layerUrl: string;
}

const hostPort = (v: string) => (parseHostPort(v) ? undefined : `expected HOST:PORT, got "${v}"`);
const optHostPort = (v: string) => (v === '' ? undefined : hostPort(v));
const ipv4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const isIp = (v: string) => ipv4.test(v) && v.split('.').every((o) => Number(o) <= 255);
const optIp = (v: string) => (v === '' || isIp(v) ? undefined : `expected an IPv4 address or "", got "${v}"`);

export const managerSchema: Schema<ManagerConfig> = {
  state: { type: 'string', default: defaultStateDir(), env: 'STORM_STATE', flag: 'state', doc: 'state directory (database, CA, control socket)' },
  logLevel: {
    type: 'string', default: 'info', env: 'STORM_LOG_LEVEL', flag: 'log-level', doc: 'debug | info | warn | error',
    validate: (v) => (['debug', 'info', 'warn', 'error'].includes(v) ? undefined : `expected debug|info|warn|error, got "${v}"`),
  },
  libvirtUri: { type: 'string', default: 'qemu:///system', env: 'STORM_LIBVIRT_URI', flag: 'libvirt-uri', doc: 'libvirt connection URI the local stormd uses' },
  sshListen: { type: 'string', default: '127.0.0.1:2222', env: 'STORM_SSH_LISTEN', flag: 'ssh-listen', doc: 'admin SSH server HOST:PORT', validate: hostPort },
  kernel: { type: 'string', default: '', env: 'STORM_KERNEL', flag: 'kernel', doc: 'guest kernel image (default: newest /boot/vmlinuz-*-cloud-amd64)' },
  managerAddress: { type: 'string', default: '', env: 'STORM_MANAGER_ADDRESS', flag: 'manager-address', doc: "the manager's address for guests (storm.local); empty: the DHCP interface's address, else 127.0.0.1", validate: optIp },
  dnsListen: { type: 'string', default: '', env: 'STORM_DNS_LISTEN', flag: 'dns-listen', doc: 'DNS server HOST:PORT over UDP and TCP (empty: off)', validate: optHostPort },
  dnsDomain: {
    type: 'string', default: 'storm.internal', env: 'STORM_DNS_DOMAIN', flag: 'dns-domain', doc: "the cloud's DNS domain (instances are NAME.<domain>)",
    validate: (v) => (/^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$/.test(v) ? undefined : `expected a lower-case domain like storm.internal, got "${v}"`),
  },
  dnsUpstream: { type: 'string', default: '', env: 'STORM_DNS_UPSTREAM', flag: 'dns-upstream', doc: 'forward other names to this HOST:PORT (empty: answer REFUSED)', validate: optHostPort },
  dnsTtl: { type: 'int', default: 60, env: 'STORM_DNS_TTL', doc: 'TTL of the records STORM serves, seconds', validate: (v) => (v >= 0 && v <= 86400 ? undefined : `expected 0..86400, got ${v}`) },
  dhcpInterface: { type: 'string', default: '', env: 'STORM_DHCP_INTERFACE', flag: 'dhcp-interface', doc: 'interface DHCP serves; run the manager in the namespace holding it (empty: off)' },
  dhcpListen: { type: 'string', default: '0.0.0.0:67', env: 'STORM_DHCP_LISTEN', doc: 'DHCP server socket HOST:PORT', validate: hostPort },
  dhcpSubnet: {
    type: 'string', default: '10.77.0.0/16', env: 'STORM_DHCP_SUBNET', flag: 'dhcp-subnet', doc: 'the guest network CIDR (DHCP subnet and reverse DNS zone)',
    validate: (v) => { const [a, p] = v.split('/'); return a && isIp(a) && /^\d+$/.test(p ?? '') && Number(p) >= 8 && Number(p) <= 30 ? undefined : `expected A.B.C.D/8..30, got "${v}"`; },
  },
  dhcpPool: {
    type: 'string', default: '10.77.128.1-10.77.255.254', env: 'STORM_DHCP_POOL', doc: 'initial dynamic pool FIRST-LAST (later: storm dhcp pool set)',
    validate: (v) => { const [a, b] = v.split('-'); return a && b && isIp(a) && isIp(b) ? undefined : `expected FIRST-LAST IPv4 addresses, got "${v}"`; },
  },
  dhcpRouter: { type: 'string', default: '', env: 'STORM_DHCP_ROUTER', doc: "initial router option (empty: the DHCP interface's address)", validate: optIp },
  dhcpLeaseTime: { type: 'int', default: 3600, env: 'STORM_DHCP_LEASE_TIME', doc: 'initial lease time, seconds', validate: (v) => (v >= 60 && v <= 31536000 ? undefined : `expected 60..31536000, got ${v}`) },
  enrollListen: { type: 'string', default: '127.0.0.1:7721', env: 'STORM_ENROLL_LISTEN', flag: 'enroll-listen', doc: 'stormd enrolment endpoint HOST:PORT (port 0: any free port)', validate: hostPort },
  apiListen: { type: 'string', default: '127.0.0.1:7723', env: 'STORM_API_LISTEN', flag: 'api-listen', doc: "appliances' XML-RPC API HOST:PORT over mutual TLS (port 0: any free port; empty: off)", validate: optHostPort },
  apiCreateLimit: { type: 'int', default: 16, env: 'STORM_API_CREATE_LIMIT', flag: 'api-create-limit', doc: 'live instances one instance may create over the API', validate: (v) => (v >= 0 && v <= 10_000 ? undefined : `expected 0..10000, got ${v}`) },
  apiUrl: { type: 'string', default: '', env: 'STORM_API_URL', doc: 'API URL given to instances (empty: https://<managerAddress>:<port>/RPC2)', validate: (v) => (v === '' || /^https:\/\/[^\s/]+(\/\S*)?$/.test(v) ? undefined : `expected an https:// URL or "", got "${v}"`) },
  managerNames: { type: 'list', default: ['localhost', '127.0.0.1', '::1', hostname()], env: 'STORM_MANAGER_NAMES', flag: 'manager-names', doc: 'names and IPs in the manager certificate (comma-separated)' },
  joinTokenTtl: { type: 'int', default: 3600, env: 'STORM_JOIN_TOKEN_TTL', doc: 'join token lifetime in seconds', validate: (v) => (v > 0 && v <= 7 * 86400 ? undefined : 'expected 1..604800 seconds') },
  reconcileSeconds: { type: 'int', default: 300, env: 'STORM_RECONCILE_SECONDS', doc: 'seconds between reconciliation passes (also one at start, after the first host polls); 0: only at start', validate: (v) => (v >= 0 && v <= 86400 ? undefined : 'expected 0..86400 seconds') },
  testCrashAt: {
    type: 'string', default: '', env: 'STORM_TEST_CRASH_AT', doc: 'tests only: the manager SIGKILLs itself at this step, e.g. provision:define (empty: never)',
    validate: (v) => (v === '' || crashPointNames().includes(v) ? undefined : `expected one of ${crashPointNames().join(', ')}, got "${v}"`),
  },
  hostPollSeconds: { type: 'int', default: 10, env: 'STORM_HOST_POLL_SECONDS', doc: 'seconds between hypervisor health polls', validate: (v) => (v > 0 && v <= 3600 ? undefined : 'expected 1..3600 seconds') },
  ldapListen: { type: 'string', default: '127.0.0.1:1389', env: 'STORM_LDAP_LISTEN', flag: 'ldap-listen', doc: 'LDAP server HOST:PORT (StartTLS once the manager has a certificate); empty = off', validate: optHostPort },
  ldapsListen: { type: 'string', default: '127.0.0.1:1636', env: 'STORM_LDAPS_LISTEN', flag: 'ldaps-listen', doc: 'LDAPS server HOST:PORT (needs the manager certificate); empty = off', validate: optHostPort },
  ldapBaseDn: { type: 'string', default: '', env: 'STORM_LDAP_BASE_DN', flag: 'ldap-base-dn', doc: 'LDAP base DN (default: from dnsDomain, dc=storm,dc=internal)',
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
    type: 'string', default: '', env: 'STORM_KRB_REALM', flag: 'krb-realm', doc: 'Kerberos realm (default: the upper-cased dnsDomain)',
    validate: (v) => (v === '' || /^[A-Z0-9](?:[A-Z0-9.-]{0,253}[A-Z0-9])?$/.test(v) ? undefined : `expected an upper-case realm like STORM.LOCAL, got "${v}"`),
  },
  kdcListen: { type: 'string', default: '127.0.0.1:1088', env: 'STORM_KDC_LISTEN', flag: 'kdc-listen', doc: 'Kerberos KDC HOST:PORT (UDP+TCP)', validate: hostPort },
  kadmindListen: { type: 'string', default: '127.0.0.1:1749', env: 'STORM_KADMIND_LISTEN', flag: 'kadmind-listen', doc: 'kadmind HOST:PORT', validate: hostPort },
  kpasswdListen: { type: 'string', default: '127.0.0.1:1464', env: 'STORM_KPASSWD_LISTEN', flag: 'kpasswd-listen', doc: 'kpasswd HOST:PORT', validate: hostPort },
  channelRefreshSeconds: {
    type: 'int', default: 3600, env: 'STORM_CHANNEL_REFRESH', doc: 'seconds between background channel refreshes; 0 refreshes only on demand',
    validate: (v) => (v >= 0 ? undefined : `expected 0 or more seconds, got ${v}`),
  },
  imageParallel: { type: 'int', default: 3, env: 'STORM_IMAGE_PARALLEL', doc: 'layer downloads running at once', validate: (v) => (v >= 1 && v <= 64 ? undefined : `expected 1..64, got ${v}`) },
  layerListen: { type: 'string', default: '127.0.0.1:0', env: 'STORM_LAYER_LISTEN', flag: 'layer-listen', doc: 'layer server HOST:PORT (HTTPS, mutual TLS) for deployment layers hypervisors fetch (port 0: any free port; empty: off)', validate: optHostPort },
  layerUrl: { type: 'string', default: '', env: 'STORM_LAYER_URL', doc: 'base URL hypervisors fetch manager-built layers from (empty: from layerListen)', validate: (v) => (v === '' || /^https?:\/\/\S+$/.test(v) ? undefined : `expected an http(s):// URL or "", got "${v}"`) },
  imageReserveMiB: { type: 'int', default: 256, env: 'STORM_IMAGE_RESERVE_MIB', doc: 'free disk (MiB) a layer download must leave', validate: (v) => (v >= 0 ? undefined : `expected 0 or more, got ${v}`) },
};

/** The LDAP base DN in effect (configured, or derived from the domain). */
export function ldapBaseDn(c: Pick<ManagerConfig, 'ldapBaseDn' | 'dnsDomain'>): string {
  return c.ldapBaseDn || c.dnsDomain.split('.').map((l) => `dc=${l}`).join(',');
}

/** The Kerberos realm in effect (configured, or the upper-cased domain). */
export function krbRealm(c: Pick<ManagerConfig, 'krbRealm' | 'dnsDomain'>): string {
  return c.krbRealm || c.dnsDomain.toUpperCase();
}

/** Build the manager config: defaults → <state>/config.json → env → flags. */
export function managerConfig(env: EnvSnapshot, flags: Record<string, unknown>): Readonly<ManagerConfig> {
  const pre = loadConfig(managerSchema, { env, flags });
  return loadConfig(managerSchema, { file: join(pre.state, 'config.json'), env, flags });
}
