import type { StormApi } from '../../../manager/api.ts';
import type { RowSpec } from '../../render/table.ts';

/** A view: a titled table whose rows come from the service layer. */
export interface View<T = any> {
  id: string;
  title: string;
  rows: RowSpec<T>;
  load: (api: StormApi) => Promise<T[]>;
}
