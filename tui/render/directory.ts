import type { GroupView, HostView, UserView } from '../../manager/directory/model.ts';
import type { PrincipalInfo } from '../../manager/netsvc/kerberos/kadmin.ts';
import { factLines, when } from './detail.ts';
import type { RowSpec } from './table.ts';

const userState = (u: UserView) => (u.locked ? 'locked' : u.hasPassword ? 'active' : 'no password');
/** What a state means for the admin, where it needs saying (user show). */
const STATE_MEANS: Record<string, string> = { locked: 'no LDAP bind, no Kerberos tickets; storm user unlock lets it in', 'no password': 'storm user passwd sets one' };

export const userRows: RowSpec<UserView> = {
  name: (u) => u.name,
  columns: [
    { header: 'NAME', get: (u) => u.name },
    { header: 'UID', get: (u) => String(u.uidNumber) },
    { header: 'GID', get: (u) => String(u.gidNumber) },
    { header: 'FULL NAME', get: (u) => u.cn },
    { header: 'STATE', get: userState },
    { header: 'GROUPS', get: (u) => u.groups.join(',') },
    { header: 'MAIL', get: (u) => u.mail ?? '', wide: true },
    { header: 'HOME', get: (u) => u.home, wide: true },
    { header: 'SHELL', get: (u) => u.shell, wide: true },
    { header: 'PRINCIPAL', get: (u) => u.principal ?? '', wide: true },
    { header: 'DN', get: (u) => u.dn, wide: true },
  ],
};

/** `storm user show NAME`: one fact per line, what the wide list spreads over columns and when it changed. */
export function userDetail(u: UserView, now = Date.now()): string {
  const state = userState(u);
  return factLines([
    ['name', u.name],
    ['full name', `${u.cn} (surname ${u.sn})`],
    ['state', `${state}${STATE_MEANS[state] ? ` (${STATE_MEANS[state]})` : ''}`],
    ['uid', `${u.uidNumber}, gid ${u.gidNumber}`],
    ['groups', u.groups.join(', ') || '(none)'],
    ['mail', u.mail ?? '(none)'],
    ['home', u.home],
    ['shell', u.shell],
    ['principal', u.principal ?? '(none: no Kerberos realm)'],
    ['dn', u.dn],
    ['created', when(u.createdAt, now)],
    ...(u.passwordChangedAt ? ([['password set', when(u.passwordChangedAt, now)]] as [string, string][]) : []),
  ]);
}

/** `storm group show NAME`: one fact per line. */
export function groupDetail(g: GroupView, now = Date.now()): string {
  return factLines([
    ['name', g.name],
    ['gid', String(g.gidNumber)],
    ['members', g.members.join(', ') || '(none)'],
    ...(g.description ? ([['description', g.description]] as [string, string][]) : []),
    ['dn', g.dn],
    ['created', when(g.createdAt, now)],
  ]);
}

export const groupRows: RowSpec<GroupView> = {
  name: (g) => g.name,
  columns: [
    { header: 'NAME', get: (g) => g.name },
    { header: 'GID', get: (g) => String(g.gidNumber) },
    { header: 'MEMBERS', get: (g) => g.members.join(',') },
    { header: 'DESCRIPTION', get: (g) => g.description ?? '', wide: true },
    { header: 'DN', get: (g) => g.dn, wide: true },
  ],
};

export const principalRows: RowSpec<PrincipalInfo> = {
  name: (p) => p.name,
  columns: [
    { header: 'PRINCIPAL', get: (p) => p.name },
    { header: 'KIND', get: (p) => p.kind },
  ],
};

export const hostRows: RowSpec<HostView> = {
  name: (h) => h.fqdn,
  columns: [
    { header: 'HOST', get: (h) => h.fqdn },
    { header: 'INSTANCE', get: (h) => h.instance ?? '' },
    { header: 'ADDRESSES', get: (h) => h.addresses.join(',') },
    { header: 'PRINCIPAL', get: (h) => h.principal ?? '', wide: true },
  ],
};
