import { parseArgs } from 'node:util';
import { EXIT_CODES, StormError, invalid, toStormError } from '../../lib/errors.ts';
import { controlSocketPath, defaultStateDir } from '../../lib/paths.ts';
import { VERSION } from '../../lib/version.ts';
import type { StormApi } from '../../manager/api.ts';
import { ControlClient } from '../../manager/control/client.ts';
import { formatTable, toCells } from '../render/table.ts';
import type { CliIo, CommandDef, OptionSpec, Output } from './command.ts';
import { COMMANDS } from './commands/index.ts';
import { toYaml } from './yaml.ts';

const FORMATS = ['table', 'wide', 'json', 'yaml', 'name'] as const;
type Format = (typeof FORMATS)[number];

export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  output: { type: 'string', short: 'o', doc: 'table | wide | json | yaml | name' },
  state: { type: 'string', doc: 'state directory of the manager to talk to (or STORM_STATE)' },
  yes: { type: 'boolean', short: 'y', doc: 'confirm a destructive action' },
  wait: { type: 'boolean', doc: 'wait for long work to finish (default)' },
  'no-wait': { type: 'boolean', doc: 'return as soon as the work is accepted' },
  timeout: { type: 'string', doc: 'give up waiting after this many seconds (default 600)' },
  help: { type: 'boolean', short: 'h', doc: 'show help' },
};

export interface RunOptions {
  /** How to reach the manager; default: its control socket. SSH exec passes an in-process API. */
  api?: () => Promise<StormApi>;
  /** Running over SSH exec: host-only commands are refused. */
  remote?: boolean;
  commands?: CommandDef[];
}

function findCommand(commands: CommandDef[], words: string[]): { cmd: CommandDef; rest: string[] } | undefined {
  const [noun, verb] = words;
  const two = commands.find((c) => c.noun === noun && c.verb === verb && c.verb !== '');
  if (two) return { cmd: two, rest: words.slice(2) };
  const one = commands.find((c) => c.noun === noun && c.verb === '');
  if (one) return { cmd: one, rest: words.slice(1) };
  return undefined;
}

export function usage(commands: CommandDef[]): string {
  const lines = [`storm ${VERSION}: simple tools for resource management`, '', 'Usage: storm <noun> <verb> [args] [options]', '', 'Commands:'];
  const w = Math.max(...commands.map((c) => `${c.noun} ${c.verb} ${(c.args ?? []).join(' ')}`.length));
  for (const c of commands) lines.push(`  ${`${c.noun} ${c.verb} ${(c.args ?? []).join(' ')}`.padEnd(w)}  ${c.summary}`);
  lines.push('', 'Global options:');
  for (const [k, o] of Object.entries(GLOBAL_OPTIONS)) lines.push(`  ${o.short ? `-${o.short}, ` : '    '}--${k.padEnd(10)} ${o.doc}`);
  lines.push('', 'Exit codes: 0 ok, 1 internal, 2 usage/invalid, 3 not found, 4 conflict, 5 busy, 6 unauthorized,', '            7 unreachable, 8 needs confirmation (--yes), 9 timeout', '');
  return lines.join('\n');
}

function commandHelp(c: CommandDef): string {
  const lines = [`storm ${c.noun}${c.verb ? ' ' + c.verb : ''} ${(c.args ?? []).join(' ')}`.trimEnd(), '', c.summary, ''];
  const opts = Object.entries(c.options ?? {});
  if (opts.length) {
    lines.push('Options:');
    for (const [k, o] of opts) lines.push(`  ${o.short ? `-${o.short}, ` : '    '}--${k.padEnd(12)} ${o.doc}`);
  }
  if (c.dangerous) lines.push('', 'Destructive: needs --yes when stdin is not a terminal.');
  return lines.join('\n') + '\n';
}

/** Render a command's output in the chosen format. */
export function render(out: Output, format: Format): string {
  if (format === 'json') return JSON.stringify(out.data, null, 2) + '\n';
  if (format === 'yaml') return toYaml(out.data);
  const list = Array.isArray(out.data) ? out.data : out.data === undefined || out.data === null ? [] : [out.data];
  if (format === 'name') return out.rows ? list.map((r) => out.rows!.name(r)).join('\n') + (list.length ? '\n' : '') : '';
  if (out.text !== undefined) return out.text;
  if (out.rows) return formatTable(toCells(out.rows, list, format === 'wide'));
  return toYaml(out.data);
}

