import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StormError } from '../../../lib/errors.ts';
import { VirshSession } from './virsh.ts';

test('virsh session: output and errors framed per command, state kept across commands', async (t) => {
  const s = new VirshSession('test:///default');
  t.after(() => s.close());
  const ok = await s.exec(['list', '--all', '--name']);
  assert.deepEqual(ok.errors, []);
  assert.match(ok.stdout, /^test$/m);
  const bad = await s.exec(['dominfo', 'storm-hv-nope']);
  assert.equal(bad.errors.length, 1);
  assert.match(bad.errors[0]!, /failed to get domain/);
  // State lives in the one connection: a change is seen by the next command.
  assert.deepEqual((await s.exec(['destroy', 'test'])).errors, []);
  assert.match((await s.exec(['domstate', 'test'])).stdout, /shut off/);
  // Many commands in flight are answered in order, each with its own output.
  const many = await Promise.all(Array.from({ length: 20 }, (_, i) => s.exec(['echo', `n${i}`])));
  assert.deepEqual(many.map((r) => r.stdout.trim()), Array.from({ length: 20 }, (_, i) => `n${i}`));
});

test('virsh session: a hung command times out, and the next command gets a fresh session', async (t) => {
  const s = new VirshSession('test:///default');
  t.after(() => s.close());
  await assert.rejects(s.exec(['event', '--all', '--loop'], { timeoutMs: 300 }), (e: unknown) => e instanceof StormError && e.code === 'timeout');
  const r = await s.exec(['list', '--all', '--name']);
  assert.match(r.stdout, /^test$/m);
});
