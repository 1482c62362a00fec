import { VERSION } from '../../lib/version.ts';
import type { Health } from '../../lib/health.ts';
import { doctor } from '../health/doctor.ts';
import type { ManagerConfig } from '../config/config.ts';
import type { EventBus, StormEvent } from '../events.ts';
import type { Registry } from './registry.ts';

export interface SystemStatus {
  version: string;
  pid: number;
  startedAt: string;
  state: string;
}

/** system.*: what the manager is and how healthy its host is. */
export function registerSystem(reg: Registry, deps: { config: Readonly<ManagerConfig>; bus: EventBus; path: string; startedAt: Date }): void {
  reg.add<Record<string, never>, SystemStatus>({
    name: 'system.status',
    mutates: false,
    summary: 'manager version, pid, uptime',
    handler: async () => ({ version: VERSION, pid: process.pid, startedAt: deps.startedAt.toISOString(), state: deps.config.state }),
  });
  reg.add<Record<string, never>, Health[]>({
    name: 'system.doctor',
    mutates: false,
    summary: 'health of every component',
    handler: () => doctor({ config: deps.config, path: deps.path, managerRunning: true }),
  });
  reg.add<Record<string, never>, { name: string; mutates: boolean; summary: string }[]>({
    name: 'system.methods',
    mutates: false,
    summary: 'every service method this manager offers (consoles hide what is missing)',
    handler: async () => reg.list().map((m) => ({ name: m.name, mutates: m.mutates, summary: m.summary })),
  });
  reg.add<{ limit?: number }, StormEvent[]>({
    name: 'events.recent',
    mutates: false,
    summary: 'recent events',
    handler: async (p) => deps.bus.recent(typeof p.limit === 'number' ? p.limit : 100),
  });
}
