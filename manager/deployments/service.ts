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
import { buildDeploymentVersion, changedPaths, checkEdits, repairImage, type EditSet } from './layer.ts';
import { DEPLOYMENT_PREFIX, MAINTENANCE_PREFIX, deploymentRef, maintenanceInstanceName, validDeploymentName, type DeploymentRecord, type DeploymentVersion } from './model.ts';
import { openExt4 } from '../../lib/ext4-read.ts';
import { open as openFile } from 'node:fs/promises';

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
  /** The instance service's side of maintenance (absent: `--maintenance` is unavailable). */
  maintenance?: MaintenanceBackend;
}

/** How maintenance drives an instance: the instance service and the host it runs on. */
export interface MaintenanceBackend {
  /** Create and provision an instance of `appliance` (a `maintenance:` ref); resolves once its domain runs. */
  start(req: { name: string; appliance: string; host?: string }): Promise<{ name: string; host: string }>;
  /** Shut it down gracefully if it runs (the guest flushes its writes). */
  stop(name: string): Promise<void>;
  /** A chunk of the deployment layer it wrote (flattened raw image). */
  read(name: string, offset: number, length: number): Promise<{ base64: string; size: number }>;
  /** Destroy it with its layers (absent is fine). */
  destroy(name: string): Promise<void>;
}

const CHUNK = 4 * 1024 * 1024;
/** A deployment layer read back from a host: bounded like any layer the manager builds. */
const MAX_MAINTENANCE_LAYER = 4 * 1024 * 1024 * 1024;

export class DeploymentService {
  readonly #c: Collection<DeploymentRecord>;
  readonly #o: DeploymentServiceOptions;
  readonly #locks = new OperationLocks();

  constructor(o: DeploymentServiceOptions) {
    this.#o = o;
    this.#c = o.store.collection<DeploymentRecord>('deployments');
  }

