import { StormError, invalid } from '../../../lib/errors.ts';
import type { InstanceRecord, InstanceReport } from '../../../manager/instances/model.ts';
import { instanceDetail, instanceRows, instanceRowsWith, migrationText } from '../../render/instances.ts';
import { boundLeases, instanceAddresses } from '../../render/resources.ts';
import { dnsListRows } from '../../render/netsvc.ts';
import { readValueArg } from '../value-arg.ts';
import type { ConsoleChunk } from '../../../lib/console-window.ts';
import type { CommandContext, CommandDef } from '../command.ts';
import { deploymentRef } from '../../../manager/deployments/model.ts';
import type { MigrationReport, UpdatePlanEntry, UpdateReport } from '../../../manager/instances/service.ts';
import { planRows, updateReportText } from '../../render/deployments.ts';
import { instanceCreateParams } from '../../../manager/services/instances.ts';
import { when } from '../../render/detail.ts';

const SETTLED = new Set(['running', 'stopped', 'failed']);

/** Follow an instance until it settles (or the timeout), reporting state changes on stderr. */
async function waitSettled(ctx: CommandContext, name: string): Promise<InstanceRecord> {
  const api = await ctx.api();
  const deadline = Date.now() + ctx.timeoutMs;
  let last = '';
  for (;;) {
    const inst = await api.call<InstanceRecord>('instance.show', { name });
    if (inst.state !== last) ctx.progress(`${name}: ${inst.state}`);
    last = inst.state;
    if (SETTLED.has(inst.state)) {
      // The cause's code, so a script tells a failed provisioning from a taken name (conflict).
      if (inst.state === 'failed') throw new StormError(inst.errorCode ?? 'internal', `instance ${name} failed: ${inst.error ?? 'unknown error'}`, { hint: `see storm event list; try again with storm instance start ${name}, or destroy it with storm instance destroy ${name} --yes` });
      return inst;
    }
    if (Date.now() > deadline) throw new StormError('timeout', `instance ${name} still ${inst.state} after ${ctx.timeoutMs / 1000} s`, { hint: 'it goes on in the background; storm instance show ' + name });
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** --param KEY=VALUE, KEY=@FILE or KEY=@- (stdin; for a secret, out of argv and shell history); one trailing newline of a file or stdin is dropped. */
async function parseParams(ctx: CommandContext): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const kv of (ctx.opts.param as string[] | undefined) ?? []) {
    const i = kv.indexOf('=');
    if (i < 1) throw invalid(`--param "${kv}": expected KEY=VALUE, KEY=@FILE or KEY=@- (stdin)`);
    const key = kv.slice(0, i);
    const v = kv.slice(i + 1);
    const { content } = await readValueArg(ctx, v, `--param ${key}`, `ssh manager storm instance create NAME --param ${key}=@- < FILE`);
    out[key] = v.startsWith('@') ? content.toString('utf8').replace(/\r?\n$/, '') : v;
  }
  return out;
}

const one = (verb: 'start' | 'stop' | 'reboot' | 'poweroff', summary: string): CommandDef => ({
  noun: 'instance',
  verb,
  summary,
  args: ['NAME'],
  run: async (ctx) => ({ data: await (await ctx.api()).call<InstanceRecord>(`instance.${verb}`, { name: ctx.args[0] }), rows: instanceRows }),
});

/** What instance.console answers: a piece of the log on its host, and where the next read starts. */
type ConsoleAnswer = { instance: string; host: string } & ConsoleChunk;
/** How often a followed console is read (each read is a manager → stormd call). */
const FOLLOW_MS = 500;

/** Print `first`, then each new piece of the log, until the reader goes (SSH) or the process is interrupted. */
async function followConsole(ctx: CommandContext, name: string, first: ConsoleAnswer): Promise<void> {
  const api = await ctx.api();
  const print = (c: ConsoleAnswer) => ctx.io.stdout(ctx.format === 'json' ? `${JSON.stringify(c)}\n` : c.text);
  let stop = false;
  void ctx.io.closed?.then(() => (stop = true));
  print(first);
  let { next, boot } = first;
  while (!stop) {
    await Promise.race([new Promise((r) => setTimeout(r, FOLLOW_MS)), ctx.io.closed].filter(Boolean));
    if (stop) break;
    const c = await api.call<ConsoleAnswer>('instance.console', { name, bytes: 64 * 1024, from: next, ...(boot ? { boot } : {}) });
    // Read from 0: another run of the instance (or a log shorter than where we were) started it again.
    const again = c.from !== next;
    if (again && ctx.format !== 'json') ctx.io.stdout(`\n-- ${name}: the console log started again --\n`);
    if (c.text || again) print(c);
    next = c.next;
    boot = c.boot ?? boot;
  }
}

