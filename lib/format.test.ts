import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bytes, countedNames } from './format.ts';

test('bytes: B, then KiB to TiB with one decimal', () => {
  assert.equal(bytes(512), '512 B');
  assert.equal(bytes(1536), '1.5 KiB');
  assert.equal(bytes(3 * 2 ** 30), '3.0 GiB');
});

test('countedNames: the count, the noun in number, the first names, an ellipsis past them', () => {
  assert.equal(countedNames('instance', ['web1']), '1 instance: web1');
  assert.equal(countedNames('instance', ['a', 'b']), '2 instances: a, b');
  assert.equal(countedNames('object', ['a', 'b', 'c', 'd', 'e', 'f', 'g']), '7 objects: a, b, c, d, e, …');
  assert.equal(countedNames('object', ['a', 'b', 'c'], 2), '3 objects: a, b, …');
});