  /** Remove build files a crash left in the image store's partial directory (no edit runs at start). */
  async sweep(): Promise<number> {
    const { readdir } = await import('node:fs/promises');
    let n = 0;
    for (const f of await readdir(this.#o.images.partials).catch(() => [] as string[])) {
      if (!/^(deployment|maintenance)-.+\.img(\.tmp-\d+)?$/.test(f)) continue;
      await rm(join(this.#o.images.partials, f), { force: true });
      n++;
    }
    return n;
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
  async #build(name: string, version: number, base: string | undefined, edits: EditSet, drop?: string[]): Promise<{ sha256: string; size: number }> {
    const tmp = join(this.#o.images.partials, `deployment-${name}-${version}-${randomBytes(4).toString('hex')}.img`);
    try {
      const r = await buildDeploymentVersion({ name, version, ...(base ? { base } : {}), edits, out: tmp, ...(drop ? { drop } : {}) });
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
      if (rec.maintenance) throw conflict(`deployment ${name} is in maintenance (${rec.maintenance.instance}); a file-set edit now would be lost`, { hint: `storm deployment edit ${name} --finish (or --abort) first` });
      const cur = rec.versions.find((v) => v.version === rec.version)!;
      const next = rec.version + 1;
      const built = await this.#build(rec.name, next, this.#o.images.path(cur.sha256), edits);
      const changes = await this.#changes(cur.sha256, built.sha256);
      if (changes.changedCount === 0) throw invalid(`the edit changes nothing in deployment ${name} (version ${rec.version} already has it)`);
      return this.#addVersion(rec, { version: next, ...built, createdAt: new Date().toISOString(), via: req.via ?? 'files', ...(req.note ? { note: req.note } : {}), ...changes });
    });
  }

  /**
   * Make an earlier version's layer the newest again, as a new version (history only grows:
   * instances on the bad version show in `storm update plan` and move with `update apply`).
   */
  async revert(name: string, to: number, opts: { note?: string } = {}): Promise<DeploymentRecord> {
    return this.#locks.run(name, 'revert', async () => {
      const rec = await this.get(name);
      if (rec.maintenance) throw conflict(`deployment ${name} is in maintenance (${rec.maintenance.instance})`, { hint: `storm deployment edit ${name} --finish (or --abort) first` });
      const target = rec.versions.find((v) => v.version === to);
      if (!target) throw notFound(`deployment ${name} has no version ${to}`, { hint: `storm deployment show ${name} lists its versions (${rec.versions.map((v) => v.version).join(', ')})` });
      const cur = rec.versions.find((v) => v.version === rec.version)!;
      if (target.sha256 === cur.sha256) throw invalid(`version ${rec.version} of deployment ${name} already has version ${to}'s layer`, { hint: 'nothing to revert' });
      // Its image is kept while the deployment lists it (image gc spares every version's layer).
      if (!(await this.#o.images.has(target.sha256))) throw notFound(`the layer of version ${to} of deployment ${name} is no longer stored`);
      const changes = await this.#changes(cur.sha256, target.sha256);
      return this.#addVersion(rec, { version: rec.version + 1, sha256: target.sha256, size: target.size, createdAt: new Date().toISOString(), via: 'revert', from: to, note: opts.note ?? `version ${to} again`, ...changes });
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
      const rec = await this.get(name);
      if (rec.maintenance) throw conflict(`deployment ${name} is in maintenance (${rec.maintenance.instance})`, { hint: `storm deployment edit ${name} --abort` });
      const users = await this.#o.users(name);
      if (users.length) throw conflict(`deployment ${name} is used by ${users.length} instance(s): ${users.slice(0, 10).join(', ')}`, { hint: 'destroy them first' });
      await this.#c.del(name);
      this.#o.bus.emit({ kind: 'deployment.removed', object: `deployment/${name}`, message: `deployment ${name} removed` });
      return { removed: name };
    });
  }

  #backend(): MaintenanceBackend {
    if (!this.#o.maintenance) throw unavailable('maintenance instances are not available in this manager');
    return this.#o.maintenance;
  }

  /**
   * Start editing by hand: boot a maintenance instance of the newest version
   * with `storm.maintenance` (the deployment layer is its writable upper
   * layer; what the guest writes lands in it). Finish with `finishMaintenance`.
   */
  async startMaintenance(name: string, opts: { host?: string; append?: string } = {}): Promise<DeploymentRecord> {
    const be = this.#backend();
    if (opts.append !== undefined && (opts.append.length > 512 || /[\x00-\x1f\x7f]/.test(opts.append))) throw invalid('--append must be at most 512 printable characters');
    return this.#locks.run(name, 'maintenance', async () => {
      const rec = await this.get(name);
      if (rec.maintenance) throw conflict(`deployment ${name} is already in maintenance (${rec.maintenance.instance})`, { hint: `storm deployment edit ${name} --finish or --abort` });
      const instance = maintenanceInstanceName(name);
      rec.maintenance = { instance, from: rec.version, startedAt: new Date().toISOString(), ...(opts.append ? { append: opts.append } : {}) };
      await this.#c.put(name, rec);
      try {
        const r = await be.start({ name: instance, appliance: `${MAINTENANCE_PREFIX}${name}@${rec.version}`, ...(opts.host ? { host: opts.host } : {}) });
        this.#o.bus.emit({ kind: 'deployment.maintenance', object: `deployment/${name}`, message: `deployment ${name}: maintenance instance ${r.name} runs on ${r.host} (version ${rec.version} writable)` });
        return rec;
      } catch (e) {
        await be.destroy(instance).catch(() => undefined);
        delete rec.maintenance;
        await this.#c.put(name, rec);
        throw e;
      }
    });
  }

  /** Shut the maintenance instance down, read back what it wrote, keep it as a new version (if anything changed), destroy it. */
  async finishMaintenance(name: string, opts: { note?: string } = {}): Promise<DeploymentRecord> {
    const be = this.#backend();
    return this.#locks.run(name, 'maintenance', async () => {
      const rec = await this.get(name);
      const m = rec.maintenance;
      if (!m) throw conflict(`deployment ${name} is not in maintenance`, { hint: `storm deployment edit ${name} --maintenance starts it` });
      await be.stop(m.instance);
      const tmp = join(this.#o.images.partials, `maintenance-${name}-${randomBytes(4).toString('hex')}.img`);
      try {
        const fh = await openFile(tmp, 'wx', 0o600);
        try {
          for (let off = 0, size = Infinity; off < size; ) {
            const c = await be.read(m.instance, off, CHUNK);
            if (c.size > MAX_MAINTENANCE_LAYER) throw invalid(`the maintenance layer of ${name} is ${c.size} bytes, over ${MAX_MAINTENANCE_LAYER}`);
            size = c.size;
            const b = Buffer.from(c.base64, 'base64');
            if (!b.length && off < size) throw unavailable(`the host returned no data at offset ${off} of the maintenance layer`);
            await fh.write(b, 0, b.length, off);
            off += b.length;
          }
        } finally {
          await fh.close();
        }
        const label = (await openExt4(tmp)).label;
        if (label !== 'storm-deployment') throw invalid(`the maintenance layer read back is labelled "${label}", not storm-deployment`);
        await repairImage(tmp); // the guest may have powered off without unmounting: replay its journal
        // Rebuilt from its tree (not stored as written): root-owned, fixed times, the same layer format as any version.
        // `.layers` is where the initrd mounted the layers in the union: mount points, not content.
        const next = rec.version + 1;
        const built = await this.#build(name, next, tmp, {}, ['.layers']);
        const cur = rec.versions.find((v) => v.version === rec.version)!;
        const changes = await this.#changes(cur.sha256, built.sha256);
        await be.destroy(m.instance);
        delete rec.maintenance;
        if (changes.changedCount === 0) {
          rec.updatedAt = new Date().toISOString();
          await this.#c.put(name, rec);
          this.#o.bus.emit({ kind: 'deployment.maintenance', object: `deployment/${name}`, message: `deployment ${name}: maintenance changed nothing; version stays ${rec.version}` });
          return rec;
        }
        return await this.#addVersion(rec, { version: next, ...built, createdAt: new Date().toISOString(), via: 'maintenance', ...(opts.note ? { note: opts.note } : {}), ...changes });
      } finally {
        await rm(tmp, { force: true });
      }
    });
  }

