import type { Health } from '../../../lib/health.ts';
import type { HostView } from '../../../manager/directory/model.ts';
import type { PrincipalInfo } from '../../../manager/netsvc/kerberos/kadmin.ts';
import { hostRows, principalRows } from '../../render/directory.ts';
import { healthRows } from '../../render/health.ts';
import type { CommandDef } from '../command.ts';

export const principalCommands: CommandDef[] = [
  {
    noun: 'directory',
    verb: 'status',
    summary: 'health of the LDAP server and the Kerberos realm (addresses, realm, restarts)',
    run: async (ctx) => ({ data: await (await ctx.api()).call<Health[]>('directory.status'), rows: healthRows }),
  },
  {
    noun: 'directory',
    verb: 'hosts',
    summary: 'instances enrolled in the directory (LDAP host entry, host/ principal, keytab)',
    run: async (ctx) => ({ data: await (await ctx.api()).call<HostView[]>('directory.host.list'), rows: hostRows }),
  },
  {
    noun: 'principal',
    verb: 'list',
    summary: "the Kerberos realm's principals (users, hosts, system)",
    options: { kind: { type: 'string', doc: 'only this kind: user | host | service | system' } },
    run: async (ctx) => {
      const all = await (await ctx.api()).call<PrincipalInfo[]>('principal.list');
      const kind = ctx.opts.kind;
      return { data: typeof kind === 'string' ? all.filter((p) => p.kind === kind) : all, rows: principalRows };
    },
  },
];
