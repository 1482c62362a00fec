import { lstat, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { StormError, invalid } from '../../../lib/errors.ts';
import type { DeploymentRecord } from '../../../manager/deployments/model.ts';
import type { EditSet, FileEdit } from '../../../manager/deployments/layer.ts';
import { deploymentListRows, deploymentRows, deploymentUse, versionRows } from '../../render/deployments.ts';
import type { InstanceRecord } from '../../../manager/instances/model.ts';
import { formatTable, toCells } from '../../render/table.ts';
import type { CommandContext, CommandDef, OptionSpec } from '../command.ts';
import { readValueArg } from '../value-arg.ts';

const MAX_FROM_FILES = 10_000;

/** Every regular file under `dir`, as `/relative/path` edits (modes kept); symlinks and devices are refused. */
async function filesFrom(dir: string): Promise<FileEdit[]> {
  const out: FileEdit[] = [];
  const st = await lstat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw invalid(`--from ${dir}: not a directory`);
  const walk = async (rel: string) => {
    for (const n of (await readdir(join(dir, rel))).sort()) {
      const r = `${rel}/${n}`;
      const s = await lstat(join(dir, r));
      if (s.isDirectory()) await walk(r);
      else if (s.isFile()) {
        if (out.length >= MAX_FROM_FILES) throw invalid(`--from ${dir}: more than ${MAX_FROM_FILES} files`);
        out.push({ path: r, base64: (await readFile(join(dir, r))).toString('base64'), mode: s.mode & 0o7777 });
      } else throw invalid(`--from ${dir}: ${r} is not a regular file or directory (symlinks and devices are not supported)`);
    }
  };
  await walk('');
  return out;
}

/** The edit set from --set PATH=@FILE|@-|TEXT, --from DIR and --delete PATH. */
async function editsFrom(ctx: CommandContext): Promise<EditSet> {
  const sets = (ctx.opts.set as string[] | undefined) ?? [];
  const from = ctx.opts.from as string | undefined;
  const del = (ctx.opts.delete as string[] | undefined) ?? [];
  if (from && ctx.remote) throw new StormError('unauthorized', `--from ${from}: over SSH the directory would be read on the manager's machine, not yours`, { hint: 'use --set PATH=@- once per file, or run storm on the manager' });
  const files: FileEdit[] = from ? await filesFrom(from) : [];
  for (const kv of sets) {
    const i = kv.indexOf('=');
    if (i < 1 || !kv.startsWith('/')) throw invalid(`--set "${kv}": expected /PATH=@FILE, /PATH=@- (stdin) or /PATH=TEXT`);
    const path = kv.slice(0, i);
    const v = kv.slice(i + 1);
    const { content, mode } = await readValueArg(ctx, v, `--set ${path}`, `ssh manager storm deployment edit NAME --set ${path}=@- < FILE`);
    // A later --set for the same path wins over --from.
    const at = files.findIndex((f) => f.path === path);
    const edit: FileEdit = { path, base64: content.toString('base64'), ...(mode !== undefined ? { mode } : {}) };
    if (at >= 0) files[at] = edit;
    else files.push(edit);
  }
  return { files, delete: del };
}

const EDIT_OPTIONS: Record<string, OptionSpec> = {
  set: { type: 'string', multiple: true, doc: '/PATH=@FILE (a local file), /PATH=@- (stdin) or /PATH=TEXT (repeatable)' },
  from: { type: 'string', doc: 'a directory whose files land at the same paths in the guest (DIR/etc/x → /etc/x)' },
  delete: { type: 'string', multiple: true, doc: "delete /PATH in the guest (a whiteout over the appliance's file; repeatable)" },
  note: { type: 'string', doc: 'a note kept with the new version' },
};

function showText(d: DeploymentRecord): string {
  const head = formatTable(toCells(deploymentRows, [d], false));
  const versions = formatTable(toCells(versionRows(d.version), [...d.versions].reverse(), false));
  return `${head}\n${versions}`;
}

export const deploymentCommands: CommandDef[] = [
  {
    noun: 'deployment',
    verb: 'create',
    summary: "make a deployment of an appliance: its own deployment layer plus the site's edits (version 1)",
    args: ['NAME'],
    options: { appliance: { type: 'string', short: 'a', doc: 'appliance ID[@VERSION] (required)' }, ...EDIT_OPTIONS },
    run: async (ctx) => {
      if (typeof ctx.opts.appliance !== 'string') throw invalid('missing --appliance ID[@VERSION]', { hint: 'storm appliance list shows what there is' });
      const edits = await editsFrom(ctx);
      const data = await (await ctx.api()).call<DeploymentRecord>('deployment.create', { name: ctx.args[0], appliance: ctx.opts.appliance, edits, ...(ctx.opts.note ? { note: ctx.opts.note } : {}) });
      ctx.progress(`${data.name}: version 1 of ${data.appliance}@${data.applianceVersion} (layer ${data.versions[0]!.sha256.slice(0, 12)})`);
      return { data, rows: deploymentRows };
    },
  },
  {
    noun: 'deployment',
    verb: 'list',
    summary: 'list deployments and the instances using each',
    run: async (ctx) => {
      const api = await ctx.api();
      const [deps, insts] = await Promise.all([api.call<DeploymentRecord[]>('deployment.list'), api.call<InstanceRecord[]>('instance.list')]);
      return { data: deploymentUse(deps, insts), rows: deploymentListRows };
    },
  },
  {
    noun: 'deployment',
    verb: 'show',
    summary: 'show a deployment and its layer versions (* marks the newest)',
    args: ['NAME'],
    run: async (ctx) => {
      const data = await (await ctx.api()).call<DeploymentRecord>('deployment.show', { name: ctx.args[0] });
      return { data, rows: deploymentRows, text: showText(data) };
    },
  },
  {
    noun: 'deployment',
    verb: 'edit',
    summary: 'apply a file set to a deployment: a new layer version (earlier versions are kept); then storm update plan --deployment NAME',
    args: ['NAME'],
    options: {
      ...EDIT_OPTIONS,
      maintenance: { type: 'boolean', doc: 'instead of a file set: boot a maintenance instance (storm.maintenance) whose writable layer is the deployment layer; edit in the guest, then --finish' },
      host: { type: 'string', doc: 'with --maintenance: the host to boot it on' },
      append: { type: 'string', doc: 'with --maintenance: extra kernel command line (e.g. storm.rescue for a shell on the console)' },
      finish: { type: 'boolean', doc: 'shut the maintenance instance down and keep what it wrote as a new version' },
      abort: { type: 'boolean', doc: 'destroy the maintenance instance; the deployment keeps its version' },
    },
    run: async (ctx) => {
      const modes = ['maintenance', 'finish', 'abort'].filter((k) => ctx.opts[k]);
      const hasEdits = Boolean(ctx.opts.set || ctx.opts.from || ctx.opts.delete);
      if (modes.length > 1 || (modes.length && hasEdits)) throw invalid('give one of a file set, --maintenance, --finish or --abort');
      if ((ctx.opts.host || ctx.opts.append) && !ctx.opts.maintenance) throw invalid('--host and --append go with --maintenance');
      const api = await ctx.api();
      if (ctx.opts.maintenance) {
        const data = await api.call<DeploymentRecord>('deployment.maintenance.start', { name: ctx.args[0], ...(ctx.opts.host ? { host: ctx.opts.host } : {}), ...(ctx.opts.append ? { append: ctx.opts.append } : {}) });
        const m = data.maintenance!;
        ctx.progress(`${data.name}: maintenance instance ${m.instance} runs version ${m.from} with the deployment layer writable (storm instance console ${m.instance}); when done: storm deployment edit ${data.name} --finish`);
        return { data, rows: deploymentRows, text: showText(data) };
      }
      if (ctx.opts.finish || ctx.opts.abort) {
        const before = (await api.call<DeploymentRecord>('deployment.show', { name: ctx.args[0] })).version;
        const data = await api.call<DeploymentRecord>(ctx.opts.finish ? 'deployment.maintenance.finish' : 'deployment.maintenance.abort', { name: ctx.args[0], ...(ctx.opts.finish && ctx.opts.note ? { note: ctx.opts.note } : {}) });
        ctx.progress(data.version === before ? `${data.name}: no new version (stays at ${data.version})` : `${data.name}: version ${data.version} from maintenance; storm update plan --deployment ${data.name}`);
        return { data, rows: deploymentRows, text: showText(data) };
      }
      const edits = await editsFrom(ctx);
      const data = await api.call<DeploymentRecord>('deployment.edit', { name: ctx.args[0], edits, ...(ctx.opts.note ? { note: ctx.opts.note } : {}) });
      const v = data.versions.find((x) => x.version === data.version)!;
      ctx.progress(`${data.name}: version ${v.version} (${v.changedCount} path(s) changed); storm update plan --deployment ${data.name}`);
      return { data, rows: deploymentRows, text: showText(data) };
    },
  },
  {
    noun: 'deployment',
    verb: 'revert',
    summary: "make an earlier version's layer the newest again (a new version; then storm update apply --deployment NAME)",
    args: ['NAME', 'VERSION'],
    options: { note: { type: 'string', doc: 'a note kept with the new version (default: "version N again")' } },
    run: async (ctx) => {
      const to = Number(ctx.args[1]);
      if (!Number.isInteger(to) || to < 1) throw invalid(`VERSION: expected a version number, got "${ctx.args[1]}"`, { hint: `storm deployment show ${ctx.args[0]} lists its versions` });
      const data = await (await ctx.api()).call<DeploymentRecord>('deployment.revert', { name: ctx.args[0], version: to, ...(ctx.opts.note ? { note: ctx.opts.note } : {}) });
      const v = data.versions.find((x) => x.version === data.version)!;
      ctx.progress(`${data.name}: version ${v.version} is version ${to}'s layer again (${v.changedCount} path(s) changed); storm update apply --deployment ${data.name}`);
      return { data, rows: deploymentRows, text: showText(data) };
    },
  },
  {
    noun: 'deployment',
    verb: 'remove',
    summary: 'forget a deployment that no instance uses (its layers go at the next storm image gc)',
    args: ['NAME'],
    dangerous: true,
    run: async (ctx) => {
      const data = await (await ctx.api()).call<{ removed: string }>('deployment.remove', { name: ctx.args[0] });
      return { data, rows: { name: (d: { removed: string }) => d.removed, columns: [{ header: 'REMOVED', get: (d: { removed: string }) => d.removed }] } };
    },
  },
];
