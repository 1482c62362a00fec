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
