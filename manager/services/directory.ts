import { invalid } from '../../lib/errors.ts';
import type { Health } from '../../lib/health.ts';
import type { Directory } from '../directory/directory.ts';
import type { GroupView, HostView, UserView } from '../directory/model.ts';
import type { NetService } from '../netsvc/service.ts';
import type { PrincipalInfo } from '../netsvc/kerberos/kadmin.ts';
import { optStr, str, type Registry } from './registry.ts';

function optInt(p: Record<string, unknown>, key: string, method: string): number | undefined {
  const v = p[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && /^\d{1,10}$/.test(v)) return Number(v);
  throw invalid(`${method}: "${key}" must be an integer`);
}

function optList(p: Record<string, unknown>, key: string, method: string): string[] | undefined {
  const v = p[key];
  if (v === undefined || v === null) return undefined;
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  throw invalid(`${method}: "${key}" must be a list of strings`);
}

/** Strip undefined so optional fields stay absent (exactOptionalPropertyTypes-friendly). */
const defined = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

/**
 * user.*, group.*, principal.list, directory.*: the admin API over the
 * directory. Passwords arrive as params over the owner-only control socket
 * and are never logged or returned.
 */
export function registerDirectory(reg: Registry, dir: Directory, services: NetService[]): void {
  reg.add<Record<string, never>, UserView[]>({ name: 'user.list', mutates: false, summary: 'directory users', handler: async () => dir.listUsers() });
  reg.add<Record<string, unknown>, UserView>({ name: 'user.show', mutates: false, summary: 'one directory user', handler: async (p) => dir.showUser(str(p, 'name', 'user.show')) });
  reg.add<Record<string, unknown>, UserView>({
    name: 'user.add',
    mutates: true,
    summary: 'add a user (LDAP entry and Kerberos principal)',
    handler: (p) =>
      dir.addUser(
        defined({
          name: str(p, 'name', 'user.add'),
          password: optStr(p, 'password', 'user.add'),
          cn: optStr(p, 'cn', 'user.add'),
          sn: optStr(p, 'sn', 'user.add'),
          mail: optStr(p, 'mail', 'user.add'),
          shell: optStr(p, 'shell', 'user.add'),
          home: optStr(p, 'home', 'user.add'),
          uidNumber: optInt(p, 'uidNumber', 'user.add'),
          group: optStr(p, 'group', 'user.add'),
          groups: optList(p, 'groups', 'user.add'),
        }),
      ),
  });
  reg.add<Record<string, unknown>, UserView>({
    name: 'user.update',
    mutates: true,
    summary: "change a user's full name, surname, mail, shell or home directory",
    handler: (p) => {
      const mail = p.mail === null ? null : optStr(p, 'mail', 'user.update');
      return dir.updateUser(
        str(p, 'name', 'user.update'),
        defined({ cn: optStr(p, 'cn', 'user.update'), sn: optStr(p, 'sn', 'user.update'), mail, shell: optStr(p, 'shell', 'user.update'), home: optStr(p, 'home', 'user.update') }),
      );
    },
  });
  reg.add<Record<string, unknown>, UserView>({
    name: 'user.passwd',
    mutates: true,
    summary: "set a user's password (LDAP and Kerberos together)",
    handler: (p) => dir.setPassword(str(p, 'name', 'user.passwd'), str(p, 'password', 'user.passwd')),
  });
  reg.add<Record<string, unknown>, UserView>({
    name: 'user.lock',
    mutates: true,
    summary: 'lock (or with unlock: true, unlock) a user: no LDAP bind, no Kerberos tickets',
    handler: (p) => dir.setLocked(str(p, 'name', 'user.lock'), p.unlock !== true),
  });
  reg.add<Record<string, unknown>, { removed: string }>({
    name: 'user.remove',
    mutates: true,
    summary: 'remove a user, its principal and its group memberships',
    handler: async (p) => {
      const name = str(p, 'name', 'user.remove');
      await dir.removeUser(name);
      return { removed: name };
    },
  });

  reg.add<Record<string, never>, GroupView[]>({ name: 'group.list', mutates: false, summary: 'directory groups', handler: async () => dir.listGroups() });
  reg.add<Record<string, unknown>, GroupView>({ name: 'group.show', mutates: false, summary: 'one directory group', handler: async (p) => dir.showGroup(str(p, 'name', 'group.show')) });
  reg.add<Record<string, unknown>, GroupView>({
    name: 'group.add',
    mutates: true,
    summary: 'add a group (posixGroup + groupOfNames)',
    handler: (p) =>
      dir.addGroup(defined({ name: str(p, 'name', 'group.add'), gidNumber: optInt(p, 'gidNumber', 'group.add'), description: optStr(p, 'description', 'group.add'), members: optList(p, 'members', 'group.add') })),
  });
  reg.add<Record<string, unknown>, { removed: string }>({
    name: 'group.remove',
    mutates: true,
    summary: 'remove a group',
    handler: async (p) => {
      const name = str(p, 'name', 'group.remove');
      await dir.removeGroup(name);
      return { removed: name };
    },
  });
  reg.add<Record<string, unknown>, GroupView>({
    name: 'group.member.add',
    mutates: true,
    summary: 'add a user to a group',
    handler: (p) => dir.setMember(str(p, 'group', 'group.member.add'), str(p, 'user', 'group.member.add'), true),
  });
  reg.add<Record<string, unknown>, GroupView>({
    name: 'group.member.remove',
    mutates: true,
    summary: 'remove a user from a group',
    handler: (p) => dir.setMember(str(p, 'group', 'group.member.remove'), str(p, 'user', 'group.member.remove'), false),
  });

  reg.add<Record<string, never>, PrincipalInfo[]>({ name: 'principal.list', mutates: false, summary: 'Kerberos principals of the realm', handler: () => dir.principals() });
  reg.add<Record<string, never>, HostView[]>({ name: 'directory.host.list', mutates: false, summary: 'hosts enrolled in the directory', handler: async () => dir.listHosts() });
  reg.add<Record<string, never>, Health[]>({ name: 'directory.status', mutates: false, summary: 'health of LDAP and Kerberos', handler: async () => services.map((s) => s.status()) });
}
