/**
 * stormd's side of the manager's HostAgent contract (manager/instances/
 * host-agent.ts), as one object over the hypervisor driver, the layer cache
 * and the instance layers. The XML-RPC server maps each method 1:1; every
 * argument is plain JSON, checked here, and every failure is a StormError
 * with a code. The wire types live in stormd/api/methods.ts (the manager's
 * side imports them from there; stormd may not import the manager).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, copyFile, mkdir, open, rename, rm, stat, statfs } from 'node:fs/promises';
import { cpus, freemem, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { StormError, invalid, notFound } from '../lib/errors.ts';
import { run, type Runner } from '../lib/exec.ts';
import type { Health } from '../lib/health.ts';
import { validateName, type DiskSpec, type DomainInfo, type DomainSpec, type HypervisorDriver } from './hypervisor/driver.ts';
import { LayerCache, SHA256_RE, checkDigest, type LayerCacheOptions } from './layers/cache.ts';
import type { TlsCreds } from './layers/fetch.ts';
import { InstanceLayers, checkInstanceId } from './layers/instance.ts';
import { checkLimit, listInstanceLayerFiles } from './layers/instance-files.ts';
import { MAINTENANCE_CHUNK_MAX, type AgentCapacity, type AgentChunk, type AgentDomainRequest, type AgentDomainState, type AgentHostInfo, type AgentInstanceLayerSpec, type AgentLayerFiles, type AgentLayerRef, type AgentLayerRole, type AgentTransferRef } from './api/methods.ts';
import type { ConsoleChunk, ConsoleReadOptions } from '../lib/console-window.ts';

export type { AgentLayerRole, AgentLayerRef, AgentCapacity, AgentInstanceLayerSpec, AgentDomainRequest, AgentDomainState, AgentHostInfo, AgentTransferRef };

export interface LocalHostAgentOptions {
  host: string;
  /** stormd's state directory; must be traversable by libvirt-qemu (docs/hypervisor.md). */
  stateDir: string;
  driver: HypervisorDriver;
  /** Bridge for guests when a request names none; no NIC when both are absent. */
  defaultBridge?: string;
  /** Base URL under which the server offers exported instance layers (`<base>/<id>/<sha256>`); see serveExportsAt. */
  exportBaseUrl?: string;
  fetch?: LayerCacheOptions;
  /**
   * Our own client certificate, key and the cloud CA, for pulling another
   * stormd's exported instance layer over mutual TLS (asked on every pull).
   */
  peerTls?: () => TlsCreds;
  /**
   * Prepended to every domain name in libvirt, so several stormd can share one
   * libvirtd (tests, a lab) without seeing each other's domains: the manager's
   * `storm-<id>` is `<prefix>storm-<id>` there. Domains without it are not ours.
   */
  domainPrefix?: string;
  shutdownTimeoutMs?: number;
  /** Starts mke2fs, filefrag, qemu-img for instance layers (default: lib/exec run). */
  run?: Runner;
}

const ROLE_ORDER = ['substrate', 'deployment', 'appliance'] as const;

export class LocalHostAgent {
  readonly host: string;
  readonly cache: LayerCache;
  readonly instances: InstanceLayers;
  readonly #o: LocalHostAgentOptions;
  readonly #imports: LayerCache;
  #exportBaseUrl: string | undefined;
  /** Digests of instance layers by path, valid while size, mtime and inode stay the same. */
  readonly #digests = new Map<string, { key: string; sha256: string }>();

  constructor(o: LocalHostAgentOptions) {
    this.#o = o;
    this.#exportBaseUrl = o.exportBaseUrl;
    if (o.domainPrefix !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/.test(o.domainPrefix)) throw invalid(`domain prefix ${JSON.stringify(o.domainPrefix)}: use 1-32 letters, digits, _ . -`);
    this.host = o.host;
    this.cache = new LayerCache(join(o.stateDir, 'layers'), o.fetch);
    this.instances = new InstanceLayers(join(o.stateDir, 'instances'), o.run ? { run: o.run } : {});
    // Migrations land here first (verified like any layer), then move into place.
    this.#imports = new LayerCache(join(o.stateDir, 'imports'), { ...o.fetch, ...(o.peerTls ? { tls: o.peerTls } : {}) });
  }

