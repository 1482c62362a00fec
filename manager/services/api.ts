import type { Health } from '../../lib/health.ts';
import type { EventBus } from '../events.ts';
import type { InstanceRecord } from '../instances/model.ts';
import type { ApplianceApi } from '../rpc/api.ts';
import type { Grant } from '../rpc/grants.ts';
import { statusReports, type StatusReport } from '../rpc/methods.ts';
import type { Store } from '../store/store.ts';
import { optStr, str, type Registry } from './registry.ts';

/** grant.* and api.*: what instances may do through the appliance API, and what they reported. */
export function registerApi(reg: Registry, deps: { api: ApplianceApi; bus: EventBus; store: Store; instances: { get(ref: string): Promise<InstanceRecord> } }): void {
  const { api, bus, instances } = deps;
  reg.add<Record<string, unknown>, Grant>({
    name: 'grant.add',
    mutates: true,
    summary: 'allow an instance to create instances of an appliance over the API (or @mx: MX for the domain)',
    handler: async (p, ctx) => {
      const inst = await instances.get(str(p, 'instance', 'grant.add'));
      const g = await api.grants.add(inst.name, str(p, 'appliance', 'grant.add'), ctx.actor);
      bus.emit({ kind: 'grant.added', object: `instance/${inst.name}`, message: `${inst.name} may now ${g.appliance === '@mx' ? 'register MX records for the domain' : `create ${g.appliance} instances`} (granted by ${ctx.actor})` });
      return g;
    },
  });
  reg.add<Record<string, unknown>, Grant[]>({
    name: 'grant.list',
    mutates: false,
    summary: 'grants, for all instances or one',
    handler: async (p) => {
      const i = optStr(p, 'instance', 'grant.list');
      return api.grants.list(i ? (await instances.get(i)).name : undefined);
    },
  });
  reg.add<Record<string, unknown>, Grant>({
    name: 'grant.remove',
    mutates: true,
    summary: 'withdraw a grant',
    handler: async (p, ctx) => {
      const g = await api.grants.remove(str(p, 'instance', 'grant.remove'), str(p, 'appliance', 'grant.remove'));
      bus.emit({ kind: 'grant.removed', object: `instance/${g.instance}`, message: `grant ${g.appliance} withdrawn from ${g.instance} by ${ctx.actor}` });
      return g;
    },
  });
  reg.add<Record<string, never>, Health>({ name: 'api.status', mutates: false, summary: 'health of the appliance XML-RPC API', handler: async () => api.status() });
  reg.add<Record<string, never>, StatusReport[]>({
    name: 'api.reports',
    mutates: false,
    summary: 'the last status each instance reported over the API',
    handler: async () => (await statusReports(deps.store).values()).sort((a, b) => a.instance.localeCompare(b.instance)),
  });
}
