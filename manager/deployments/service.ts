/**
 * Deployments: create one from an appliance, edit it with file sets (each
 * edit a new layer version in the image store, old versions kept), and
 * resolve `deployment:NAME[@VERSION]` to the ApplianceSpec instances use: the
 * appliance's substrate and appliance layers with this deployment layer.
 * Instances of a deployment are moved between versions by the instance
 * service's update plan/apply/rollback (`storm update plan --deployment`).
 */
import { randomBytes } from 'node:crypto';
import { chmod, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { conflict, invalid, notFound, toStormError, unavailable } from '../../lib/errors.ts';
import { OperationLocks } from '../../lib/operation-lock.ts';
import type { EventBus } from '../events.ts';
import type { ImageStore } from '../images/store.ts';
import type { ApplianceSpec } from '../instances/model.ts';
import type { ApplianceSource } from '../instances/service.ts';
import type { Collection, Store } from '../store/store.ts';
import { buildDeploymentVersion, changedPaths, checkEdits, type EditSet } from './layer.ts';
import { DEPLOYMENT_PREFIX, deploymentRef, validDeploymentName, type DeploymentRecord, type DeploymentVersion } from './model.ts';

const MAX_CHANGED_LISTED = 1000;

export interface DeploymentServiceOptions {
  store: Store;
  /** The channel catalog (not deployment-aware). */
  appliances: ApplianceSource;
  images: ImageStore;
  /** Make sure a layer is in the image store (downloads it from its URL if needed). */
  ensureImage: (ref: { sha256: string; size: number; url: string; what: string }) => Promise<void>;
  /** The URL hypervisors fetch a stored layer from; undefined while the layer server is not serving. */
  layerUrl: (sha256: string) => string | undefined;
  bus: EventBus;
  /** Names of instances using a deployment (any version): removal is refused while there are some. */
  users: (name: string) => Promise<string[]>;
}

export class DeploymentService {
  readonly #c: Collection<DeploymentRecord>;
  readonly #o: DeploymentServiceOptions;
  readonly #locks = new OperationLocks();

  constructor(o: DeploymentServiceOptions) {
    this.#o = o;
    this.#c = o.store.collection<DeploymentRecord>('deployments');
  }

  async list(): Promise<DeploymentRecord[]> {
    return (await this.#c.values()).sort((a, b) => a.name.localeCompare(b.name));
  }

  get(name: string): Promise<DeploymentRecord> {
    return this.#c.require(name, 'deployment');
  }

  /** Every layer digest any deployment version uses (the image store keeps them). */
  async digests(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const d of await this.#c.values()) for (const v of d.versions) out.set(v.sha256, `deployment/${d.name}@${v.version}`);
    return out;
  }

  /** Build a layer version into the image store; returns its digest and size. */
  async #build(name: string, version: number, base: string | undefined, edits: EditSet): Promise<{ sha256: string; size: number }> {
    const tmp = join(this.#o.images.partials, `deployment-${name}-${version}-${randomBytes(4).toString('hex')}.img`);
    try {
      const r = await buildDeploymentVersion({ name, version, ...(base ? { base } : {}), edits, out: tmp });
      const dst = this.#o.images.path(r.sha256);
      if (await this.#o.images.has(r.sha256)) await rm(tmp, { force: true });
      else {
        await chmod(tmp, 0o444);
        await rename(tmp, dst);
      }
      return { sha256: r.sha256, size: r.size };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async #changes(prev: string | undefined, next: string): Promise<Pick<DeploymentVersion, 'changed' | 'changedCount'>> {
    const ch = await changedPaths(prev ? this.#o.images.path(prev) : undefined, this.#o.images.path(next));
    const all = [...ch].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([p, change]) => ({ path: `/${p}`, change }));
    return { changed: all.slice(0, MAX_CHANGED_LISTED), changedCount: all.length };
  }

  /** A new deployment of an appliance: version 1 is the appliance's own deployment layer (if any) plus `edits`. */
  async create(req: { name: string; appliance: string; edits?: EditSet; note?: string }): Promise<DeploymentRecord> {
    if (!validDeploymentName(req.name)) throw invalid(`deployment name ${JSON.stringify(req.name)} is not valid`, { hint: 'use lower-case letters, digits and "-", at most 63 characters' });
    const edits = checkEdits(req.edits);
    return this.#locks.run(req.name, 'create', async () => {
      if (await this.#c.get(req.name)) throw conflict(`deployment "${req.name}" already exists`, { hint: `storm deployment edit ${req.name} makes a new version` });
      if (req.appliance.startsWith(DEPLOYMENT_PREFIX)) throw invalid('a deployment is made from an appliance, not from another deployment');
      const app = await this.#o.appliances.resolve(req.appliance);
      if (app.layers.some((l) => l.role === 'disk')) throw invalid(`${app.id}@${app.version} is a traditional (single-disk) appliance: it has no layers to deploy onto`, { hint: 'deployments need a layered appliance' });
      const own = app.layers.find((l) => l.role === 'deployment');
      if (own) await this.#o.ensureImage({ sha256: own.sha256, size: own.size, url: own.url, what: `${app.id}@${app.version} deployment` });
      const built = await this.#build(req.name, 1, own ? this.#o.images.path(own.sha256) : undefined, edits);
      const now = new Date().toISOString();
      const rec: DeploymentRecord = {
        name: req.name, appliance: app.id, applianceVersion: app.version, ...(own ? { base: own.sha256 } : {}), version: 1,
        versions: [{ version: 1, ...built, createdAt: now, via: 'create', ...(req.note ? { note: req.note } : {}), ...(await this.#changes(own?.sha256, built.sha256)) }],
        createdAt: now, updatedAt: now,
      };
      await this.#c.put(rec.name, rec);
      this.#o.bus.emit({ kind: 'deployment.created', object: `deployment/${rec.name}`, message: `deployment ${rec.name} of ${app.id}@${app.version} created (version 1)` });
      return rec;
    });
  }

  /** Apply a file set: a new version built from the newest one. An edit that changes nothing is refused. */
  async edit(name: string, req: { edits: EditSet; note?: string; via?: DeploymentVersion['via'] }): Promise<DeploymentRecord> {
    const edits = checkEdits(req.edits);
    if (!edits.files.length && !edits.delete.length) throw invalid('nothing to change', { hint: 'give --set PATH=@FILE, --from DIR or --delete PATH' });
    return this.#locks.run(name, 'edit', async () => {
      const rec = await this.get(name);
      const cur = rec.versions.find((v) => v.version === rec.version)!;
      const next = rec.version + 1;
      const built = await this.#build(rec.name, next, this.#o.images.path(cur.sha256), edits);
      const changes = await this.#changes(cur.sha256, built.sha256);
      if (changes.changedCount === 0) throw invalid(`the edit changes nothing in deployment ${name} (version ${rec.version} already has it)`);
      return this.#addVersion(rec, { version: next, ...built, createdAt: new Date().toISOString(), via: req.via ?? 'files', ...(req.note ? { note: req.note } : {}), ...changes });
    });
  }

  async #addVersion(rec: DeploymentRecord, v: DeploymentVersion): Promise<DeploymentRecord> {
    rec.versions.push(v);
    rec.version = v.version;
    rec.updatedAt = v.createdAt;
    await this.#c.put(rec.name, rec);
    this.#o.bus.emit({ kind: 'deployment.edited', object: `deployment/${rec.name}`, message: `deployment ${rec.name}: version ${v.version} (${v.changedCount} path(s) changed); storm update plan --deployment ${rec.name}`, data: { version: v.version, sha256: v.sha256 } });
    return rec;
  }

  /** Forget a deployment (its layer images go at the next `storm image gc`); refused while instances use it. */
  async remove(name: string): Promise<{ removed: string }> {
    return this.#locks.run(name, 'remove', async () => {
      await this.get(name);
      const users = await this.#o.users(name);
      if (users.length) throw conflict(`deployment ${name} is used by ${users.length} instance(s): ${users.slice(0, 10).join(', ')}`, { hint: 'destroy them first' });
      await this.#c.del(name);
      this.#o.bus.emit({ kind: 'deployment.removed', object: `deployment/${name}`, message: `deployment ${name} removed` });
      return { removed: name };
    });
  }

  /** `NAME` or `NAME@VERSION` → the ApplianceSpec an instance of it boots (id `deployment:NAME`, version the layer version). */
  async spec(ref: string): Promise<ApplianceSpec> {
    const m = /^([^@]+)(?:@(\d+))?$/.exec(ref);
    if (!m) throw invalid(`deployment reference ${JSON.stringify(ref)} must be NAME or NAME@VERSION`);
    const rec = await this.get(m[1]!);
    const want = m[2] === undefined ? rec.version : Number(m[2]);
    const v = rec.versions.find((x) => x.version === want);
    if (!v) throw notFound(`deployment ${rec.name} has no version ${want}`, { hint: `versions: ${rec.versions.map((x) => x.version).join(', ')}` });
    const app = await this.#o.appliances.resolve(`${rec.appliance}@${rec.applianceVersion}`);
    const url = this.#o.layerUrl(v.sha256);
    if (!url) throw unavailable("the manager's layer server is not serving, so hosts cannot fetch deployment layers", { hint: 'set layerListen (STORM_LAYER_LISTEN) to a free HOST:PORT' });
    const layers = [...app.layers.filter((l) => l.role !== 'deployment'), { role: 'deployment' as const, sha256: v.sha256, size: v.size, url }];
    return { ...app, id: deploymentRef(rec.name), version: String(v.version), layers, formats: { ...(app.formats ?? {}), deployment: 'raw' } };
  }
}

/** The catalog, plus `deployment:NAME[@VERSION]` references resolved by the deployment service. */
export function deploymentAwareSource(catalog: ApplianceSource, deployments: () => DeploymentService | undefined): ApplianceSource {
  return {
    resolve: async (ref) => {
      if (!ref.startsWith(DEPLOYMENT_PREFIX)) return catalog.resolve(ref);
      const d = deployments();
      if (!d) throw unavailable('deployments are not available yet: the manager is starting');
      return d.spec(ref.slice(DEPLOYMENT_PREFIX.length)).catch((e) => {
        throw toStormError(e);
      });
    },
  };
}
