import type { Health } from '../../../lib/health.ts';
import { healthDetail } from '../../render/health.ts';
import type { CommandDef } from '../command.ts';

/** `storm NOUN status`: the service's health record (`NOUN.status`), for people one fact per line. */
export function statusCommand(noun: string, summary: string): CommandDef {
  return {
    noun,
    verb: 'status',
    summary,
    run: async (ctx) => {
      const data = await (await ctx.api()).call<Health>(`${noun}.status`);
      return { data, text: healthDetail(data) };
    },
  };
}
