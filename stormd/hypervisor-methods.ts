/**
 * The hypervisor's XML-RPC methods (layer.*, instanceLayer.*, domain.*,
 * host.capacity): thin handlers over LocalHostAgent, one struct in, plain
 * data out. Register with `startStormd({ methods: hypervisorMethods(agent) })`.
 * The names and shapes are in stormd/api/methods.ts (the manager's side of the wire).
 */
import { invalid } from '../lib/errors.ts';
import { HYPERVISOR_METHODS, MAINTENANCE_CHUNK_MAX, type AgentDomainRequest, type AgentLayerRef, type AgentTransferRef, type AgentInstanceLayerSpec } from './api/methods.ts';
import type { LocalHostAgent } from './host-agent.ts';
import { reqString, type StormdMethod } from './server/methods.ts';
import { checkConsoleRead } from '../lib/console-window.ts';

export { HYPERVISOR_METHODS };


type P = Record<string, unknown>;

function reqObject(p: P, key: string, method: string): P {
  const v = p[key];
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw invalid(`${method}: "${key}" must be a struct`);
  return v as P;
}

function reqInt(p: P, key: string, method: string, min: number, max: number): number {
  const v = p[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw invalid(`${method}: "${key}" must be an integer from ${min} to ${max}`);
  return v;
}

function reqStringList(p: P, key: string, method: string): string[] {
  const v = p[key];
  if (!Array.isArray(v) || v.length > 100_000 || !v.every((x) => typeof x === 'string')) throw invalid(`${method}: "${key}" must be a list of strings`);
  return v as string[];
}

function reqVolumes(p: P, method: string): { name: string; sizeMiB: number }[] {
  const v = p.volumes;
  if (!Array.isArray(v) || v.length > 8) throw invalid(`${method}: "volumes" must be a list of at most 8 structs`);
  return v.map((x) => {
    if (!x || typeof x !== 'object' || Array.isArray(x)) throw invalid(`${method}: each volume must be a struct {name, sizeMiB}`);
    return { name: reqString(x as P, 'name', method, 5), sizeMiB: reqInt(x as P, 'sizeMiB', method, 8, 16 * 1024 * 1024) };
  });
}

const M = HYPERVISOR_METHODS;

/** The method set for one agent; every handler validates its struct (the agent validates again). */
export function hypervisorMethods(agent: LocalHostAgent): StormdMethod<any, any>[] {
  const name = (p: P, m: string) => reqString(p, 'name', m, 64);
  const id = (p: P, m: string) => reqString(p, 'id', m, 63);
  const snap = (p: P, m: string) => reqString(p, 'snapshot', m, 64);
  const ok = { ok: true } as const;
  return [
    { name: M.capacity, summary: 'memory, vCPUs and free disk of this hypervisor', handler: () => agent.capacity() },
    { name: M.layerList, summary: 'digests in the layer cache', handler: () => agent.layers() },
    {
      name: M.layerEnsure,
      summary: 'fetch a layer by URL + SHA-256 into the cache (verified while streaming; idempotent)',
      handler: async (p: P) => {
        const ref: AgentLayerRef = { role: 'substrate', sha256: reqString(p, 'sha256', M.layerEnsure, 64), url: reqString(p, 'url', M.layerEnsure, 4096), size: reqInt(p, 'size', M.layerEnsure, 0, Number.MAX_SAFE_INTEGER) };
        await agent.ensureLayer(ref);
        return ok;
      },
    },
    { name: M.layerDownloads, summary: 'layer downloads in flight and their progress', handler: async () => agent.downloads().map((d) => ({ ...d, total: d.total ?? -1 })) },
    {
      name: M.layerRemoveUnreferenced,
      summary: 'remove cached layers neither referenced nor used by a domain here',
      handler: (p: P) => agent.removeUnreferencedLayers(reqStringList(p, 'referenced', M.layerRemoveUnreferenced)),
    },
    {
      name: M.instanceLayerCreate,
      summary: "build an instance's layer (ext4 storm-instance + swap); idempotent for one id",
      handler: (p: P) => {
        const spec = reqObject(p, 'spec', M.instanceLayerCreate);
        const files = spec.files === undefined ? {} : reqObject(spec, 'files', M.instanceLayerCreate);
        const t = spec.tls === undefined ? undefined : reqObject(spec, 'tls', M.instanceLayerCreate);
        const pem = (k: string) => reqString(t!, k, M.instanceLayerCreate, 64 * 1024);
        return agent.createInstanceLayer(id(p, M.instanceLayerCreate), {
          ...(t ? { tls: { cert: pem('cert'), key: pem('key'), ca: pem('ca') } } : {}),
          hostname: reqString(spec, 'hostname', M.instanceLayerCreate, 253),
          domain: typeof spec.domain === 'string' ? spec.domain : '',
          files: files as Record<string, string>,
          sizeMiB: spec.sizeMiB === undefined ? 256 : reqInt(spec, 'sizeMiB', M.instanceLayerCreate, 16, 1024 * 1024),
          ...(spec.volumes === undefined ? {} : { volumes: reqVolumes(spec, M.instanceLayerCreate) }),
        } satisfies AgentInstanceLayerSpec);
      },
    },
    { name: M.instanceLayerRemove, summary: 'remove an instance layer and its snapshots (absent is fine)', handler: async (p: P) => (await agent.removeInstanceLayer(id(p, M.instanceLayerRemove)), ok) },
    { name: M.instanceLayerSnapshot, summary: 'snapshot an instance layer (instance shut off)', handler: async (p: P) => (await agent.snapshot(id(p, M.instanceLayerSnapshot), snap(p, M.instanceLayerSnapshot)), ok) },
    { name: M.instanceLayerRestore, summary: 'roll an instance layer back to a snapshot (instance shut off)', handler: async (p: P) => (await agent.restore(id(p, M.instanceLayerRestore), snap(p, M.instanceLayerRestore)), ok) },
    { name: M.instanceLayerDeleteSnapshot, summary: 'delete a snapshot', handler: async (p: P) => (await agent.deleteSnapshot(id(p, M.instanceLayerDeleteSnapshot), snap(p, M.instanceLayerDeleteSnapshot)), ok) },
    { name: M.instanceLayerSnapshots, summary: "an instance layer's snapshots", handler: (p: P) => agent.snapshots(id(p, M.instanceLayerSnapshots)) },
    {
      name: M.instanceLayerFiles,
      summary: "the paths in an instance layer and their kinds (file, dir, opaque-dir, symlink, whiteout), bounded by limit",
      handler: (p: P) => agent.instanceLayerFiles(id(p, M.instanceLayerFiles), p.limit === undefined ? undefined : reqInt(p, 'limit', M.instanceLayerFiles, 1, 100_000)),
    },
    {
      name: M.maintenanceLayerRead,
      summary: 'a chunk of the deployment layer a maintenance domain edited (flattened to raw; the domain shut off)',
      handler: (p: P) => agent.readMaintenanceLayer(id(p, M.maintenanceLayerRead), reqInt(p, 'offset', M.maintenanceLayerRead, 0, Number.MAX_SAFE_INTEGER), reqInt(p, 'length', M.maintenanceLayerRead, 1, MAINTENANCE_CHUNK_MAX)),
    },
    { name: M.instanceLayerExport, summary: 'offer an instance layer to another host: URL, digest, size', handler: (p: P) => agent.exportInstanceLayer(id(p, M.instanceLayerExport)) },
    {
      name: M.instanceLayerImport,
      summary: 'pull an instance layer another host exported (verified by digest)',
      handler: async (p: P) => {
        const from = reqObject(p, 'from', M.instanceLayerImport);
        const ref: AgentTransferRef = { url: reqString(from, 'url', M.instanceLayerImport, 4096), sha256: reqString(from, 'sha256', M.instanceLayerImport, 64), size: reqInt(from, 'size', M.instanceLayerImport, 0, Number.MAX_SAFE_INTEGER) };
        await agent.importInstanceLayer(id(p, M.instanceLayerImport), ref);
        return ok;
      },
    },
    {
      name: M.domainDefine,
      summary: 'define a domain from a request (layer digests, instance layer id); never raw XML',
      handler: async (p: P) => {
        const r = reqObject(p, 'request', M.domainDefine);
        await agent.define(r as unknown as AgentDomainRequest); // the agent and validateDomainSpec check every field
        return ok;
      },
    },
    { name: M.domainStart, summary: 'start a domain', handler: async (p: P) => (await agent.start(name(p, M.domainStart)), ok) },
    { name: M.domainShutdown, summary: 'graceful shutdown (ACPI); waits until off', handler: async (p: P) => (await agent.shutdown(name(p, M.domainShutdown)), ok) },
    { name: M.domainPoweroff, summary: 'power a domain off (destroy)', handler: async (p: P) => (await agent.poweroff(name(p, M.domainPoweroff)), ok) },
    { name: M.domainUndefine, summary: 'undefine a shut-off domain (absent is fine)', handler: async (p: P) => (await agent.undefine(name(p, M.domainUndefine)), ok) },
    { name: M.domainState, summary: 'running | stopped | paused | crashed | absent', handler: async (p: P) => ({ state: await agent.state(name(p, M.domainState)) }) },
    { name: M.domainList, summary: 'domains on this hypervisor with their states', handler: () => agent.domains() },
    {
      name: M.domainConsoleTail,
      summary: "a domain's serial console log: its end, or from byte `from` (answers {text, from, next})",
      handler: async (p: P) => {
        // One rule for a read's bytes, from and boot, the one every driver applies.
        return agent.consoleRead(name(p, M.domainConsoleTail), checkConsoleRead(p as { bytes: number; from?: number; boot?: string }));
      },
    },
  ];
}
