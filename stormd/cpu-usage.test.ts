import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CpuSampler, parseProcStat, usagePercent } from './cpu-usage.ts';

test('parseProcStat reads the aggregate cpu line: busy and total jiffies (idle + iowait are idle)', () => {
  const t = parseProcStat('cpu  100 5 50 800 20 3 2 0 0 0\ncpu0 50 2 25 400 10 1 1 0 0 0\nintr 1\n');
  assert.deepEqual(t, { busy: 160, total: 980 });
  // Old kernels have fewer fields.
  assert.deepEqual(parseProcStat('cpu 10 0 10 80\n'), { busy: 20, total: 100 });
  // The real file of this machine parses.
  const real = parseProcStat(readFileSync('/proc/stat', 'utf8'));
  assert.ok(real && real.total > 0 && real.busy >= 0 && real.busy <= real.total);
});

test('parseProcStat refuses malformed and hostile input', () => {
  for (const bad of ['', 'cpu', 'cpu0 1 2 3 4', 'cpu a b c d', 'cpu 1 2 3', 'cpu -1 2 3 4', `cpu ${'9'.repeat(400)} 1 1 1`, `cpu ${'1 '.repeat(300)}`, 'cpu 1 2 3 4\u0000', '\ncpu 1 2 3 4', 'cpu 99999999999999999999 1 1 1']) {
    assert.equal(parseProcStat(bad), undefined, JSON.stringify(bad.slice(0, 40)));
  }
});

test('usagePercent: busy share between two readings, bounded, undefined without elapsed time', () => {
  assert.equal(usagePercent({ busy: 100, total: 1000 }, { busy: 150, total: 1200 }), 25);
  assert.equal(usagePercent({ busy: 100, total: 1000 }, { busy: 100, total: 1000 }), undefined);
  assert.equal(usagePercent({ busy: 100, total: 1000 }, { busy: 90, total: 1100 }), undefined);
  assert.equal(usagePercent({ busy: 0, total: 0 }, { busy: 500, total: 300 }), 100);
});

test('CpuSampler: the first call samples a short window, later calls cover the time since the previous', async () => {
  const lines = ['cpu 10 0 0 90', 'cpu 20 0 0 180', 'cpu 80 0 0 220'];
  let i = 0;
  const s = new CpuSampler({ read: async () => lines[Math.min(i++, lines.length - 1)]!, firstSampleMs: 1 });
  assert.equal(await s.percent(), 10); // (20-10)/(200-100)
  assert.equal(await s.percent(), 60); // (80-20)/(300-200)
  const none = new CpuSampler({ read: async () => { throw new Error('ENOENT'); } });
  assert.equal(await none.percent(), undefined);
  const real = await new CpuSampler({ firstSampleMs: 50 }).percent();
  assert.ok(real === undefined || (real >= 0 && real <= 100));
});
