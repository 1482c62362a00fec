import type { InstanceRecord } from '../../manager/instances/model.ts';
import type { RowSpec } from './table.ts';

/** "3m", "2h", "5d": how long ago, as a console and `-o table` show it. */
export function age(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

export const instanceRows: RowSpec<InstanceRecord> = {
  name: (i) => i.name,
  columns: [
    { header: 'NAME', get: (i) => i.name },
    { header: 'STATE', get: (i) => i.state },
    { header: 'APPLIANCE', get: (i) => `${i.appliance}@${i.version}` },
    { header: 'HOST', get: (i) => i.host },
    { header: 'AGE', get: (i) => age(i.createdAt) },
    { header: 'MAC', get: (i) => i.mac, wide: true },
    { header: 'ID', get: (i) => i.id, wide: true },
    { header: 'CREATED BY', get: (i) => i.createdBy ?? 'admin', wide: true },
    { header: 'ERROR', get: (i) => i.error ?? '', wide: true },
  ],
};
