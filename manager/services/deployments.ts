import { invalid } from '../../lib/errors.ts';
import type { DeploymentRecord } from '../deployments/model.ts';
import type { EditSet } from '../deployments/layer.ts';
import type { DeploymentService } from '../deployments/service.ts';
import { optStr, str, type Registry } from './registry.ts';

function edits(p: Record<string, unknown>, m: string): EditSet | undefined {
  const e = p.edits;
  if (e === undefined) return undefined;
  if (!e || typeof e !== 'object' || Array.isArray(e)) throw invalid(`${m}: "edits" must be {files: [{path, base64, mode?}], delete: [path]}`);
  return e as EditSet; // the service checks every field and bound
}

/** deployment.*: appliances plus the site's edits, one layer version per edit. */
export function registerDeployments(reg: Registry, svc: DeploymentService): void {
  reg.add<Record<string, unknown>, DeploymentRecord>({
    name: 'deployment.create',
    mutates: true,
    summary: "make a deployment of an appliance (version 1: the appliance's own deployment layer, plus any edits)",
    handler: (p) => {
      const note = optStr(p, 'note', 'deployment.create');
      const e = edits(p, 'deployment.create');
      return svc.create({ name: str(p, 'name', 'deployment.create'), appliance: str(p, 'appliance', 'deployment.create'), ...(e ? { edits: e } : {}), ...(note ? { note } : {}) });
    },
  });
  reg.add({ name: 'deployment.list', mutates: false, summary: 'all deployments', handler: () => svc.list() });
  reg.add<Record<string, unknown>, DeploymentRecord>({ name: 'deployment.show', mutates: false, summary: 'one deployment and its versions', handler: (p) => svc.get(str(p, 'name', 'deployment.show')) });
  reg.add<Record<string, unknown>, DeploymentRecord>({
    name: 'deployment.edit',
    mutates: true,
    summary: 'apply a file set to a deployment: a new layer version (the previous ones are kept)',
    handler: (p) => {
      const note = optStr(p, 'note', 'deployment.edit');
      return svc.edit(str(p, 'name', 'deployment.edit'), { edits: edits(p, 'deployment.edit') ?? {}, ...(note ? { note } : {}) });
    },
  });
  reg.add<Record<string, unknown>, DeploymentRecord>({
    name: 'deployment.maintenance.start',
    mutates: true,
    summary: 'boot a maintenance instance (storm.maintenance) whose writable upper layer is the deployment layer',
    handler: (p) => {
      const m = 'deployment.maintenance.start';
      const host = optStr(p, 'host', m);
      const append = optStr(p, 'append', m);
      return svc.startMaintenance(str(p, 'name', m), { ...(host ? { host } : {}), ...(append ? { append } : {}) });
    },
  });
  reg.add<Record<string, unknown>, DeploymentRecord>({
    name: 'deployment.maintenance.finish',
    mutates: true,
    summary: 'shut the maintenance instance down and keep what it wrote as a new version',
    handler: (p) => {
      const note = optStr(p, 'note', 'deployment.maintenance.finish');
      return svc.finishMaintenance(str(p, 'name', 'deployment.maintenance.finish'), note ? { note } : {});
    },
  });
  reg.add<Record<string, unknown>, DeploymentRecord>({ name: 'deployment.maintenance.abort', mutates: true, summary: 'destroy the maintenance instance; the deployment keeps its version', handler: (p) => svc.abortMaintenance(str(p, 'name', 'deployment.maintenance.abort')) });
  reg.add<Record<string, unknown>, DeploymentRecord>({
    name: 'deployment.revert',
    mutates: true,
    summary: "make an earlier version's layer the newest again, as a new version",
    handler: (p) => {
      const m = 'deployment.revert';
      const note = optStr(p, 'note', m);
      const to = p.version;
      if (typeof to !== 'number' || !Number.isInteger(to) || to < 1) throw invalid(`${m}: "version" must be a version number (1 or more)`);
      return svc.revert(str(p, 'name', m), to, note ? { note } : {});
    },
  });
  reg.add({ name: 'deployment.remove', mutates: true, summary: 'forget a deployment no instance uses', handler: (p) => svc.remove(str(p, 'name', 'deployment.remove')) });
}
