import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TableModel } from './table-model.ts';
import type { RowSpec } from './table.ts';

type R = { name: string; state: string; n: number };
const spec: RowSpec<R> = {
  name: (r) => r.name,
  columns: [
    { header: 'NAME', get: (r) => r.name },
    { header: 'STATE', get: (r) => r.state },
    { header: 'N', get: (r) => String(r.n) },
    { header: 'WIDE', get: () => 'w', wide: true },
  ],
};
const rows = (k: number): R[] => Array.from({ length: k }, (_, i) => ({ name: `vm-${i}`, state: i % 2 ? 'running' : 'stopped', n: (i * 7) % 13 }));

test('only the visible window is formatted; selection scrolls it', () => {
  const m = new TableModel(spec);
  m.setRows(rows(10_000));
  let w = m.window(60, 10);
  assert.equal(w.lines.length, 10);
  assert.match(w.header, /^\s+NAME\s+STATE\s+N\s*$/);
  assert.equal(w.position, '1/10000');
  assert.ok(w.lines[0]!.selected);
  m.move(25);
  w = m.window(60, 10);
  assert.match(w.lines.at(-1)!.text, /vm-25 /);
  assert.ok(w.lines.at(-1)!.selected);
  m.end();
  assert.match(m.window(60, 10).lines.at(-1)!.text, /vm-9999/);
  for (const l of m.window(60, 10).lines) assert.equal(l.text.length, 60);
});

test('sort by column (numeric when every cell is a number), again reverses; selection follows the object', () => {
  const m = new TableModel(spec);
  m.setRows(rows(20));
  m.move(3); // vm-3
  m.sortBy(2);
  assert.equal(m.selectedName(), 'vm-3');
  const ns = m.window(60, 20).lines.map((l) => Number(l.text.trim().split(/\s+/)[2]));
  assert.deepEqual(ns, [...ns].sort((a, b) => a - b));
  assert.match(m.window(60, 20).header, /N▲/);
  m.sortBy(2);
  assert.match(m.window(60, 20).header, /N▼/);
  const ds = m.window(60, 20).lines.map((l) => Number(l.text.trim().split(/\s+/)[2]));
  assert.deepEqual(ds, [...ds].sort((a, b) => b - a));
});

test('filter matches any cell, case-insensitively; marks survive filtering, vanish with their object', () => {
  const m = new TableModel(spec);
  m.setRows(rows(10));
  m.toggleMark(); // vm-0, moves to vm-1
  m.toggleMark(); // vm-1
  assert.deepEqual(m.targets().map((t) => t.name), ['vm-0', 'vm-1']);
  m.setFilter('RUNNING');
  assert.equal(m.size, 5);
  assert.ok(m.window(60, 10).lines.some((l) => l.marked && /vm-1 /.test(l.text)));
  m.setRows(rows(10).slice(1));
  assert.deepEqual([...m.marks], ['vm-1']);
  m.marks.clear();
  m.setFilter('');
  m.home();
  assert.deepEqual(m.targets().map((t) => t.name), ['vm-1']);
});

test('hostile cells: control characters and escapes are stripped, a throwing getter shows empty', () => {
  const m = new TableModel<R>({ name: (r) => r.name, columns: [{ header: 'NAME', get: (r) => r.name }, { header: 'BAD', get: () => { throw new Error('x'); } }] });
  m.setRows([{ name: 'evil\x1b[2J\nname\x07', state: '', n: 0 }]);
  const t = m.window(40, 5).lines[0]!.text;
  assert.doesNotMatch(t, /[\x00-\x1f]/);
  assert.match(t, /evil\[2J name/);
});

test('wide columns only when asked; long cells are cut to the box', () => {
  const m = new TableModel(spec);
  m.setRows(rows(2), true);
  assert.deepEqual(m.columns, ['NAME', 'STATE', 'N', 'WIDE']);
  m.setRows([{ name: 'x'.repeat(200), state: 's', n: 1 }]);
  const l = m.window(50, 3).lines[0]!.text;
  assert.equal(l.length, 50);
  assert.match(l, /x~/);
});
