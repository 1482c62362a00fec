/**
 * The instance service's HostAgent over a host's stormd: each method is one
 * XML-RPC call (names and shapes in stormd/api/methods.ts). Faults come back
 * as StormErrors with their codes (the client rebuilds them), so a
 * `not_found` on the hypervisor is a `not_found` here.
 */
import { unavailable } from '../../lib/errors.ts';
import { checkConsoleRead, type ConsoleChunk, type ConsoleReadOptions } from '../../lib/console-window.ts';
import { HYPERVISOR_METHODS as M } from '../../stormd/api/methods.ts';
import type { DomainRequest, DomainState, HostAgent, HostCapacity, InstanceLayerSpec, LayerFiles, LayerRef, TransferRef } from '../instances/host-agent.ts';
import type { StormdClient } from './client.ts';

/** How long each kind of call may take: downloads and graceful shutdowns are slow by nature. */
const TIMEOUT = { quick: 30_000, layer: 30 * 60_000, build: 5 * 60_000, shutdown: 150_000 } as const;

type Caller = Pick<StormdClient, 'call'>;

export class StormdHostAgent implements HostAgent {
  /** `client` resolves the host's client on every call (it may be re-keyed or re-addressed meanwhile). */
  constructor(readonly host: string, private readonly client: () => Promise<Caller>) {}

  async #call<R>(method: string, params: Record<string, unknown>, timeoutMs: number = TIMEOUT.quick): Promise<R> {
    return (await this.client()).call<R>(method, params, { timeoutMs });
  }

  capacity(): Promise<HostCapacity> {
    return this.#call<HostCapacity>(M.capacity, {});
  }
  layers(): Promise<string[]> {
    return this.#call<string[]>(M.layerList, {});
  }
  async ensureLayer(ref: LayerRef): Promise<void> {
    await this.#call(M.layerEnsure, { url: ref.url, sha256: ref.sha256, size: ref.size }, TIMEOUT.layer);
  }
  removeUnreferencedLayers(referenced: string[]): Promise<{ removed: string[]; freedBytes: number }> {
    return this.#call<{ removed: string[]; freedBytes: number }>(M.layerRemoveUnreferenced, { referenced }, TIMEOUT.build);
  }
  createInstanceLayer(id: string, spec: InstanceLayerSpec): Promise<{ bytes: number }> {
    return this.#call<{ bytes: number }>(M.instanceLayerCreate, { id, spec }, TIMEOUT.build);
  }
  async removeInstanceLayer(id: string): Promise<void> {
    await this.#call(M.instanceLayerRemove, { id });
  }
  async define(req: DomainRequest): Promise<void> {
    // Optional fields absent rather than undefined: XML-RPC has no undefined.
    await this.#call(M.domainDefine, { request: JSON.parse(JSON.stringify(req)) as Record<string, unknown> }, TIMEOUT.build);
  }
  async start(name: string): Promise<void> {
    await this.#call(M.domainStart, { name }, TIMEOUT.build);
  }
  async shutdown(name: string): Promise<void> {
    await this.#call(M.domainShutdown, { name }, TIMEOUT.shutdown);
  }
  async poweroff(name: string): Promise<void> {
    await this.#call(M.domainPoweroff, { name });
  }
  async undefine(name: string): Promise<void> {
    await this.#call(M.domainUndefine, { name });
  }
  async state(name: string): Promise<DomainState> {
    const r = await this.#call<{ state: DomainState }>(M.domainState, { name });
    return r.state;
  }
  domains(): Promise<{ name: string; state: DomainState }[]> {
    return this.#call<{ name: string; state: DomainState }[]>(M.domainList, {});
  }
  async consoleRead(name: string, opts: ConsoleReadOptions): Promise<ConsoleChunk> {
    const o = checkConsoleRead(opts);
    const r = await this.#call<Partial<ConsoleChunk>>(M.domainConsoleTail, { name, ...o });
    // A stormd from before offsets answers {text} alone: it cannot be followed.
    if (typeof r.next !== 'number' || typeof r.from !== 'number') throw unavailable(`stormd on ${this.host} cannot read its console by offset; upgrade it to follow the console`);
    return { text: String(r.text ?? ''), from: r.from, next: r.next, ...(typeof r.boot === 'string' ? { boot: r.boot } : {}) };
  }
  async snapshot(id: string, snap: string): Promise<void> {
    await this.#call(M.instanceLayerSnapshot, { id, snapshot: snap }, TIMEOUT.build);
  }
  async restore(id: string, snap: string): Promise<void> {
    await this.#call(M.instanceLayerRestore, { id, snapshot: snap }, TIMEOUT.build);
  }
  async deleteSnapshot(id: string, snap: string): Promise<void> {
    await this.#call(M.instanceLayerDeleteSnapshot, { id, snapshot: snap }, TIMEOUT.build);
  }
  readMaintenanceLayer(id: string, offset: number, length: number): Promise<{ base64: string; size: number }> {
    return this.#call(M.maintenanceLayerRead, { id, offset, length }, TIMEOUT.build);
  }
  instanceLayerFiles(id: string, limit?: number): Promise<LayerFiles> {
    return this.#call<LayerFiles>(M.instanceLayerFiles, { id, ...(limit === undefined ? {} : { limit }) }, TIMEOUT.build);
  }
  snapshots(id: string): Promise<{ name: string; createdAt: string }[]> {
    return this.#call<{ name: string; createdAt: string }[]>(M.instanceLayerSnapshots, { id });
  }
  exportInstanceLayer(id: string): Promise<TransferRef> {
    return this.#call<TransferRef>(M.instanceLayerExport, { id }, TIMEOUT.build);
  }
  async importInstanceLayer(id: string, from: TransferRef): Promise<void> {
    await this.#call(M.instanceLayerImport, { id, from: { url: from.url, sha256: from.sha256, size: from.size } }, TIMEOUT.layer);
  }
  /** Layer downloads in flight on the host (progress for the consoles' gauges; `total` unknown is -1 on the wire). */
  async downloads(): Promise<{ sha256: string; received: number; total: number | undefined }[]> {
    const r = await this.#call<{ sha256: string; received: number; total: number }[]>(M.layerDownloads, {});
    return (Array.isArray(r) ? r : []).map((d) => ({ sha256: d.sha256, received: d.received, total: d.total >= 0 ? d.total : undefined }));
  }
}
