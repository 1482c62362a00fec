import type { StormEvent } from '../../manager/events.ts';
import type { RowSpec } from './table.ts';

export const eventRows: RowSpec<StormEvent> = {
  name: (e) => `${e.t} ${e.kind}`,
  columns: [
    { header: 'TIME', get: (e) => e.t.replace('T', ' ').slice(0, 19) },
    { header: 'KIND', get: (e) => e.kind },
    { header: 'OBJECT', get: (e) => e.object ?? '' },
    { header: 'MESSAGE', get: (e) => e.message },
  ],
};

/** Which events to show: `kind` a kind or its prefix (`instance` takes `instance.state`), `object` a name or `TYPE/NAME`, `level` the least severe one kept. */
export interface EventFilter {
  kind?: string;
  object?: string;
  level?: 'info' | 'warn' | 'error';
}

const SEVERITY = { info: 0, warn: 1, error: 2 } as const;
export const EVENT_LEVELS = Object.keys(SEVERITY) as (keyof typeof SEVERITY)[];

export function eventMatches(f: EventFilter): (e: StormEvent) => boolean {
  return (e) =>
    (!f.kind || e.kind === f.kind || e.kind.startsWith(`${f.kind}.`)) &&
    (!f.object || e.object === f.object || (e.object ?? '').endsWith(`/${f.object}`)) &&
    (!f.level || SEVERITY[e.level ?? 'info'] >= SEVERITY[f.level]);
}

/** One event as a line of its own (`storm event list --follow`): the table's columns at fixed widths, since rows arrive one at a time. */
export function eventLine(e: StormEvent): string {
  const [t, kind, object, message] = eventRows.columns.map((c) => c.get(e));
  return `${t}  ${kind!.padEnd(18)}  ${object!.padEnd(24)}  ${message}`.replace(/\s+$/, '');
}
