import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../../test/helpers/tmp.ts';
import { prng, sha256 } from '../../test/helpers/channel-fixture.ts';
import { streamHash, WORKER_MIN_SIZE } from './stream-hash.ts';

test('the ring hash: reads land in slots, the receiver pauses (or waits) when the hash is a ring behind, copies and a prefix mix in order', async (t) => {
  const data = prng(100 << 20, 5);
  const dir = tempDir(t);
  const path = join(dir, 'part');
  // The first 3 MiB are "already on disk" from an earlier attempt.
  const prefix = 3 << 20;
  writeFileSync(path, data.subarray(0, prefix));
  const h = streamHash(data.length, path);
  t.after(() => h.close());
  assert.ok(data.length >= WORKER_MIN_SIZE && h.slot, 'a large file gets a ring');
  const fh = await open(path, 'r');
  await h.prefix(fh, prefix);
  await fh.close();
  let pos = prefix;
  let i = 0;
  while (pos < data.length) {
    if (i++ % 7 === 3) {
      // Bytes from elsewhere (not a slot) are copied in, in order.
      const piece = data.subarray(pos, Math.min(data.length, pos + 100_003));
      h.wrote(Buffer.from(piece));
      pos += piece.length;
      continue;
    }
    // As a socket would: fill part of the slot, pass exactly what was read.
    const slot = h.slot!();
    const n = Math.min(slot.length - 17, data.length - pos);
    slot.set(data.subarray(pos, pos + n));
    h.wrote(slot.subarray(0, n));
    pos += n;
    // Mostly pause as the receiver does; sometimes carry on and let slot() wait for the worker.
    const room = i % 5 ? h.room!() : undefined;
    if (room) await room;
  }
  assert.equal(await h.digest(), sha256(data));
});

test('small files hash inline', async () => {
  const h = streamHash(1000, '/nonexistent');
  assert.equal(h.slot, undefined);
  h.wrote(Buffer.from('abc'));
  assert.equal(await h.digest(), sha256(Buffer.from('abc')));
});
