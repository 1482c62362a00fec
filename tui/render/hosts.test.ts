import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HostRecord } from '../../manager/hosts/hosts.ts';
import { hostDetail, hostSparkRows, sparkBars } from './hosts.ts';

test('sparkBars: a fixed 0..100 scale, newest on the right, cut to the width', () => {
  assert.equal(sparkBars([0, 50, 100], 10), '▁▅█');
  // An idle host stays low: the scale is not the series' own min..max.
  assert.equal(sparkBars([1, 2, 1, 2], 10), '▁▁▁▁');
  assert.equal(sparkBars([100, 0, 0, 0, 100], 2), '▁█');
  assert.equal(sparkBars([5, 5], 0), '');
  assert.equal(sparkBars([], 20), '');
  // Out of range and non-numbers: clamped or skipped, never a wrong character.
  assert.equal(sparkBars([-50, 250, Number.NaN, Infinity, '80', null, 75], 10), '▁█▆');
  assert.equal(sparkBars([40], 10, 40), '█');
});

test('hostSparkRows: title with state and figures, the CPU series from the manager (or the one figure), tolerant of junk', () => {
  const info = { memoryBytes: 1000, freeMemoryBytes: 250, diskTotalBytes: 100, diskFreeBytes: 90, cpuPercent: 30 };
  const rows = hostSparkRows(
    [
      { name: 'hv1', state: 'online', info, cpuHistory: [10, 20, 30] },
      { name: 'hv2', state: 'offline', info: { ...info, cpuPercent: 70 } },
      { name: 'hv3', state: 'pending' },
      { name: 'hv4', state: 'online', cpuHistory: 'not a list', info: { cpuPercent: 'x' } },
      { name: 'hv5', cpuHistory: [1, 'two', null, 99] },
      null,
    ],
    40,
  );
  assert.deepEqual(rows[0], { name: 'hv1', title: 'hv1  online  cpu 30%  mem 75%  disk 10%', series: [10, 20, 30], bars: '▂▂▃' });
  assert.deepEqual(rows[1]!.series, [70]);
  assert.equal(rows[1]!.bars, '▆');
  assert.deepEqual(rows[2], { name: 'hv3', title: 'hv3  pending  cpu -  mem -  disk -', series: [], bars: '' });
  assert.deepEqual(rows[3]!.series, []);
  assert.deepEqual(rows[4]!.series, [1, 99]);
  assert.equal(rows[5]!.title, '    cpu -  mem -  disk -');
  // Wider history than the pane: the newest samples show.
  const long = hostSparkRows([{ name: 'hv', cpuHistory: Array.from({ length: 60 }, (_, i) => (i < 50 ? 0 : 100)) }], 10)[0]!;
  assert.equal(long.bars, '█'.repeat(10));
  assert.equal(long.series.length, 60);
});

test('host show: one fact per line; an offline host says why; health lines carry the fix of what is not healthy', () => {
  const now = Date.parse('2026-11-26T12:10:00.000Z');
  const h: HostRecord = {
    name: 'hv2', address: '10.0.0.2:7443', state: 'offline', addedAt: '2026-11-26T12:00:00.000Z', enrolledAt: '2026-11-26T12:01:00.000Z',
    certSerial: 'ab12', certNotAfter: '2027-11-26T12:10:00.000Z', lastSeen: '2026-11-26T12:09:00.000Z',
    lastError: { code: 'unreachable', message: 'connect ECONNREFUSED 10.0.0.2:7443' },
    info: {
      name: 'hv2', version: '0.1.0', hostname: 'rack2', cpus: 1, cpuModel: 'EPYC', cpuPercent: 12.4, memoryBytes: 4 * 1024 ** 3, freeMemoryBytes: 1024 ** 3,
      diskFreeBytes: 10 * 1024 ** 3, diskTotalBytes: 20 * 1024 ** 3, libvirtUri: 'qemu:///system', libvirtVersion: '9.0.0', accel: 'tcg', crlNumber: 3,
      certNotBefore: '2026-11-26T12:00:00.000Z', certNotAfter: '2027-11-26T12:10:00.000Z',
      health: [
        { component: 'libvirtd', status: 'healthy', reason: 'reachable' },
        { component: 'kvm', status: 'undetected', reason: 'no VT-x', fix: 'enable VT-x' },
      ],
    },
  };
  assert.equal(hostDetail(h, now, 2), [
    'name:        hv2',
    'state:       offline',
    'error:       connect ECONNREFUSED 10.0.0.2:7443 (unreachable)',
    'address:     10.0.0.2:7443',
    'machine:     rack2: 1 CPU (EPYC), 12% busy',
    'memory:      3.0 GiB used of 4.0 GiB (1.0 GiB free)',
    'disk:        10.0 GiB free of 20.0 GiB (state directory)',
    'libvirt:     9.0.0 at qemu:///system, TCG (QEMU emulation, no KVM)',
    'stormd:      0.1.0, CRL 3',
    'instances:   2',
    'certificate: ab12, valid until 2027-11-26 12:10:00 (in 365d)',
    'added:       2026-11-26 12:00:00 (10m ago)',
    'enrolled:    2026-11-26 12:01:00 (9m ago)',
    'last seen:   2026-11-26 12:09:00 (60s ago)',
    'health:      healthy    libvirtd: reachable',
    '             undetected kvm: no VT-x',
    '                        fix: enable VT-x',
    '',
  ].join('\n'));
  // A host not yet joined: no machine facts, what it waits for.
  const pending = hostDetail({ name: 'hv3', address: '10.0.0.3:7443', state: 'pending', addedAt: '2026-11-26T12:00:00.000Z', tokenExpiresAt: '2026-11-26T13:00:00.000Z' }, now);
  assert.match(pending, /^join: +waiting for stormd join \(token expires 2026-11-26 13:00:00 \(in 50m\)\)$/m);
  assert.doesNotMatch(pending, /machine|health|instances/);
});
