import { conflict, invalid, notFound } from '../../lib/errors.ts';
import { createHash } from 'node:crypto';
import type { DomainRequest, DomainState, HostAgent, HostCapacity, InstanceLayerSpec, LayerFile, LayerFileKind, LayerFiles, LayerRef, TransferRef } from './host-agent.ts';
import { checkConsoleRead, consoleChunk, consoleWindow, type ConsoleChunk, type ConsoleReadOptions } from '../../lib/console-window.ts';

/** Exported instance layers, by URL: stands in for the network between memory hosts. */
const transfers = new Map<string, InstanceLayerSpec>();

/**
 * HostAgent in memory: the fast stand-in for unit tests of the instance
 * service. It runs the same conformance suite as the real stormd client.
 */
export class MemoryHostAgent implements HostAgent {
  readonly cache = new Set<string>();
  readonly instanceLayers = new Map<string, InstanceLayerSpec>();
  readonly snaps = new Map<string, Map<string, { spec: InstanceLayerSpec; createdAt: string }>>();
  readonly doms = new Map<string, { req: DomainRequest; state: DomainState; console: string; boot?: number }>();
  #boots = 0;
  /** What the guest did to its instance layer (path → kind), e.g. a whiteout over a deleted lower file. */
  readonly guestEdits = new Map<string, Map<string, LayerFileKind>>();
  /** The deployment layer a maintenance domain wrote (tests put the edited image here). */
  readonly maintenanceImages = new Map<string, Buffer>();
  /** Inject a failure into the next call of a method (for undo tests). */
  readonly failNext = new Set<keyof HostAgent>();
  constructor(readonly host: string, readonly cap: HostCapacity = { memoryMiB: 8192, freeMemoryMiB: 8192, vcpus: 4, freeDiskBytes: 100e9 }) {}

