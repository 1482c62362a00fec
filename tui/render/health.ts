import type { Health } from '../../lib/health.ts';
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
