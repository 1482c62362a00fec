import type { HostRecord } from '../../manager/hosts/hosts.ts';
import type { IssuedCert } from '../../manager/pki/pki.ts';
import type { RowSpec } from './table.ts';

const gib = (b: number | undefined) => (b === undefined ? '' : `${(b / 1024 ** 3).toFixed(1)}G`);

export const hostRows: RowSpec<HostRecord> = {
  name: (h) => h.name,
  columns: [
    { header: 'NAME', get: (h) => h.name },
    { header: 'ADDRESS', get: (h) => h.address },
    { header: 'STATE', get: (h) => h.state },
    { header: 'CPUS', get: (h) => (h.info ? String(h.info.cpus) : '') },
    { header: 'MEMORY', get: (h) => gib(h.info?.memoryBytes) },
    { header: 'DISK FREE', get: (h) => gib(h.info?.diskFreeBytes) },
    { header: 'ACCEL', get: (h) => h.info?.accel ?? '' },
    { header: 'LIBVIRT', get: (h) => h.info?.libvirtVersion ?? '', wide: true },
    { header: 'CERT EXPIRES', get: (h) => h.certNotAfter ?? '', wide: true },
    { header: 'LAST SEEN', get: (h) => h.lastSeen ?? '', wide: true },
    { header: 'ERROR', get: (h) => h.lastError?.message ?? (h.state === 'pending' ? `waiting for stormd join (token expires ${h.tokenExpiresAt ?? '?'})` : '') },
  ],
};

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
