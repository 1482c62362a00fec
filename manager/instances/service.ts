import { randomBytes } from 'node:crypto';
import { conflict, invalid, notFound, toStormError, unavailable } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import { OperationLocks } from '../../lib/operation-lock.ts';
import { Revert } from '../../lib/revert.ts';
import type { EventBus } from '../events.ts';
import type { Batch, Collection, Store } from '../store/store.ts';
import type { Checkpoint } from './crash-points.ts';
import type { DomainRequest, HostAgent, LayerRef } from './host-agent.ts';
import { Journal, type JournalEntry } from './journal.ts';
import { DOMAIN_PREFIX, assertAllowed, domainName, macFor, reportLevel, validName, type ApplianceSpec, type InstanceRecord, type InstanceReport, type InstanceState } from './model.ts';
import { place, type Candidate } from './placement.ts';
import { resolveParams } from './params.ts';
import type { RoleChange, ShadowFinder, ShadowedFile } from './shadowed.ts';
import type { ConsoleChunk } from '../../lib/console-window.ts';

/** Where hosts come from (the hosts service) and how to reach each one. */
export interface HostDirectory {
  list(): Promise<{ name: string; online: boolean }[]>;
  agent(name: string): HostAgent;
}

/** Where appliances come from (the channel catalog). */
export interface ApplianceSource {
  resolve(ref: string): Promise<ApplianceSpec>;
}

export interface CreateRequest {
  name: string;
  appliance: string;
  host?: string;
  params?: Record<string, string>;
  /** Who asked, when not the admin (e.g. `instance:web1` over the appliance API). */
  createdBy?: string;
}

export interface MigrationReport {
  instance: string;
  from: string;
  to: string;
  /** Bytes of the instance layer moved. */
  instanceLayerBytes: number;
  /** Bytes of shared layers the target had to fetch (0 when it held them). */
  layerBytes: number;
  bytesMoved: number;
}

export interface UpdatePlanEntry {
  instance: string;
  /** The appliance (or `deployment:NAME`) the update is of. */
  appliance: string;
  host: string;
  from: string;
  to: string;
  changes: { role: string; from: string | undefined; to: string }[];
  /** Paths in the instance's own layer that would hide files this update changes (when the service has a ShadowFinder). */
  shadowed?: ShadowedFile[];
  /** The instance layer listing hit the host's bound: `shadowed` may be incomplete. */
  shadowedTruncated?: boolean;
  /** Why there is no shadowed-files report for this instance (host unreachable …). */
  shadowedError?: string;
}

export interface UpdateReport {
  appliance: string;
  to: string;
  canary?: string;
  updated: string[];
  failed: { instance: string; error: string }[];
}

export interface ReconcileReport {
  finished: string[];
  undone: string[];
  /** Domains named like ours that no instance owns: reported, never touched. */
  orphans: { host: string; domain: string }[];
  /** Instances whose recorded state disagreed with the host, now corrected. */
  corrected: { instance: string; from: InstanceState; to: InstanceState }[];
  /** What could not be repaired now (host unreachable …); retried on the next pass. */
  deferred: { instance?: string; host?: string; op?: string; error: string }[];
}

/** States only an operation in progress leaves a record in, and the operation that does. */
const TRANSITIONAL: Partial<Record<InstanceState, 'provision' | 'destroy'>> = { pending: 'provision', provisioning: 'provision', deleting: 'destroy' };

/** Everything a host must hold to boot the appliance: its kernel and initrd, then its layers. */
function bootAndLayers(app: ApplianceSpec): LayerRef[] {
  return [...(app.kernel ? [app.kernel] : []), ...(app.initrd ? [app.initrd] : []), ...app.layers];
}

/**
 * Put `refs` on the host: one question for what it already holds (the usual case), then
 * the missing layers fetched together. The ones it had to fetch.
 */
async function ensureLayersOn(agent: HostAgent, refs: LayerRef[]): Promise<LayerRef[]> {
  const held = new Set(await agent.layers());
  const missing = refs.filter((l) => !held.has(l.sha256));
  await Promise.all(missing.map((l) => agent.ensureLayer(l)));
  return missing;
}

export interface InstanceServiceOptions {
  domain: string;
  instanceLayerMiB?: number;
  /** The manager's address, written into every instance layer (/etc/storm/manager). */
  managerAddress?: string;
  /** Extra instance-layer files made at provisioning (e.g. the API URL in /etc/storm/manager). */
  instanceFiles?: (inst: InstanceRecord) => Promise<Record<string, string>>;
  /** Tests only: called at each crash point (manager/instances/crash-points.ts). */
  checkpoint?: Checkpoint;
  /** The CA: each instance gets its own certificate in its layer; it is revoked at destroy. */
  identity?: {
    issue(inst: { id: string; name: string }): Promise<{ key: string; cert: string; ca: string; serial: string }>;
    /**
     * Revoke whatever was issued for the instance id (and `serial`, if known; with `name` and
     * `createdAt`, whatever was issued under its name since it was created); nothing issued, or
     * already revoked, is fine.
     */
    revoke(inst: { id: string; serial?: string; name?: string; createdAt?: string }): Promise<unknown>;
  };
  /** Reports which files in each instance layer an update would hide (`update plan`). */
  shadows?: ShadowFinder;
  /**
   * The instances' own reports (status.report over the appliance API). An update's health check
   * then waits for a fresh `ready` from an instance that reports, rather than trusting a running domain.
   */
  reports?: { last(id: string): Promise<InstanceReport | undefined> };
  /** How long an update waits for a reporting instance to say `ready` (default 180 s: a TCG boot). */
  readyTimeoutMs?: number;
  /** How often it looks for that report (default 1 s). */
  reportPollMs?: number;
}