export const instanceCommands: CommandDef[] = [
  {
    noun: 'instance',
    verb: 'create',
    summary: 'create and provision an instance of an appliance',
    args: ['NAME'],
    options: {
      appliance: { type: 'string', short: 'a', doc: 'appliance ID[@VERSION] (this or --deployment)' },
      deployment: { type: 'string', short: 'd', doc: "a deployment's NAME: boots its newest layer version over its appliance" },
      host: { type: 'string', doc: 'place on this host (default: automatic placement)' },
      param: { type: 'string', multiple: true, doc: 'KEY=VALUE, KEY=@FILE or KEY=@- (stdin: for a secret) parameter (repeatable)' },
    },
    run: async (ctx) => {
      const dep = typeof ctx.opts.deployment === 'string' ? ctx.opts.deployment : undefined;
      if (typeof ctx.opts.appliance !== 'string' && !dep) throw invalid('missing --appliance ID[@VERSION] (or --deployment NAME)', { hint: 'storm appliance list shows what there is' });
      if (typeof ctx.opts.appliance === 'string' && dep) throw invalid('give --appliance or --deployment, not both', { hint: 'a deployment already names its appliance' });
      const api = await ctx.api();
      const req = instanceCreateParams({ name: ctx.args[0]!, ...(dep ? { deployment: dep } : { appliance: ctx.opts.appliance as string }), ...(typeof ctx.opts.host === 'string' ? { host: ctx.opts.host } : {}), params: await parseParams(ctx) });
      const created = await api.call<InstanceRecord>('instance.create', req);
      ctx.progress(`${created.name}: created on ${created.host}`);
      const data = ctx.wait ? await waitSettled(ctx, created.name) : created;
      return { data, rows: instanceRows };
    },
  },
  {
    noun: 'instance', verb: 'list', summary: 'list instances (by name)',
    options: {
      host: { type: 'string', doc: 'only those on this host' },
      only: { type: 'string', doc: 'only those in this state: pending, provisioning, running, stopped, failed, deleting (--state is the state directory)' },
      appliance: { type: 'string', short: 'a', doc: 'only those of this appliance: ID or ID@VERSION' },
      deployment: { type: 'string', short: 'd', doc: "only those of this deployment (NAME)" },
    },
    run: async (ctx) => {
      if (typeof ctx.opts.appliance === 'string' && typeof ctx.opts.deployment === 'string') throw invalid('give --appliance or --deployment, not both');
      const appliance = typeof ctx.opts.deployment === 'string' ? deploymentRef(ctx.opts.deployment) : ctx.opts.appliance;
      const filter = Object.fromEntries(Object.entries({ host: ctx.opts.host, state: ctx.opts.only, appliance }).filter(([, v]) => typeof v === 'string'));
      const api = await ctx.api();
      const data = await api.call<InstanceRecord[]>('instance.list', filter);
      if (ctx.format !== 'wide') return { data, rows: instanceRows };
      // Addresses for -o wide: one lease list; a DHCP service that does not answer leaves the column empty.
      const leases = await api.call<unknown[]>('dhcp.lease.list').catch(() => []);
      return { data, rows: instanceRowsWith(boundLeases(Array.isArray(leases) ? leases : [])) };
    },
  },
  {
    noun: 'instance', verb: 'show', summary: 'show one instance: state, appliance, host, parameters, layers, error', args: ['NAME'],
    run: async (ctx) => {
      const api = await ctx.api();
      const data = await api.call<InstanceRecord>('instance.show', { name: ctx.args[0] });
      // Its address, as the console's detail finds it; a network service that does not answer leaves it out.
      const [leases, dns, reports] = await Promise.all([
        api.call<unknown[]>('dhcp.lease.list').catch(() => undefined),
        api.call<unknown>('dns.record.list').catch(() => []),
        api.call<InstanceReport[]>('api.reports').catch(() => []),
      ]);
      const address = Array.isArray(leases) ? instanceAddresses(data.name, data.mac, leases, dnsListRows(dns)) : undefined;
      const report = Array.isArray(reports) ? reports.find((r) => r.id === data.id) : undefined;
      return { data, rows: instanceRows, text: instanceDetail(data, Date.now(), address, report) };
    },
  },
  {
    noun: 'instance',
    verb: 'console',
    summary: "print the end of an instance's serial console; --follow keeps printing what the guest prints",
    args: ['NAME'],
    options: {
      bytes: { type: 'string', doc: 'how much of the end to show (default 16384 bytes)' },
      follow: { type: 'boolean', short: 'f', doc: 'then print what the guest prints as it prints it, until interrupted (-o json: one chunk per line)' },
    },
    run: async (ctx) => {
      const bytes = ctx.opts.bytes === undefined ? undefined : Number(ctx.opts.bytes);
      if (bytes !== undefined && !Number.isInteger(bytes)) throw invalid(`--bytes: expected a number, got "${ctx.opts.bytes}"`);
      const api = await ctx.api();
      const name = ctx.args[0]!;
      const data = await api.call<ConsoleAnswer>('instance.console', { name, ...(bytes ? { bytes } : {}) });
      if (!ctx.opts.follow) return { data, text: data.text.endsWith('\n') || !data.text ? data.text : data.text + '\n' };
      await followConsole(ctx, name, data);
    },
  },
  one('start', 'start a stopped instance'),
  one('stop', 'shut an instance down gracefully'),
  one('reboot', 'restart an instance'),
  one('poweroff', 'cut an instance\'s power'),
  {
    noun: 'instance',
    verb: 'destroy',
    summary: 'destroy an instance and its instance layer',
    args: ['NAME'],
    dangerous: true,
    run: async (ctx) => {
      const data = await (await ctx.api()).call<{ destroyed: string }>('instance.destroy', { name: ctx.args[0] });
      ctx.progress(`${ctx.args[0]}: destroyed`);
      return { data, rows: { name: (d: { destroyed: string }) => d.destroyed, columns: [{ header: 'DESTROYED', get: (d: { destroyed: string }) => d.destroyed }] } };
    },
  },
];

