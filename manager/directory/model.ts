/**
 * The directory's records (users, groups, hosts), their strict validation,
 * and how each becomes an LDAP entry. Names are checked here, once, so that
 * nothing that reaches a DN, a filter or a kadmin command line can change its
 * meaning (no quotes, spaces, commas, control characters).
 */
import { invalid } from '../../lib/errors.ts';
import { escapeDnValue } from '../netsvc/ldap/dn.ts';
import type { Attrs } from '../netsvc/ldap/tree.ts';

export interface User {
  /** Login name: the uid and the Kerberos principal's name. */
  name: string;
  /** Full name (cn). */
  cn: string;
  sn: string;
  uidNumber: number;
  gidNumber: number;
  home: string;
  shell: string;
  mail?: string;
  /** Salted hash ({PBKDF2-SHA256}); absent until a password is set. */
  passwordHash?: string;
  locked: boolean;
  createdAt: string;
  passwordChangedAt?: string;
}

export interface Group {
  name: string;
  gidNumber: number;
  description?: string;
  /** User names (memberUid; member DNs are derived). */
  members: string[];
  createdAt: string;
}

export interface Host {
  /** The instance's fully qualified name (cn of the entry, host/<fqdn> principal). */
  fqdn: string;
  /** The instance it belongs to (for removal with the instance). */
  instance?: string;
  addresses: string[];
  createdAt: string;
}

/** What admins and other code see of a user: never the hash. */
export interface UserView extends Omit<User, 'passwordHash'> {
  dn: string;
  hasPassword: boolean;
  groups: string[];
  principal?: string;
}

export interface GroupView extends Group {
  dn: string;
}

export interface HostView extends Host {
  dn: string;
  principal?: string;
}

const NAME_RE = /^[a-z_][a-z0-9_-]{0,31}$/;
const RESERVED = new Set(['root', 'admin', 'krbtgt', 'kadmin', 'k', 'host', 'nobody']);
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const FQDN_RE = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})+$`);
const PATH_RE = /^\/[A-Za-z0-9._/-]{0,254}$/;
const MAIL_RE = /^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}$/;
// Printable text without controls or the characters that a DN, filter or shell would read specially.
const TEXT_RE = /^[^\p{Cc}\p{Cf}"\\]{1,128}$/u;

/** A user or group name: lower-case POSIX-style, max 32 characters. */
export function checkName(kind: 'user' | 'group', name: unknown): string {
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw invalid(`${kind} name ${JSON.stringify(name)} is not allowed`, {
      hint: 'use 1-32 characters: lower-case letters, digits, "_" and "-", starting with a letter or "_"',
    });
  }
  if (kind === 'user' && RESERVED.has(name)) throw invalid(`user name "${name}" is reserved`, { hint: `reserved: ${[...RESERVED].join(', ')}` });
  return name;
}

export function checkFqdn(fqdn: unknown): string {
  if (typeof fqdn !== 'string' || !FQDN_RE.test(fqdn)) {
    throw invalid(`host name ${JSON.stringify(fqdn)} is not a valid fully qualified name`, { hint: 'lower-case labels of letters, digits and "-", joined by dots, e.g. web1.storm.local' });
  }
  return fqdn;
}

export function checkText(what: string, v: unknown): string {
  if (typeof v !== 'string' || !TEXT_RE.test(v) || v.trim() !== v) throw invalid(`${what} ${JSON.stringify(v)} is not allowed`, { hint: '1-128 printable characters, no quotes, backslashes or leading/trailing spaces' });
  return v;
}

export function checkPath(what: string, v: unknown): string {
  if (typeof v !== 'string' || !PATH_RE.test(v) || v.includes('//') || v.split('/').includes('..')) throw invalid(`${what} ${JSON.stringify(v)} is not an absolute path`, { hint: 'e.g. /home/alice or /bin/bash' });
  return v;
}

export function checkMail(v: unknown): string {
  if (typeof v !== 'string' || !MAIL_RE.test(v)) throw invalid(`mail address ${JSON.stringify(v)} is not valid`);
  return v;
}

export function checkId(what: string, v: unknown): number {
  const n = typeof v === 'string' && /^\d{1,10}$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1000 || n > 2 ** 31 - 2) throw invalid(`${what} ${JSON.stringify(v)} must be an integer from 1000 to 2147483646`);
  return n;
}

/** Passwords travel to kadmin on stdin, one per line: no line breaks or NULs. */
export function checkPassword(pw: unknown): string {
  if (typeof pw !== 'string') throw invalid('password missing');
  if (pw.length < 8) throw invalid('password too short', { hint: 'use at least 8 characters' });
  if (pw.length > 256) throw invalid('password too long', { hint: 'use at most 256 characters' });
  if (/[\r\n\0]/.test(pw)) throw invalid('password contains a line break or NUL', { hint: 'passwords are one line' });
  return pw;
}

/** The directory's layout under a base DN. */
export class Layout {
  readonly base: string;
  readonly people: string;
  readonly groups: string;
  readonly hosts: string;
  readonly admin: string;
  constructor(base: string) {
    this.base = base;
    this.people = `ou=people,${base}`;
    this.groups = `ou=groups,${base}`;
    this.hosts = `ou=hosts,${base}`;
    this.admin = `cn=admin,${base}`;
  }
  userDn = (name: string) => `uid=${escapeDnValue(name)},${this.people}`;
  groupDn = (name: string) => `cn=${escapeDnValue(name)},${this.groups}`;
  hostDn = (fqdn: string) => `cn=${escapeDnValue(fqdn)},${this.hosts}`;
}

/** `dc=storm,dc=local` from `storm.local`. */
export function baseDnFor(domain: string): string {
  return domain
    .split('.')
    .filter(Boolean)
    .map((l) => `dc=${escapeDnValue(l)}`)
    .join(',');
}

export function userAttrs(u: User): Attrs {
  const a: Attrs = {
    objectClass: ['top', 'person', 'organizationalPerson', 'inetOrgPerson', 'posixAccount'],
    uid: [u.name],
    cn: [u.cn],
    sn: [u.sn],
    uidNumber: [String(u.uidNumber)],
    gidNumber: [String(u.gidNumber)],
    homeDirectory: [u.home],
    loginShell: [u.shell],
  };
  if (u.mail) a.mail = [u.mail];
  // A locked user keeps the hash in the store but not in the directory: nothing can bind with it.
  if (u.passwordHash && !u.locked) a.userPassword = [u.passwordHash];
  return a;
}

export function groupAttrs(g: Group, layout: Layout): Attrs {
  const a: Attrs = {
    objectClass: g.members.length ? ['top', 'posixGroup', 'groupOfNames'] : ['top', 'posixGroup'],
    cn: [g.name],
    gidNumber: [String(g.gidNumber)],
  };
  if (g.description) a.description = [g.description];
  if (g.members.length) {
    a.memberUid = [...g.members];
    // groupOfNames needs at least one member, so an empty group is posixGroup only.
    a.member = g.members.map(layout.userDn);
  }
  return a;
}

export function hostAttrs(h: Host): Attrs {
  // ipHost requires an address; a host enrolled before it has one is a plain device.
  const a: Attrs = { objectClass: h.addresses.length ? ['top', 'device', 'ipHost'] : ['top', 'device'], cn: [h.fqdn] };
  if (h.addresses.length) a.ipHostNumber = [...h.addresses];
  if (h.instance) a.description = [`instance ${h.instance}`];
  return a;
}
