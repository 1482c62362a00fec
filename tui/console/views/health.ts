import type { Health } from '../../../lib/health.ts';
import { healthRows } from '../../render/health.ts';
import { METHODS } from '../methods.ts';
import type { TableView } from './view.ts';

export const healthView: TableView<Health> = { kind: 'table', id: 'health', title: 'Health', rows: healthRows, method: METHODS.doctor };
