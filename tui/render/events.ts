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
