import type { Grant } from '../../../manager/rpc/grants.ts';
import { grantRows } from '../../render/grants.ts';
import type { CommandDef } from '../command.ts';

/** `storm grant add|list|remove`: what an instance may ask for over the appliance API. */
export const grantCommands: CommandDef[] = [
  {
    noun: 'grant',
    verb: 'add',
    summary: 'let INSTANCE create instances of APPLIANCE over the API (APPLIANCE @mx: register MX for the domain)',
    args: ['INSTANCE', 'APPLIANCE'],
    run: async (ctx) => ({ data: await (await ctx.api()).call<Grant>('grant.add', { instance: ctx.args[0], appliance: ctx.args[1] }), rows: grantRows }),
  },
  {
    noun: 'grant',
    verb: 'list',
    summary: 'grants of all instances, or of INSTANCE',
    args: ['[INSTANCE]'],
    run: async (ctx) => ({ data: await (await ctx.api()).call<Grant[]>('grant.list', ctx.args[0] ? { instance: ctx.args[0] } : {}), rows: grantRows }),
  },
  {
    noun: 'grant',
    verb: 'remove',
    summary: 'withdraw a grant',
    args: ['INSTANCE', 'APPLIANCE'],
    dangerous: true,
    run: async (ctx) => ({ data: await (await ctx.api()).call<Grant>('grant.remove', { instance: ctx.args[0], appliance: ctx.args[1] }), rows: grantRows }),
  },
];
