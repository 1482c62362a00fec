import { test } from 'node:test';
import assert from 'node:assert/strict';
import { splitCommand } from './command-line.ts';

test('exec command lines split like a shell, without expansion', () => {
  assert.deepEqual(splitCommand('storm instance list -o json'), ['storm', 'instance', 'list', '-o', 'json']);
  assert.deepEqual(splitCommand(`storm x "a b" 'c d' e\\ f ""`), ['storm', 'x', 'a b', 'c d', 'e f', '']);
  assert.deepEqual(splitCommand('a;rm -rf / $(x) `y`'), ['a;rm', '-rf', '/', '$(x)', '`y`']);
  assert.deepEqual(splitCommand('  '), []);
});

test('malformed or huge command lines are refused with a typed error', () => {
  assert.throws(() => splitCommand('storm "open'), (e: { code?: string }) => e.code === 'invalid');
  assert.throws(() => splitCommand('x'.repeat(100_000)), (e: { code?: string }) => e.code === 'invalid');
});
