import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { StormError } from '../../../lib/errors.ts';
import { checkReachable, type QemuUser } from './reach.ts';

const nobody: QemuUser = { name: 'nobody', uid: 65534, gids: [65534] };

test('reachability: each directory is walked once per set, and a closed one below a checked one still fails', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'storm-reach-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  chmodSync(root, 0o755);
  for (const d of ['layers', 'closed']) mkdirSync(join(root, d), { mode: 0o755 });
  chmodSync(join(root, 'closed'), 0o700);
  for (const f of ['layers/a', 'layers/b', 'closed/c']) writeFileSync(join(root, f), 'x', { mode: 0o444 });
  const searchable = new Set<string>();
  await checkReachable('a', join(root, 'layers/a'), nobody, { read: true, searchable });
  assert.ok(searchable.has(join(root, 'layers')) && searchable.has(root) && searchable.has('/'), 'the walk is remembered up to /');
  const before = searchable.size;
  await checkReachable('b', join(root, 'layers/b'), nobody, { read: true, searchable });
  assert.equal(searchable.size, before, 'nothing walked again');
  await assert.rejects(checkReachable('c', join(root, 'closed/c'), nobody, { searchable }), (e: StormError) => e.code === 'invalid' && e.message.includes(join(root, 'closed')));
  assert.ok(!searchable.has(join(root, 'closed')));
  await assert.rejects(checkReachable('gone', join(dirname(root), 'no-such-storm-file'), nobody, { searchable }), (e: StormError) => e.code === 'not_found');
});
