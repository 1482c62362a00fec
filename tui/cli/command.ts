import type { StormApi } from '../../manager/api.ts';
import type { EnvSnapshot } from '../../lib/env.ts';
import type { RowSpec } from '../render/table.ts';

export type OptionSpec = { type: 'string' | 'boolean'; short?: string; multiple?: boolean; doc: string };

/** What a command returns: data, and how to show it as a table. */
export interface Output<T = unknown> {
  data: T;
  /** Present when `data` is a list (or one object) that renders as rows. */
  rows?: RowSpec<any>;
  /** Text for `-o table` when rows do not fit (e.g. a console log). */
  text?: string;
}

/** The I/O a command sees: the CLI passes the process's, an SSH exec its channel's. */
export interface CliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  stdinIsTty: boolean;
  env: EnvSnapshot;
  /** All of stdin as text (for --password-stdin); absent where there is no stdin to read. */
  readStdin?: () => Promise<string>;
  /** Settles when nobody reads any more (an SSH channel closed); absent: until the process is interrupted. */
  closed?: Promise<void>;
}

export interface CommandContext {
  args: string[];
  opts: Record<string, string | boolean | string[] | undefined>;
  /** The manager, connected on first use. */
  api: () => Promise<StormApi>;
  io: CliIo;
  /** The state directory this CLI invocation points at. */
  state: string;
  /** Emit a progress line on stderr (never stdout: stdout is data). */
  progress: (msg: string) => void;
  /** The -o format (commands that stream write it themselves). */
  format: 'table' | 'wide' | 'json' | 'yaml' | 'name';
  wait: boolean;
  timeoutMs: number;
  /** Run over SSH exec: this machine's files are the manager's, not the admin's (commands that read local files refuse). */
  remote?: boolean;
}

/** One `storm <noun> <verb>`: the single table the CLI, help and SSH exec share. */
export interface CommandDef {
  noun: string;
  verb: string;
  summary: string;
  /** Positional arguments, e.g. ['NAME', 'ADDRESS']; a trailing '[X]' is optional. */
  args?: string[];
  options?: Record<string, OptionSpec>;
  /** Destroys something: needs --yes when stdin is not a terminal. */
  dangerous?: boolean;
  /** Runs on this machine, not through the manager (refused over SSH exec). */
  hostOnly?: boolean;
  run: (ctx: CommandContext) => Promise<Output | void>;
}
