import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from './store.ts';
import { StormError } from '../../lib/errors.ts';

test('typed collections, prefixes and atomic batches', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const s = await Store.open(join(dir, 'db'));
  const hosts = s.collection<{ name: string }>('hosts');
  const inst = s.collection<{ host: string }>('instances');
  await hosts.put('h1', { name: 'h1' });
  await s.batch().put(inst, 'a', { host: 'h1' }).put(inst, 'ab', { host: 'h1' }).put(inst, 'b', { host: 'h2' }).write();
  assert.deepEqual(await hosts.get('h1'), { name: 'h1' });
  assert.equal(await hosts.get('nope'), undefined);
  await assert.rejects(hosts.require('nope', 'host'), (e: StormError) => e.code === 'not_found' && e.message === 'host "nope" not found');
  assert.deepEqual((await inst.list({ prefix: 'a' })).map((e) => e.id), ['a', 'ab']);
  assert.equal((await inst.list()).length, 3);
  assert.equal((await hosts.list()).length, 1, 'collections do not bleed into each other');
  await s.close();
});

test('a second owner of the same directory gets busy', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const a = await Store.open(join(dir, 'db'));
  await assert.rejects(Store.open(join(dir, 'db')), (e: StormError) => e.code === 'busy' && /another process/.test(e.message));
  await a.close();
});

test('list and values read thousands of entries in key order, with prefix, limit and reverse', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const s = await Store.open(join(dir, 'db'));
  const c = s.collection<{ n: number }>('instances');
  const other = s.collection<{ n: number }>('instancesx');
  const ids = Array.from({ length: 2500 }, (_, i) => `i${String(i).padStart(5, '0')}`);
  const b = s.batch();
  for (const [n, id] of ids.entries()) b.put(c, id, { n });
  await b.put(other, 'i00000', { n: -1 }).write();
  assert.deepEqual((await c.values()).map((v) => v.n), ids.map((_, n) => n));
  assert.deepEqual((await c.list()).map((e) => e.id), ids);
  assert.deepEqual((await c.values({ prefix: 'i001' })).map((v) => v.n), Array.from({ length: 100 }, (_, i) => 100 + i));
  assert.deepEqual((await c.values({ limit: 3 })).map((v) => v.n), [0, 1, 2]);
  assert.deepEqual((await c.list({ reverse: true, limit: 2 })).map((e) => e.id), ['i02499', 'i02498']);
  await s.close();
});
