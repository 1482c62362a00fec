import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OperationLocks } from './operation-lock.ts';
import { withRevert } from './revert.ts';
import { StormError } from './errors.ts';

test('a second action on a locked object is refused as busy', async () => {
  const locks = new OperationLocks();
  let release!: () => void;
  const first = locks.run('instance/web1', 'start', () => new Promise<void>((r) => (release = r)));
  await assert.rejects(locks.run('instance/web1', 'destroy', async () => {}), (e: StormError) => e.code === 'busy' && /start in progress/.test(e.message));
  await locks.run('instance/web2', 'destroy', async () => {});
  release();
  await first;
  await locks.run('instance/web1', 'destroy', async () => {});
});

test('withRevert undoes completed steps newest first on failure', async () => {
  const log: string[] = [];
  await assert.rejects(
    withRevert(async (r) => {
      log.push('a');
      r.add('a', () => void log.push('undo a'));
      log.push('b');
      r.add('b', () => void log.push('undo b'));
      throw new Error('step c failed');
    }),
    /step c failed/,
  );
  assert.deepEqual(log, ['a', 'b', 'undo b', 'undo a']);
  log.length = 0;
  await withRevert(async (r) => {
    r.add('x', () => void log.push('undo x'));
  });
  assert.deepEqual(log, []);
});
