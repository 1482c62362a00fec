import { randomBytes } from 'node:crypto';
import { conflict, invalid, toStormError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import { OperationLocks } from '../../lib/operation-lock.ts';
import { Revert } from '../../lib/revert.ts';
import type { EventBus } from '../events.ts';
import type { Collection, Store } from '../store/store.ts';
import type { HostAgent } from './host-agent.ts';
import { Journal, type JournalEntry } from './journal.ts';
import { DOMAIN_PREFIX, assertAllowed, domainName, macFor, validName, type ApplianceSpec, type InstanceRecord, type InstanceState } from './model.ts';
import { place, type Candidate } from './placement.ts';

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
}

export interface ReconcileReport {
  finished: string[];
  undone: string[];
  /** Domains named like ours that no instance owns: reported, never touched. */
  orphans: { host: string; domain: string }[];
  /** Instances whose recorded state disagreed with the host, now corrected. */
  corrected: { instance: string; from: InstanceState; to: InstanceState }[];
}

const PROVISION_STEPS = ['layers', 'instance-layer', 'define', 'start'] as const;

/**
 * The life of an instance: provisioning with undo and an intent journal,
 * lifecycle actions under a per-instance lock, and reconciliation.
 */
export class InstanceService {
  readonly #c: Collection<InstanceRecord>;
  readonly #journal: Journal;
  readonly #locks = new OperationLocks();

  constructor(
    store: Store,
    private readonly hosts: HostDirectory,
    private readonly appliances: ApplianceSource,
    private readonly bus: EventBus,
    private readonly log: Logger,
    private readonly opts: { domain: string; instanceLayerMiB?: number } = { domain: 'cloud.storm' },
  ) {
    this.#c = store.collection<InstanceRecord>('instances');
    this.#journal = new Journal(store);
  }

  list(): Promise<InstanceRecord[]> {
    return this.#c.values();
  }

  /** Find by name or id. */
  async get(ref: string): Promise<InstanceRecord> {
    const byId = await this.#c.get(ref);
    if (byId) return byId;
    const byName = (await this.#c.values()).find((i) => i.name === ref);
    if (byName) return byName;
    return this.#c.require(ref, 'instance');
  }

  async #save(inst: InstanceRecord, patch: Partial<InstanceRecord>): Promise<InstanceRecord> {
    Object.assign(inst, patch, { updatedAt: new Date().toISOString() });
    if (patch.error === undefined && 'error' in patch) delete inst.error;
    await this.#c.put(inst.id, inst);
    this.bus.emit({ kind: 'instance.state', object: `instance/${inst.name}`, message: `${inst.name} is ${inst.state}`, data: { id: inst.id, state: inst.state } });
    return inst;
  }