  /** Throw away a maintenance session: destroy its instance; the deployment stays at its version. */
  async abortMaintenance(name: string): Promise<DeploymentRecord> {
    const be = this.#backend();
    return this.#locks.run(name, 'maintenance', async () => {
      const rec = await this.get(name);
      if (!rec.maintenance) throw conflict(`deployment ${name} is not in maintenance`);
      await be.destroy(rec.maintenance.instance);
      delete rec.maintenance;
      rec.updatedAt = new Date().toISOString();
      await this.#c.put(name, rec);
      this.#o.bus.emit({ kind: 'deployment.maintenance', object: `deployment/${name}`, message: `deployment ${name}: maintenance aborted; version stays ${rec.version}` });
      return rec;
    });
  }

  /** `NAME` or `NAME@VERSION` → the ApplianceSpec an instance of it boots (id `deployment:NAME`, version the layer version). */
  async spec(ref: string, opts: { maintenance?: boolean } = {}): Promise<ApplianceSpec> {
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
    const spec: ApplianceSpec = { ...app, id: deploymentRef(rec.name), version: String(v.version), layers, formats: { ...(app.formats ?? {}), deployment: 'raw' } };
    if (!opts.maintenance) return spec;
    const append = rec.maintenance?.append ? ` ${rec.maintenance.append}` : '';
    // Booted to edit files, not to serve: its instance is not held to the appliance's parameters.
    const { parameters: _unchecked, ...bare } = spec;
    return { ...bare, id: `${MAINTENANCE_PREFIX}${rec.name}`, cmdline: `${app.cmdline ?? 'console=ttyS0'} storm.maintenance${append}`, maintenance: true };
  }
}

/** The catalog, plus `deployment:NAME[@VERSION]` references resolved by the deployment service. */
export function deploymentAwareSource(catalog: ApplianceSource, deployments: () => DeploymentService | undefined): ApplianceSource {
  return {
    resolve: async (ref) => {
      const maintenance = ref.startsWith(MAINTENANCE_PREFIX);
      if (!ref.startsWith(DEPLOYMENT_PREFIX) && !maintenance) return catalog.resolve(ref);
      const d = deployments();
      if (!d) throw unavailable('deployments are not available yet: the manager is starting');
      return d.spec(ref.slice((maintenance ? MAINTENANCE_PREFIX : DEPLOYMENT_PREFIX).length), { maintenance }).catch((e) => {
        throw toStormError(e);
      });
    },
  };
}
