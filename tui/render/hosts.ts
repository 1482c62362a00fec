import type { HostRecord } from '../../manager/hosts/hosts.ts';
import type { IssuedCert } from '../../manager/pki/pki.ts';
import { bytes as formatBytes } from '../../lib/format.ts';
import { factLines, when } from './detail.ts';
import { field, percent, text } from './resources.ts';
import type { RowSpec } from './table.ts';

const gib = (b: number | undefined) => (b === undefined ? '' : `${(b / 1024 ** 3).toFixed(1)}G`);

export const hostRows: RowSpec<HostRecord> = {
  name: (h) => h.name,
  columns: [
    { header: 'NAME', get: (h) => h.name },
    { header: 'ADDRESS', get: (h) => h.address },
    { header: 'STATE', get: (h) => h.state },
    { header: 'CPUS', get: (h) => (h.info ? String(h.info.cpus) : '') },
    { header: 'CPU USE', get: (h) => (typeof h.info?.cpuPercent === 'number' ? `${Math.round(h.info.cpuPercent)}%` : '') },
    { header: 'MEMORY', get: (h) => gib(h.info?.memoryBytes) },
    { header: 'DISK FREE', get: (h) => gib(h.info?.diskFreeBytes) },
    { header: 'ACCEL', get: (h) => h.info?.accel ?? '' },
    { header: 'LIBVIRT', get: (h) => h.info?.libvirtVersion ?? '', wide: true },
    { header: 'CERT EXPIRES', get: (h) => h.certNotAfter ?? '', wide: true },
    { header: 'LAST SEEN', get: (h) => h.lastSeen ?? '', wide: true },
    { header: 'ERROR', get: (h) => h.lastError?.message ?? (h.state === 'pending' ? `waiting for stormd join (token expires ${h.tokenExpiresAt ?? '?'})` : '') },
  ],
};

/**
 * `storm host show NAME`: what the poll found, one fact per line: state and why, the machine,
 * libvirt and acceleration, the certificate, and each component's health with its fix.
 */
export function hostDetail(h: HostRecord, now = Date.now(), instances?: number): string {
  const i = h.info;
  const lines: [string, string][] = [
    ['name', h.name],
    ['state', h.state],
    ...(h.lastError ? ([['error', `${h.lastError.message}${h.lastError.code ? ` (${h.lastError.code})` : ''}`]] as [string, string][]) : []),
    ...(h.state === 'pending' ? ([['join', `waiting for stormd join (token expires ${h.tokenExpiresAt ? when(h.tokenExpiresAt, now) : '?'})`]] as [string, string][]) : []),
    ['address', h.address],
  ];
  if (i) {
    const used = i.memoryBytes - i.freeMemoryBytes;
    lines.push(
      ['machine', `${i.hostname}: ${i.cpus} CPU${i.cpus === 1 ? '' : 's'} (${i.cpuModel})${typeof i.cpuPercent === 'number' ? `, ${Math.round(i.cpuPercent)}% busy` : ''}`],
      ['memory', `${formatBytes(used)} used of ${formatBytes(i.memoryBytes)} (${formatBytes(i.freeMemoryBytes)} free)`],
      ['disk', `${formatBytes(i.diskFreeBytes)} free of ${formatBytes(i.diskTotalBytes)} (state directory)`],
      ['libvirt', `${i.libvirtVersion ?? '?'} at ${i.libvirtUri}, ${i.accel === 'kvm' ? 'KVM' : 'TCG (QEMU emulation, no KVM)'}`],
      ['stormd', `${i.version}, CRL ${i.crlNumber}`],
    );
  }
  if (instances !== undefined) lines.push(['instances', String(instances)]);
  if (h.certSerial) lines.push(['certificate', `${h.certSerial}, valid until ${h.certNotAfter ? when(h.certNotAfter, now) : '?'}`]);
  lines.push(['added', when(h.addedAt, now)]);
  if (h.enrolledAt) lines.push(['enrolled', when(h.enrolledAt, now)]);
  if (h.lastSeen) lines.push(['last seen', when(h.lastSeen, now)]);
  // Each component on its line: STATUS component: reason, and the fix under it.
  (i?.health ?? []).forEach((c, n) => {
    lines.push([n === 0 ? 'health' : '', `${c.status.padEnd(10)} ${c.component}: ${c.reason}`]);
    if (c.fix && c.status !== 'healthy') lines.push(['', `${''.padEnd(10)} fix: ${c.fix}`]);
  });
  return factLines(lines);
}

export const certRows: RowSpec<IssuedCert> = {
  name: (c) => c.serial,
  columns: [
    { header: 'SERIAL', get: (c) => c.serial },
    { header: 'ROLE', get: (c) => c.role },
    { header: 'NAME', get: (c) => c.commonName },
    { header: 'EXPIRES', get: (c) => c.notAfter },
    { header: 'REVOKED', get: (c) => (c.revokedAt ? `${c.revokedAt} (${c.reason ?? ''})` : '') },
    { header: 'ISSUED', get: (c) => c.issuedAt, wide: true },
  ],
};

/** Sparkline ticks, lowest to highest (the ones blessed-contrib's sparkline uses). */
const TICKS = '▁▂▃▄▅▆▇█';

/**
 * A series as sparkline bars on a fixed scale 0..`max` (not the series' own
 * min..max: an idle host must not look busy), newest on the right, at most
 * `width` bars. Values that are not finite numbers are skipped.
 */
export function sparkBars(values: readonly unknown[], width: number, max = 100): string {
  const w = Math.max(0, Math.floor(width));
  if (w === 0) return '';
  const nums = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v)).slice(-w);
  return nums.map((v) => TICKS[Math.round((Math.max(0, Math.min(max, v)) / max) * (TICKS.length - 1))]).join('');
}

/** One host on the dashboard: a title with its state and figures, and its CPU series. */
export interface HostSpark {
  name: string;
  title: string;
  /** CPU usage samples (0..100), oldest first. */
  series: number[];
  /** The series as bars fitted to the width asked for. */
  bars: string;
}

const pctText = (p: number | undefined) => (p === undefined ? '-' : `${Math.round(p)}%`);

/**
 * The dashboard's host rows: from host records (host.list), tolerant of
 * missing fields. The series is the manager's `cpuHistory`, else the one
 * figure in `info.cpuPercent`, else empty (a stormd that reports none).
 */
export function hostSparkRows(hosts: readonly unknown[], width: number): HostSpark[] {
  return hosts.map((h) => {
    const hist = field(h, 'cpuHistory');
    const one = field(h, 'info.cpuPercent');
    const series = (Array.isArray(hist) ? hist : typeof one === 'number' ? [one] : []).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
    const name = text(field(h, 'name'));
    const state = text(field(h, 'state') ?? field(h, 'status'));
    const title = `${name}  ${state}  cpu ${pctText(percent(h, 'cpu'))}  mem ${pctText(percent(h, 'mem'))}  disk ${pctText(percent(h, 'disk'))}`;
    return { name, title, series, bars: sparkBars(series, width) };
  });
}
