/**
 * stormd's wire contract: method names and their param/result shapes. Every
 * method takes one struct parameter and returns one value. The manager imports
 * only stormd/api; stormd registers handlers under these names.
 */
import type { Health } from '../../lib/health.ts';

/** Default TCP port of `stormd start` when an address gives none. */
export const STORMD_DEFAULT_PORT = 7720;
export { RPC_PATH, MAX_REQUEST_BYTES, CRL_NUMBER_HEADER } from '../../lib/xmlrpc/server.ts';
/** Largest response body the manager reads. */
export const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

export interface HostInfo {
  name: string;
  version: string;
  hostname: string;
  cpus: number;
  cpuModel: string;
  memoryBytes: number;
  freeMemoryBytes: number;
  /** Free bytes on the filesystem holding the state directory. */
  diskFreeBytes: number;
  diskTotalBytes: number;
  libvirtUri: string;
  libvirtVersion: string | undefined;
  /** 'kvm' when /dev/kvm is usable, else 'tcg' (QEMU emulation). */
  accel: 'kvm' | 'tcg';
  /** The CRL number stormd enforces (the manager pushes a newer one when this lags). */
  crlNumber: number;
  /** Its own certificate's expiry, so the manager renews in time. */
  certNotAfter: string;
  certNotBefore: string;
  /** Each component as data: libvirtd, kvm, state disk. */
  health: Health[];
}

export interface CrlUpdateParams {
  crl: string;
}
export interface CrlUpdateResult {
  number: number;
  /** Live connections closed because their peer is now revoked. */
  closed: number;
}

/** Renewal step 1: stormd makes a new key and returns a CSR for it (the key stays pending on stormd). */
export interface CsrResult {
  csr: string;
}
/** Renewal step 2: the signed certificate for the pending key; stormd installs it for new connections. */
export interface InstallCertParams {
  cert: string;
}

/** The methods stormd serves itself; other modules add theirs (layer.*, domain.*). */
export const METHODS = {
  hostInfo: 'host.info',
  crlUpdate: 'tls.crl.update',
  tlsCsr: 'tls.csr',
  tlsInstall: 'tls.install',
  methodsList: 'system.listMethods',
} as const;

/**
 * The hypervisor's methods (stormd/hypervisor-methods.ts serves them over
 * LocalHostAgent; the manager's StormdHostAgent calls them). One struct in,
 * plain data out; table in docs/hypervisor.md.
 */
export const HYPERVISOR_METHODS = {
  capacity: 'host.capacity',
  layerList: 'layer.list',
  layerEnsure: 'layer.ensure',
  layerDownloads: 'layer.downloads',
  layerRemoveUnreferenced: 'layer.removeUnreferenced',
  instanceLayerCreate: 'instanceLayer.create',
  instanceLayerRemove: 'instanceLayer.remove',
  instanceLayerSnapshot: 'instanceLayer.snapshot',
  instanceLayerRestore: 'instanceLayer.restore',
  instanceLayerDeleteSnapshot: 'instanceLayer.deleteSnapshot',
  instanceLayerSnapshots: 'instanceLayer.snapshots',
  instanceLayerExport: 'instanceLayer.export',
  instanceLayerImport: 'instanceLayer.import',
  instanceLayerFiles: 'instanceLayer.files',
  maintenanceLayerRead: 'maintenanceLayer.read',
  domainDefine: 'domain.define',
  domainStart: 'domain.start',
  domainShutdown: 'domain.shutdown',
  domainPoweroff: 'domain.poweroff',
  domainUndefine: 'domain.undefine',
  domainState: 'domain.state',
  domainList: 'domain.list',
  domainConsoleTail: 'domain.consoleTail',
} as const;

export type AgentLayerRole = 'substrate' | 'appliance' | 'deployment' | 'disk';
export interface AgentLayerRef {
  role: AgentLayerRole;
  sha256: string;
  size: number;
  url: string;
}
export interface AgentCapacity {
  memoryMiB: number;
  freeMemoryMiB: number;
  vcpus: number;
  freeDiskBytes: number;
}
export interface AgentInstanceLayerSpec {
  hostname: string;
  domain: string;
  files: Record<string, string>;
  sizeMiB: number;
  /** The instance's certificate, key (0600) and the CA certificate, written under /etc/storm/tls/. */
  tls?: { cert: string; key: string; ca: string };
}
export interface AgentDomainRequest {
  name: string;
  memoryMiB: number;
  vcpus: number;
  /** A cached digest, or an absolute path on this hypervisor. */
  kernel: string;
  initrd: string;
  cmdline: string;
  layers: Partial<Record<AgentLayerRole, string>>;
  /** Image format per layer (from the appliance XML); raw when absent. Never probed from the file. */
  formats?: Partial<Record<AgentLayerRole, 'raw' | 'qcow2'>>;
  /** Instance id whose instance layer is attached as sdd. */
  instanceLayer: string;
  mac: string;
  bridge?: string;
  /** storm.maintenance: the deployment layer is attached writable, as an overlay kept with the instance layer. */
  maintenance?: boolean;
}
export type AgentDomainState = 'running' | 'stopped' | 'paused' | 'crashed' | 'absent';
export interface AgentHostInfo extends AgentCapacity {
  host: string;
  cpuModel: string;
  hypervisor: Health;
  /** kvm when KVM is usable, qemu (TCG) otherwise. */
  virtType: 'kvm' | 'qemu';
  layerCache: { layers: number; bytes: number };
}
export interface AgentTransferRef {
  url: string;
  sha256: string;
  size: number;
}


/** What one path in an instance layer is: a whiteout hides a lower file, an opaque dir every lower file below it. */
export type AgentLayerFileKind = 'file' | 'dir' | 'opaque-dir' | 'symlink' | 'whiteout' | 'other';
export interface AgentLayerFile {
  /** Absolute in-guest path (the layer's root/ is `/`). */
  path: string;
  kind: AgentLayerFileKind;
}
/** `instanceLayer.files` result: entries sorted by path, at most `limit`; `total` counts them all. */
export interface AgentLayerFiles {
  entries: AgentLayerFile[];
  total: number;
  truncated: boolean;
}

/** Largest chunk `maintenanceLayer.read` returns (base64 grows it by a third; responses stay under MAX_RESPONSE_BYTES). */
export const MAINTENANCE_CHUNK_MAX = 4 * 1024 * 1024;
/** A chunk of a file: `base64` from the offset asked, and the whole file's size. */
export interface AgentChunk {
  base64: string;
  size: number;
}
