import type { Health } from '../../../lib/health.ts';
import { healthRows } from '../../render/health.ts';
import type { View } from './view.ts';

export const healthView: View<Health> = {
  id: 'health',
  title: 'Health',
  rows: healthRows,
  load: (api) => api.call<Health[]>('system.doctor'),
};
