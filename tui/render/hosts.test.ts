import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostSparkRows, sparkBars } from './hosts.ts';

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
