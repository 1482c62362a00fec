import { invalid } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import { INSTANCE_STATES, shown, type InstanceRecord } from '../instances/model.ts';
import { deploymentRef } from '../deployments/model.ts';
import type { InstanceService } from '../instances/service.ts';
import { optStr, str, type Registry } from './registry.ts';

function params(p: Record<string, unknown>): Record<string, string> {
  const v = p.params ?? {};
  if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.values(v).every((x) => typeof x === 'string')) throw invalid('instance.create: "params" must be an object of strings');
  return v as Record<string, string>;
}

/** What `instance.create` takes: an appliance or one of the site's deployments (its newest version), never both. */
export type InstanceCreateParams = {
  name: string;
  appliance?: string;
  deployment?: string;
  host?: string;
  params: Record<string, string>;
};

/** The one request shape the CLI (`--deployment`) and the console's wizard send: a deployment replaces the appliance; no host means automatic placement. */
export function instanceCreateParams(o: { name: string; appliance?: string; deployment?: string; host?: string; params?: Record<string, string> }): InstanceCreateParams {
  return { name: o.name, ...(o.deployment ? { deployment: o.deployment } : { appliance: o.appliance ?? '' }), ...(o.host ? { host: o.host } : {}), params: o.params ?? {} };
}

/** instance.*: the service methods the console, the CLI and SSH exec share; records go out `shown` (secret parameters hidden). */
export function registerInstances(reg: Registry, svc: InstanceService, log: Logger): void {
  reg.add<Record<string, unknown>, InstanceRecord>({
    name: 'instance.create',
    mutates: true,
    summary: 'create an instance and provision it in the background',
    handler: async (p) => {
      const host = optStr(p, 'host', 'instance.create');
      // An instance of a deployment boots the deployment's newest layer version over its appliance.
      const deployment = optStr(p, 'deployment', 'instance.create');
      const appliance = deployment ? deploymentRef(deployment) : str(p, 'appliance', 'instance.create');
      const inst = await svc.create({ name: str(p, 'name', 'instance.create'), appliance, ...(host ? { host } : {}), params: params(p) });
      // Provisioning is long work: callers follow it by state or events (--wait).
      svc.provision(inst.id).catch((e) => log.warn('provisioning failed', { instance: inst.name, error: (e as Error).message }));
      return shown(inst);
    },
  });
  reg.add({
    name: 'instance.list',
    mutates: false,
    summary: 'instances by name; optionally only those on a host, in a state, or of an appliance (ID, ID@VERSION or deployment:NAME)',
    handler: async (p) => {
      const host = optStr(p, 'host', 'instance.list');
      const state = optStr(p, 'state', 'instance.list');
      const appliance = optStr(p, 'appliance', 'instance.list');
      if (state !== undefined && !(INSTANCE_STATES as readonly string[]).includes(state)) throw invalid(`instance.list: state "${state}" is not one of ${INSTANCE_STATES.join(', ')}`);
      const keep = (i: InstanceRecord) => (!host || i.host === host) && (!state || i.state === state) && (!appliance || i.appliance === appliance || `${i.appliance}@${i.version}` === appliance);
      return (await svc.list()).filter(keep).map(shown);
    },
  });
  reg.add<Record<string, unknown>, InstanceRecord>({ name: 'instance.show', mutates: false, summary: 'one instance', handler: async (p) => shown(await svc.get(str(p, 'name', 'instance.show'))) });
  for (const verb of ['start', 'stop', 'reboot', 'poweroff'] as const) {
    reg.add<Record<string, unknown>, InstanceRecord>({ name: `instance.${verb}`, mutates: true, summary: `${verb} an instance`, handler: async (p) => shown(await svc[verb](str(p, 'name', `instance.${verb}`))) });
  }
  reg.add({
    name: 'instance.console',
    mutates: false,
    summary: "an instance's serial console: its end, or from byte `from` (the `next` of the last answer)",
    handler: (p) => svc.console(str(p, 'name', 'instance.console'), p.bytes === undefined ? undefined : Number(p.bytes), p.from === undefined ? undefined : Number(p.from), optStr(p, 'boot', 'instance.console')),
  });
  reg.add<Record<string, unknown>, { destroyed: string }>({
    name: 'instance.destroy',
    mutates: true,
    summary: 'destroy an instance and its instance layer',
    handler: async (p) => {
      const name = str(p, 'name', 'instance.destroy');
      await svc.destroy(name);
      return { destroyed: name };
    },
  });
  reg.add({ name: 'instance.snapshot.list', mutates: false, summary: 'snapshots of an instance layer', handler: (p) => svc.snapshots(str(p, 'name', 'instance.snapshot.list')) });
  for (const [verb, fn] of [['take', 'snapshot'], ['restore', 'restore'], ['delete', 'deleteSnapshot']] as const) {
    reg.add({
      name: `instance.snapshot.${verb}`,
      mutates: true,
      summary: `${verb} a snapshot of an instance layer`,
      handler: async (p) => {
        const m = `instance.snapshot.${verb}`;
        await svc[fn](str(p, 'name', m), str(p, 'snapshot', m));
        return { instance: p.name, snapshot: p.snapshot, done: verb };
      },
    });
  }
  reg.add({ name: 'instance.migrate', mutates: true, summary: 'cold-migrate an instance to another host', handler: (p) => svc.migrate(str(p, 'name', 'instance.migrate'), str(p, 'host', 'instance.migrate')) });
  reg.add({ name: 'update.plan', mutates: false, summary: 'instances not on the appliance version given (without one: every appliance and deployment with instances, at its newest version)', handler: (p) => svc.updatePlan(optStr(p, 'appliance', 'update.plan')) });
  reg.add({
    name: 'update.apply',
    mutates: true,
    summary: 'roll an appliance version out: canary, health check, the rest',
    handler: (p) => svc.updateApply(str(p, 'appliance', 'update.apply'), { concurrency: typeof p.concurrency === 'number' ? p.concurrency : 2 }),
  });
  reg.add({ name: 'update.rollback', mutates: true, summary: 'put an instance back on its previous layers', handler: async (p) => shown(await svc.rollback(str(p, 'name', 'update.rollback'))) });
  reg.add({ name: 'host.gc', mutates: true, summary: "remove layers no instance on a host uses from that host's cache", handler: (p) => svc.gcLayers(str(p, 'name', 'host.gc')) });
  reg.add({ name: 'instance.reconcile', mutates: true, summary: 'compare the store with the hosts and repair', handler: () => svc.reconcile() });
  reg.add({ name: 'instance.operations', mutates: false, summary: 'open journal entries: operations in progress or awaiting reconciliation', handler: () => svc.operations() });
}
