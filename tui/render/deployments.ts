import { bytes } from '../../lib/format.ts';
import { deploymentRef, type DeploymentRecord, type DeploymentVersion } from '../../manager/deployments/model.ts';
import type { UpdatePlanEntry, UpdateReport } from '../../manager/instances/service.ts';
import { age } from './detail.ts';
import type { RowSpec } from './table.ts';

export const deploymentRows: RowSpec<DeploymentRecord> = {
  name: (d) => d.name,
  columns: [
    { header: 'NAME', get: (d) => d.name },
    { header: 'APPLIANCE', get: (d) => `${d.appliance}@${d.applianceVersion}` },
    { header: 'VERSION', get: (d) => String(d.version) },
    { header: 'VERSIONS', get: (d) => String(d.versions.length) },
    { header: 'LAYER', get: (d) => d.versions.find((v) => v.version === d.version)?.sha256.slice(0, 12) ?? '' },
    { header: 'UPDATED', get: (d) => age(d.updatedAt) },
    { header: 'MAINTENANCE', get: (d) => (d.maintenance ? `${d.maintenance.instance} (from ${d.maintenance.from})` : '-') },
    { header: 'SHA256', get: (d) => d.versions.find((v) => v.version === d.version)?.sha256 ?? '', wide: true },
  ],
};

/** A deployment with the instances using it (any version), as `storm deployment list` and the console's deployments view show it. */
export interface DeploymentUse extends DeploymentRecord {
  /** Names of the instances of it (`appliance: "deployment:NAME"`, the rule `deployment remove` refuses on), sorted. */
  instances: string[];
}

/** Join deployments with the instance list: which instances use each (pure; instances of appliances are ignored). */
export function deploymentUse(deployments: readonly DeploymentRecord[], instances: readonly { name: string; appliance: string }[]): DeploymentUse[] {
  return deployments.map((d) => ({ ...d, instances: instances.filter((i) => i.appliance === deploymentRef(d.name)).map((i) => i.name).sort() }));
}

/** The deployments table (CLI `deployment list`, console `p`): the record's columns with INSTANCES after VERSIONS. */
export const deploymentListRows: RowSpec<DeploymentUse> = {
  name: deploymentRows.name,
  columns: deploymentRows.columns.flatMap((c) =>
    c.header === 'VERSIONS' ? [c, { header: 'INSTANCES', get: (d: DeploymentUse) => String(d.instances.length) }, { header: 'USED BY', get: (d: DeploymentUse) => d.instances.join(','), wide: true }] : [c],
  ),
};

/** One deployment's versions, newest first; `*` marks the one new instances get. */
export function versionRows(current: number): RowSpec<DeploymentVersion> {
  return {
    name: (v) => String(v.version),
    columns: [
      { header: 'VERSION', get: (v) => `${v.version}${v.version === current ? '*' : ''}` },
      { header: 'VIA', get: (v) => v.via },
      { header: 'CHANGED', get: (v) => String(v.changedCount) },
      { header: 'SIZE', get: (v) => bytes(v.size) },
      { header: 'LAYER', get: (v) => v.sha256.slice(0, 12) },
      { header: 'AGE', get: (v) => age(v.createdAt) },
      { header: 'NOTE', get: (v) => v.note ?? '' },
      { header: 'PATHS', get: (v) => v.changed.map((c) => `${c.change[0]}${c.path}`).join(' '), wide: true },
    ],
  };
}

/** `storm update plan`: one row per instance; SHADOWED counts its instance-layer files that hide updated ones. */
export const planRows: RowSpec<UpdatePlanEntry> = {
  name: (p) => p.instance,
  columns: [
    { header: 'INSTANCE', get: (p) => p.instance },
    { header: 'APPLIANCE', get: (p) => p.appliance },
    { header: 'HOST', get: (p) => p.host },
    { header: 'FROM', get: (p) => p.from },
    { header: 'TO', get: (p) => p.to },
    // No layer changes (a revert to the layers it runs): the update only restarts it under the new version number.
    { header: 'LAYERS', get: (p) => p.changes.map((c) => c.role).join(',') || '(same)' },
    { header: 'SHADOWED', get: (p) => (p.shadowedError ? '?' : p.shadowed === undefined ? '-' : `${p.shadowed.length}${p.shadowedTruncated ? '+' : ''}`) },
    { header: 'SHADOWED FILES', get: (p) => p.shadowedError ?? (p.shadowed ?? []).map((s) => `${s.path}(${s.kind})`).join(' '), wide: true },
  ],
};

/** `storm update apply`'s answer for people: what went to which version, the canary first, and why any failed. */
export function updateReportText(r: UpdateReport): string {
  if (!r.canary) return `${r.appliance}@${r.to}: nothing to update (every instance has it)\n`;
  const lines = [`${r.appliance} → ${r.to}: ${r.updated.length} updated, ${r.failed.length} failed (canary ${r.canary})`];
  if (r.updated.length) lines.push(`  updated: ${r.updated.join(', ')}`);
  for (const f of r.failed) lines.push(`  failed:  ${f.instance}: ${f.error}`);
  return lines.join('\n') + '\n';
}
