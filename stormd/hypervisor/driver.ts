/**
 * The hypervisor driver contract: what stormd asks of a hypervisor. Callers
 * pass a typed DomainSpec (plain JSON); a driver never accepts raw XML or
 * command lines from outside. Every method throws StormError with a code:
 * `invalid` (bad spec), `not_found` (no such domain), `conflict` (wrong state
 * or name taken), `unreachable` (hypervisor not answering), `timeout`.
 */
import type { Health } from '../../lib/health.ts';
import { invalid } from '../../lib/errors.ts';
import type { ConsoleChunk, ConsoleReadOptions } from '../../lib/console-window.ts';
export type { ConsoleChunk, ConsoleReadOptions };

/** The roles a disk can play, in the order the guest sees them (sda, sdb, ...). */
export const LAYER_ROLES = ['substrate', 'deployment', 'appliance', 'instance'] as const;
export type LayerRole = (typeof LAYER_ROLES)[number];
export type DiskRole = LayerRole | 'data' | 'traditional';

export type DiskFormat = 'raw' | 'qcow2';

export interface DiskSpec {
  role: DiskRole;
  /** Absolute path of the image on the hypervisor. */
  path: string;
  format: DiskFormat;
  /** Read-only and shareable go together: one cached layer file serves many guests. */
  readonly: boolean;
  /**
   * For a qcow2 overlay on a shared cached image (a traditional appliance):
   * the backing file, declared so libvirt does not relabel (chown) it.
   */
  backing?: { path: string; format: DiskFormat };
}

export interface NetworkSpec {
  /** An existing bridge on the hypervisor. */
  bridge: string;
  /** Unicast MAC, lower case, e.g. 52:54:00:12:34:56. */
  mac: string;
}

export interface DomainSpec {
  /** 1–64 chars of [A-Za-z0-9_.-], starting with a letter or digit. */
  name: string;
  uuid?: string;
  memoryMiB: number;
  vcpus: number;
  /** Direct kernel boot: absolute paths on the hypervisor. */
  kernel: string;
  initrd: string;
  cmdline: string;
  /**
   * Layered: substrate, deployment, appliance, instance (each at most once;
   * whichever are present keep this order), then any `data` disks. Or one
   * `traditional` disk (plus data disks).
   */
  disks: DiskSpec[];
  network?: NetworkSpec;
  /** Serial console (ttyS0) is written to this file; consoleRead reads it. */
  consoleLog: string;
}

export type DomainState = 'running' | 'paused' | 'shutting_down' | 'shut_off' | 'crashed' | 'suspended' | 'unknown';

export interface DomainInfo {
  name: string;
  uuid: string;
  state: DomainState;
}

/** A disk as attached: its guest device name and SCSI target. */
export interface AttachedDisk extends DiskSpec {
  dev: string;
  target: number;
}

export interface HypervisorDriver {
  /** Which implementation and where, for logs and health. */
  readonly kind: string;
  /**
   * Define (persistently) a domain from a spec; `conflict` if the name exists.
   * Returns the domain as defined, state `shut_off`.
   */
  define(spec: DomainSpec): Promise<DomainInfo>;
  /** Start a defined domain; `conflict` if it is already running. */
  start(name: string): Promise<DomainInfo>;
  /**
   * Graceful shutdown (ACPI power button). Resolves when the domain is shut
   * off; `timeout` (domain left running) if the guest does not comply in time.
   */
  shutdown(name: string, opts?: { timeoutMs?: number }): Promise<DomainInfo>;
  /** Pull the plug (destroy). Idempotent on a domain that is already off. */
  poweroff(name: string): Promise<DomainInfo>;
  /** Remove the definition; `conflict` if it is running. Never deletes disks. */
  undefine(name: string): Promise<void>;
  /** Every defined or running domain; `prefix` filters by name. */
  list(opts?: { prefix?: string }): Promise<DomainInfo[]>;
  state(name: string): Promise<DomainInfo>;
  /** The spec a domain was defined with, read back from the hypervisor. */
  inspect(name: string): Promise<DomainSpec & { attached: AttachedDisk[] }>;
  /**
   * Put a running domain's bridged NICs back on their bridges: a bridge deleted
   * and made again while the domain ran has lost its ports. Returns the host
   * interfaces it attached again ([] when all were in place or there are none).
   */
  reattachNetwork(name: string): Promise<string[]>;
  /**
   * The serial console log: at most `bytes` bytes from byte `from`, or its last
   * `bytes` when `from` is absent ('' before the first boot). A log of another
   * run than `boot`, or shorter than `from`, was started again: read from its beginning.
   */
  consoleRead(name: string, opts: ConsoleReadOptions): Promise<ConsoleChunk>;
  health(): Promise<Health>;
  /** Release sessions and processes the driver holds. */
  close(): Promise<void>;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const BRIDGE_RE = /^[A-Za-z0-9_.-]{1,15}$/;
// Absolute, no '..', no control characters or quotes: paths end up in XML and virsh arguments.
const PATH_RE = /^\/[A-Za-z0-9_.,+@%=:\/-]{0,4095}$/;

export function validateName(name: unknown): string {
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw invalid(`domain name ${JSON.stringify(name)} is not valid`, { hint: 'use 1-64 characters of letters, digits, _ . -, starting with a letter or digit' });
  }
  return name;
}