  /** Validate, record as pending, choose a host; the workflow runs in `provision`. */
  async create(req: CreateRequest): Promise<InstanceRecord> {
    if (!validName(req.name)) throw invalid(`instance name "${req.name}" is not a valid hostname label`, { hint: 'use lower-case letters, digits and "-", at most 63 characters' });
    if ((await this.#c.values()).some((i) => i.name === req.name)) throw conflict(`instance "${req.name}" already exists`);
    const app = await this.appliances.resolve(req.appliance);
    const host = req.host ?? (await this.#place(app));
    const id = randomBytes(6).toString('hex');
    const now = new Date().toISOString();
    const inst: InstanceRecord = {
      id, name: req.name, appliance: app.id, version: app.version, host, state: 'pending',
      layers: Object.fromEntries(app.layers.map((l) => [l.role, l.sha256])), mac: macFor(id),
      memoryMiB: app.memoryMiB, vcpus: app.vcpus, params: req.params ?? {}, createdAt: now, updatedAt: now,
    };
    await this.#c.put(id, inst);
    this.bus.emit({ kind: 'instance.created', object: `instance/${inst.name}`, message: `${inst.name} created on ${host}` });
    return inst;
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
      const app = await this.appliances.resolve(`${inst.appliance}@${inst.version}`);
      const agent = this.hosts.agent(inst.host);
      const j = await this.#journal.begin('provision', inst.id, inst.host);
      await this.#save(inst, { state: 'provisioning' });
      const r = new Revert();
      try {
        for (const l of app.layers) await agent.ensureLayer(l);
        await this.#journal.step(j, 'layers');
        await agent.createInstanceLayer(inst.id, {
          hostname: inst.name, domain: this.opts.domain, sizeMiB: this.opts.instanceLayerMiB ?? 256,
          files: { '/etc/hostname': `${inst.name}\n`, '/etc/storm/instance.json': JSON.stringify({ id: inst.id, name: inst.name, domain: this.opts.domain, params: inst.params }) },
        });
        r.add('instance-layer', () => agent.removeInstanceLayer(inst.id));
        await this.#journal.step(j, 'instance-layer');
        const name = domainName(inst.id);
        await agent.define({
          name, memoryMiB: inst.memoryMiB, vcpus: inst.vcpus, kernel: app.kernel, initrd: app.initrd,
          cmdline: app.cmdline ?? 'console=ttyS0', layers: inst.layers, instanceLayer: inst.id, mac: inst.mac,
        });
        r.add('define', () => agent.undefine(name));
        await this.#journal.step(j, 'define');
        await agent.start(name);
        r.add('start', () => agent.poweroff(name));
        await this.#journal.step(j, 'start');
        r.success();
        await this.#journal.end(j);
        return await this.#save(inst, { state: 'running', error: undefined });
      } catch (e) {
        const err = toStormError(e);
        const failed = await r.revert();
        await this.#journal.end(j);
        this.log.warn('provisioning failed; undone', { instance: inst.name, error: err.message, undoFailed: failed });
        await this.#save(inst, { state: 'failed', error: err.message });
        throw err;
      }
    });
  }

  async start(ref: string): Promise<InstanceRecord> {
    return this.#act(ref, 'start', async (inst, a) => {
      if ((await a.state(domainName(inst.id))) !== 'running') await a.start(domainName(inst.id));
      return 'running';
    });
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

  /** Destroy: power off, undefine, remove its layer, forget it; journaled so a crash finishes it. */
  async destroy(ref: string): Promise<void> {
    const inst = await this.get(ref);
    await this.#locks.run(inst.id, 'destroy', async () => {
      assertAllowed(inst, 'destroy');
      const j = await this.#journal.begin('destroy', inst.id, inst.host);
      await this.#save(inst, { state: 'deleting' });
      await this.#finishDestroy(inst, j);
    });
  }

  async #finishDestroy(inst: InstanceRecord, j: JournalEntry): Promise<void> {
    const a = this.hosts.agent(inst.host);
    const name = domainName(inst.id);
    await a.poweroff(name);
    await a.undefine(name);
    await this.#journal.step(j, 'undefine');
    await a.removeInstanceLayer(inst.id);
    await this.#journal.step(j, 'instance-layer');
    await this.#c.del(inst.id);
    await this.#journal.end(j);
    this.bus.emit({ kind: 'instance.destroyed', object: `instance/${inst.name}`, message: `${inst.name} destroyed` });
  }

  /**
   * Compare journal and store with what the hosts report: finish interrupted
   * destroys, undo interrupted provisioning, correct drifted states, report
   * orphans. Domains without our prefix are never looked at.
   */
  async reconcile(): Promise<ReconcileReport> {
    const rep: ReconcileReport = { finished: [], undone: [], orphans: [], corrected: [] };
    for (const j of await this.#journal.open()) {
      const inst = await this.#c.get(j.instance);
      if (j.op === 'destroy') {
        if (inst) await this.#finishDestroy(inst, j);
        else await this.#journal.end(j);
        rep.finished.push(j.instance);
        continue;
      }
      // Provision interrupted: undo whatever may have happened (each undo is safe to repeat).
      const a = this.hosts.agent(j.host);
      const name = domainName(j.instance);
      await a.poweroff(name);
      await a.undefine(name);
      await a.removeInstanceLayer(j.instance);
      await this.#journal.end(j);
      if (inst) await this.#save(inst, { state: 'failed', error: 'provisioning was interrupted (manager restart) and has been undone; destroy it or create it again' });
      rep.undone.push(j.instance);
    }
    const insts = await this.#c.values();
    for (const h of await this.hosts.list()) {
      if (!h.online) continue;
      const doms = await this.hosts.agent(h.name).domains();
      for (const d of doms) {
        if (!d.name.startsWith(DOMAIN_PREFIX)) continue;
        const inst = insts.find((i) => domainName(i.id) === d.name && i.host === h.name);
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
