import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import { tempDir } from '../../test/helpers/tmp.ts';
import { ImageStore } from './store.ts';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

test('enter: a verified partial is stored read-only at once; its marker goes when the flush is done', async (t) => {
  const store = new ImageStore(tempDir(t));
  const body = Buffer.from('layer bytes');
  const d = sha(body);
  writeFileSync(store.partialPath(d), body);
  const path = await store.enter(d);
  assert.equal((await store.get(d))?.size, body.length);
  assert.equal(statSync(path).mode & 0o777, 0o444);
  assert.equal(existsSync(store.partialPath(d)), false);
  await store.flushed();
  assert.deepEqual(readdirSync(store.unsynced), []);
});

test('recover after a crash: a marked image that verifies is kept, one that does not is removed, a lone marker goes', async (t) => {
  const root = tempDir(t);
  const good = Buffer.from('good layer');
  const torn = Buffer.from('torn layer');
  const [g, b, lone] = [sha(good), sha(torn), sha('never renamed')];
  {
    const store = new ImageStore(root);
    // What a crash leaves: markers for images whose flush had not finished, one of them torn on disk.
    writeFileSync(store.path(g), good);
    writeFileSync(store.path(b), Buffer.alloc(torn.length));
    for (const d of [g, b, lone]) writeFileSync(join(store.unsynced, d), '');
  }
  const store = new ImageStore(root);
  const r = await store.recover();
  assert.deepEqual(r, { kept: [g], removed: [b] });
  assert.ok(await store.has(g));
  assert.equal(await store.has(b), false, 'no unverified byte stays under a digest');
  assert.deepEqual(readdirSync(store.unsynced), []);
  assert.deepEqual(await store.recover(), { kept: [], removed: [] }, 'a second pass has nothing to do');
});