function validatePath(field: string, p: unknown): string {
  if (typeof p !== 'string' || !PATH_RE.test(p) || p.split('/').includes('..')) {
    throw invalid(`${field} must be an absolute path without '..' or unusual characters, got ${JSON.stringify(p)}`);
  }
  return p;
}

function int(field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw invalid(`${field} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * Check a spec that came from outside (JSON) and return a clean copy, or throw
 * `invalid` naming the field. Also checks the layer order rule.
 */
export function validateDomainSpec(input: unknown): DomainSpec {
  if (!input || typeof input !== 'object' || Array.isArray(input)) throw invalid('domain spec must be an object');
  const s = input as Record<string, unknown>;
  const spec: DomainSpec = {
    name: validateName(s.name),
    memoryMiB: int('memoryMiB', s.memoryMiB, 16, 1024 * 1024),
    vcpus: int('vcpus', s.vcpus, 1, 256),
    kernel: validatePath('kernel', s.kernel),
    initrd: validatePath('initrd', s.initrd),
    cmdline: '',
    disks: [],
    consoleLog: validatePath('consoleLog', s.consoleLog),
  };
  if (s.uuid !== undefined) {
    if (typeof s.uuid !== 'string' || !UUID_RE.test(s.uuid)) throw invalid(`uuid must be a lower-case RFC 4122 UUID, got ${JSON.stringify(s.uuid)}`);
    spec.uuid = s.uuid;
  }
  // eslint-disable-next-line no-control-regex
  if (typeof s.cmdline !== 'string' || s.cmdline.length > 2048 || /[\x00-\x1f\x7f]/.test(s.cmdline)) throw invalid('cmdline must be a string of at most 2048 printable characters');
  spec.cmdline = s.cmdline;
  if (!Array.isArray(s.disks) || s.disks.length === 0 || s.disks.length > 16) throw invalid('disks must be a list of 1 to 16 disks');
  spec.disks = s.disks.map((d, i) => {
    if (!d || typeof d !== 'object') throw invalid(`disks[${i}] must be an object`);
    const o = d as Record<string, unknown>;
    const roles: readonly unknown[] = [...LAYER_ROLES, 'data', 'traditional'];
    if (!roles.includes(o.role)) throw invalid(`disks[${i}].role must be one of ${roles.join(', ')}, got ${JSON.stringify(o.role)}`);
    if (o.format !== 'raw' && o.format !== 'qcow2') throw invalid(`disks[${i}].format must be raw or qcow2`);
    if (typeof o.readonly !== 'boolean') throw invalid(`disks[${i}].readonly must be true or false`);
    const disk: DiskSpec = { role: o.role as DiskRole, path: validatePath(`disks[${i}].path`, o.path), format: o.format, readonly: o.readonly };
    if (o.backing !== undefined) {
      const b = o.backing as Record<string, unknown> | null;
      if (!b || typeof b !== 'object') throw invalid(`disks[${i}].backing must be an object`);
      if (o.format !== 'qcow2') throw invalid(`disks[${i}].backing needs format qcow2`);
      if (b.format !== 'raw' && b.format !== 'qcow2') throw invalid(`disks[${i}].backing.format must be raw or qcow2`);
      disk.backing = { path: validatePath(`disks[${i}].backing.path`, b.path), format: b.format };
    }
    return disk;
  });
  checkDiskOrder(spec.disks);
  if (s.network !== undefined) {
    const n = s.network as Record<string, unknown> | null;
    if (!n || typeof n !== 'object') throw invalid('network must be an object');
    if (typeof n.bridge !== 'string' || !BRIDGE_RE.test(n.bridge)) throw invalid(`network.bridge ${JSON.stringify(n.bridge)} is not a valid interface name`);
    if (typeof n.mac !== 'string' || !MAC_RE.test(n.mac) || (parseInt(n.mac.slice(0, 2), 16) & 1) === 1) throw invalid(`network.mac ${JSON.stringify(n.mac)} must be a lower-case unicast MAC`);
    spec.network = { bridge: n.bridge, mac: n.mac };
  }
  return spec;
}

/** Layer disks in substrate, deployment, appliance, instance order, each once; or one traditional disk; data disks last. */
function checkDiskOrder(disks: DiskSpec[]): void {
  const roles = disks.map((d) => d.role);
  const firstData = roles.indexOf('data');
  if (firstData >= 0 && roles.slice(firstData).some((r) => r !== 'data')) throw invalid('data disks must come after every layer disk');
  const main = roles.filter((r) => r !== 'data');
  if (main.includes('traditional')) {
    if (main.length !== 1) throw invalid('a traditional appliance has exactly one traditional disk and no layer disks');
    return;
  }
  if (main.length === 0) throw invalid('a domain needs a traditional disk or layer disks');
  let last = -1;
  for (const r of main) {
    const i = LAYER_ROLES.indexOf(r as LayerRole);
    if (i <= last) throw invalid(`layer disks must be in the order ${LAYER_ROLES.join(', ')}, each at most once`, { details: { roles: main } });
    last = i;
  }
}