  #maybeFail(m: keyof HostAgent): void {
    if (this.failNext.delete(m)) throw conflict(`injected failure in ${String(m)}`);
  }
  async capacity(): Promise<HostCapacity> {
    const used = [...this.doms.values()].filter((d) => d.state === 'running').reduce((a, d) => a + d.req.memoryMiB, 0);
    return { ...this.cap, freeMemoryMiB: this.cap.memoryMiB - used };
  }
  async layers(): Promise<string[]> {
    return [...this.cache].sort();
  }
  async ensureLayer(ref: LayerRef): Promise<void> {
    this.#maybeFail('ensureLayer');
    if (!/^[0-9a-f]{64}$/.test(ref.sha256)) throw invalid(`bad digest ${ref.sha256}`);
    this.cache.add(ref.sha256);
  }
  async removeUnreferencedLayers(referenced: string[]): Promise<{ removed: string[]; freedBytes: number }> {
    const keep = new Set(referenced);
    for (const d of this.doms.values()) for (const x of [...Object.values(d.req.layers), d.req.kernel, d.req.initrd]) if (x) keep.add(x);
    const removed = [...this.cache].filter((l) => !keep.has(l)).sort();
    for (const l of removed) this.cache.delete(l);
    return { removed, freedBytes: removed.length * 1024 * 1024 };
  }
  async createInstanceLayer(id: string, spec: InstanceLayerSpec): Promise<{ bytes: number }> {
    this.#maybeFail('createInstanceLayer');
    this.instanceLayers.set(id, spec);
    return { bytes: 1024 * 1024 };
  }
  async removeInstanceLayer(id: string): Promise<void> {
    this.instanceLayers.delete(id);
    this.maintenanceImages.delete(id);
    this.snaps.delete(id); // they live inside the layer's qcow2 on a real host
  }
  async define(req: DomainRequest): Promise<void> {
    this.#maybeFail('define');
    const cur = this.doms.get(req.name);
    if (cur && cur.state === 'running') throw conflict(`domain ${req.name} is running`);
    for (const d of Object.values(req.layers)) if (d && !this.cache.has(d)) throw notFound(`layer ${d} is not in the cache of ${this.host}`);
    // Kernel and initrd: a digest must be cached (like a layer); an absolute path is the host's business.
    for (const d of [req.kernel, req.initrd]) if (/^[0-9a-f]{64}$/.test(d) && !this.cache.has(d)) throw notFound(`boot file ${d} is not in the cache of ${this.host}`);
    if (!this.instanceLayers.has(req.instanceLayer)) throw notFound(`instance layer ${req.instanceLayer} not found on ${this.host}`);
    this.doms.set(req.name, { req, state: 'stopped', console: cur?.console ?? '' });
  }
  #dom(name: string) {
    const d = this.doms.get(name);
    if (!d) throw notFound(`domain ${name} not found on ${this.host}`);
    return d;
  }
  async start(name: string): Promise<void> {
    this.#maybeFail('start');
    const d = this.#dom(name);
    if (d.state === 'running') throw conflict(`domain ${name} is already running`);
    d.state = 'running';
    // As libvirt: each run is numbered, and its start begins a new log.
    d.boot = ++this.#boots;
    d.console = `boot ${name}\n`;
  }
  async shutdown(name: string): Promise<void> {
    this.#dom(name).state = 'stopped';
  }
  async poweroff(name: string): Promise<void> {
    const d = this.doms.get(name);
    if (d) d.state = 'stopped';
  }
  async undefine(name: string): Promise<void> {
    const d = this.doms.get(name);
    if (d?.state === 'running') throw conflict(`domain ${name} is running; power it off first`);
    this.doms.delete(name);
  }
  async state(name: string): Promise<DomainState> {
    return this.doms.get(name)?.state ?? 'absent';
  }
  async domains(): Promise<{ name: string; state: DomainState }[]> {
    return [...this.doms].map(([name, d]) => ({ name, state: d.state })).sort((a, b) => a.name.localeCompare(b.name));
  }
  async consoleRead(name: string, opts: ConsoleReadOptions): Promise<ConsoleChunk> {
    const read = checkConsoleRead(opts);
    const d = this.#dom(name);
    const boot = d.state === 'running' && d.boot !== undefined ? String(d.boot) : undefined;
    // The console as bytes, as a log file holds it.
    const log = Buffer.from(d.console);
    const { start, n } = consoleWindow(log.length, read, boot);
    return consoleChunk(log.subarray(start, start + n), start, read, boot);
  }

  #layer(id: string): InstanceLayerSpec {
    const l = this.instanceLayers.get(id);
    if (!l) throw notFound(`instance layer ${id} not found on ${this.host}`);
    return l;
  }
  async snapshot(id: string, snap: string): Promise<void> {
    const spec = structuredClone(this.#layer(id));
    const m = this.snaps.get(id) ?? new Map();
    if (m.has(snap)) throw conflict(`snapshot ${snap} of ${id} exists`);
    m.set(snap, { spec, createdAt: new Date().toISOString() });
    this.snaps.set(id, m);
  }
  async restore(id: string, snap: string): Promise<void> {
    const s = this.snaps.get(id)?.get(snap);
    if (!s) throw notFound(`snapshot ${snap} of ${id} not found`);
    this.instanceLayers.set(id, structuredClone(s.spec));
  }
  async deleteSnapshot(id: string, snap: string): Promise<void> {
    if (!this.snaps.get(id)?.delete(snap)) throw notFound(`snapshot ${snap} of ${id} not found`);
  }
  async snapshots(id: string): Promise<{ name: string; createdAt: string }[]> {
    this.#layer(id);
    return [...(this.snaps.get(id) ?? new Map())].map(([name, s]) => ({ name, createdAt: s.createdAt }));
  }
  async readMaintenanceLayer(id: string, offset: number, length: number): Promise<{ base64: string; size: number }> {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isInteger(length) || length < 1 || length > 4 * 1024 * 1024) throw invalid('bad offset or length');
    const dom = [...this.doms.values()].find((d) => d.req.instanceLayer === id && d.req.maintenance);
    if (dom?.state === 'running') throw conflict(`the maintenance domain of ${id} is running`);
    const img = this.maintenanceImages.get(id);
    if (!img) throw notFound(`instance ${id} has no maintenance deployment layer on ${this.host}`);
    return { base64: img.subarray(offset, offset + length).toString('base64'), size: img.length };
  }
  /** The tree stormd would build from the spec (files, /etc/hostname, /etc/storm/domain, tls), plus guest edits. */
  async instanceLayerFiles(id: string, limit = 10_000): Promise<LayerFiles> {
    if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw invalid('limit must be an integer from 1 to 100000');
    const spec = this.#layer(id);
    const kinds = new Map<string, LayerFileKind>();
    const add = (p: string, kind: LayerFileKind) => {
      const parts = p.split('/').filter(Boolean);
      for (let i = 1; i < parts.length; i++) if (!kinds.has(`/${parts.slice(0, i).join('/')}`)) kinds.set(`/${parts.slice(0, i).join('/')}`, 'dir');
      kinds.set(`/${parts.join('/')}`, kind);
    };
    add('/etc/hostname', 'file');
    if (spec.domain) add('/etc/storm/domain', 'file');
    for (const p of Object.keys(spec.files)) add(p, 'file');
    if (spec.tls) for (const f of ['instance.crt', 'instance.key', 'ca.crt']) add(`/etc/storm/tls/${f}`, 'file');
    for (const [p, k] of this.guestEdits.get(id) ?? []) add(p, k);
    const all: LayerFile[] = [...kinds].map(([path, kind]) => ({ path, kind })).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return { entries: all.slice(0, limit), total: all.length, truncated: all.length > limit };
  }
  async exportInstanceLayer(id: string): Promise<TransferRef> {
    const spec = this.#layer(id);
    const body = JSON.stringify(spec);
    const url = `memory://${this.host}/${id}`;
    transfers.set(url, structuredClone(spec));
    return { url, sha256: createHash('sha256').update(body).digest('hex'), size: body.length };
  }
  async importInstanceLayer(id: string, from: TransferRef): Promise<void> {
    const spec = transfers.get(from.url);
    if (!spec) throw notFound(`nothing exported at ${from.url}`);
    if (createHash('sha256').update(JSON.stringify(spec)).digest('hex') !== from.sha256) throw invalid(`instance layer from ${from.url} does not match its digest`);
    this.instanceLayers.set(id, structuredClone(spec));
  }
}
