import type { Grant } from '../../manager/rpc/grants.ts';
import type { RowSpec } from './table.ts';

export const grantRows: RowSpec<Grant> = {
  name: (g) => `${g.instance}/${g.appliance}`,
  columns: [
    { header: 'INSTANCE', get: (g) => g.instance },
    { header: 'APPLIANCE', get: (g) => g.appliance },
    { header: 'GRANTED', get: (g) => g.grantedAt },
    { header: 'BY', get: (g) => g.by, wide: true },
  ],
};
