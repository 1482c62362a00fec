import { conflict, type ErrorCode } from '../../lib/errors.ts';
import type { DiskLayerRef, DiskRole, LayerRef } from './host-agent.ts';
import type { ParamSpec } from './params.ts';

export const INSTANCE_STATES = ['pending', 'provisioning', 'running', 'stopped', 'failed', 'deleting'] as const;
export type InstanceState = (typeof INSTANCE_STATES)[number];

/** One instance as the store keeps it. JSON shape is stable (documented in docs/instances.md). */
export interface InstanceRecord {
  id: string;
  name: string;
  appliance: string;
  version: string;
  host: string;
  state: InstanceState;
  layers: Partial<Record<DiskRole, string>>;
  mac: string;
  memoryMiB: number;
  vcpus: number;
  params: Record<string, string>;
  /** Which params the appliance declares `secret`: shown as SECRET_SHOWN, never their values (the guest still gets them). */
  secretParams?: string[];
  createdAt: string;
  updatedAt: string;
  error?: string;
  /** The failure's error code, beside `error` (the CLI exits with it). */
  errorCode?: ErrorCode;
  /** Set when another instance asked for this one over the appliance API (`instance:NAME`). */
  createdBy?: string;
  /** Serial of the instance's certificate (revoked when it is destroyed). */
  certSerial?: string;
  /** Layers before the last update, for `storm update rollback`. */
  previous?: { version: string; layers: Partial<Record<DiskRole, string>> };
}

/** An appliance as provisioning needs it (resolved from the channel catalog). */
export interface ApplianceSpec {
  id: string;
  version: string;
  /** The disk layers (roles substrate, appliance, deployment, or one disk). */
  layers: DiskLayerRef[];
  /** Boot files, fetched by digest into the host's cache like layers (absent: the disk boots itself). */
  kernel?: LayerRef;
  initrd?: LayerRef;
  /** Image format per layer role, from the appliance XML (raw when absent). */
  formats?: Partial<Record<DiskRole, 'raw' | 'qcow2'>>;
  memoryMiB: number;
  vcpus: number;
  cmdline?: string;
  /** Boot to edit the deployment layer (storm.maintenance): hosts attach it writable (a deployment's maintenance instance). */
  maintenance?: boolean;
  /** Data volumes each instance gets (ext4 labelled `storm-data-NAME`, mounted by the guest's initrd). */
  volumes?: { name: string; sizeMiB: number }[];
  /** The parameters it declares; an instance's are checked against them (absent: not checked). */
  parameters?: ParamSpec[];
}

/** What a secret parameter's value reads as outside the guest. */
export const SECRET_SHOWN = '(secret)';

/** The record as callers see it: secret parameters' values replaced. */
export function shown(inst: InstanceRecord): InstanceRecord {
  if (!inst.secretParams?.length) return inst;
  return { ...inst, params: Object.fromEntries(Object.entries(inst.params).map(([k, v]) => [k, inst.secretParams!.includes(k) ? SECRET_SHOWN : v])) };
}

export type Action = 'start' | 'stop' | 'reboot' | 'poweroff' | 'destroy' | 'provision' | 'migrate' | 'snapshot' | 'restore' | 'update';

/** Which actions each state allows: the one place lifecycle rules live. */
const ALLOWED: Record<InstanceState, readonly Action[]> = {
  pending: ['provision', 'destroy'],
  provisioning: [],
  // Snapshots are qcow2 internal snapshots, taken and deleted with the instance layer not in use.
  running: ['stop', 'reboot', 'poweroff', 'destroy', 'migrate', 'update'],
  stopped: ['start', 'destroy', 'migrate', 'snapshot', 'restore', 'update'],
  // start on a failed provisioning (nothing left on the host) provisions it again.
  failed: ['destroy', 'start', 'provision', 'update'],
  deleting: ['destroy'],
};

/** Throws `conflict` naming the state and what is allowed, when `action` is not. */
export function assertAllowed(inst: Pick<InstanceRecord, 'name' | 'state'>, action: Action): void {
  const ok = ALLOWED[inst.state];
  if (!ok.includes(action)) {
    throw conflict(`cannot ${action} instance "${inst.name}": it is ${inst.state}`, {
      hint: ok.length ? `from ${inst.state} you can: ${ok.join(', ')}` : 'wait for the current operation to finish',
      details: { state: inst.state, action },
    });
  }
}

/** Libvirt domain name for an instance: the prefix marks domains STORM created. */
export const DOMAIN_PREFIX = 'storm-';
export const domainName = (id: string) => `${DOMAIN_PREFIX}${id}`;

/** Instance names become hostnames: RFC 1123 labels only. */
export function validName(name: string): boolean {
  return /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(name);
}

/** A locally administered unicast MAC from the instance id (stable across migration). */
export function macFor(id: string): string {
  const hex = id.replace(/[^0-9a-f]/g, '').padEnd(6, '0').slice(0, 6);
  return `52:54:00:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}`;
}

/** What an instance last reported about itself (status.report over the appliance API). */
export interface InstanceReport {
  instance: string;
  id: string;
  /** A lower-case word: ready, starting, degraded, failed … */
  status: string;
  message: string;
  at: string;
}

/** How serious a reported status is: fail/error/down are errors, degraded/warn warnings, the rest (ready, starting …) news. */
export function reportLevel(status: string): 'error' | 'warn' | 'info' {
  return /fail|error|down/.test(status) ? 'error' : /degrad|warn/.test(status) ? 'warn' : 'info';
}
