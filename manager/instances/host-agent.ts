/**
 * What the instance service needs from one hypervisor. The stormd client
 * implements it over mutual-TLS XML-RPC; `MemoryHostAgent` implements it in
 * memory for fast tests. Both run the conformance suite in
 * test/conformance/host-agent.case.ts.
 */
import type { AgentCapacity, AgentDomainRequest, AgentDomainState, AgentInstanceLayerSpec, AgentLayerFile, AgentLayerFileKind, AgentLayerFiles, AgentLayerRole, AgentTransferRef } from '../../stormd/api/methods.ts';
import type { ConsoleChunk, ConsoleReadOptions } from '../../lib/console-window.ts';

/** Roles of the disks a domain gets from shared layers (`disk`: a traditional appliance's one image). */
export type DiskRole = AgentLayerRole;

/** A file a host fetches into its cache by URL + digest: a layer, or the kernel/initrd it boots. */
export interface LayerRef {
  role: DiskRole | 'kernel' | 'initrd';
  sha256: string;
  size: number;
  url: string;
}

/** A layer a domain gets as a disk. */
export type DiskLayerRef = LayerRef & { role: DiskRole };

// The shapes that cross the wire are stormd's (stormd/api/methods.ts documents each field): one definition, not two.
export type HostCapacity = AgentCapacity;
/** The instance layer's contents: what makes this instance itself. */
export type InstanceLayerSpec = AgentInstanceLayerSpec;
export type DomainRequest = AgentDomainRequest;
export type DomainState = AgentDomainState;
export type LayerFileKind = AgentLayerFileKind;
export type LayerFile = AgentLayerFile;
export type LayerFiles = AgentLayerFiles;
/** An instance layer in transit between hosts (migration moves only this). */
export type TransferRef = AgentTransferRef;

export interface HostAgent {
  readonly host: string;
  capacity(): Promise<HostCapacity>;
  /** Digests of the layers this host holds. */
  layers(): Promise<string[]>;
  /** Fetch a layer into the host's cache by URL + digest (verified; idempotent). */
  ensureLayer(ref: LayerRef): Promise<void>;
  /**
   * Remove cached layers that are not in `referenced`; a host also keeps
   * whatever its defined domains use. Returns what went and the bytes freed.
   */
  removeUnreferencedLayers(referenced: string[]): Promise<{ removed: string[]; freedBytes: number }>;
  /** Build the instance layer; idempotent for the same id. */
  createInstanceLayer(id: string, spec: InstanceLayerSpec): Promise<{ bytes: number }>;
  /** Remove it; absent is fine (undo steps must be safe to repeat). */
  removeInstanceLayer(id: string): Promise<void>;
  define(req: DomainRequest): Promise<void>;
  start(name: string): Promise<void>;
  shutdown(name: string): Promise<void>;
  /** Power off; absent is fine (undo steps must be safe to repeat). */
  poweroff(name: string): Promise<void>;
  /** Undefine; absent is fine. */
  undefine(name: string): Promise<void>;
  state(name: string): Promise<DomainState>;
  domains(): Promise<{ name: string; state: DomainState }[]>;
  /** The domain's serial console log: its last `bytes`, or from byte `from` (a log shorter than `from` started again: from 0). */
  consoleRead(name: string, opts: ConsoleReadOptions): Promise<ConsoleChunk>;
  /** Snapshots of one instance layer (the instance's own state, cheap). */
  snapshot(id: string, snap: string): Promise<void>;
  restore(id: string, snap: string): Promise<void>;
  deleteSnapshot(id: string, snap: string): Promise<void>;
  snapshots(id: string): Promise<{ name: string; createdAt: string }[]>;
  /**
   * The paths in the instance layer (absolute in-guest paths, sorted) and what
   * each is; at most `limit` (default 10,000, at most 100,000) with `truncated`
   * set when there were more. `not_found` when the layer does not exist.
   */
  instanceLayerFiles(id: string, limit?: number): Promise<LayerFiles>;
  /**
   * A chunk (at most 4 MiB) of the deployment layer a maintenance domain
   * (`DomainRequest.maintenance`) edited, flattened to a raw image; `conflict`
   * while the domain runs, `not_found` when there is none. Removed with the
   * instance layer.
   */
  readMaintenanceLayer(id: string, offset: number, length: number): Promise<{ base64: string; size: number }>;
  /** Offer the instance layer for another host to pull: where, and its digest. */
  exportInstanceLayer(id: string): Promise<TransferRef>;
  /** Pull an instance layer another host exported; verified by digest. */
  importInstanceLayer(id: string, from: TransferRef): Promise<void>;
}