const snapRows = {
  name: (s: { name: string }) => s.name,
  columns: [
    { header: 'SNAPSHOT', get: (s: { name: string }) => s.name },
    { header: 'CREATED', get: (s: { name: string; createdAt: string }) => when(s.createdAt) },
  ],
};

/** `storm snapshot take|restore|delete INSTANCE SNAPSHOT`: one line saying what was done (-o json: the call's answer). */
function snapshotOp(verb: 'take' | 'restore' | 'delete', summary: string, done: string): CommandDef {
  return {
    noun: 'snapshot', verb, summary, args: ['INSTANCE', 'SNAPSHOT'],
    run: async (ctx) => ({ data: await (await ctx.api()).call(`instance.snapshot.${verb}`, { name: ctx.args[0], snapshot: ctx.args[1] }), text: `${ctx.args[0]}: snapshot ${ctx.args[1]} ${done}\n` }),
  };
}

/** What an update is of: an appliance `ID[@VERSION]`, or `--deployment NAME[@VERSION]` (instances of that deployment); undefined when neither is given. */
function updateTarget(ctx: CommandContext): string | undefined {
  const dep = typeof ctx.opts.deployment === 'string' ? ctx.opts.deployment : undefined;
  if (dep && ctx.args[0]) throw invalid('give an appliance or --deployment, not both');
  return dep ? deploymentRef(dep) : ctx.args[0];
}
const deploymentOption = { type: 'string', short: 'd', doc: "a deployment's NAME[@VERSION] instead of an appliance (default: its newest version)" } as const;

export const instanceOpsCommands: CommandDef[] = [
  { noun: 'snapshot', verb: 'list', summary: 'snapshots of an instance layer', args: ['INSTANCE'], run: async (ctx) => ({ data: await (await ctx.api()).call('instance.snapshot.list', { name: ctx.args[0] }), rows: snapRows }) },
  snapshotOp('take', 'snapshot an instance layer (instance stopped)', 'taken'),
  { ...snapshotOp('restore', 'restore an instance layer (instance stopped)', 'restored'), dangerous: true },
  { ...snapshotOp('delete', 'delete a snapshot (instance stopped)', 'deleted'), dangerous: true },
  {
    noun: 'instance', verb: 'migrate', summary: 'move an instance to another host (only its own layer travels)', args: ['NAME', 'HOST'],
    run: async (ctx) => {
      const data = await (await ctx.api()).call<MigrationReport>('instance.migrate', { name: ctx.args[0], host: ctx.args[1] });
      return { data, text: migrationText(data) };
    },
  },
  {
    noun: 'update', verb: 'plan', summary: 'which instances a version would update (none given: every appliance and deployment with instances, to its newest version), which layers change, and which files in their instance layers would hide updated files',
    args: ['[APPLIANCE[@VERSION]]'], options: { deployment: deploymentOption },
    run: async (ctx) => {
      const target = updateTarget(ctx);
      return { data: await (await ctx.api()).call<UpdatePlanEntry[]>('update.plan', target ? { appliance: target } : {}), rows: planRows };
    },
  },
  {
    noun: 'update', verb: 'apply', summary: 'roll a version out: a canary, a health check, then the rest', args: ['[APPLIANCE[@VERSION]]'],
    options: { concurrency: { type: 'string', doc: 'instances updated at once after the canary (default 2)' }, deployment: deploymentOption },
    run: async (ctx) => {
      // A rollout is per appliance (its own canary): never everything at once.
      const target = updateTarget(ctx);
      if (!target) throw invalid('missing APPLIANCE[@VERSION] (or --deployment NAME[@VERSION])', { hint: 'storm update plan lists every pending update with its appliance' });
      const data = await (await ctx.api()).call<UpdateReport>('update.apply', { appliance: target, concurrency: Number(ctx.opts.concurrency ?? 2) });
      return { data, text: updateReportText(data) };
    },
  },
  { noun: 'update', verb: 'rollback', summary: 'put an instance back on its previous layer version', args: ['INSTANCE'], run: async (ctx) => ({ data: await (await ctx.api()).call<InstanceRecord>('update.rollback', { name: ctx.args[0] }), rows: instanceRows }) },
];
