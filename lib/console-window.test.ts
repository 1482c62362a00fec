import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkConsoleRead, consoleWindow } from './console-window.ts';

test('console reads: the tail without from, from an offset with it, from 0 when the log started again', () => {
  assert.deepEqual(consoleWindow(100, { bytes: 30 }), { start: 70, n: 30 });
  assert.deepEqual(consoleWindow(10, { bytes: 30 }), { start: 0, n: 10 });
  assert.deepEqual(consoleWindow(100, { bytes: 30, from: 50 }), { start: 50, n: 30 });
  assert.deepEqual(consoleWindow(100, { bytes: 30, from: 90 }), { start: 90, n: 10 });
  assert.deepEqual(consoleWindow(100, { bytes: 30, from: 100 }), { start: 100, n: 0 }, 'nothing new');
  assert.deepEqual(consoleWindow(40, { bytes: 30, from: 100 }), { start: 0, n: 30 }, 'shorter than from: a new boot');
  assert.deepEqual(consoleWindow(0, { bytes: 30 }), { start: 0, n: 0 });
  assert.deepEqual(consoleWindow(100, { bytes: 30, from: 50, boot: '3' }, '4'), { start: 0, n: 30 }, 'another run: from 0');
  assert.deepEqual(consoleWindow(100, { bytes: 30, from: 50, boot: '4' }, '4'), { start: 50, n: 30 }, 'the same run');
  assert.deepEqual(consoleWindow(100, { bytes: 30, from: 50, boot: '4' }), { start: 50, n: 30 }, 'off now: no run to compare');
  assert.deepEqual(checkConsoleRead({ bytes: 5, boot: '17' }), { bytes: 5, boot: '17' });
  assert.throws(() => checkConsoleRead({ bytes: 5, boot: '../x y' }), (e: Error & { code?: string }) => e.code === 'invalid');
  assert.deepEqual(checkConsoleRead({ bytes: 5, from: 0 }), { bytes: 5, from: 0 });
  for (const bad of [{ bytes: 0 }, { bytes: 2 * 1024 * 1024 }, { bytes: 1.5 }, { bytes: 5, from: -1 }, { bytes: 5, from: 0.5 }, { bytes: 5, from: Number.MAX_VALUE }]) {
    assert.throws(() => checkConsoleRead(bad), (e: Error & { code?: string }) => e.code === 'invalid', JSON.stringify(bad));
  }
});
