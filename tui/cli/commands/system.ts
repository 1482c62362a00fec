import { controlSocketPath } from '../../../lib/paths.ts';
import type { Health } from '../../../lib/health.ts';
import type { StormEvent } from '../../../manager/events.ts';
import type { SystemStatus } from '../../../manager/services/system.ts';
import { managerConfig } from '../../../manager/config/config.ts';
import { doctor } from '../../../manager/health/doctor.ts';
import { ControlClient } from '../../../manager/control/client.ts';
import { healthRows } from '../../render/health.ts';
import { EVENT_LEVELS, eventLine, eventMatches, eventRows, type EventFilter } from '../../render/events.ts';
import { invalid } from '../../../lib/errors.ts';
import type { CommandDef } from '../command.ts';

export const systemCommands: CommandDef[] = [
  {
    noun: 'doctor',
    verb: '',
    summary: 'check every component STORM needs and say how to fix what is missing',
    run: async (ctx) => {
      const config = managerConfig(ctx.io.env, { state: ctx.state });
      let managerRunning = false;
      try {
        (await ControlClient.connect(controlSocketPath(config.state))).close();
        managerRunning = true;
      } catch {
        /* no manager: ports must be free */
      }
      const data: Health[] = await doctor({ config, path: ctx.io.env.PATH ?? '/usr/bin:/bin', managerRunning });
      return { data, rows: healthRows };
    },
  },
  {
    noun: 'manager',
    verb: 'status',
    summary: 'show the running manager (version, pid, state directory)',
    run: async (ctx) => {
      const data = await (await ctx.api()).call<SystemStatus>('system.status');
      return {
        data,
        rows: {
          name: (s: SystemStatus) => s.state,
          columns: [
            { header: 'VERSION', get: (s: SystemStatus) => s.version },
            { header: 'PID', get: (s: SystemStatus) => String(s.pid) },
            { header: 'STARTED', get: (s: SystemStatus) => s.startedAt },
            { header: 'STATE', get: (s: SystemStatus) => s.state },
          ],
        },
      };
    },
  },
  {
    noun: 'event',
    verb: 'list',
    summary: 'recent events (operations, state changes, errors); --follow streams new ones until interrupted',
    options: {
      limit: { type: 'string', doc: 'how many recent ones (default 50)' },
      kind: { type: 'string', doc: 'only this kind, or kinds under it (instance: instance.state, instance.updated …)' },
      object: { type: 'string', doc: 'only about this object (web1, instance/web1, hv1 …)' },
      level: { type: 'string', doc: 'only this severe or worse: info, warn, error' },
      follow: { type: 'boolean', short: 'f', doc: 'then print new events as they happen (-o json: one JSON object per line)' },
    },
    run: async (ctx) => {
      const limit = Number(ctx.opts.limit ?? 50);
      if (!Number.isInteger(limit) || limit < 1) throw invalid(`--limit must be a positive integer, got "${ctx.opts.limit}"`);
      const level = ctx.opts.level;
      if (level !== undefined && !(EVENT_LEVELS as unknown[]).includes(level)) throw invalid(`--level must be one of ${EVENT_LEVELS.join(', ')}, got "${level}"`);
      const keep = eventMatches({ ...(typeof ctx.opts.kind === 'string' ? { kind: ctx.opts.kind } : {}), ...(typeof ctx.opts.object === 'string' ? { object: ctx.opts.object } : {}), ...(level ? { level: level as EventFilter['level'] } : {}) });
      const api = await ctx.api();
      // Subscribed before reading the recent ones: nothing in between is lost (nor shown twice).
      const live: StormEvent[] = [];
      let print: ((e: StormEvent) => void) | undefined;
      const off = ctx.opts.follow ? api.subscribe((e: StormEvent) => keep(e) && (print ? print(e) : live.push(e))) : undefined;
      try {
        const recent = (await api.call<StormEvent[]>('events.recent', { limit: 500 })).filter(keep).slice(-limit);
        if (!off) return { data: recent, rows: eventRows };
        print = (e) => ctx.io.stdout(`${ctx.format === 'json' ? JSON.stringify(e) : eventLine(e)}\n`);
        // Over the control socket each copy is a new object: the same event is the same fields.
        const key = (e: StormEvent) => `${e.t}|${e.kind}|${e.object ?? ''}|${e.message}`;
        const seen = new Set(recent.map(key));
        for (const e of recent) print(e);
        for (const e of live) if (!seen.has(key(e))) print(e);
        await (ctx.io.closed ?? new Promise<void>(() => undefined));
      } finally {
        off?.();
      }
    },
  },
];