/**
 * The life of an instance: provisioning with undo and an intent journal,
 * lifecycle actions under a per-instance lock, and reconciliation.
 */
export class InstanceService {
  readonly #store: Store;
  readonly #c: Collection<InstanceRecord>;
  /** name → id, written in the same batches as the records (a lookup by name reads two keys, not every record). */
  readonly #names: Collection<string>;
  readonly #meta: Collection<number>;
  #indexed: Promise<void> | undefined;
  readonly #journal: Journal;
  readonly #locks = new OperationLocks();
  readonly #point: Checkpoint;

  constructor(
    store: Store,
    private readonly hosts: HostDirectory,
    private readonly appliances: ApplianceSource,
    private readonly bus: EventBus,
    private readonly log: Logger,
    private readonly opts: InstanceServiceOptions = { domain: 'cloud.storm' },
  ) {
    this.#store = store;
    this.#c = store.collection<InstanceRecord>('instances');
    this.#names = store.collection<string>('instances.names');
    this.#meta = store.collection<number>('instances.meta');
    this.#journal = new Journal(store);
    this.#point = opts.checkpoint ?? (() => {});
  }

  /** By name (the store keeps them by id, which is random). */
  async list(): Promise<InstanceRecord[]> {
    // Names are lower-case ASCII labels: a plain comparison is their order, and cheap at 10,000.
    return (await this.#c.values()).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Open journal entries: operations in progress, or interrupted and awaiting reconciliation. */
  operations(): Promise<JournalEntry[]> {
    return this.#journal.open();
  }

  /** Find by name or id. */
  async get(ref: string): Promise<InstanceRecord> {
    const byId = await this.#c.get(ref);
    if (byId) return byId;
    const byName = await this.#byName(ref);
    if (byName) return byName;
    return this.#c.require(ref, 'instance');
  }

  async #byName(name: string): Promise<InstanceRecord | undefined> {
    await this.#nameIndex();
    const id = await this.#names.get(name);
    const inst = id === undefined ? undefined : await this.#c.get(id);
    return inst?.name === name ? inst : undefined;
  }

  /** Build the name index once where the store predates it (every later write keeps it whole). */
  #nameIndex(): Promise<void> {
    this.#indexed ??= (async () => {
      if (await this.#meta.get('names')) return;
      const b = this.#store.batch();
      for (const i of await this.#c.values()) b.put(this.#names, i.name, i.id);
      await b.put(this.#meta, 'names', 1).write();
    })().catch((e: unknown) => {
      this.#indexed = undefined;
      throw e;
    });
    return this.#indexed;
  }

  /** Save the record; `tx` puts it into a journal batch instead (one atomic write with the entry). */
  async #save(inst: InstanceRecord, patch: Partial<InstanceRecord>, tx?: (put: (b: Batch) => void) => Promise<unknown>): Promise<InstanceRecord> {
    const was = { state: inst.state, version: inst.version, error: inst.error };
    Object.assign(inst, patch, { updatedAt: new Date().toISOString() });
    if (patch.error === undefined && 'error' in patch) {
      delete inst.error;
      delete inst.errorCode;
    }
    if (tx) await tx((b) => b.put(this.#c, inst.id, inst));
    else await this.#c.put(inst.id, inst);
    // One event per change an admin reads; a save that changes neither (a certificate noted, the
    // host switched mid-migration: instance.migrated follows) says nothing.
    if (inst.state === 'failed' && (was.state !== 'failed' || inst.error !== was.error)) this.bus.emit({ kind: 'instance.state', object: `instance/${inst.name}`, level: 'error', message: `${inst.name} failed: ${inst.error ?? 'no reason recorded'}`, data: { id: inst.id, state: inst.state, ...(inst.errorCode ? { code: inst.errorCode } : {}) } });
    else if (inst.state !== was.state) this.bus.emit({ kind: 'instance.state', object: `instance/${inst.name}`, message: `${inst.name} is ${inst.state}`, data: { id: inst.id, state: inst.state } });
    else if (inst.version !== was.version) this.bus.emit({ kind: 'instance.updated', object: `instance/${inst.name}`, message: `${inst.name}: ${inst.appliance} ${was.version} → ${inst.version}`, data: { id: inst.id, state: inst.state, from: was.version, to: inst.version } });
    return inst;
  }

  /** Validate, record as pending, choose a host; the workflow runs in `provision`. */
  async create(req: CreateRequest): Promise<InstanceRecord> {
    if (!validName(req.name)) throw invalid(`instance name "${req.name}" is not a valid hostname label`, { hint: 'use lower-case letters, digits and "-", at most 63 characters' });
    // Held on the name from the check to the write: two creates of one name cannot both pass.
    return this.#locks.run(`name/${req.name}`, 'create', () => this.#create(req));
  }

  async #create(req: CreateRequest): Promise<InstanceRecord> {
    if (await this.#byName(req.name)) throw conflict(`instance "${req.name}" already exists`);
    const app = await this.appliances.resolve(req.appliance);
    const checked = app.parameters ? resolveParams(app.parameters, req.params ?? {}) : { params: req.params ?? {} };
    if ('error' in checked) throw invalid(`${app.id}@${app.version}: ${checked.error}`, { hint: app.parameters?.length ? `storm appliance show ${app.id} lists its parameters` : 'create it without parameters' });
    // A named host is checked before anything is written: a typo leaves no failed record behind.
    if (req.host !== undefined) await this.#requireOnline(req.host);
    const host = req.host ?? (await this.#place(app));
    const id = randomBytes(6).toString('hex');
    const now = new Date().toISOString();
    const inst: InstanceRecord = {
      id, name: req.name, appliance: app.id, version: app.version, host, state: 'pending',
      layers: Object.fromEntries(app.layers.map((l) => [l.role, l.sha256])), mac: macFor(id),
      memoryMiB: app.memoryMiB, vcpus: app.vcpus, params: checked.params, createdAt: now, updatedAt: now,
      ...(req.createdBy ? { createdBy: req.createdBy } : {}),
    };
    const secret = (app.parameters ?? []).filter((p) => p.type === 'secret' && p.name in checked.params).map((p) => p.name);
    if (secret.length) inst.secretParams = secret;
    // The record and its provisioning intent land together: a crash leaves both or neither.
    await this.#journal.begin('provision', id, host, undefined, (b) => b.put(this.#c, id, inst).put(this.#names, inst.name, id));
    await this.#point('provision', 'record');
    this.bus.emit({ kind: 'instance.created', object: `instance/${inst.name}`, message: `${inst.name} created on ${host}${inst.createdBy ? ` (asked by ${inst.createdBy})` : ''}`, data: { id } });
    return inst;
  }

  /** not_found for a host the manager does not know, unavailable for one that does not answer. */
  async #requireOnline(name: string): Promise<void> {
    const h = (await this.hosts.list()).find((x) => x.name === name);
    if (!h) throw notFound(`host "${name}" not found`, { hint: 'storm host list shows the hypervisors; storm host add adds one' });
    if (h.online) return;
    // The last poll may predate it (a host that just joined): ask it now.
    try {
      await this.hosts.agent(name).capacity();
    } catch (e) {
      throw unavailable(`host "${name}" is not online: ${toStormError(e).message}`, { hint: `storm host show ${name} says why` });
    }
  }

  async #place(app: ApplianceSpec): Promise<string> {
    const all = await this.hosts.list();
    const insts = await this.#c.values();
    const cands: Candidate[] = await Promise.all(
      all.map(async (h) => {
        if (!h.online) return { host: h.name, online: false, capacity: { memoryMiB: 0, freeMemoryMiB: 0, vcpus: 0, freeDiskBytes: 0 }, layers: new Set<string>(), vcpusUsed: 0 };
        const a = this.hosts.agent(h.name);
        const [capacity, layers] = await Promise.all([a.capacity(), a.layers()]);
        const vcpusUsed = insts.filter((i) => i.host === h.name).reduce((s, i) => s + i.vcpus, 0);
        return { host: h.name, online: true, capacity, layers: new Set(layers), vcpusUsed };
      }),
    );
    return place(cands, { memoryMiB: app.memoryMiB, vcpus: app.vcpus, layers: app.layers });
  }

  /** Run the provisioning workflow: every step journaled, with its undo registered. */
  async provision(ref: string): Promise<InstanceRecord> {
    const inst = await this.get(ref);
    return this.#locks.run(inst.id, 'provision', async () => {
      assertAllowed(inst, 'provision');
      // The entry create wrote with the record (one written by anything else is begun here).
      const open = (await this.#journal.open()).find((e) => e.op === 'provision' && e.instance === inst.id);
      if (open) this.#journal.adopt(open);
      const j = open ?? (await this.#journal.begin('provision', inst.id, inst.host));
      const r = new Revert();
      try {
        await this.#save(inst, { state: 'provisioning' });
        const app = await this.appliances.resolve(`${inst.appliance}@${inst.version}`);
        const agent = this.hosts.agent(inst.host);
        await ensureLayersOn(agent, bootAndLayers(app));
        await this.#point('provision', 'layers');
        await this.#journal.step(j, 'layers');
        let tls: { key: string; cert: string; ca: string } | undefined;
        if (this.opts.identity) {
          // Registered before issuing: whatever was issued for this id is revoked on undo.
          r.add('certificate', () => this.#revoke(inst));
          const id = await this.opts.identity.issue(inst);
          await this.#save(inst, { certSerial: id.serial });
          tls = { key: id.key, cert: id.cert, ca: id.ca };
        }
        await this.#point('provision', 'certificate');
        const files: Record<string, string> = { '/etc/hostname': `${inst.name}\n`, '/etc/storm/instance.json': JSON.stringify({ id: inst.id, name: inst.name, domain: this.opts.domain, params: inst.params }) };
        if (this.opts.managerAddress) files['/etc/storm/manager'] = `${this.opts.managerAddress}\n`;
        if (this.opts.instanceFiles) Object.assign(files, await this.opts.instanceFiles(inst));
        r.add('instance-layer', () => agent.removeInstanceLayer(inst.id));
        await agent.createInstanceLayer(inst.id, { hostname: inst.name, domain: this.opts.domain, sizeMiB: this.opts.instanceLayerMiB ?? 256, files, ...(tls ? { tls } : {}), ...(app.volumes?.length ? { volumes: app.volumes } : {}) });
        await this.#point('provision', 'instance-layer');
        await this.#journal.step(j, 'instance-layer');
        const name = domainName(inst.id);
        r.add('define', () => agent.undefine(name));
        await agent.define(this.#domainRequest(inst, app));
        await this.#point('provision', 'define');
        await this.#journal.step(j, 'define');
        r.add('start', () => agent.poweroff(name));
        await agent.start(name);
        await this.#point('provision', 'start');
        await this.#journal.step(j, 'start');
        await this.#point('provision', 'started');
        r.success();
        // The record says running in the same write that ends the entry.
        await this.#save(inst, { state: 'running', error: undefined }, (put) => this.#journal.end(j, put));
        await this.#point('provision', 'running');
        return inst;
      } catch (e) {
        const err = toStormError(e);
        const failed = await r.revert();
        this.log.warn('provisioning failed; undone', { instance: inst.name, error: err.message, undoFailed: failed });
        await this.#save(inst, { state: 'failed', error: err.message, errorCode: err.code }, (put) => this.#journal.end(j, put));
        throw err;
      }
    });
  }

  #domainRequest(inst: InstanceRecord, app: ApplianceSpec): DomainRequest {
    return {
      name: domainName(inst.id), memoryMiB: inst.memoryMiB, vcpus: inst.vcpus, kernel: app.kernel?.sha256 ?? '', initrd: app.initrd?.sha256 ?? '',
      cmdline: app.cmdline ?? 'console=ttyS0', layers: inst.layers, instanceLayer: inst.id, mac: inst.mac,
      ...(app.formats ? { formats: app.formats } : {}),
      ...(app.maintenance ? { maintenance: true } : {}),
      ...(app.volumes?.length ? { volumes: app.volumes.map((v) => v.name) } : {}),
    };
  }

  async start(ref: string): Promise<InstanceRecord> {
    const inst = await this.get(ref);
    // A failed provisioning was undone, so its host has neither domain nor instance layer: starting
    // it is trying again. Anything else that failed keeps its instance layer, which a retry's undo could remove.
    if (inst.state === 'failed' && (await this.#undone(inst))) return this.provision(inst.id);
    return this.#act(ref, 'start', async (inst, a) => {
      if ((await a.state(domainName(inst.id))) !== 'running') await a.start(domainName(inst.id));
      return 'running';
    });
  }
  /** Nothing of the instance on its host: no domain, no instance layer. */
  async #undone(inst: InstanceRecord): Promise<boolean> {
    const a = this.hosts.agent(inst.host);
    if ((await a.state(domainName(inst.id))) !== 'absent') return false;
    return a.snapshots(inst.id).then(
      () => false,
      (e) => {
        if (toStormError(e).code === 'not_found') return true;
        throw e;
      },
    );
  }

  async stop(ref: string): Promise<InstanceRecord> {
    return this.#act(ref, 'stop', async (inst, a) => (await a.shutdown(domainName(inst.id)), 'stopped'));
  }
  async poweroff(ref: string): Promise<InstanceRecord> {
    return this.#act(ref, 'poweroff', async (inst, a) => (await a.poweroff(domainName(inst.id)), 'stopped'));
  }
  async reboot(ref: string): Promise<InstanceRecord> {
    return this.#act(ref, 'reboot', async (inst, a) => {
      await a.poweroff(domainName(inst.id));
      await a.start(domainName(inst.id));
      return 'running';
    });
  }

  async #act(ref: string, action: 'start' | 'stop' | 'poweroff' | 'reboot', fn: (i: InstanceRecord, a: HostAgent) => Promise<InstanceState>): Promise<InstanceRecord> {
    const inst = await this.get(ref);
    return this.#locks.run(inst.id, action, async () => {
      assertAllowed(inst, action);
      const next = await fn(inst, this.hosts.agent(inst.host));
      return this.#save(inst, { state: next, error: undefined });
    });
  }

  /**
   * The instance's serial console log (what its guest printed): its end, or from
   * byte `from` of run `boot` (`next` and `boot` of the last answer: following it);
   * `from` and `next` are offsets in the log on its host.
   */
  async console(ref: string, bytes = 16384, from?: number, boot?: string): Promise<{ instance: string; host: string } & ConsoleChunk> {
    const inst = await this.get(ref);
    // Each HostAgent checks the read (checkConsoleRead) before it goes anywhere.
    const chunk = await this.hosts.agent(inst.host).consoleRead(domainName(inst.id), { bytes, ...(from !== undefined ? { from } : {}), ...(boot !== undefined ? { boot } : {}) });
    return { instance: inst.name, host: inst.host, ...chunk };
  }

  /** Snapshots of the instance layer: take, list, restore (instance stopped), delete. */
  async snapshot(ref: string, snap: string): Promise<void> {
    const inst = await this.get(ref);
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(snap)) throw invalid(`snapshot name "${snap}": use letters, digits, ".", "_" or "-" (at most 64)`);
    await this.#locks.run(inst.id, 'snapshot', async () => {
      assertAllowed(inst, 'snapshot');
      await this.hosts.agent(inst.host).snapshot(inst.id, snap);
      this.bus.emit({ kind: 'instance.snapshot', object: `instance/${inst.name}`, message: `snapshot ${snap} of ${inst.name} taken` });
    });
  }
  async snapshots(ref: string): Promise<{ name: string; createdAt: string }[]> {
    const inst = await this.get(ref);
    return this.hosts.agent(inst.host).snapshots(inst.id);
  }
  async restore(ref: string, snap: string): Promise<void> {
    const inst = await this.get(ref);
    await this.#locks.run(inst.id, 'restore', async () => {
      assertAllowed(inst, 'restore');
      await this.#requireSnapshot(inst, snap);
      await this.hosts.agent(inst.host).restore(inst.id, snap);
      this.bus.emit({ kind: 'instance.restore', object: `instance/${inst.name}`, message: `${inst.name} restored to snapshot ${snap}` });
    });
  }
  async deleteSnapshot(ref: string, snap: string): Promise<void> {
    const inst = await this.get(ref);
    await this.#locks.run(inst.id, 'snapshot', async () => {
      assertAllowed(inst, 'snapshot');
      await this.#requireSnapshot(inst, snap);
      await this.hosts.agent(inst.host).deleteSnapshot(inst.id, snap);
      this.bus.emit({ kind: 'instance.snapshot', object: `instance/${inst.name}`, message: `snapshot ${snap} of ${inst.name} deleted` });
    });
  }

  /** not_found by the instance's name (the host knows only its id). */
  async #requireSnapshot(inst: InstanceRecord, snap: string): Promise<void> {
    const all = await this.hosts.agent(inst.host).snapshots(inst.id);
    if (!all.some((s) => s.name === snap)) throw notFound(`instance ${inst.name} has no snapshot "${snap}"`, { hint: `storm snapshot list ${inst.name}` });
  }

  /**
   * Cold migration ("pack their bags"): stop, give the target whatever shared
   * layers it lacks, move only the instance layer, define and start it there
   * with the same identity and MAC, then clean the source. Undone until the
   * switch; finished forward after it.
   */
  async migrate(ref: string, target: string): Promise<MigrationReport> {
    const inst = await this.get(ref);
    return this.#locks.run(inst.id, 'migrate', async () => {
      assertAllowed(inst, 'migrate');
      // Its edits live in a deployment-layer overlay beside its instance layer, which migration does not move.
      if (inst.appliance.startsWith('maintenance:')) throw conflict(`${inst.name} is a deployment's maintenance instance and cannot migrate`, { hint: 'finish or abort the maintenance first' });
      if (target === inst.host) throw invalid(`instance ${inst.name} is already on ${target}`);
      // A traditional appliance's writes live in its own copy of the disk, not in the instance layer that travels.
      if (inst.layers.disk) throw invalid(`instance ${inst.name} runs a traditional (one-disk) appliance: its own disk copy cannot be migrated yet, only layered instances`, { hint: 'create it again on the target host' });
      await this.#requireOnline(target);
      const app = await this.appliances.resolve(`${inst.appliance}@${inst.version}`);
      if (app.volumes?.length) throw invalid(`instance ${inst.name} has data volumes (${app.volumes.map((v) => v.name).join(', ')}): they cannot be migrated yet, only the instance layer travels`);
      const src = this.hosts.agent(inst.host);
      const dst = this.hosts.agent(target);
      const name = domainName(inst.id);
      const from = inst.host;
      const wasRunning = inst.state === 'running';
      const j = await this.#journal.begin('migrate', inst.id, from, { target, wasRunning });
      const r = new Revert();
      try {
        if (wasRunning) {
          await src.shutdown(name);
          r.add('stop', () => src.start(name));
        }
        await this.#journal.step(j, 'stopped');
        const layerBytes = (await ensureLayersOn(dst, bootAndLayers(app))).reduce((n, l) => n + l.size, 0);
        await this.#journal.step(j, 'layers');
        const t = await src.exportInstanceLayer(inst.id);
        await dst.importInstanceLayer(inst.id, t);
        r.add('instance-layer', () => dst.removeInstanceLayer(inst.id));
        await this.#journal.step(j, 'instance-layer');
        await dst.define(this.#domainRequest(inst, app));
        r.add('define', () => dst.undefine(name));
        await this.#journal.step(j, 'define');
        await this.#save(inst, { host: target });
        await this.#journal.step(j, 'switch');
        r.success();
        await this.#finishMigration(inst, from, wasRunning, j);
        const rep = { instance: inst.name, from, to: target, instanceLayerBytes: t.size, layerBytes, bytesMoved: t.size + layerBytes };
        this.bus.emit({ kind: 'instance.migrated', object: `instance/${inst.name}`, message: `${inst.name} moved ${from} → ${target} (${rep.bytesMoved} bytes)`, data: { ...rep } });
        return rep;
      } catch (e) {
        await r.revert();
        await this.#journal.end(j);
        throw e;
      }
    });
  }

  async #finishMigration(inst: InstanceRecord, from: string, wasRunning: boolean, j: JournalEntry): Promise<void> {
    const name = domainName(inst.id);
    if (wasRunning && (await this.hosts.agent(inst.host).state(name)) !== 'running') await this.hosts.agent(inst.host).start(name);
    const src = this.hosts.agent(from);
    await src.poweroff(name);
    await src.undefine(name);
    await src.removeInstanceLayer(inst.id);
    await this.#journal.end(j);
    await this.#save(inst, { state: wasRunning ? 'running' : 'stopped' });
  }

  /**
   * Remove from a host's layer cache what none of its instances uses (their
   * layers, the previous version's for a rollback, their boot files); the
   * host also keeps whatever its domains use.
   */
  async gcLayers(host: string): Promise<{ host: string; removed: string[]; freedBytes: number }> {
    if (!(await this.hosts.list()).some((h) => h.name === host)) throw notFound(`no host "${host}"`, { hint: 'storm host list' });
    const keep = new Set<string>();
    for (const i of await this.#c.values()) {
      if (i.host !== host) continue;
      for (const d of [...Object.values(i.layers), ...Object.values(i.previous?.layers ?? {})]) if (d) keep.add(d);
      const app = await this.appliances.resolve(`${i.appliance}@${i.version}`).catch(() => undefined);
      for (const b of [app?.kernel, app?.initrd]) if (b) keep.add(b.sha256);
    }
    return { host, ...(await this.hosts.agent(host).removeUnreferencedLayers([...keep])) };
  }

  /**
   * Which instances of an appliance are not at the target version, and which
   * layers change; without a ref, every appliance and deployment that has
   * instances, at its newest version (one no longer in the catalog has no plan).
   */
  async updatePlan(applianceRef?: string, opts: { shadowed?: boolean } = {}): Promise<UpdatePlanEntry[]> {
    const insts = await this.#c.values();
    const refs = applianceRef === undefined ? [...new Set(insts.map((i) => i.appliance))].sort() : [applianceRef];
    const plan: UpdatePlanEntry[] = [];
    for (const ref of refs) {
      const app = applianceRef === undefined ? await this.appliances.resolve(ref).catch(() => undefined) : await this.appliances.resolve(ref);
      if (!app) continue;
      const entries = insts
        .filter((i) => i.appliance === app.id && (i.version !== app.version || app.layers.some((l) => i.layers[l.role] !== l.sha256)))
        .map((i) => ({
          instance: i.name, appliance: app.id, host: i.host, from: i.version, to: app.version,
          changes: app.layers.filter((l) => i.layers[l.role] !== l.sha256).map((l) => ({ role: l.role, from: i.layers[l.role], to: l.sha256 })),
        }))
        .sort((a, b) => a.instance.localeCompare(b.instance));
      if (this.opts.shadows && opts.shadowed !== false) for (const e of entries) await this.#shadowed(e, app);
      plan.push(...entries);
    }
    return plan;
  }

  /** Fill in one plan entry's shadowed-files report (errors land in `shadowedError`, never fail the plan). */
  async #shadowed(e: UpdatePlanEntry, app: ApplianceSpec): Promise<void> {
    const inst = await this.#byName(e.instance);
    if (!inst) return;
    // The layers it has now, with their URLs when its version is still resolvable (to fetch an image the manager lacks).
    const old = await this.appliances.resolve(`${inst.appliance}@${inst.version}`).catch(() => undefined);
    const changes: RoleChange[] = e.changes.map((c) => {
      const to = app.layers.find((l) => l.role === c.role)!;
      const was = c.from ? old?.layers.find((l) => l.sha256 === c.from) : undefined;
      return { role: to.role, to, ...(c.from ? { from: was ?? { sha256: c.from } } : {}) };
    });
    let agent: HostAgent;
    try {
      agent = this.hosts.agent(inst.host);
    } catch (err) {
      e.shadowedError = toStormError(err).message;
      return;
    }
    const r = await this.opts.shadows!.report(agent, inst.id, changes);
    e.shadowed = r.shadowed;
    if (r.truncated) e.shadowedTruncated = true;
    if (r.error) e.shadowedError = r.error;
  }

  /**
   * Roll a new appliance version out: a canary first, checked healthy, then the
   * rest with bounded concurrency. Each instance keeps its instance layer.
   */
  async updateApply(applianceRef: string, opts: { concurrency?: number } = {}): Promise<UpdateReport> {
    const app = await this.appliances.resolve(applianceRef);
    const plan = await this.updatePlan(applianceRef, { shadowed: false });
    const rep: UpdateReport = { appliance: app.id, to: app.version, updated: [], failed: [] };
    const one = async (name: string) => {
      try {
        const since = new Date().toISOString();
        const inst = await this.#relayer(name, app.version, Object.fromEntries(app.layers.map((l) => [l.role, l.sha256])), app);
        const sick = await this.#unhealthyAfterUpdate(inst, since);
        if (sick) throw unavailable(sick, { hint: `storm instance console ${name} shows its boot; storm update rollback ${name} returns it to ${inst.previous?.version ?? 'its previous version'}` });
        rep.updated.push(name);
      } catch (e) {
        rep.failed.push({ instance: name, error: (e as Error).message });
      }
    };
    const [canary, ...rest] = plan.map((p) => p.instance);
    const wasRunning = new Map((await this.#c.values()).map((i) => [i.name, i.state === 'running']));
    if (!canary) return rep;
    rep.canary = canary;
    await one(canary);
    if (rep.failed.length) {
      await this.rollback(canary, wasRunning.get(canary)).catch(() => {});
      throw conflict(`canary ${canary} failed the update to ${app.id}@${app.version}: ${rep.failed[0]!.error}; rolled back, ${rest.length} instance(s) untouched`, { hint: `storm instance console ${canary} shows what its boot said; fix the version and apply again` });
    }
    const queue = [...rest];
    const workers = Array.from({ length: Math.max(1, opts.concurrency ?? 2) }, async () => {
      for (let n = queue.shift(); n !== undefined; n = queue.shift()) await one(n);
    });
    await Promise.all(workers);
    this.bus.emit({ kind: 'update.applied', message: `${app.id}@${app.version}: ${rep.updated.length} updated, ${rep.failed.length} failed` });
    return rep;
  }

  /**
   * Why an instance is not healthy after its update (undefined: it is). One that was running must
   * run; one that reports its own status (it reported before) must report `ready` after `since`.
   */
  async #unhealthyAfterUpdate(inst: InstanceRecord, since: string): Promise<string | undefined> {
    if (inst.state !== 'running') return undefined;
    if ((await this.hosts.agent(inst.host).state(domainName(inst.id))) !== 'running') return `${inst.name} is not running after the update`;
    const reports = this.opts.reports;
    // An appliance that never reported (no guest agent, no network) is judged by its domain alone.
    let r = await reports?.last(inst.id);
    if (!reports || !r) return undefined;
    const timeoutMs = this.opts.readyTimeoutMs ?? 180_000;
    const deadline = Date.now() + timeoutMs;
    for (;; r = await reports.last(inst.id)) {
      if (r && r.at > since) {
        if (r.status === 'ready') return undefined;
        if (reportLevel(r.status) !== 'info') return `${inst.name} reported ${r.status} after the update${r.message ? `: ${r.message}` : ''}`;
      }
      if (Date.now() >= deadline) return `${inst.name} did not report ready within ${Math.round(timeoutMs / 1000)} s of the update${r && r.at > since ? ` (it reported ${r.status})` : ''}`;
      await new Promise((res) => setTimeout(res, this.opts.reportPollMs ?? 1000));
    }
  }

  /** Put an instance back on the layers it had before its last update. */
  async rollback(ref: string, start?: boolean): Promise<InstanceRecord> {
    const inst = await this.get(ref);
    if (!inst.previous) throw conflict(`instance ${inst.name} has no previous layer version to roll back to`);
    const app = await this.appliances.resolve(`${inst.appliance}@${inst.previous.version}`);
    return this.#relayer(inst.name, inst.previous.version, inst.previous.layers, app, start);
  }

  /** Swap an instance's shared layers (its own layer stays), restarting it if it ran. */
  async #relayer(ref: string, version: string, layers: InstanceRecord['layers'], app: ApplianceSpec, start?: boolean): Promise<InstanceRecord> {
    const inst = await this.get(ref);
    return this.#locks.run(inst.id, 'update', async () => {
      assertAllowed(inst, 'update');
      const a = this.hosts.agent(inst.host);
      const name = domainName(inst.id);
      const wasRunning = start ?? inst.state === 'running';
      const previous = { version: inst.version, layers: inst.layers };
      await ensureLayersOn(a, bootAndLayers(app).filter((l) => l.role === 'kernel' || l.role === 'initrd' || layers[l.role] === l.sha256));
      const j = await this.#journal.begin('update', inst.id, inst.host, { previous, wasRunning });
      try {
        await a.poweroff(name);
        await a.undefine(name);
        await this.#journal.step(j, 'undefine');
        await a.define(this.#domainRequest({ ...inst, version, layers }, app));
        await this.#save(inst, { version, layers, previous });
        await this.#journal.step(j, 'define');
        if (wasRunning) await a.start(name);
        await this.#journal.end(j);
        return await this.#save(inst, { state: wasRunning ? 'running' : 'stopped', error: undefined });
      } catch (e) {
        await this.#journal.end(j);
        const err = toStormError(e);
        await this.#save(inst, { state: 'failed', error: `update to ${app.id}@${version} failed: ${err.message}`, errorCode: err.code });
        throw e;
      }
    });
  }

  /** Destroy: power off, undefine, remove its layer, forget it; journaled so a crash finishes it. */
  async destroy(ref: string): Promise<void> {
    const inst = await this.get(ref);
    await this.#locks.run(inst.id, 'destroy', async () => {
      assertAllowed(inst, 'destroy');
      let j!: JournalEntry;
      await this.#save(inst, { state: 'deleting' }, async (put) => (j = await this.#journal.begin('destroy', inst.id, inst.host, undefined, put)));
      await this.#point('destroy', 'deleting');
      try {
        await this.#finishDestroy(inst, j);
      } catch (e) {
        // Left open for the next reconciliation pass (or another destroy) to finish.
        this.#journal.release(j);
        throw e;
      }
    });
  }

  async #finishDestroy(inst: InstanceRecord, j: JournalEntry): Promise<void> {
    // A host the manager no longer knows (removed) cannot be cleaned: the instance is only forgotten.
    // An offline host is still known: its steps fail as unreachable and wait for the next pass.
    const known = (await this.hosts.list()).some((h) => h.name === inst.host);
    if (known) {
      const a = this.hosts.agent(inst.host);
      const name = domainName(inst.id);
      await a.poweroff(name);
      await this.#point('destroy', 'poweroff');
      await a.undefine(name);
      await this.#point('destroy', 'undefine');
      await this.#journal.step(j, 'undefine');
      await a.removeInstanceLayer(inst.id);
      await this.#point('destroy', 'instance-layer');
      await this.#journal.step(j, 'instance-layer');
    }
    await this.#revoke(inst);
    await this.#point('destroy', 'certificate');
    // The record goes in the same write that ends the entry.
    await this.#journal.end(j, (b) => b.del(this.#c, inst.id).del(this.#names, inst.name));
    await this.#point('destroy', 'forgotten');
    const note = known ? '' : ` (host ${inst.host} is no longer enrolled: nothing was removed there)`;
    this.bus.emit({ kind: 'instance.destroyed', object: `instance/${inst.name}`, message: `${inst.name} destroyed${note}`, ...(known ? {} : { level: 'warn' as const }) });
  }

  /** Revoke what the CA issued for the instance (already revoked, or nothing issued, is fine). */
  async #revoke(inst: InstanceRecord): Promise<void> {
    if (!this.opts.identity) return;
    await this.opts.identity.revoke({ id: inst.id, name: inst.name, createdAt: inst.createdAt, ...(inst.certSerial ? { serial: inst.certSerial } : {}) });
  }

  /** Finish or undo one interrupted operation (the caller holds the instance's lock). */
  async #reconcileEntry(j: JournalEntry, rep: ReconcileReport): Promise<void> {
    const inst = await this.#c.get(j.instance);
    if (j.op === 'destroy') {
      if (inst) await this.#finishDestroy(inst, j);
      else {
        if (this.opts.identity) await this.opts.identity.revoke({ id: j.instance });
        await this.#journal.end(j);
      }
      rep.finished.push(j.instance);
      return;
    }
    if (j.op === 'migrate') {
      const target = String(j.data?.target ?? '');
      const wasRunning = Boolean(j.data?.wasRunning);
      if (inst && j.done.includes('switch')) await this.#finishMigration(inst, j.host, wasRunning, j);
      else {
        const dst = this.hosts.agent(target);
        await dst.poweroff(domainName(j.instance));
        await dst.undefine(domainName(j.instance));
        await dst.removeInstanceLayer(j.instance);
        if (inst && wasRunning && (await this.hosts.agent(j.host).state(domainName(j.instance))) !== 'running') await this.hosts.agent(j.host).start(domainName(j.instance));
        await this.#journal.end(j);
      }
      (j.done.includes('switch') ? rep.finished : rep.undone).push(j.instance);
      return;
    }
    if (j.op === 'update') {
      // Redefine on whatever layers the record names (the define step saves them with it).
      if (inst) {
        const a = this.hosts.agent(inst.host);
        const app = await this.appliances.resolve(`${inst.appliance}@${inst.version}`);
        await a.poweroff(domainName(inst.id));
        await a.undefine(domainName(inst.id));
        await a.define(this.#domainRequest(inst, app));
        if (j.data?.wasRunning) await a.start(domainName(inst.id));
        await this.#save(inst, { state: j.data?.wasRunning ? 'running' : 'stopped' });
      }
      await this.#journal.end(j);
      rep.finished.push(j.instance);
      return;
    }
    // Provision interrupted. Every step done (only the final record write was lost) and the
    // domain running: finish it. Otherwise undo whatever may have happened (each undo is safe to repeat).
    const a = this.hosts.agent(j.host);
    const name = domainName(j.instance);
    if (inst && j.done.includes('start') && (await a.state(name)) === 'running') {
      await this.#save(inst, { state: 'running', error: undefined }, (put) => this.#journal.end(j, put));
      rep.finished.push(j.instance);
      return;
    }
    await a.poweroff(name);
    await a.undefine(name);
    await a.removeInstanceLayer(j.instance);
    if (inst) await this.#revoke(inst);
    else if (this.opts.identity) await this.opts.identity.revoke({ id: j.instance });
    if (inst) await this.#save(inst, { state: 'failed', error: 'provisioning was interrupted (manager restart) and has been undone; start it to try again, or destroy it', errorCode: 'unavailable' }, (put) => this.#journal.end(j, put));
    else await this.#journal.end(j);
    rep.undone.push(j.instance);
  }

  /**
   * Compare journal and store with what the hosts report: finish interrupted
   * destroys, undo interrupted provisioning, correct drifted states, report
   * orphans. Domains without our prefix are never looked at.
   */
  async reconcile(): Promise<ReconcileReport> {
    const rep: ReconcileReport = { finished: [], undone: [], orphans: [], corrected: [], deferred: [] };
    const open = await this.#journal.open();
    // A record left in a transitional state with no entry (written before records and entries
    // moved together) is repaired as if its entry said nothing was done.
    const synthetic = new Set<JournalEntry>();
    for (const i of await this.#c.values()) {
      const op = TRANSITIONAL[i.state];
      if (!op || open.some((e) => e.instance === i.id)) continue;
      const e: JournalEntry = { opId: randomBytes(16).toString('hex'), op, instance: i.id, host: i.host, done: [], startedAt: i.updatedAt };
      synthetic.add(e);
      open.push(e);
    }
    for (const j of open) {
      // An operation running in this process owns its entry: only interrupted ones are ours to repair.
      if (this.#journal.running(j) || this.#locks.holder(j.instance)) continue;
      try {
        await this.#locks.run(j.instance, 'reconcile', async () => {
          // Under the lock, check nothing finished the operation since we listed it.
          if (!synthetic.has(j) && !(await this.#journal.get(j.opId))) return;
          if (synthetic.has(j)) {
            const cur = await this.#c.get(j.instance);
            if (!cur || !TRANSITIONAL[cur.state] || (await this.#journal.open()).some((e) => e.instance === j.instance)) return;
          }
          await this.#reconcileEntry(j, rep);
        });
      } catch (e) {
        // Typically the host is unreachable: the entry stays open for the next pass.
        rep.deferred.push({ instance: j.instance, op: j.op, error: toStormError(e).message });
      }
    }
    const insts = await this.#c.values();
    for (const h of await this.hosts.list()) {
      if (!h.online) continue;
      const doms = await this.hosts.agent(h.name).domains().catch((e) => (rep.deferred.push({ host: h.name, error: toStormError(e).message }), []));
      for (const d of doms) {
        if (!d.name.startsWith(DOMAIN_PREFIX)) continue;
        const inst = insts.find((i) => domainName(i.id) === d.name && i.host === h.name);
        if (inst && this.#locks.holder(inst.id)) continue; // an action in progress: its result is the truth
        if (!inst && insts.some((i) => domainName(i.id) === d.name && this.#locks.holder(i.id))) continue; // e.g. mid-migration
        if (!inst) {
          rep.orphans.push({ host: h.name, domain: d.name });
          continue;
        }
        const want: InstanceState | undefined = d.state === 'running' ? 'running' : inst.state === 'running' ? 'stopped' : undefined;
        if (want && want !== inst.state && (inst.state === 'running' || inst.state === 'stopped')) {
          rep.corrected.push({ instance: inst.name, from: inst.state, to: want });
          await this.#save(inst, { state: want });
        }
      }
    }
    if (rep.orphans.length) this.bus.emit({ kind: 'reconcile.orphans', level: 'warn', message: `${rep.orphans.length} domain(s) named like STORM's but unknown to it: ${rep.orphans.map((o) => `${o.host}/${o.domain}`).join(', ')}` });
    return rep;
  }
}
