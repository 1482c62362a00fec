import { test } from 'node:test';
import assert from 'node:assert/strict';
import { place, type Candidate } from './placement.ts';
import { StormError } from '../../lib/errors.ts';

const cand = (host: string, free: number, layers: string[] = [], online = true): Candidate => ({
  host, online, capacity: { memoryMiB: 8192, freeMemoryMiB: free, vcpus: 2, freeDiskBytes: 1e12 }, layers: new Set(layers), vcpusUsed: 0,
});
const need = { memoryMiB: 512, vcpus: 1, layers: [{ sha256: 'a', size: 1000 }, { sha256: 'b', size: 10 }] };

test('prefers the host holding more bytes of the layers, then free memory', () => {
  assert.equal(place([cand('h1', 4000), cand('h2', 1000, ['a'])], need), 'h2');
  assert.equal(place([cand('h1', 4000, ['b']), cand('h2', 1000, ['a'])], need), 'h2');
  assert.equal(place([cand('h1', 1000), cand('h2', 4000)], need), 'h2');
});

test('offline and full hosts are never chosen; none left is a clear error', () => {
  assert.equal(place([cand('h1', 4000, ['a'], false), cand('h2', 600)], need), 'h2');
  assert.throws(() => place([cand('h1', 100)], need), (e: StormError) => e.code === 'unavailable' && /512 MiB/.test(e.message));
  assert.throws(() => place([cand('h1', 4000, [], false)], need), /no host is online/);
});
