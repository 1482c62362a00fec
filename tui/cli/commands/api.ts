import type { StatusReport } from '../../../manager/rpc/methods.ts';
import type { RowSpec } from '../../render/table.ts';
import type { CommandDef } from '../command.ts';
import { statusCommand } from './status.ts';

const reportRows: RowSpec<StatusReport> = {
  name: (r) => r.instance,
  columns: [
    { header: 'INSTANCE', get: (r) => r.instance },
    { header: 'STATUS', get: (r) => r.status },
    { header: 'AT', get: (r) => r.at },
    { header: 'MESSAGE', get: (r) => r.message },
  ],
};

/** `storm api status|reports`: the appliances' XML-RPC API. */
export const apiCommands: CommandDef[] = [
  statusCommand('api', "is the appliances' XML-RPC API serving, where, how many calls"),
  {
    noun: 'api',
    verb: 'reports',
    summary: 'the last status each instance reported over the API',
    run: async (ctx) => ({ data: await (await ctx.api()).call<StatusReport[]>('api.reports'), rows: reportRows }),
  },
];
