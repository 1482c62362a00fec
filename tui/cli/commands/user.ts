import { invalid } from '../../../lib/errors.ts';
import type { UserView } from '../../../manager/directory/model.ts';
import { userDetail, userRows } from '../../render/directory.ts';
import type { CommandContext, CommandDef } from '../command.ts';

/** The password from stdin: one line, trailing newline dropped. Never from argv. */
export async function passwordFromStdin(ctx: CommandContext): Promise<string> {
  if (!ctx.io.readStdin) throw invalid('--password-stdin: this session has no stdin to read');
  const text = await ctx.io.readStdin();
  const pw = text.replace(/\r?\n$/, '');
  if (pw === '') throw invalid('--password-stdin: stdin was empty', { hint: "pipe the password in, e.g. printf '%s\\n' \"$PW\" | storm user passwd NAME --password-stdin" });
  return pw;
}

const list = (v: unknown) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : undefined);

export const userCommands: CommandDef[] = [
  {
    noun: 'user',
    verb: 'list',
    summary: 'directory users (LDAP + Kerberos)',
    run: async (ctx) => ({ data: await (await ctx.api()).call<UserView[]>('user.list'), rows: userRows }),
  },
  {
    noun: 'user',
    verb: 'show',
    summary: 'one directory user',
    args: ['NAME'],
    run: async (ctx) => {
      const data = await (await ctx.api()).call<UserView>('user.show', { name: ctx.args[0] });
      return { data, rows: userRows, text: userDetail(data) };
    },
  },
  {
    noun: 'user',
    verb: 'add',
    summary: 'add a user: LDAP entry (inetOrgPerson, posixAccount) and Kerberos principal',
    args: ['NAME'],
    options: {
      'password-stdin': { type: 'boolean', doc: 'read the password from stdin (without it the user cannot log in until storm user passwd)' },
      cn: { type: 'string', doc: 'full name (default: NAME)' },
      sn: { type: 'string', doc: 'surname (default: last word of the full name)' },
      mail: { type: 'string', doc: 'mail address' },
      shell: { type: 'string', doc: 'login shell (default /bin/bash)' },
      home: { type: 'string', doc: 'home directory (default /home/NAME)' },
      uid: { type: 'string', doc: 'uidNumber (default: next free from 10000)' },
      group: { type: 'string', doc: 'primary group (default users)' },
      groups: { type: 'string', doc: 'more groups to join, comma-separated' },
    },
    run: async (ctx) => {
      const password = ctx.opts['password-stdin'] ? await passwordFromStdin(ctx) : undefined;
      const params: Record<string, unknown> = { name: ctx.args[0] };
      if (password !== undefined) params.password = password;
      for (const k of ['cn', 'sn', 'mail', 'shell', 'home', 'group'] as const) if (typeof ctx.opts[k] === 'string') params[k] = ctx.opts[k];
      if (typeof ctx.opts.uid === 'string') params.uidNumber = ctx.opts.uid;
      if (ctx.opts.groups !== undefined) params.groups = list(ctx.opts.groups);
      const data = await (await ctx.api()).call<UserView>('user.add', params);
      if (password === undefined) ctx.progress('note: no --password-stdin: the user cannot log in until storm user passwd');
      return { data, rows: userRows };
    },
  },
  {
    noun: 'user',
    verb: 'set',
    summary: "change a user's full name, surname, mail, shell or home directory",
    args: ['NAME'],
    options: {
      cn: { type: 'string', doc: 'full name' },
      sn: { type: 'string', doc: 'surname' },
      mail: { type: 'string', doc: 'mail address ("" removes it)' },
      shell: { type: 'string', doc: 'login shell' },
      home: { type: 'string', doc: 'home directory' },
    },
    run: async (ctx) => {
      const params: Record<string, unknown> = { name: ctx.args[0] };
      for (const k of ['cn', 'sn', 'shell', 'home'] as const) if (typeof ctx.opts[k] === 'string') params[k] = ctx.opts[k];
      if (typeof ctx.opts.mail === 'string') params.mail = ctx.opts.mail === '' ? null : ctx.opts.mail;
      if (Object.keys(params).length === 1) throw invalid('nothing to change', { hint: 'give --cn, --sn, --mail, --shell or --home' });
      return { data: await (await ctx.api()).call<UserView>('user.update', params), rows: userRows };
    },
  },
  {
    noun: 'user',
    verb: 'passwd',
    summary: "set a user's password in LDAP and Kerberos together (read from stdin)",
    args: ['NAME'],
    options: { 'password-stdin': { type: 'boolean', doc: 'read the new password from stdin (required)' } },
    run: async (ctx) => {
      if (!ctx.opts['password-stdin']) throw invalid('storm user passwd needs --password-stdin', { hint: 'passwords never go on the command line: printf \'%s\\n\' "$PW" | storm user passwd NAME --password-stdin' });
      const password = await passwordFromStdin(ctx);
      return { data: await (await ctx.api()).call<UserView>('user.passwd', { name: ctx.args[0], password }), rows: userRows };
    },
  },
  {
    noun: 'user',
    verb: 'lock',
    summary: 'lock a user out: no LDAP bind, no Kerberos tickets',
    args: ['NAME'],
    run: async (ctx) => ({ data: await (await ctx.api()).call<UserView>('user.lock', { name: ctx.args[0] }), rows: userRows }),
  },
  {
    noun: 'user',
    verb: 'unlock',
    summary: 'let a locked user log in again',
    args: ['NAME'],
    run: async (ctx) => ({ data: await (await ctx.api()).call<UserView>('user.lock', { name: ctx.args[0], unlock: true }), rows: userRows }),
  },
  {
    noun: 'user',
    verb: 'remove',
    summary: 'remove a user, its Kerberos principal and its group memberships',
    args: ['NAME'],
    dangerous: true,
    run: async (ctx) => {
      const data = await (await ctx.api()).call<{ removed: string }>('user.remove', { name: ctx.args[0] });
      return { data, rows: { name: (r: { removed: string }) => r.removed, columns: [{ header: 'REMOVED', get: (r: { removed: string }) => r.removed }] } };
    },
  },
];
