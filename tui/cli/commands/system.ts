import { controlSocketPath } from '../../../lib/paths.ts';
import type { Health } from '../../../lib/health.ts';
import type { StormEvent } from '../../../manager/events.ts';
import type { SystemStatus } from '../../../manager/services/system.ts';
import { managerConfig } from '../../../manager/config/config.ts';
import { doctor } from '../../../manager/health/doctor.ts';
import { ControlClient } from '../../../manager/control/client.ts';
import { healthRows } from '../../render/health.ts';
import { eventRows } from '../../render/events.ts';
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
    summary: 'recent events (operations, state changes, errors)',
    options: { limit: { type: 'string', doc: 'how many (default 50)' } },
    run: async (ctx) => {
      const limit = Number(ctx.opts.limit ?? 50);
      const data = await (await ctx.api()).call<StormEvent[]>('events.recent', { limit });
      return { data, rows: eventRows };
    },
  },
];
