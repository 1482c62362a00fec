/**
 * A deployment: an appliance plus the site's configuration edits, kept as a
 * `storm-deployment` layer with one version per edit (content-addressed in
 * the manager's image store; every version kept). JSON shape documented in
 * docs/instances.md; fields are only ever added.
 */
import type { PathChange } from './layer.ts';

export interface DeploymentVersion {
  version: number;
  /** The layer image's digest (STATE/images/sha256/<sha256>). */
  sha256: string;
  size: number;
  createdAt: string;
  /** How it was made: `create` (from the appliance's own deployment layer), `files` (a file set), `maintenance`, `revert` (an earlier version's layer again). */
  via: 'create' | 'files' | 'maintenance' | 'revert';
  /** With `revert`: the version whose layer it is. */
  from?: number;
  note?: string;
  /** Paths that differ from the version before (at most 1,000 listed; `changedCount` counts all). */
  changed: { path: string; change: PathChange }[];
  changedCount: number;
}

export interface DeploymentRecord {
  name: string;
  /** The appliance it is built on, as resolved at create: catalog id and version. */
  appliance: string;
  applianceVersion: string;
  /** The digest of the appliance's own deployment layer it started from, if it had one. */
  base?: string;
  /** The newest version (what new instances and `storm update apply` use). */
  version: number;
  versions: DeploymentVersion[];
  createdAt: string;
  updatedAt: string;
  /** Present while a maintenance instance edits the layer by hand (`storm deployment edit NAME --maintenance`). */
  maintenance?: {
    /** The maintenance instance's name (its record says `appliance: "maintenance:NAME"`). */
    instance: string;
    /** The version it started from (the new one is built from what it wrote). */
    from: number;
    startedAt: string;
    /** Extra kernel command line for its boot (e.g. `storm.rescue` for a shell on the console). */
    append?: string;
  };
}

/** The appliance reference instances of a deployment carry (`InstanceRecord.appliance`). */
export const DEPLOYMENT_PREFIX = 'deployment:';
export const deploymentRef = (name: string, version?: number | string) => `${DEPLOYMENT_PREFIX}${name}${version === undefined ? '' : `@${version}`}`;

/** The appliance reference of a deployment's maintenance instance: boots the layer writable, never updated by plans. */
export const MAINTENANCE_PREFIX = 'maintenance:';
/** The maintenance instance's name: derived from the deployment's, a valid hostname label. */
export const maintenanceInstanceName = (name: string) => `${name.slice(0, 57).replace(/-+$/, '')}-maint`;

/** Deployment names become layer names and appear in `deployment:NAME`: DNS-label-like. */
export function validDeploymentName(name: unknown): name is string {
  return typeof name === 'string' && /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(name);
}
