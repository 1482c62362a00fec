import type { Health } from '../../lib/health.ts';
import { factLines } from './detail.ts';
import type { RowSpec } from './table.ts';

export const healthRows: RowSpec<Health> = {
  name: (h) => h.component,
  columns: [
    { header: 'COMPONENT', get: (h) => h.component },
    { header: 'STATUS', get: (h) => h.status },
    { header: 'REASON', get: (h) => h.reason },
    { header: 'FIX', get: (h) => h.fix ?? '' },
  ],
};

/** A service's status for people (`storm dns status` …): its state and why, the fix, then its facts one per line. */
export function healthDetail(h: Health): string {
  const fact = (v: unknown) => (v === null || v === undefined ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  return factLines([
    [h.component, `${h.status}: ${h.reason}`],
    ...(h.fix ? ([['fix', h.fix]] as [string, string][]) : []),
    ...Object.entries(h.facts ?? {}).map(([k, v]) => [k, fact(v)] as [string, string]),
  ]);
}
