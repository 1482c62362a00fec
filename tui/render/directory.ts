import type { GroupView, HostView, UserView } from '../../manager/directory/model.ts';
import type { PrincipalInfo } from '../../manager/netsvc/kerberos/kadmin.ts';
import type { RowSpec } from './table.ts';

export const userRows: RowSpec<UserView> = {
  name: (u) => u.name,
  columns: [
    { header: 'NAME', get: (u) => u.name },
    { header: 'UID', get: (u) => String(u.uidNumber) },
    { header: 'GID', get: (u) => String(u.gidNumber) },
    { header: 'FULL NAME', get: (u) => u.cn },
    { header: 'STATE', get: (u) => (u.locked ? 'locked' : u.hasPassword ? 'active' : 'no password') },
    { header: 'GROUPS', get: (u) => u.groups.join(',') },
    { header: 'MAIL', get: (u) => u.mail ?? '', wide: true },
    { header: 'HOME', get: (u) => u.home, wide: true },
    { header: 'SHELL', get: (u) => u.shell, wide: true },
    { header: 'PRINCIPAL', get: (u) => u.principal ?? '', wide: true },
    { header: 'DN', get: (u) => u.dn, wide: true },
  ],
};

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
