/**
 * `=@FILE`, `=@-` or `=TEXT` on the command line (deployment edit's --set,
 * instance create's --param): a value too long, or too secret, for argv
 * comes from a local file or stdin. Over SSH a local file would be the
 * manager's, so only stdin is offered there.
 */
import { lstat, readFile } from 'node:fs/promises';
import { StormError, invalid } from '../../lib/errors.ts';
import type { CommandContext } from './command.ts';

/** Invocations whose stdin a value has taken: there is one stdin, so one `@-`. */
const stdinTaken = new WeakSet<CommandContext>();

/** `flag` names the argument in messages (`--set /etc/x`); `pipe` is the command to suggest over SSH. */
export async function readValueArg(ctx: CommandContext, v: string, flag: string, pipe: string): Promise<{ content: Buffer; mode?: number }> {
  if (v === '@-') {
    if (!ctx.io.readStdin) throw invalid(`${flag}=@-: there is no stdin to read here`);
    if (stdinTaken.has(ctx)) throw invalid(`${flag}=@-: stdin is already read for another value`, { hint: 'give the others as @FILE' });
    stdinTaken.add(ctx);
    return { content: Buffer.from(await ctx.io.readStdin()) };
  }
  if (!v.startsWith('@')) return { content: Buffer.from(v) };
  if (ctx.remote) throw new StormError('unauthorized', `${flag}=${v}: over SSH the file would be read on the manager's machine, not yours`, { hint: `pipe it instead: ${pipe}` });
  const file = v.slice(1);
  const st = await lstat(file).catch(() => undefined);
  if (!st?.isFile()) throw invalid(`${flag}=${v}: ${file} is not a readable file`);
  return { content: await readFile(file), mode: st.mode & 0o7777 };
}
