import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkConsoleRead, consoleChunk, consoleWindow } from './console-window.ts';

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

test('consoleChunk: never splits a UTF-8 character between two reads', () => {
  const log = Buffer.from('ab€c', 'utf8'); // € is 3 bytes: e2 82 ac
  // A follower whose read ends inside € gets it on the next read, whole.
  const first = consoleChunk(log.subarray(0, 4), 0, { bytes: 4, from: 0 });
  assert.deepEqual(first, { text: 'ab', from: 0, next: 2 });
  assert.deepEqual(consoleChunk(log.subarray(first.next), first.next, { bytes: 64, from: first.next }), { text: '€c', from: 2, next: 6 });
  // A read of the end that begins inside € starts after it.
  assert.deepEqual(consoleChunk(log.subarray(3), 3, { bytes: 3 }), { text: 'c', from: 5, next: 6 });
  // A guest that has printed half of a character: it waits, and the follower stays where it is.
  assert.deepEqual(consoleChunk(Buffer.from([0x61, 0xe2, 0x82]), 10, { bytes: 64, from: 10 }, '7'), { text: 'a', from: 10, next: 11, boot: '7' });
  // Nothing whole at all (a one-byte read): what there is, so a follower still moves on.
  assert.deepEqual(consoleChunk(Buffer.from([0xe2]), 5, { bytes: 1, from: 5 }), { text: '\ufffd', from: 5, next: 6 });
  // Not UTF-8 at all: shown as it decodes, never held back.
  assert.deepEqual(consoleChunk(Buffer.from([0x61, 0xff]), 0, { bytes: 64, from: 0 }), { text: 'a\ufffd', from: 0, next: 2 });
  assert.deepEqual(consoleChunk(Buffer.alloc(0), 9, { bytes: 64, from: 9 }), { text: '', from: 9, next: 9 });
});
