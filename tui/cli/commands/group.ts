import { invalid } from '../../../lib/errors.ts';
import type { GroupView } from '../../../manager/directory/model.ts';
import { groupDetail, groupRows } from '../../render/directory.ts';
import type { CommandDef } from '../command.ts';

export const groupCommands: CommandDef[] = [
  {
    noun: 'group',
    verb: 'list',
    summary: 'directory groups',
    run: async (ctx) => ({ data: await (await ctx.api()).call<GroupView[]>('group.list'), rows: groupRows }),
  },
  {
    noun: 'group',
    verb: 'show',
    summary: 'one directory group',
    args: ['NAME'],
    run: async (ctx) => {
      const data = await (await ctx.api()).call<GroupView>('group.show', { name: ctx.args[0] });
      return { data, rows: groupRows, text: groupDetail(data) };
    },
  },
  {
    noun: 'group',
    verb: 'add',
    summary: 'add a group (posixGroup + groupOfNames)',
    args: ['NAME'],
    options: {
      gid: { type: 'string', doc: 'gidNumber (default: next free)' },
      description: { type: 'string', doc: 'what the group is for' },
      members: { type: 'string', doc: 'initial members, comma-separated user names' },
    },
    run: async (ctx) => {
      const params: Record<string, unknown> = { name: ctx.args[0] };
      if (typeof ctx.opts.gid === 'string') params.gidNumber = ctx.opts.gid;
      if (typeof ctx.opts.description === 'string') params.description = ctx.opts.description;
      if (typeof ctx.opts.members === 'string') params.members = ctx.opts.members.split(',').map((s) => s.trim()).filter(Boolean);
      return { data: await (await ctx.api()).call<GroupView>('group.add', params), rows: groupRows };
    },
  },
  {
    noun: 'group',
    verb: 'remove',
    summary: 'remove a group',
    args: ['NAME'],
    dangerous: true,
    run: async (ctx) => {
      const data = await (await ctx.api()).call<{ removed: string }>('group.remove', { name: ctx.args[0] });
      return { data, rows: { name: (r: { removed: string }) => r.removed, columns: [{ header: 'REMOVED', get: (r: { removed: string }) => r.removed }] } };
    },
  },
  {
    noun: 'group',
    verb: 'member',
    summary: 'add a user to a group, or remove one: group member add|remove GROUP USER',
    args: ['add|remove', 'GROUP', 'USER'],
    run: async (ctx) => {
      const [action, group, user] = ctx.args as [string, string, string];
      if (action !== 'add' && action !== 'remove') throw invalid(`unknown action "${action}": expected add or remove`, { hint: 'storm group member add|remove GROUP USER' });
      return { data: await (await ctx.api()).call<GroupView>(`group.member.${action}`, { group, user }), rows: groupRows };
    },
  },
];