/** Run one `storm ...` invocation; returns the exit code. Never throws. */
export async function runCli(argv: string[], io: CliIo, opts: RunOptions = {}): Promise<number> {
  const commands = opts.commands ?? COMMANDS;
  let format: Format = 'table';
  let client: StormApi | undefined;
  try {
    const words = argv.filter((a) => !a.startsWith('-'));
    if (argv[0] === '--version' || words[0] === 'version') {
      io.stdout(`storm ${VERSION}\n`);
      return 0;
    }
    const found = findCommand(commands, words);
    if (!found) {
      if (words.length === 0 || words[0] === 'help' || argv.includes('--help') || argv.includes('-h')) {
        io.stdout(usage(commands));
        return words.length === 0 && !argv.includes('--help') && !argv.includes('-h') ? EXIT_CODES.usage : 0;
      }
      const nouns = [...new Set(commands.map((c) => c.noun))];
      const verbs = commands.filter((c) => c.noun === words[0]).map((c) => c.verb);
      throw invalid(
        verbs.length ? `unknown verb "${words[1] ?? ''}" for ${words[0]}: expected one of ${verbs.join(', ')}` : `unknown command "${words[0]}": expected one of ${nouns.join(', ')}`,
        { hint: 'run storm --help' },
      );
    }
    const { cmd } = found;
    const options = { ...GLOBAL_OPTIONS, ...(cmd.options ?? {}) } as Record<string, OptionSpec>;
    let parsed;
    try {
      parsed = parseArgs({ args: argv, options: options as never, allowPositionals: true, strict: true });
    } catch (e) {
      throw invalid(`${(e as Error).message.replace(/\. To specify.*$/s, '')}`, { hint: `run storm ${cmd.noun} ${cmd.verb} --help` });
    }
    const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
    if (values.help) {
      io.stdout(commandHelp(cmd));
      return 0;
    }
    const fmt = (values.output as string | undefined) ?? 'table';
    if (!(FORMATS as readonly string[]).includes(fmt)) throw invalid(`unknown output format "${fmt}": expected ${FORMATS.join(', ')}`);
    format = fmt as Format;
    const positionals = parsed.positionals.slice(cmd.verb ? 2 : 1);
    const required = (cmd.args ?? []).filter((a) => !a.startsWith('['));
    if (positionals.length < required.length) throw invalid(`missing ${required.slice(positionals.length).join(' ')}`, { hint: `usage: storm ${cmd.noun} ${cmd.verb} ${(cmd.args ?? []).join(' ')}` });
    const variadic = (cmd.args ?? []).some((a) => a.includes('...'));
    if (!variadic && positionals.length > (cmd.args ?? []).length) throw invalid(`unexpected argument "${positionals[(cmd.args ?? []).length]}"`, { hint: `usage: storm ${cmd.noun} ${cmd.verb} ${(cmd.args ?? []).join(' ')}` });
    if (opts.remote && cmd.hostOnly) throw new StormError('unauthorized', `storm ${cmd.noun} ${cmd.verb} runs on the manager's host only, not over SSH`);
    if (cmd.dangerous && !values.yes && !io.stdinIsTty) {
      throw new StormError('needs_confirmation', `storm ${cmd.noun} ${cmd.verb} ${positionals.join(' ')} is destructive and stdin is not a terminal`, { hint: 'add --yes to confirm' });
    }
    const state = (values.state as string | undefined) ?? io.env.STORM_STATE ?? defaultStateDir();
    const timeoutS = values.timeout === undefined ? 600 : Number(values.timeout);
    if (!Number.isFinite(timeoutS) || timeoutS <= 0) throw invalid(`--timeout must be a positive number of seconds, got "${values.timeout}"`);
    const out = await cmd.run({
      args: positionals,
      opts: values,
      io,
      state,
      wait: !values['no-wait'],
      timeoutMs: timeoutS * 1000,
      remote: Boolean(opts.remote),
      progress: (m) => io.stderr(m + '\n'),
      format,
      api: async () => (client ??= opts.api ? await opts.api() : await ControlClient.connect(controlSocketPath(state))),
    });
    if (out) io.stdout(render(out, format));
    return 0;
  } catch (e) {
    const err = toStormError(e);
    if (format === 'json') io.stderr(JSON.stringify({ error: err.toJSON() }) + '\n');
    else io.stderr(`error: ${err.message}\n${err.hint ? `  hint: ${err.hint}\n` : ''}`);
    return EXIT_CODES[err.code] ?? 1;
  } finally {
    if (!opts.api) client?.close();
  }
}
