import type { InstanceRecord, InstanceReport } from '../../manager/instances/model.ts';
import { bytes } from '../../lib/format.ts';
import type { MigrationReport } from '../../manager/instances/service.ts';
import { age, factLines, when } from './detail.ts';
import type { RowSpec } from './table.ts';

export const instanceRows: RowSpec<InstanceRecord> = instanceRowsWith();

/**
 * The instance table; given the DHCP leases (`boundLeases`), `-o wide` also shows each
 * instance's address: one lease list for the whole table, not one lookup per instance.
 */
export function instanceRowsWith(addresses?: ReadonlyMap<string, string>): RowSpec<InstanceRecord> {
  return {
    name: (i) => i.name,
    columns: [
      { header: 'NAME', get: (i) => i.name },
      { header: 'STATE', get: (i) => i.state },
      { header: 'APPLIANCE', get: (i) => `${i.appliance}@${i.version}` },
      { header: 'HOST', get: (i) => i.host },
      { header: 'AGE', get: (i) => age(i.createdAt) },
      ...(addresses ? [{ header: 'ADDRESS', get: (i: InstanceRecord) => addresses.get(String(i.mac ?? '').toLowerCase()) ?? '', wide: true }] : []),
      { header: 'MAC', get: (i) => i.mac, wide: true },
      { header: 'ID', get: (i) => i.id, wide: true },
      { header: 'CREATED BY', get: (i) => i.createdBy ?? 'admin', wide: true },
      { header: 'ERROR', get: (i) => i.error ?? '', wide: true },
    ],
  };
}

/** `storm instance show NAME`: everything the record says, one fact per line (-o json for the data); `address` from the DHCP leases and DNS (instanceAddresses). */
export function instanceDetail(i: InstanceRecord, now = Date.now(), address?: { ip: string; dns: string[] }, report?: InstanceReport): string {
  const params = Object.entries(i.params ?? {}).map(([k, v]) => `${k}=${v}`).join(' ');
  const layers = Object.entries(i.layers ?? {}).map(([role, sha]) => `${role} ${String(sha).slice(0, 12)}`).join(', ');
  const lines: [string, string][] = [
    ['name', i.name],
    ['state', i.state],
    ['appliance', `${i.appliance}@${i.version}${i.previous ? ` (before: ${i.previous.version}; storm update rollback ${i.name} returns to it)` : ''}`],
    ['host', i.host],
    ['id', i.id],
    ['mac', i.mac],
    ...(address ? ([['address', `${address.ip}${address.dns.length ? ` (${address.dns.join(', ')})` : ''}`]] as [string, string][]) : []),
    // What the guest itself last said over the appliance API (an update's canary must say ready again).
    ...(report ? ([['reported', `${report.status}${report.message ? `: ${report.message}` : ''} (${age(report.at, now)} ago)`]] as [string, string][]) : []),
    ['resources', `${i.memoryMiB} MiB, ${i.vcpus} vCPU${i.vcpus === 1 ? '' : 's'}`],
    ['parameters', params || '(none)'],
    ['layers', layers || '(none)'],
    ['created', `${when(i.createdAt, now)} by ${i.createdBy ?? 'admin'}`],
    ['updated', when(i.updatedAt, now)],
  ];
  if (i.error) lines.push(['error', `${i.error}${i.errorCode ? ` (${i.errorCode})` : ''}`]);
  return factLines(lines);
}

/** `storm instance migrate`'s answer for people: where it went and what travelled. */
export function migrationText(m: MigrationReport): string {
  const shared = m.layerBytes ? `, and ${bytes(m.layerBytes)} of shared layers ${m.to} lacked` : ` (${m.to} held every shared layer)`;
  return `${m.instance}: moved from ${m.from} to ${m.to}; ${bytes(m.bytesMoved)} travelled: its instance layer ${bytes(m.instanceLayerBytes)}${shared}\n`;
}