  /** Offer exported instance layers under this base URL (stormd sets it from its listen address once listening). */
  serveExportsAt(baseUrl: string): void {
    this.#exportBaseUrl = baseUrl;
  }

  /** The libvirt name of the manager's domain `name` (validated as the manager's name first). */
  #dom(name: string): string {
    return `${this.#o.domainPrefix ?? ''}${validateName(name)}`;
  }

  async health(): Promise<Health> {
    return this.#o.driver.health();
  }

  /**
   * Host info as data: capacity, CPU model, the hypervisor's health (libvirt
   * version, KVM or TCG) and the cache's size. Never throws for a sick
   * libvirt: that is in `hypervisor.status`.
   */
  async info(): Promise<AgentHostInfo> {
    const [capacity, hypervisor, layers] = await Promise.all([this.capacity(), this.health(), this.cache.list()]);
    return {
      host: this.host,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      ...capacity,
      hypervisor,
      virtType: hypervisor.facts?.virtType === 'kvm' ? 'kvm' : 'qemu',
      layerCache: { layers: layers.length, bytes: layers.reduce((n, l) => n + l.size, 0) },
    };
  }

  async capacity(): Promise<AgentCapacity> {
    await mkdir(this.#o.stateDir, { recursive: true, mode: 0o755 });
    const fs = await statfs(this.#o.stateDir);
    return {
      memoryMiB: Math.floor(totalmem() / 1048576),
      freeMemoryMiB: Math.floor(freemem() / 1048576),
      vcpus: cpus().length,
      freeDiskBytes: Number(fs.bavail) * Number(fs.bsize),
    };
  }

  /** Layer downloads in flight: `{sha256, received, total}` (poll for progress gauges). */
  downloads(): { sha256: string; received: number; total: number | undefined }[] {
    return this.cache.downloads();
  }

  async layers(): Promise<string[]> {
    return this.cache.digests();
  }

  async ensureLayer(ref: AgentLayerRef): Promise<void> {
    if (!ref || typeof ref !== 'object') throw invalid('layer ref must be an object');
    checkDigest(ref.sha256);
    if (typeof ref.url !== 'string') throw invalid('layer url must be a string');
    await this.cache.ensure(ref.url, ref.sha256, Number.isSafeInteger(ref.size) ? { size: ref.size } : {});
  }

  /**
   * Remove cached layers nobody references: `referenced` (what the manager
   * still wants) plus every layer a domain defined here uses, so a layer under
   * a guest is never removed even if the manager forgot it.
   */
  async removeUnreferencedLayers(referenced: string[]): Promise<{ removed: string[]; freedBytes: number }> {
    if (!Array.isArray(referenced)) throw invalid('referenced must be a list of digests');
    const keep = new Set(referenced.map((d) => checkDigest(d)));
    // Every domain in libvirt counts, ours or not: a shared libvirtd's other domains use other caches anyway.
    for (const d of await this.#o.driver.list()) {
      const spec = await this.#o.driver.inspect(d.name).catch(() => undefined);
      const paths = [spec?.kernel, spec?.initrd, ...(spec?.disks.flatMap((x) => [x.path, x.backing?.path]) ?? [])];
      // A qcow2 overlay whose header names a cached layer as its base keeps that layer.
      for (const disk of spec?.disks ?? []) if (disk.format === 'qcow2' && !disk.backing) paths.push(await backingFile(disk.path));
      for (const p of paths) {
        if (p && dirname(p) === this.cache.dir) keep.add(p.slice(this.cache.dir.length + 1));
      }
    }
    return this.cache.removeUnreferenced(keep);
  }

  async createInstanceLayer(id: string, spec: AgentInstanceLayerSpec): Promise<{ bytes: number }> {
    checkInstanceId(id);
    if (!spec || typeof spec !== 'object') throw invalid('instance layer spec must be an object');
    const path = this.instances.path(id);
    // Volumes first: an instance layer in place means everything is (idempotent for one id).
    const volumes = spec.volumes ?? [];
    if (!Array.isArray(volumes) || volumes.length > 8) throw invalid('volumes must be a list of at most 8 {name, sizeMiB}');
    for (const v of volumes) await this.instances.createVolume(id, v?.name, v?.sizeMiB);
    const have = await stat(path).catch(() => undefined);
    if (have) return { bytes: have.size }; // idempotent for one id
    const sizeMiB = Number.isInteger(spec.sizeMiB) ? spec.sizeMiB : 256;
    const files: Record<string, string> = { ...(spec.files ?? {}) };
    if (typeof spec.domain === 'string' && spec.domain) files['/etc/storm/domain'] ??= `${spec.domain}\n`;
    const info = await this.instances.create(id, { hostname: spec.hostname, files, ...(spec.tls ? { tls: spec.tls } : {}) }, { sizeMiB, swapMiB: Math.max(1, Math.min(32, Math.floor(sizeMiB / 4))) });
    return { bytes: (await stat(info.path)).size };
  }

  async removeInstanceLayer(id: string): Promise<void> {
    await this.instances.remove(id);
  }

  async #artefact(field: string, v: string): Promise<string> {
    if (typeof v !== 'string') throw invalid(`${field} must be a digest or an absolute path`);
    if (!SHA256_RE.test(v)) return v; // an absolute path; the driver validates it
    const l = await this.cache.get(v);
    if (!l) throw notFound(`${field} ${v} is not in this hypervisor's layer cache`, { hint: 'ensure the layer first' });
    return l.path;
  }

  /** The DomainSpec this request means on this hypervisor (layer digests → cache files). */
  async domainSpec(req: AgentDomainRequest): Promise<DomainSpec> {
    if (!req || typeof req !== 'object') throw invalid('domain request must be an object');
    validateName(req.name); // refuse a bad request before looking anything up
    if (!req.layers || typeof req.layers !== 'object') throw invalid('layers must be an object of role → digest');
    const disks: DiskSpec[] = [];
    const fmt = (role: AgentLayerRole): 'raw' | 'qcow2' => {
      const f = req.formats?.[role];
      if (f === undefined) return 'raw';
      if (f !== 'raw' && f !== 'qcow2') throw invalid(`formats.${role} must be raw or qcow2`);
      return f;
    };
    const layer = async (role: AgentLayerRole) => {
      const sha = req.layers[role];
      if (sha === undefined) return undefined;
      checkDigest(sha);
      const l = await this.cache.get(sha);
      if (!l) throw notFound(`${role} layer ${sha} is not in this hypervisor's layer cache`, { hint: 'ensure the layer first' });
      return l.path;
    };
    if (req.layers.disk !== undefined) {
      if (ROLE_ORDER.some((r) => req.layers[r] !== undefined)) throw invalid('a traditional disk cannot be combined with layers');
      // A traditional appliance's one disk: the instance's own full, writable copy of the
      // cached image (what a non-layered appliance costs: its size, per instance).
      const base = (await layer('disk'))!;
      const disk = await this.#ownDisk(checkInstanceId(req.instanceLayer), base);
      disks.push({ role: 'traditional', path: disk, format: fmt('disk'), readonly: false });
    } else {
      const maintenance = req.maintenance === true;
      if (req.maintenance !== undefined && typeof req.maintenance !== 'boolean') throw invalid('maintenance must be a boolean');
      if (maintenance && req.layers.deployment === undefined) throw invalid('a maintenance domain needs a deployment layer to edit');
      for (const r of ROLE_ORDER) {
        const p = await layer(r);
        if (!p) continue;
        // Maintenance (storm.maintenance): the deployment layer is the guest's writable upper, as a
        // per-domain qcow2 overlay on the cached layer, so the shared cache file is never written.
        if (maintenance && r === 'deployment') disks.push({ role: r, path: await this.#maintenanceOverlay(req.instanceLayer, p, fmt(r)), format: 'qcow2', readonly: false, backing: { path: p, format: fmt(r) } });
        else disks.push({ role: r, path: p, format: fmt(r), readonly: true });
      }
      const inst = this.instances.path(checkInstanceId(req.instanceLayer));
      if (!(await stat(inst).catch(() => undefined))) throw notFound(`no instance layer ${req.instanceLayer} on this hypervisor`, { hint: 'create the instance layer first' });
      disks.push({ role: 'instance', path: inst, format: 'qcow2', readonly: false });
      if (req.volumes !== undefined && (!Array.isArray(req.volumes) || req.volumes.length > 8)) throw invalid('volumes must be a list of at most 8 names');
      for (const v of req.volumes ?? []) {
        const p = this.instances.volumePath(req.instanceLayer, v);
        if (!(await stat(p).catch(() => undefined))) throw notFound(`no data volume ${v} of ${req.instanceLayer} on this hypervisor`, { hint: 'create the instance layer with its volumes first' });
        disks.push({ role: 'data', path: p, format: 'raw', readonly: false });
      }
    }
    const bridge = req.bridge ?? this.#o.defaultBridge;
    const consoleDir = join(this.#o.stateDir, 'console');
    await mkdir(consoleDir, { recursive: true, mode: 0o755 });
    return {
      name: this.#dom(req.name),
      memoryMiB: req.memoryMiB,
      vcpus: req.vcpus,
      kernel: await this.#artefact('kernel', req.kernel),
      initrd: await this.#artefact('initrd', req.initrd),
      cmdline: req.cmdline,
      disks,
      ...(bridge ? { network: { bridge, mac: req.mac } } : {}),
      consoleLog: join(consoleDir, `${this.#dom(req.name)}.log`),
    };
  }

  /**
   * The instance's copy of a traditional disk (`instances/<id>/disk.img`), made
   * once: copied under a temporary name, synced, then renamed, so a crash never
   * leaves a half-copied disk under the final name.
   */
  async #ownDisk(id: string, base: string): Promise<string> {
    const dir = dirname(this.instances.path(id));
    const disk = join(dir, 'disk.img');
    if (await stat(disk).catch(() => undefined)) return disk;
    await mkdir(dir, { recursive: true, mode: 0o755 });
    const tmp = join(dir, `.disk-${process.pid}-${Date.now().toString(36)}.tmp`);
    try {
      await copyFile(base, tmp);
      await chmod(tmp, 0o644); // the cache's copy is read-only; this one is the guest's writable disk
      const fh = await open(tmp, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, disk);
    } catch (e) {
      await rm(tmp, { force: true });
      const free = await statfs(dir).then((f) => Number(f.bavail) * Number(f.bsize)).catch(() => undefined);
      throw new StormError('internal', `could not copy the traditional disk for ${id}: ${(e as Error).message}`, { hint: free !== undefined ? `${Math.floor(free / 1048576)} MiB free under ${dir}` : 'check the state directory' });
    }
    return disk;
  }

  async define(req: AgentDomainRequest): Promise<void> {
    await this.#o.driver.define(await this.domainSpec(req));
  }

  async start(name: string): Promise<void> {
    await this.#o.driver.start(this.#dom(name));
  }

  async shutdown(name: string): Promise<void> {
    await this.#o.driver.shutdown(this.#dom(name), { timeoutMs: this.#o.shutdownTimeoutMs ?? 120_000 });
  }

  /** Absent is fine: undo and reconciliation repeat it on domains that may never have been defined. */
  async poweroff(name: string): Promise<void> {
    try {
      await this.#o.driver.poweroff(this.#dom(name));
    } catch (e) {
      if (e instanceof StormError && e.code === 'not_found') return;
      throw e;
    }
  }

  async undefine(name: string): Promise<void> {
    try {
      await this.#o.driver.undefine(this.#dom(name));
    } catch (e) {
      if (e instanceof StormError && e.code === 'not_found') return; // absent is fine
      throw e;
    }
  }

  async state(name: string): Promise<AgentDomainState> {
    try {
      return agentState(await this.#o.driver.state(this.#dom(name)));
    } catch (e) {
      if (e instanceof StormError && e.code === 'not_found') return 'absent';
      throw e;
    }
  }

  /**
   * Put our running guests back on their bridges (stormd does this as it starts):
   * a guest network made again while they ran, as `storm up` does on each start,
   * has lost their ports. Only the manager's domains (`storm-<id>`) are touched.
   */
  async reattachNetworks(): Promise<{ domain: string; interfaces: string[] }[]> {
    const out: { domain: string; interfaces: string[] }[] = [];
    for (const d of await this.#o.driver.list({ prefix: `${this.#o.domainPrefix ?? ''}storm-` })) {
      if (d.state !== 'running') continue;
      const interfaces = await this.#o.driver.reattachNetwork(d.name);
      if (interfaces.length) out.push({ domain: d.name, interfaces });
    }
    return out;
  }

  async domains(): Promise<{ name: string; state: AgentDomainState }[]> {
    const prefix = this.#o.domainPrefix ?? '';
    return (await this.#o.driver.list()).filter((d) => d.name.startsWith(prefix)).map((d) => ({ name: d.name.slice(prefix.length), state: agentState(d) }));
  }

  consoleRead(name: string, opts: ConsoleReadOptions): Promise<ConsoleChunk> {
    return this.#o.driver.consoleRead(this.#dom(name), opts);
  }

  async snapshot(id: string, snap: string): Promise<void> {
    await this.instances.snapshot(id, snap);
  }

  restore(id: string, snap: string): Promise<void> {
    return this.instances.restore(id, snap);
  }

  deleteSnapshot(id: string, snap: string): Promise<void> {
    return this.instances.deleteSnapshot(id, snap);
  }

  snapshots(id: string): Promise<{ name: string; createdAt: string }[]> {
    return this.instances.snapshots(id);
  }

  #maintenancePath(id: string): string {
    return join(dirname(this.instances.path(checkInstanceId(id))), 'deployment.qcow2');
  }

  async #maintenanceOverlay(id: string, base: string, format: 'raw' | 'qcow2'): Promise<string> {
    const overlay = this.#maintenancePath(id);
    if (!(await stat(overlay).catch(() => undefined))) {
      await mkdir(dirname(overlay), { recursive: true, mode: 0o755 });
      const r = await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', format, '-b', base, overlay]);
      if (r.code !== 0) throw new StormError('internal', `could not create the maintenance overlay for ${id}: ${r.stderr.trim()}`);
    }
    return overlay;
  }

  /**
   * The deployment layer a maintenance domain edited, flattened to a raw
   * image (made at offset 0, the domain shut off), read in chunks the
   * manager reassembles: `{base64, size}` from `offset`, at most `length`.
   */
  async readMaintenanceLayer(id: string, offset: number, length: number): Promise<AgentChunk> {
    const overlay = this.#maintenancePath(id);
    if (!Number.isSafeInteger(offset) || offset < 0) throw invalid('offset must be a non-negative integer');
    if (!Number.isInteger(length) || length < 1 || length > MAINTENANCE_CHUNK_MAX) throw invalid(`length must be an integer from 1 to ${MAINTENANCE_CHUNK_MAX}`);
    if (!(await stat(overlay).catch(() => undefined))) throw notFound(`instance ${id} has no maintenance deployment layer on this hypervisor`);
    const raw = join(dirname(overlay), 'deployment.raw');
    if (offset === 0 || !(await stat(raw).catch(() => undefined))) {
      const tmp = `${raw}.tmp`;
      // Without -U: qemu-img refuses an image a running guest holds (the edit must be complete).
      const r = await run('qemu-img', ['convert', '-q', '-f', 'qcow2', '-O', 'raw', overlay, tmp], { timeoutMs: 300_000 });
      if (r.code !== 0) {
        await rm(tmp, { force: true });
        if (/lock/i.test(r.stderr)) throw new StormError('conflict', `the maintenance domain of ${id} still holds its deployment layer; shut it down first`);
        throw new StormError('internal', `flattening the maintenance layer of ${id} failed: ${r.stderr.trim()}`);
      }
      await rename(tmp, raw);
    }
    const fh = await open(raw, 'r');
    try {
      const size = (await fh.stat()).size;
      const buf = Buffer.alloc(Math.max(0, Math.min(length, size - offset)));
      if (buf.length) await fh.read(buf, 0, buf.length, offset);
      return { base64: buf.toString('base64'), size };
    } finally {
      await fh.close();
    }
  }

  /** The paths in an instance layer's tree and what each is (whiteouts, opaque dirs), sorted, at most `limit`. */
  async instanceLayerFiles(id: string, limit?: number): Promise<AgentLayerFiles> {
    const path = this.instances.path(id);
    if (!(await stat(path).catch(() => undefined))) throw notFound(`no instance layer ${id} on this hypervisor`);
    return listInstanceLayerFiles(path, checkLimit(limit));
  }

  /** Digest and size of an instance layer, and where the server offers it (instance shut off). */
  async exportInstanceLayer(id: string): Promise<AgentTransferRef> {
    const path = this.instances.path(id);
    const st = await stat(path).catch(() => undefined);
    if (!st) throw notFound(`no instance layer ${id} on this hypervisor`);
    if (!this.#exportBaseUrl) throw new StormError('unavailable', 'this stormd does not serve instance layers (no export URL configured)');
    const sha256 = await this.#digest(path);
    return { url: `${this.#exportBaseUrl.replace(/\/$/, '')}/${id}/${sha256}`, sha256, size: st.size };
  }

  /** For the server's HTTP handler: the file to stream for `<id>/<sha256>`, if it still has that digest. */
  async exportedFile(id: string, sha256: string): Promise<string> {
    checkDigest(sha256);
    const path = this.instances.path(id);
    if (!(await stat(path).catch(() => undefined)) || (await this.#digest(path)) !== sha256) throw notFound(`instance layer ${id} with digest ${sha256} is not here`);
    return path;
  }

  /** SHA-256 of a file, remembered while it is unchanged (an export is hashed once, then served). */
  async #digest(path: string): Promise<string> {
    const st = await stat(path);
    const key = `${st.size}:${st.mtimeMs}:${st.ino}`;
    const had = this.#digests.get(path);
    if (had?.key === key) return had.sha256;
    const sha256 = await hashFile(path);
    this.#digests.set(path, { key, sha256 });
    return sha256;
  }

  /** Pull an exported instance layer, verified by digest, into place; `conflict` if this host has one. */
  async importInstanceLayer(id: string, from: AgentTransferRef): Promise<void> {
    const dst = this.instances.path(id);
    if (await stat(dst).catch(() => undefined)) {
      if ((await hashFile(dst)) === from.sha256) return; // already here: idempotent
      throw new StormError('conflict', `instance layer ${id} already exists here with other contents`);
    }
    const got = await this.#imports.ensure(from.url, checkDigest(from.sha256), Number.isSafeInteger(from.size) ? { size: from.size } : {});
    await mkdir(dirname(dst), { recursive: true, mode: 0o755 });
    await rename(got.path, dst);
    // The cache made it read-only; an instance layer is the guest's writable disk.
    await chmod(dst, 0o644);
  }
}

function agentState(d: DomainInfo): AgentDomainState {
  switch (d.state) {
    case 'running':
    case 'shutting_down':
      return 'running';
    case 'paused':
    case 'suspended':
      return 'paused';
    case 'crashed':
      return 'crashed';
    default:
      return 'stopped';
  }
}

/** The immediate backing file of a qcow2 image, if any. */
async function backingFile(path: string): Promise<string | undefined> {
  const r = await run('qemu-img', ['info', '--output=json', '-U', path]);
  if (r.code !== 0) return undefined;
  try {
    const f = (JSON.parse(r.stdout) as { 'full-backing-filename'?: string; 'backing-filename'?: string });
    return f['full-backing-filename'] ?? f['backing-filename'];
  } catch {
    return undefined;
  }
}

function hashFile(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (c) => h.update(c))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}
