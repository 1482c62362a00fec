import type { PrincipalInfo } from '../../../manager/netsvc/kerberos/kadmin.ts';
import { principalRows } from '../../render/directory.ts';
import type { CommandDef } from '../command.ts';

export const principalCommands: CommandDef[] = [
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
